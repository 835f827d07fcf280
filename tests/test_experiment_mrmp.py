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
