#!/usr/bin/env bash
# Emulated Raspberry Pi OS smoke run: edgekit's `pi` extra on a Debian 12 arm64 root under qemu.
#
#   sudo tools/pi_emulated_smoke.sh [--root DIR] [--keep-binfmt] [--bootstrap-only]
#
# 1. builds (once, cached) a Debian 12 "bookworm" arm64 root with debootstrap, Debian packages
#    only: python3 (3.11), python3-numpy (1.24), python3-venv, python3-scipy (an apt-built numpy
#    extension standing in for Raspberry Pi OS's simplejpeg);
# 2. resolves every wheel of the `device` and `pi` sets for aarch64 / cp311 / manylinux on the
#    host (tools/arm64_wheels.py: pip download --only-binary=:all:) into wheelhouses;
# 3. inside the root (through binfmt_misc + qemu-aarch64-static): a --system-site-packages venv,
#    `pip install --no-index edgekit[pi]` from that wheelhouse, then tools/pi_stack_check.py
#    (numpy still the apt one, scipy.ndimage imports, `edgekit detect` on the default model) and
#    `edgekit bench --runs 5`.
#
# Figures printed here are emulated, not timings. Too slow for CI (a first run takes about 20 min
# on 2 cores, mostly debootstrap; later runs about 5 min); docs/deploy.md records one run. The
# root and the wheelhouses stay under .cache-pi/ (git-ignored). Needs root, network (Debian
# mirror, PyPI) and apt's qemu-user-static and debootstrap. Exit codes: 0 ok, 1 a check failed,
# 2 usage, 3 a missing tool, or binfmt_misc cannot be used here.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$REPO/.cache-pi/bookworm-arm64
KEEP_BINFMT=0
BOOTSTRAP_ONLY=0
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BINFMT=/proc/sys/fs/binfmt_misc
BINFMT_NAME=qemu-aarch64

say() { printf 'pi-smoke: %s\n' "$*" >&2; }
die() { say "error: $2"; exit "$1"; }

while [ $# -gt 0 ]; do
  case $1 in
    --root) ROOT=$2; shift 2 ;;
    --keep-binfmt) KEEP_BINFMT=1; shift ;;
    --bootstrap-only) BOOTSTRAP_ONLY=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) die 2 "unknown argument $1" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die 3 "run as root (debootstrap, chroot, binfmt_misc)"
for tool in debootstrap qemu-aarch64-static chroot; do
  command -v "$tool" >/dev/null 2>&1 \
    || die 3 "$tool not found (apt-get install qemu-user-static debootstrap)"
done
QEMU=$(command -v qemu-aarch64-static)

# --- binfmt_misc: run aarch64 ELF files through qemu-aarch64-static --------------------------
# Needed, not optional: debootstrap's second stage, dpkg's maintainer scripts, `python3 -m venv`
# (ensurepip) and pip all exec further arm64 binaries, which `qemu-aarch64-static -L ROOT` alone
# cannot follow. Where binfmt_misc cannot be mounted or written, the script stops (exit 3).
REGISTERED_HERE=0
MOUNTED_HERE=0
if [ ! -e "$BINFMT/register" ]; then
  mount -t binfmt_misc binfmt_misc "$BINFMT" \
    || die 3 "cannot mount binfmt_misc at $BINFMT (a container without that right?)"
  MOUNTED_HERE=1
fi
if [ ! -e "$BINFMT/$BINFMT_NAME" ]; then
  # Debian's magic/mask for aarch64 ELF executables; F: the kernel opens the interpreter now,
  # so it need not exist inside the root.
  magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
  mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  printf ':%s:M::%s:%s:%s:F\n' "$BINFMT_NAME" "$magic" "$mask" "$QEMU" > "$BINFMT/register" \
    || die 3 "cannot register $BINFMT_NAME in binfmt_misc"
  REGISTERED_HERE=1
fi

MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" || true; done
  if [ "$REGISTERED_HERE" = 1 ] && [ "$KEEP_BINFMT" = 0 ]; then
    echo -1 > "$BINFMT/$BINFMT_NAME" || true
  fi
  if [ "$MOUNTED_HERE" = 1 ] && [ "$KEEP_BINFMT" = 0 ]; then umount "$BINFMT" || true; fi
}
trap cleanup EXIT

# --- the arm64 root ---------------------------------------------------------------------------
PACKAGES=python3,python3-numpy,python3-venv,python3-scipy,ca-certificates
if [ ! -x "$ROOT/usr/bin/python3" ] || [ ! -e "$ROOT/.edgekit-bootstrap-done" ]; then
  say "debootstrap bookworm arm64 into $ROOT (slow under emulation)"
  if grep -q " $ROOT/" /proc/mounts; then
    die 1 "something is still mounted under $ROOT (an interrupted run?): unmount it first"
  fi
  rm -rf "$ROOT"
  mkdir -p "$ROOT"
  debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" bookworm "$ROOT" "$MIRROR" \
    || die 1 "debootstrap failed (see $ROOT/debootstrap/debootstrap.log)"
  touch "$ROOT/.edgekit-bootstrap-done"
fi
chroot "$ROOT" /usr/bin/python3 -c 'import platform; print("root:", platform.machine(), platform.python_version())' \
  || die 3 "cannot run the root's arm64 python3 through qemu"
[ "$BOOTSTRAP_ONLY" = 1 ] && exit 0

# --- aarch64 wheels, resolved on the host ---------------------------------------------------
WHEELS=$REPO/.cache-pi/wheelhouse
PYTHON=${PYTHON:-python3}
say "resolving the device and pi sets for aarch64 / cp311 (tools/arm64_wheels.py)"
"$PYTHON" "$REPO/tools/arm64_wheels.py" --out "$WHEELS" || die 1 "the arm64 wheel resolution failed"

# --- inside the root: the Pi stack check, then bench ------------------------------------------
SMOKE=/opt/edgekit-smoke
rm -rf "$ROOT$SMOKE"
mkdir -p "$ROOT$SMOKE/wheels"
cp "$WHEELS"/pi/*.whl "$ROOT$SMOKE/wheels/"
cp "$REPO/tools/pi_stack_check.py" "$ROOT$SMOKE/"
# Not /sys: with the host's /sys visible, XNNPACK's cpuinfo reads this x86 machine's CPU lists
# and then /proc/cpuinfo (qemu-user 7.2 passes the host's through) and crashes (SIGSEGV in
# allocate_tensors). Without it cpuinfo says "failed to parse" and falls back to defaults.
for fs in proc dev; do
  if [ "$fs" = proc ]; then
    mount -t proc proc "$ROOT/proc"
  else
    # rslave: unmounting here later must never propagate back to the host's /dev or /sys
    mount --rbind "/$fs" "$ROOT/$fs" && mount --make-rslave "$ROOT/$fs"
  fi
  MOUNTS+=("$ROOT/$fs")
done
say "in the arm64 root: venv, pip install --no-index edgekit[pi], detect, bench --runs 5"
chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
  /usr/bin/python3 "$SMOKE/pi_stack_check.py" --python /usr/bin/python3 \
  --requirement "edgekit[pi]" --pip-args "--no-index --find-links $SMOKE/wheels" \
  --venv "$SMOKE/venv" --max-frames 3 --bench-runs 5 --no-photos \
  || die 1 "the Pi stack check failed inside the emulated root"
say "OK (figures above are emulated, not timings)"
