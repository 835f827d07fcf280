"""experiments.sbu_mrmp end to end on real SBU data, tiny: every output file, the tables' content
of a seed's runs (pooling over seeds: test_experiment_jobs), and resuming without retraining."""

import importlib.util
import json

from conftest import CHEAP_COMPILE
from experiments import sbu_mrmp


def test_tiny_sbu_mrmp_experiment(sbu_path, tmp_path, capsys):
    out = tmp_path / "exp"
    argv = ["--data-dir", str(sbu_path), "--out", str(out), "--preset", "c8", "--folds", "1", "--rates", "0.9",
            "--workers", "0", *CHEAP_COMPILE,
            "--set", "train.epochs=3", "--set", "prune.eval_rates=0.7", "--seeds", "1"]
    sbu_mrmp.main(argv)
    for name in ("table.md", "fidelity.md", "mrmp_s1/results.json", "srmp_r0.9_s1/results.json",
                 "dense_s1/results.json", "mrmp_s1/fold1/model.npz"):
        assert (out / name).exists(), name
    table = (out / "table.md").read_text()
    assert "| 0.7 | no |" in table and "| 0.9 | yes |" in table and "Dense:" in table and "seeds 1" in table
    fidelity = (out / "fidelity.md").read_text()
    assert "fc/kernel" in fidelity and "Worst overall error" in fidelity
    mrmp = json.loads((out / "mrmp_s1" / "results.json").read_text())
    assert [s["target_rate"] for s in mrmp["summary"]] == [0.7, 0.9]
    assert mrmp["config"]["prune"]["rates"] == [0.9] and mrmp["config"]["seed"] == 1
    capsys.readouterr()
    sbu_mrmp.main(argv)                                  # resumed: nothing left to train
    assert "[1/" not in capsys.readouterr().out
    plots = [out / "accuracy_vs_rate.png", out / "weights_vs_prior.png"]
    if importlib.util.find_spec("matplotlib") is None:     # the optional [plot] extra is not installed
        assert not any(p.exists() for p in plots)           # plots are skipped, the rest is written
    else:
        assert all(p.stat().st_size > 0 for p in plots)


def pooled(accuracies: dict, rates) -> dict:
    """A pool_seeds object: {(seed, fold): accuracy} at every rate of ``rates``."""
    from experiments.jobs import pool_seeds
    def row(r, acc):
        return {"target_rate": r, "achieved_rate": r, "accuracy": acc, "kept_params": 1, "flops": 1}
    seeds = sorted({s for s, _ in accuracies})
    per_seed = {f"x_s{s}": {"runs": [{"fold": k, "rates": [row(r, a) for r in rates]}
                                     for (ss, k), a in sorted(accuracies.items()) if ss == s],
                            "train_seconds": 1.0, "config": {"prune": {"rates": list(rates)}}} for s in seeds}
    return pool_seeds(per_seed, ["x"], seeds)["x"]


def test_table_pairs_mrmp_with_srmp_and_dense_by_seed_and_fold():
    base = {(s, k): 90.0 + 2 * k - s for s in (0, 1) for k in (1, 2, 3)}
    results = {"dense": pooled({key: a + 1 for key, a in base.items()}, [0.0]),
               "mrmp": pooled({key: a - 2 + 0.1 * key[1] for key, a in base.items()}, [0.5, 0.9]),
               "srmp_r0.9": pooled(base, [0.9])}
    table, _ = sbu_mrmp.accuracy_table(results, [0.9])
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[5:7]] for line in table.splitlines()
             if line.startswith("| 0.")}
    # 6 pairs of -1.9 / -1.8 / -1.7 (each fold twice): std 0.0894, t(5) 2.571, half-width 0.094
    assert lines["0.9"] == ["-1.80 ± 0.09 loss", "-2.80 ± 0.09 loss"]
    assert lines["0.5"] == ["-", "-2.80 ± 0.09 loss"]        # no SRMP at 0.5: nothing to pair with
