"""The preview under load, short: tools/bench_preview.py's quick run (a sleeping step, 0 and 10
viewers, 1 viewer next to 2 slow and 2 stalled ones, 1.2 s each, loopback only). Asserts what
must hold on any machine; the fps ratios themselves are measured by the tool on a whole run
(docs/benchmarks.md, "Web preview under load")."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench_module():
    spec = importlib.util.spec_from_file_location(
        "bench_preview", ROOT / "tools" / "bench_preview.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result():
    before = threading.active_count()
    bench = bench_module()
    out = bench.bench(**bench.QUICK)
    out["threads_left"] = threading.active_count() - before
    out["problems"] = bench.problems(out, None)
    out["table"] = bench.table(out)
    return out


def rows(result) -> dict:
    return {row["config"]: row for row in result["rows"]}


def test_the_quick_run_finds_no_problem(result):
    # every reading viewer got frames and none was dropped; every slow/stalled one was
    assert result["problems"] == [], result["table"]
    assert result["threads_left"] == 0  # servers, encoders, handlers all joined


def test_viewers_get_the_stream_and_slow_ones_are_dropped_without_blocking_them(result):
    by = rows(result)
    ten = by["10 viewers"]
    assert ten["viewer_fps_median"] > 0.25 * ten["fps"]  # viewers kept up with the loop
    mixed = by["1 viewer + 2 slow + 2 stalled"]
    assert mixed["dropped"] == 4 and mixed["slow_closed"] == 4
    # QUICK write timeout 0.5 s: dropped within the 1.2 s run, not at its end
    assert mixed["dropped_by_s"] < 1.2
    assert mixed["viewer_fps_median"] > 0.25 * mixed["fps"]  # the reading one was not held up
    for row in by.values():
        assert row["refused"] == 0 and row["errors"] == 0


def test_the_loop_is_not_held_up_and_memory_stays_bounded(result):
    # gross bounds only (the strict ratio is the tool's, on a whole run): a server that made
    # the loop wait on its clients would show a ratio near 0 here
    for row in result["rows"]:
        assert row["ratio"] > 0.5, result["table"]
        assert row["rss_growth_mb"] < 64, result["table"]
    assert rows(result)["0 viewers"]["encoded"] == 0  # nobody watching: nothing encoded


def test_the_table_has_every_load(result):
    lines = result["table"].splitlines()
    assert lines[0].startswith("| load | loop fps | fps ratio to 0 viewers")
    assert [line.split(" | ")[0][2:] for line in lines[2:]] == [
        "0 viewers",
        "10 viewers",
        "1 viewer + 2 slow + 2 stalled",
    ]


def test_viewers_only_ever_connect_to_loopback(monkeypatch):
    """The tool's viewers dial 127.0.0.1 only: checked by refusing any other address."""
    bench = bench_module()
    seen = []
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        seen.append(address[0])
        if address[0] != "127.0.0.1":
            raise AssertionError(f"not loopback: {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(bench.socket, "create_connection", guarded)
    from edgekit.serve import PreviewSink

    with PreviewSink("127.0.0.1", 0) as sink:
        report = bench.viewers_main(sink.port, 1, 0, 1, 0.3)
    assert seen == ["127.0.0.1", "127.0.0.1"]
    assert [v["kind"] for v in report["viewers"]] == ["normal", "stalled"]
