"""``edgekit data``: check and convert datasets (COCO JSON, YOLO txt, Pascal VOC)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgekit.errors import DatasetError

FORMAT_CHOICE = click.Choice(["auto", "coco", "yolo", "voc"])


def _names(value: str | None) -> list[str] | None:
    """``--names``: a comma-separated list, or a file with one name per line."""
    if not value:
        return None
    p = Path(value)
    if p.is_file():
        return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return [n.strip() for n in value.split(",") if n.strip()]


@click.group()
def data() -> None:
    """Check and convert datasets.

    \b
    Formats (auto-detected from the layout):
      coco  an annotations .json (instances_*.json, person_keypoints_*.json), or a folder with one
      yolo  data.yaml (names + train/val), or a folder with images/ and labels/
      voc   a folder with Annotations/*.xml and JPEGImages/
    """


@data.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True, help="Dataset format."
)
@click.option(
    "--split",
    default=None,
    help="Only this split (YOLO data.yaml train/val/test, VOC ImageSets/Main/<split>.txt).",
)
@click.option(
    "--names",
    default=None,
    help="Class names for a bare YOLO folder: 'a,b,c' or a file with one per line.",
)
@click.option(
    "--no-decode",
    is_flag=True,
    help="Skip decoding every image (faster; broken images go unnoticed).",
)
@click.option(
    "--min-box",
    type=float,
    default=2.0,
    show_default=True,
    help="Warn about boxes smaller than this (pixels).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def check(
    path: Path,
    fmt: str,
    split: str | None,
    names: str | None,
    no_decode: bool,
    min_box: float,
    as_json: bool,
) -> None:
    """Validate a dataset and summarise it.

    Prints each problem on its own line (file, line or field, what is wrong), then a table of
    boxes per class. Exits non-zero when there are errors (malformed annotations, missing or
    undecodable images, sizes differing from the annotations); warnings (missing label files,
    tiny, degenerate or duplicate boxes, duplicate images) do not fail.

    \b
    edgekit data check ../shared/data/coco128
    edgekit data check annotations/instances_val2017.json --json > report.json
    """
    from edgekit.data.check import check_dataset

    report = check_dataset(
        path, fmt, split=split, names=_names(names), decode_images=not no_decode, min_box_px=min_box
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    if not report.ok:
        raise DatasetError(f"{path}: {len(report.errors)} error(s) found")


def _print_report(report) -> None:
    from rich.console import Console
    from rich.table import Table

    for p in report.problems:
        click.echo(f"{p.severity}: {p}")
    console = Console()
    table = Table(title=f"{report.path} ({report.format})", show_footer=True)
    table.add_column("id", justify="right", footer="")
    table.add_column("class", footer="total")
    table.add_column("boxes", justify="right", footer=str(report.num_boxes))
    for i, (name, count) in enumerate(zip(report.class_names, report.class_counts, strict=True)):
        if count:
            table.add_row(str(i), name, str(count))
    console.print(table)
    unused = sum(c == 0 for c in report.class_counts)
    summary = (
        f"images {report.num_images}, boxes {report.num_boxes}, empty images {report.empty_images}, "
        f"missing labels {report.count('missing_label')}, broken images {report.count('unreadable_image')}, "
        f"classes {len(report.class_names)} ({unused} without boxes); "
        f"errors {len(report.errors)}, warnings {len(report.warnings)}"
    )
    click.echo(summary)


@data.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--to", "to", type=click.Choice(["coco", "yolo"]), required=True, help="Output format."
)
@click.option(
    "--format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True, help="Input format."
)
@click.option("--split", default=None, help="Only this split of the input.")
@click.option(
    "--names", default=None, help="Class names for a bare YOLO folder: 'a,b,c' or a file."
)
@click.option(
    "--images",
    type=click.Choice(["copy", "symlink", "none"]),
    default="copy",
    show_default=True,
    help="YOLO output: how images are placed.",
)
def convert(
    path: Path, out: Path, to: str, fmt: str, split: str | None, names: str | None, images: str
) -> None:
    """Convert a dataset: to a COCO JSON file (OUT.json) or a YOLO folder (OUT/).

    \b
    edgekit data convert VOCdevkit/VOC2012 voc.json --to coco
    edgekit data convert instances_val2017.json val_yolo --to yolo --images symlink
    """
    from edgekit.data.load import read_dataset

    dataset = read_dataset(path, fmt, split=split, names=_names(names))
    if to == "coco":
        from edgekit.data.coco import write_coco_json

        written = write_coco_json(dataset, out)
    else:
        from edgekit.data.yolo_txt import write_yolo

        written = write_yolo(dataset, out, images=images)
    click.echo(
        f"wrote {written} ({len(dataset)} images, {dataset.num_boxes} boxes, {dataset.num_classes} classes)"
    )
