"""``edgekit bench``: per-stage latency of one or more models, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgekit.errors import RemoteError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from edgekit.bench import BenchConfig


class _ListOptionCommand(click.Command):
    """Lets ``--threads 1 2 4`` (and ``--threads 1,2``) mean ``--threads 1 --threads 2 ...``."""

    list_options = ("--threads",)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_list_options(args, self.list_options))


def expand_list_options(args: list[str], names: tuple[str, ...]) -> list[str]:
    """Repeat a list option before each integer that follows it (or each comma-separated one)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=")
        if name in names:
            values = [inline] if eq else []
            i += 1
            if not eq and i < len(args):
                values.append(args[i])
                i += 1
            while i < len(args) and args[i].isdigit():
                values.append(args[i])
                i += 1
            for value in values:
                for part in value.split(","):
                    out += [name, part]
            continue
        if arg == "--":
            out += args[i:]
            break
        out.append(arg)
        i += 1
    return out


@click.command(cls=_ListOptionCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--runs",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Timed runs per configuration.",
)
@click.option(
    "--warmup",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="Untimed runs first.",
)
@click.option(
    "--threads",
    "threads",
    multiple=True,
    type=click.IntRange(min=1),
    help="Interpreter threads; repeat or list several (--threads 1 2 4). Default: the backend's.",
)
@click.option(
    "--backend",
    default=None,
    help="ai_edge_litert | tflite_runtime | tensorflow (default: first found).",
)
@click.option(
    "--source",
    default="sample",
    show_default=True,
    help="Where the input frame comes from (its first frame).",
)
@click.option(
    "--sequential",
    is_flag=True,
    help="Run each configuration's runs in a row instead of round-robin.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write results as JSON.")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path),
    help="Write one row per model/threads/stage.",
)
@click.option(
    "--plot", "plot_path", type=click.Path(path_type=Path), help="Write a PNG chart (matplotlib)."
)
@click.option("-q", "--quiet", is_flag=True, help="No table, no progress.")
@click.option(
    "--on",
    "targets",
    multiple=True,
    metavar="USER@HOST[:PORT]|INVENTORY",
    help="Also measure on this target through SSH (repeat for several); an Ansible inventory "
    "file (the one edgekit deploy uses) adds each of its hosts. One column per target.",
)
@click.option(
    "--local", "local", is_flag=True, help="With --on: add this machine as the 'local' column."
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Also score each model with edgekit eval on this small set (a folder, or a COCO JSON / "
    "data.yaml whose folder is copied), on every target.",
)
@click.option(
    "--split",
    "eval_split",
    default="val",
    show_default=True,
    type=click.Choice(["val", "train", "all"]),
    help="--data: which part of the dataset's split to evaluate (as edgekit eval).",
)
@click.option("--max-images", type=click.IntRange(min=1), help="--data: evaluate at most N images.")
@click.option(
    "--remote-edgekit",
    default=None,
    metavar="PATH",
    help="The targets' edgekit executable. Default: the deployed bundle's venv "
    "(/opt/edgekit/venv/bin/edgekit).",
)
@click.option(
    "--remote-cache",
    default="~/.cache/edgekit/bench",
    show_default=True,
    metavar="PATH",
    help="Where copied models and data sets stay on the targets (by content hash).",
)
@click.option(
    "--known-hosts",
    type=click.Path(path_type=Path, dir_okay=False),
    help="known_hosts file to check the targets' host keys against (default: ssh's).",
)
@click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Trust the key of a target seen for the first time (a changed key is still refused).",
)
@click.option(
    "-i", "--identity", type=click.Path(path_type=Path, dir_okay=False), help="SSH private key."
)
@click.option(
    "-F", "--ssh-config", type=click.Path(path_type=Path, dir_okay=False), help="ssh config file."
)
@click.option(
    "--ssh-option",
    "ssh_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra ssh -o option (repeat).",
)
@click.option(
    "--connect-timeout",
    default=15,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds to reach a target.",
)
@click.option(
    "--remote-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds each remote step may take (default: no limit; a silent connection is "
    "dropped after a minute of failed keep-alives).",
)
def bench(
    models: tuple[Path, ...],
    runs: int,
    warmup: int,
    threads: tuple[int, ...],
    backend: str | None,
    source: str,
    sequential: bool,
    json_path: Path | None,
    csv_path: Path | None,
    plot_path: Path | None,
    quiet: bool,
    targets: tuple[str, ...],
    local: bool,
    data: Path | None,
    eval_split: str,
    max_images: int | None,
    remote_edgekit: str | None,
    remote_cache: str,
    known_hosts: Path | None,
    accept_new_host_keys: bool,
    identity: Path | None,
    ssh_config: Path | None,
    ssh_options: tuple[str, ...],
    connect_timeout: int,
    remote_timeout: float | None,
) -> None:
    """Measure preprocess, invoke, postprocess and total latency of MODELS.

    Every model runs with every --threads value on the same frame (the first built-in sample
    photo, or a generated test card when no photo package is installed, unless --source says
    otherwise). Runs are interleaved round-robin across the
    configurations so a busy machine slows them all alike. Reports p50/p90/p99/mean/std in ms.

    With --on, the same measurement runs on each target through SSH (BatchMode, host keys
    checked): models are copied once by content hash into --remote-cache, the target's own
    edgekit (same version as here) runs `edgekit bench --json`, and one table shows a column per
    target with p50 / p90 per stage, the board, CPU, governor, and temperature and throttling
    before and after. A target that fails is reported by name; the others are kept.
    Library: edgekit.bench.remote.bench_targets.

    \b
    Examples:
      edgekit bench model.tflite
      edgekit bench a.tflite b.tflite --threads 1 2 --runs 200 --json bench.json --plot bench.png
      edgekit bench model.tflite --on pi@cam1.local --local
      edgekit bench model.tflite --on fleet.ini --data checkset/ --split all --json all.json
    """
    from rich.console import Console

    from edgekit.bench import BenchConfig, bench_with_machine, report

    config = BenchConfig(
        models=models,
        runs=runs,
        warmup=warmup,
        threads=threads or (None,),
        backend=backend,
        source=source,
        interleave=not sequential,
    )
    import sys

    # Not a terminal (a pipe, a log file): wide enough that the table keeps its columns.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    if targets or data is not None:
        _bench_targets(
            config,
            console,
            quiet=quiet,
            json_path=json_path,
            csv_path=csv_path,
            plot_path=plot_path,
            targets=targets,
            local=local or not targets,
            data=data,
            eval_split=eval_split,
            max_images=max_images,
            remote_edgekit=remote_edgekit,
            remote_cache=remote_cache,
            ssh=dict(
                known_hosts=known_hosts,
                accept_new_host_keys=accept_new_host_keys,
                identity=identity,
                config=ssh_config,
                connect_timeout=connect_timeout,
                extra=ssh_options,
            ),
            remote_timeout=remote_timeout,
        )
        return
    if local:
        raise UsageError("--local adds this machine next to --on targets; give --on too")
    from edgekit.bench import machine_info

    machine = machine_info()
    if not quiet:
        console.print(
            f"machine: {machine['cpu']} ({machine['cores']} cores); "
            f"{len(config.models) * len(config.threads)} configuration(s), "
            f"{config.runs} runs each after {config.warmup} warm-up, "
            f"{'round-robin' if config.interleave else 'sequential'}"
        )
    if quiet or not sys.stderr.isatty():
        results, machine = bench_with_machine(config)
    else:
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(
                "timed runs", total=config.runs * len(config.models) * len(config.threads)
            )
            results, machine = bench_with_machine(
                config, progress=lambda done, total: bar.update(task, completed=done)
            )
    if not quiet:
        console.print(report.table(results, title="edgekit bench (ms)"))
    if json_path is not None:
        report.write_json(json_path, results, machine)
        if not quiet:
            console.print(f"wrote {json_path}")
    if csv_path is not None:
        report.write_csv(csv_path, results)
        if not quiet:
            console.print(f"wrote {csv_path}")
    if plot_path is not None:
        report.plot(results, plot_path)
        if not quiet:
            console.print(f"wrote {plot_path}")


