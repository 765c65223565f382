"""``edgekit bench``: per-stage latency of one or more models, side by side."""

from __future__ import annotations

from pathlib import Path

import click


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
) -> None:
    """Measure preprocess, invoke, postprocess and total latency of MODELS.

    Every model runs with every --threads value on the same frame (the first built-in sample
    photo, or a generated test card when no photo package is installed, unless --source says
    otherwise). Runs are interleaved round-robin across the
    configurations so a busy machine slows them all alike. Reports p50/p90/p99/mean/std in ms.

    \b
    Examples:
      edgekit bench model.tflite
      edgekit bench a.tflite b.tflite --threads 1 2 --runs 200 --json bench.json --plot bench.png
    """
    from rich.console import Console

    from edgekit.bench import BenchConfig, bench_models, machine_info, report

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
    machine = machine_info()
    if not quiet:
        console.print(
            f"machine: {machine['cpu']} ({machine['cores']} cores); "
            f"{len(config.models) * len(config.threads)} configuration(s), "
            f"{config.runs} runs each after {config.warmup} warm-up, "
            f"{'round-robin' if config.interleave else 'sequential'}"
        )
    if quiet or not sys.stderr.isatty():
        results = bench_models(config)
    else:
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(
                "timed runs", total=config.runs * len(config.models) * len(config.threads)
            )
            results = bench_models(
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
