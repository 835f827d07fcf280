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


def test_table_pairs_each_variant_with_dense_and_the_ablations_with_full_ctf():
    from experiments.jobs import pool_seeds
    row = lambda r, acc: {"target_rate": r, "achieved_rate": r, "accuracy": acc, "kept_params": 1,  # noqa: E731
                          "flops": 10, "compact_flops": 20, "structured_fraction": 0.5, "total_params": 100}
    offsets = {"dense": 0.0, "ctf_r0.9": 1.0, "ctf_coarse_r0.9": -3.0}     # ctf_entry not run
    per_seed = {f"{name}_s{s}": {"runs": [{"fold": k, "rates": [row(0.0 if name == "dense" else 0.9,
                                                                   90 + off + k * s + (0.2 * k if off < 0 else 0))]}
                                          for k in (1, 2)], "train_seconds": 1.0}
                for name, off in offsets.items() for s in (0, 1)}
    results = pool_seeds(per_seed, list(offsets), [0, 1])
    table, rows = sbu_ctf.tables(results, [0.9], {})
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[4:6]] for line in table.splitlines()
             if "| 0.9 |" in line}
    assert cells["CTF (full)"] == ["+1.00 ± 0.00 win", "-"]
    assert cells["coarse only (structured)"][0].startswith("-2.70 ± ")      # -3 + 0.2 k over 4 pairs
    coarse_vs_full = cells["coarse only (structured)"][1]
    assert coarse_vs_full.startswith("-3.70 ± ") and coarse_vs_full.endswith("loss")
    full, coarse = rows
    assert full["minus_dense"] == 1.0 and full["minus_dense_pairs"] == 4
    assert full["minus_full"] is None and full["minus_full_half"] is None and full["minus_full_pairs"] == 0
    assert abs(coarse["minus_full"] + 3.7) < 1e-9 and coarse["minus_full_half"] > 0
