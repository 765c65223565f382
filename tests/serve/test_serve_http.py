"""The web preview over plain HTTP: page, MJPEG stream, JSON endpoints, tokens, shutdown."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest
from preview_helpers import feeding, http_get, make_result, read_parts, wait_for

from edgekit.errors import SinkError, UsageError
from edgekit.io import overlay
from edgekit.io.sinks import result_to_json
from edgekit.loop import run
from edgekit.serve import (
    FrameHub,
    PreviewLimits,
    PreviewSink,
    StatsWindow,
    is_loopback,
    parse_bind,
)
from edgekit.serve import server as server_mod
from edgekit.serve import sink as sink_mod


@pytest.fixture
def sink():
    s = PreviewSink("127.0.0.1", 0)
    try:
        yield s
    finally:
        s.close()


def base(sink: PreviewSink) -> str:
    return f"http://127.0.0.1:{sink.port}"


# --- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080", ("127.0.0.1", 8080)),
        (8080, ("127.0.0.1", 8080)),
        ("0", ("127.0.0.1", 0)),
        ("0.0.0.0:9000", ("0.0.0.0", 9000)),
        (":9000", ("0.0.0.0", 9000)),
        ("[::1]:8080", ("::1", 8080)),
        ("pi.local:80", ("pi.local", 80)),
    ],
)
def test_parse_bind(text, expected):
    assert parse_bind(text) == expected


@pytest.mark.parametrize("text", ["", "http", "host:", "70000", "::1:8080", "-1"])
def test_parse_bind_rejects(text):
    with pytest.raises(UsageError, match="--serve"):
        parse_bind(text)


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("127.1.2.3") and is_loopback("::1")
    assert is_loopback("localhost")
    for host in ("0.0.0.0", "::", "", "192.168.1.5", "pi.local"):
        assert not is_loopback(host)


def test_hub_hands_over_the_newest_frame_only():
    hub = FrameHub()
    assert hub.wait_newer(0, 0.01) is None
    hub.publish(b"a")
    hub.publish(b"b")
    assert hub.wait_newer(0, 0.01) == (2, b"b")  # "a" was never seen: skipped
    assert hub.wait_newer(2, 0.01) is None
    with hub.client():
        assert hub.clients == 1
    assert hub.clients == 0
    hub.close()
    assert hub.wait_newer(0, 5.0) is None  # closed: returns at once


def test_stats_window_fps_and_percentiles():
    clock = itertools.count(step=0.1)  # 10 frames per second
    stats = StatsWindow(4, clock=lambda: next(clock))
    for k in range(6):
        stats.add(make_result(k))
    snap = stats.snapshot()
    assert snap["frames"] == 6 and snap["window"] == 4
    assert snap["fps"] == pytest.approx(10.0)
    invoke = [20.0 + k % 3 for k in range(2, 6)]  # the last 4 frames
    assert snap["stages"]["invoke"]["p50"] == pytest.approx(np.percentile(invoke, 50))
    assert snap["stages"]["invoke"]["p99"] == pytest.approx(np.percentile(invoke, 99))
    assert list(snap["stages"]) == ["capture", "invoke", "total"]
    assert (snap["frame"], snap["detections"], snap["width"], snap["height"]) == (5, 2, 320, 240)


# --- HTTP --------------------------------------------------------------------------------------


def test_page_json_endpoints_and_404(sink):
    status, headers, body = http_get(base(sink) + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "stream.mjpg" in page and "stats.json" in page and 'id="fps"' in page
    assert json.loads(http_get(base(sink) + "/detections.json")[2]) == {}
    for k in range(3):
        sink.write(make_result(k))
    status, headers, body = http_get(base(sink) + "/stats.json")
    stats = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert stats["frames"] == 3 and stats["detections"] == 2 and stats["clients"] == 0
    assert set(stats["stages"]) == {"capture", "invoke", "total"}
    latest = json.loads(http_get(base(sink) + "/detections.json")[2])
    assert latest == json.loads(json.dumps(result_to_json(make_result(2))))
    assert [d["track_id"] for d in latest["detections"]] == [3, 5]
    for path in ("/nope", "/favicon.ico", "/stream.mjpg/x", "/../etc/passwd"):
        status, _, body = http_get(base(sink) + path)
        assert status == 404, path
        assert "not found" in json.loads(body)["error"]


def test_nothing_is_encoded_without_a_viewer(sink):
    for k in range(5):
        sink.write(make_result(k))
    assert sink.encoded == 0 and not sink.wants_image and sink.stats.frames == 5


def test_mjpeg_stream_yields_valid_jpegs_of_the_fed_frames():
    grays = [40 * (k % 6) + 20 for k in range(1000)]
    sink = PreviewSink("127.0.0.1", 0, render=lambda r: r.frame.image, quality=90)
    try:
        with urllib.request.urlopen(base(sink) + "/stream.mjpg", timeout=10) as response:
            wait_for(lambda: sink.hub.clients == 1)
            with feeding(sink, lambda k: make_result(k, gray=grays[k])):
                parts = read_parts(response, 5)
    finally:
        sink.close()
    seen = []
    for headers, body in parts:
        assert headers["content-type"] == "image/jpeg"
        assert body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9"
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (240, 320, 3)
        level = float(image.mean())
        assert min(abs(level - g) for g in set(grays)) < 3.0  # one of the frames fed
        seen.append(level)
    assert len(set(np.round(seen))) > 1  # frames change along the stream
    assert sink.encoded >= 5


def test_a_stuck_client_never_blocks_the_writer_is_dropped_and_close_still_returns():
    noise = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    limits = PreviewLimits(write_timeout_s=1.0, send_buffer_bytes=64 * 1024)
    sink = PreviewSink("127.0.0.1", 0, render=lambda r: r.frame.image, quality=95, limits=limits)
    stuck = socket.create_connection(("127.0.0.1", sink.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")  # ... and never reads
    try:
        wait_for(lambda: sink.hub.clients == 1)
        times = []
        for k in range(40):  # ~1.5 MB JPEGs: the stuck client's buffers fill at once
            result = make_result(k)
            frame = type(result.frame)(np.roll(noise, k, axis=1), k, 0, "noise")
            result = type(result)(frame)
            t0 = time.perf_counter()
            sink.write(result)
            times.append(time.perf_counter() - t0)
            time.sleep(0.02)
        assert max(times) < 0.5  # a hand-off to the encoder, never waiting on a client
        assert sink.encoded >= 2
        # dropped once a frame did not get through within the write timeout
        wait_for(lambda: sink.server.counts()["dropped_stalled"] == 1, timeout=10)
        assert sink.hub.clients == 0
        # a reading client still gets the newest frames
        with urllib.request.urlopen(base(sink) + "/stream.mjpg", timeout=10) as response:
            wait_for(lambda: sink.hub.clients == 1)
            with feeding(sink, lambda k: make_result(k)):
                assert len(read_parts(response, 2)) == 2
        t0 = time.perf_counter()
        sink.close()
        assert time.perf_counter() - t0 < 5.0
    finally:
        sink.close()
        stuck.close()


def test_token_required_off_loopback(monkeypatch):
    compared = []
    real = server_mod.hmac.compare_digest
    monkeypatch.setattr(
        server_mod.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b)
    )
    sink = PreviewSink("0.0.0.0", 0)
    try:
        token = sink.token
        assert token and len(token) >= 16 and f"?token={token}" in sink.url
        for path in ("/", "/stats.json", "/detections.json", "/stream.mjpg", "/nope"):
            status, headers, _ = http_get(base(sink) + path)
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith("Bearer")
        assert http_get(base(sink) + "/stats.json?token=wrong")[0] == 401
        assert http_get(base(sink) + "/stats.json?token=" + token[:-1])[0] == 401
        assert http_get(base(sink) + "/stats.json?token=" + token)[0] == 200
        assert http_get(base(sink) + "/nope?token=" + token)[0] == 404
        bearer = {"Authorization": f"Bearer {token}"}
        assert http_get(base(sink) + "/detections.json", bearer)[0] == 200
        assert compared  # compared with hmac.compare_digest (constant time)
    finally:
        sink.close()


def test_a_given_token_is_required_on_loopback_too():
    with PreviewSink("127.0.0.1", 0, token="s3cret-token") as sink:
        assert sink.url.endswith("/?token=s3cret-token")
        assert http_get(base(sink) + "/")[0] == 401
        assert http_get(base(sink) + "/?token=s3cret-token")[0] == 200
    with pytest.raises(UsageError, match="empty"):
        PreviewSink("127.0.0.1", 0, token=" ")


def test_loopback_needs_no_token(sink):
    assert sink.token is None and sink.url == f"http://127.0.0.1:{sink.port}/"


def test_busy_port_is_a_sink_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SinkError, match="cannot serve the preview"):
            PreviewSink("127.0.0.1", taken.getsockname()[1])


def test_close_stops_serving_and_joins_threads():
    before = set(threading.enumerate())
    sink = PreviewSink("127.0.0.1", 0)
    port = sink.port
    response = urllib.request.urlopen(base(sink) + "/stream.mjpg", timeout=10)
    idle = socket.create_connection(("127.0.0.1", port))  # connected, never sends a request
    wait_for(lambda: sink.hub.clients == 1)
    t0 = time.perf_counter()
    sink.close()
    assert time.perf_counter() - t0 < 5.0
    assert response.read() == b""  # the stream ended
    response.close()
    idle.close()
    assert set(threading.enumerate()) <= before  # server and handler threads all joined
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    sink.close()  # idempotent
    with pytest.raises(SinkError, match="closed"):
        sink.write(make_result(0))


@pytest.mark.parametrize("pipelined", [True, False])
def test_in_the_loop_the_viewer_gets_annotated_frames(pipelined, monkeypatch):
    """...drawn and encoded on the preview's own thread, never on a loop thread (not even the
    one thread of the serial loop)."""
    drawn_on, encoded_on = set(), set()

    def render(result):
        drawn_on.add(threading.current_thread().name)
        return overlay.render(result)

    real_encode = sink_mod.encode_jpeg

    def encode(image, quality):
        encoded_on.add(threading.current_thread().name)
        return real_encode(image, quality)

    monkeypatch.setattr(sink_mod, "encode_jpeg", encode)
    sink = PreviewSink("127.0.0.1", 0, render=render)
    response = urllib.request.urlopen(base(sink) + "/stream.mjpg", timeout=10)
    wait_for(lambda: sink.hub.clients == 1)

    def source():
        for k in range(40):
            time.sleep(0.01)
            yield make_result(k).frame

    def step(frame):
        return make_result(frame.index)

    got = []
    reader = threading.Thread(target=lambda: got.extend(read_parts(response, 3)))
    reader.start()
    stats = run(source(), step, [sink], install_signal_handlers=False, pipelined=pipelined)
    reader.join(10)
    response.close()
    assert stats.frames == 40 and sink.stats.frames == 40
    assert len(got) == 3 and sink.hub.closed  # run() closed the sink
    assert drawn_on == encoded_on == {"edgekit-preview-encoder"}
    assert "render" not in stats.stages  # the loop drew nothing for the preview
    image = cv2.imdecode(np.frombuffer(got[-1][1], np.uint8), cv2.IMREAD_COLOR)
    plain = cv2.cvtColor(make_result(0).frame.image, cv2.COLOR_RGB2BGR)
    assert image.shape == plain.shape
    assert np.abs(image.astype(int) - plain).max() > 100  # boxes and labels were drawn


def test_max_fps_caps_the_encoding():
    sink = PreviewSink("127.0.0.1", 0, render=lambda r: r.frame.image, max_fps=5)
    try:
        with urllib.request.urlopen(base(sink) + "/stream.mjpg", timeout=10) as response:
            wait_for(lambda: sink.hub.clients == 1)
            t0 = time.monotonic()
            with feeding(sink, period=0.01):  # ~100 frames a second
                read_parts(response, 3)
            elapsed = time.monotonic() - t0
        assert sink.stats.frames > 3 * sink.encoded  # most frames were never encoded
        assert sink.encoded <= 5 * elapsed + 2
    finally:
        sink.close()


def test_an_encoder_failure_disables_the_preview_in_the_loop():
    def broken(result):
        raise ValueError("cannot draw this")

    sink = PreviewSink("127.0.0.1", 0, render=broken)
    response = urllib.request.urlopen(base(sink) + "/stream.mjpg", timeout=10)
    wait_for(lambda: sink.hub.clients == 1)

    def source():
        for k in range(200):
            time.sleep(0.005)
            yield make_result(k).frame

    other = []

    class ListSink:
        def write(self, result):
            other.append(result)

        def close(self):
            pass

    stats = run(source(), lambda f: make_result(f.index), [sink, ListSink()])
    response.close()
    assert len(other) == 200 and stats.stopped_by == "end"
    (name,) = stats.sink_errors
    assert name.startswith("preview http://127.0.0.1:")
    assert "encoder failed: cannot draw this" in stats.sink_errors[name]
    assert 0 < stats.lost_frames[name] < 200
