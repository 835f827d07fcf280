"""experiments.seed_spread: per-fold accuracy of seeds of a recipe, read from results.json."""

import json

import pytest

from conftest import CHEAP_SETTING
from experiments.seed_spread import fold_accuracies, main


def _run(path, seed, accs):
    path.mkdir(parents=True)
    runs = [{"fold": f, "rates": [{"target_rate": 0.0, "accuracy": a}]} for f, a in enumerate(accs, 1)]
    (path / "results.json").write_text(json.dumps({"seed": seed, "runs": runs}))
    return path


def test_table_lists_each_seed_and_the_mean_over_seeds(tmp_path):
    a = _run(tmp_path / "a", 0, [90.0, 100.0])
    b = _run(tmp_path / "b", 1, [80.0, 90.0])
    main(["--group", f"wide={a},{b}", "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "seeds.md").read_text()
    assert "| wide | 0 | 90.0 | 100.0 | 95.00 |" in text
    assert "| wide | 1 | 80.0 | 90.0 | 85.00 |" in text
    assert "| 85.0 | 95.0 | **90.00** (seed means 85.0–95.0) |" in text


def test_a_folder_without_results_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.results.json: not found"):
        fold_accuracies(tmp_path / "missing")


def test_the_ensemble_of_one_run_scores_that_run(tmp_path):
    from experiments.seed_spread import ensemble_accuracies
    from jaxprune.config import override
    from jaxprune.data.synthetic import make_synthetic
    from jaxprune.run_config import RunConfig
    from jaxprune.runner import run
    results = run(make_synthetic(seed=0), override(RunConfig(), ["train.epochs=5", CHEAP_SETTING]),
                  out_dir=tmp_path / "r", progress=False)
    alone = ensemble_accuracies([tmp_path / "r"], None)
    assert alone == pytest.approx({1: results["runs"][0]["rates"][0]["accuracy"]})