def _bench_targets(
    config: BenchConfig,
    console: Console,
    *,
    quiet: bool,
    json_path: Path | None,
    csv_path: Path | None,
    plot_path: Path | None,
    targets: tuple[str, ...],
    local: bool,
    data: Path | None,
    eval_split: str,
    max_images: int | None,
    remote_edgekit: str | None,
    remote_cache: str,
    ssh: dict[str, Any],
    remote_timeout: float | None,
) -> None:
    """``--on``/``--data``: measure on every target, one table, every output; then fail
    (naming the targets) if any target failed."""
    from rich.console import Console

    from edgekit.bench import compare
    from edgekit.bench.remote import RemoteBenchConfig, bench_targets, default_remote_edgekit
    from edgekit.bench.ssh import SSHOptions, resolve_targets

    remote = RemoteBenchConfig(
        bench=config,
        targets=tuple(resolve_targets(targets)),
        local=local,
        ssh=SSHOptions(**ssh),
        remote_edgekit=remote_edgekit or default_remote_edgekit(),
        remote_cache=remote_cache,
        data=data,
        eval_split=eval_split,
        eval_max_images=max_images,
        timeout_s=remote_timeout,
    )
    err = Console(stderr=True)

    def say(line: str) -> None:
        if not quiet:
            err.print(line, markup=False, highlight=False, style="dim", soft_wrap=True)

    runs = bench_targets(remote, progress=say)
    if not quiet:
        console.print(compare.table(runs))
    if json_path is not None:
        compare.write_json(json_path, runs)
        if not quiet:
            console.print(f"wrote {json_path}")
    if csv_path is not None:
        compare.write_csv(csv_path, runs)
        if not quiet:
            console.print(f"wrote {csv_path}")
    if plot_path is not None and any(r.results for r in runs):
        compare.plot(runs, plot_path)
        if not quiet:
            console.print(f"wrote {plot_path}")
    failed = [r for r in runs if not r.ok]
    if len(failed) == 1:
        raise RemoteError(str(failed[0].error))
    if failed:
        raise RemoteError(
            f"{len(failed)} of {len(runs)} targets failed: "
            + "; ".join(str(r.error) for r in failed)
        )
