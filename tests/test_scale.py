"""The bring-your-own .npz path at NTU-like scale: 25 joints × 2 persons with its bones, thousands of
sequences of uneven length, trained in mini-batches through the command line."""

import json

import numpy as np

from conftest import CHEAP_COMPILE
from jaxprune.cli import main

NTU_BONES = [(0, 1), (1, 20), (20, 2), (2, 3), (20, 4), (4, 5), (5, 6), (6, 7), (20, 8), (8, 9), (9, 10),
             (10, 11), (0, 12), (12, 13), (13, 14), (14, 15), (0, 16), (16, 17), (17, 18), (18, 19),
             (7, 21), (7, 22), (11, 23), (11, 24)]


def test_ntu_sized_npz_trains_in_mini_batches(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n, t, classes = 4000, 24, 10
    y = np.arange(n) % classes
    base = rng.normal(size=(1, 1, 50, 3)).astype(np.float32)
    motion = np.sin(np.linspace(0, np.pi, t))[None, :, None, None] * (y[:, None, None, None] / classes)
    x = (base + motion + 0.05 * rng.normal(size=(n, t, 50, 3))).astype(np.float32)
    edges = np.array(NTU_BONES + [(a + 25, b + 25) for a, b in NTU_BONES], np.int32)
    path = tmp_path / "ntu_like.npz"
    np.savez(path, x=x, y=y, lengths=rng.integers(8, t + 1, n), edges=edges)
    out = tmp_path / "run"
    # the default (wide) recipe at 16 channels: the subject is the data's scale, not the width
    assert main(["train", "--dataset", "npz", "--data-dir", str(path), "--fold", "1", "--out", str(out),
                 "--quiet", "--set", "train.epochs=2", "--set", "train.batch_size=256",
                 "--set", "train.learning_rate=0.01", "--set", "model.channels=16", *CHEAP_COMPILE]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "ntu_like" and results["runs"][0]["fold"] == 1
    lines = (out / "fold1" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2                                   # 2 epochs of ceil(3200 / 256) = 13 steps each
    assert results["runs"][0]["rates"][0]["accuracy"] > 100 / classes
