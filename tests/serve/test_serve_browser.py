"""The preview page in headless Chromium: the live <img> shows the frames fed, and the page's
script fills in FPS, the detection count and the detections from the JSON endpoints."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from preview_helpers import MAGENTA, feeding, make_result

from edgekit.io import overlay
from edgekit.serve import PreviewSink

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).is_file()),
    None,
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=4000",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def text_of(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', dom, re.S)
    assert match, f"#{element_id} not in the page"
    return match.group(1).strip()


@pytest.fixture
def served(tmp_path):
    sink = PreviewSink("127.0.0.1", 0, token="browser-test-token")
    try:
        with feeding(sink, period=0.03):
            yield sink
    finally:
        sink.close()


def test_page_shows_stats_and_detections(served, tmp_path):
    dom = chromium(tmp_path / "profile", "--dump-dom", served.url).stdout
    assert float(text_of(dom, "fps")) > 0
    assert text_of(dom, "count") == "2"
    assert int(text_of(dom, "clients")) >= 1  # the page's <img> is watching the stream
    assert text_of(dom, "state") == "live"
    stages = re.search(r'id="stages">(.*?)</tbody>', dom, re.S).group(1)
    assert "<td>invoke</td>" in stages and "<td>total</td>" in stages
    rows = re.findall(r"<tr>(.*?)</tr>", re.search(r'id="dets">(.*?)</tbody>', dom, re.S).group(1))
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in rows]
    assert [c[:3] for c in cells] == [["person", "3", "0.91"], ["person", "5", "0.62"]]
    assert served.encoded > 0


def test_screenshot_shows_the_annotated_frame(served, tmp_path):
    shot = tmp_path / "shot.png"
    chromium(tmp_path / "profile", "--window-size=900,600", f"--screenshot={shot}", served.url)
    image = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    magenta = np.all(np.abs(image.astype(int) - MAGENTA) < 40, axis=2)
    assert magenta.sum() > 0.5 * 320 * 240, "the live image is missing or blank"
    ys, xs = np.nonzero(magenta)
    y0, x0 = ys.min(), xs.min()
    view = image[y0 : y0 + 240, x0 : x0 + 320].astype(int)
    assert view.shape == (240, 320, 3)  # shown at its natural size
    expected = overlay.render(make_result(0)).astype(int)
    plain = make_result(0).frame.image.astype(int)
    # the frame as fed and drawn (magenta, two labelled boxes), through JPEG and the browser:
    # much closer to the annotated frame than to the plain one (mean 5.9 apart)
    assert np.abs(view - expected).mean() < 4.0
    drawn = np.abs(expected - plain).sum(axis=2) > 100  # box outlines, labels, status line
    assert drawn.sum() > 500
    to_drawn = np.abs(view[drawn] - expected[drawn]).mean()
    assert to_drawn < 0.5 * np.abs(view[drawn] - plain[drawn]).mean()
