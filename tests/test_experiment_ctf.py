"""experiments.sbu_ctf end to end on real SBU data, tiny: its table (markdown and CSV), the
speed-up column, the plot, and resuming without retraining."""

import csv
import importlib.util

from conftest import CHEAP_COMPILE
from experiments import sbu_ctf


def test_tiny_sbu_ctf_experiment(sbu_path, tmp_path, capsys):
    out = tmp_path / "exp"
    argv = ["--data-dir", str(sbu_path), "--out", str(out), "--preset", "c8", "--folds", "1", "--rates", "0.9",
            "--seeds", "0", "--variants", "ctf,ctf_coarse", "--workers", "0", *CHEAP_COMPILE, "--batch", "8",
            "--set", "train.epochs=3"]
    sbu_ctf.main(argv)
    for name in ("table.md", "table.csv", "dense_s0/results.json", "ctf_r0.9_s0/results.json",
                 "ctf_coarse_r0.9_s0/fold1/model.npz"):
        assert (out / name).exists(), name
    table = (out / "table.md").read_text()
    assert "Dense:" in table and "| CTF (full) | 0.9 |" in table and "| coarse only (structured) | 0.9 |" in table
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert [(r["variant"], float(r["target_rate"])) for r in rows] == [("ctf", 0.9), ("ctf_coarse", 0.9)]
    assert all(float(r["compact_speedup"]) > 0 and 0 <= float(r["structured_fraction"]) <= 1 for r in rows)
    capsys.readouterr()
    sbu_ctf.main([*argv[:-4], "--batch", "0", *argv[-2:]])    # resumed: nothing left to train
    assert "[1/" not in capsys.readouterr().out
    plot = out / "ctf_vs_rate.png"
    assert plot.exists() == (importlib.util.find_spec("matplotlib") is not None)
