"""``edgekit models``: the model zoo (what can be built, trained and exported)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import click


@dataclass(frozen=True)
class ListConfig:
    task: str | None = None
    stats: bool = True
    as_json: bool = False


@click.group()
def models() -> None:
    """The model zoo: Keras definitions edgekit can build, train and export.

    \b
    edgekit models list                 name, task, input, params, MACs, Edge TPU
    edgekit models list --task detect   only detectors
    edgekit models list --no-stats      skip building (instant; no params/MACs)
    """


def _millions(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}M"


@models.command("list")
@click.option(
    "--task", type=click.Choice(["classify", "detect", "pose"]), help="Only models of this task."
)
@click.option(
    "--stats/--no-stats",
    default=True,
    show_default=True,
    help="Build each model at its default size to count parameters and MACs (seconds each).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per model instead of a table."
)
def list_(task: str | None, stats: bool, as_json: bool) -> None:
    """List the zoo's models: name, task, default input size, parameters, MACs (multiply-adds
    of the Conv2D/Depthwise/Dense layers for one image) and whether it is Edge-TPU-ready."""
    cfg = ListConfig(task=task, stats=stats, as_json=as_json)
    from edgekit.zoo.registry import describe_models

    rows = describe_models(cfg.task, with_stats=cfg.stats)
    if cfg.as_json:
        for row in rows:
            click.echo(json.dumps(asdict(row)))
        return
    header = ("name", "task", "input", "params", "MACs", "edgetpu")
    table = [
        (
            r.name,
            r.task,
            f"{r.input_size[0]}x{r.input_size[1]}",
            _millions(r.params),
            _millions(r.macs),
            "yes" if r.edgetpu_ready else "no",
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *table, strict=True)]
    for line in (header, *table):
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    not_ready = [r for r in rows if not r.edgetpu_ready]
    if not_ready:
        click.echo("")
        for r in not_ready:
            click.echo(f"{r.name}: not Edge-TPU-ready: {r.edgetpu_reason}")
