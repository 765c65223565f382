"""MirroredStrategy on two logical CPU devices trains like one device (same seed, global batch).

BatchNorm statistics are synchronized over the replicas (``sync_bn``) so both runs normalize
with the same global-batch statistics; what remains different is dropout's randomness and the
order of floating-point sums. About 40 s of CPU time (graph tracing of two models); it runs in
the default suite because the training issue asks for it in CI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from pathlib import Path
    from edgekit.train import TrainConfig, train
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    result = {}
    for strategy in ("one", "mirrored"):
        cfg = TrainConfig(model="mobilenet_v2", data=data, epochs=3, batch=8, img=64, width=0.35,
                          lr=1e-3, warmup_epochs=0.5, val_fraction=0.25, out=out / strategy,
                          strategy=strategy, progress="none", tensorboard=False, crop_context=0.0,
                          augment=False, sync_bn=True, seed=3)
        res = train(cfg, echo=lambda s: None)
        result[strategy] = {"replicas": res.replicas, "loss": [r["loss"] for r in res.history]}
    print("RESULT " + json.dumps(result))
    """
)


def test_mirrored_two_cpus_matches_one_device(shapes_data, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(shapes_data), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    one, mirrored = result["one"], result["mirrored"]
    assert one["replicas"] == 1 and mirrored["replicas"] == 2
    for a, b in zip(one["loss"], mirrored["loss"], strict=True):
        assert abs(a - b) / a < 0.2, result
    for losses in (one["loss"], mirrored["loss"]):
        assert losses[-1] < losses[0], result
