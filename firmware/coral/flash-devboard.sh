#!/bin/sh
# Flash Mendel Linux onto a Coral Dev Board / Dev Board Mini with the image's own flash.sh,
# after checking what can go wrong first. Follows Coral's documented route:
#   1. download and unzip the Mendel image (enterprise-eagle-*.zip / excelsior-*.zip)
#   2. put the board in fastboot mode (Dev Board: boot switches 1-4 = ON OFF OFF OFF, or
#      `mdt reboot-bootloader`; Dev Board Mini: `mdt reboot-bootloader`, or hold the boot button)
#   3. sh flash-devboard.sh path/to/unzipped-image-folder-or.zip [SERIAL]
# Exit codes: 0 flashed, 2 usage, 3 missing tool, 4 no/ambiguous board, 5 flash failed.
set -eu

die() { code=$1; shift; printf 'flash-devboard: error: %s\n' "$*" >&2; exit "$code"; }

[ $# -ge 1 ] && [ $# -le 2 ] || die 2 "usage: $0 IMAGE_DIR_OR_ZIP [FASTBOOT_SERIAL]"
IMAGE=$1
SERIAL=${2:-}

command -v fastboot >/dev/null 2>&1 || die 3 "fastboot not found (apt install fastboot, or Android platform-tools)"

WORK=""
cleanup() { [ -n "$WORK" ] && rm -rf "$WORK"; return 0; }
trap cleanup EXIT INT TERM
case $IMAGE in
  *.zip)
    command -v unzip >/dev/null 2>&1 || die 3 "unzip not found (apt install unzip)"
    [ -f "$IMAGE" ] || die 2 "$IMAGE: no such file"
    WORK=$(mktemp -d)
    unzip -q "$IMAGE" -d "$WORK" || die 2 "$IMAGE: cannot unzip"
    FLASH=$(find "$WORK" -maxdepth 2 -name flash.sh -type f | head -n 1)
    ;;
  *)
    [ -d "$IMAGE" ] || die 2 "$IMAGE: not a folder or .zip"
    FLASH=$IMAGE/flash.sh
    ;;
esac
[ -n "$FLASH" ] && [ -f "$FLASH" ] || die 2 "$IMAGE: no flash.sh (is this a Mendel image?)"

DEVICES=$(fastboot devices) || die 4 "'fastboot devices' failed"
COUNT=$(printf '%s\n' "$DEVICES" | grep -c 'fastboot' || true)
if [ -n "$SERIAL" ]; then
  printf '%s\n' "$DEVICES" | grep -q "^$SERIAL[[:space:]]" \
    || die 4 "board $SERIAL is not in fastboot mode (fastboot devices: ${DEVICES:-none})"
  export ANDROID_SERIAL="$SERIAL"
elif [ "$COUNT" -eq 0 ]; then
  die 4 "no board in fastboot mode (check the USB-C OTG cable and boot mode, then 'fastboot devices')"
elif [ "$COUNT" -gt 1 ]; then
  die 4 "$COUNT boards in fastboot mode: give the serial of the one to flash"
fi

echo "flash-devboard: flashing $(printf '%s' "$DEVICES" | awk 'NR==1{print $1}') from $(dirname "$FLASH")"
(cd "$(dirname "$FLASH")" && sh ./flash.sh) || die 5 "flash.sh failed (exit $?); the board stays in fastboot mode, retry"
echo "flash-devboard: done; the board reboots into Mendel. Next: mdt shell, then 'edgekit deploy'."
