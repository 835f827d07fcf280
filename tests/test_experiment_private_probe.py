"""experiments.private_dense_probe on a tiny synthetic MRMP run: the served arm reproduces the
run's own rows, both tuned arms lower the loss they minimise, and the table pairs the arms by fold."""

import json

import jax
import numpy as np
import pytest

from conftest import CHEAP_COMPILE
from experiments import private_dense_probe as probe
from jaxprune.cli import main
from jaxprune.models import gcn
from jaxprune.serving import open_folds

TINY = ["--set", "train.epochs=20", "--set", "model.channels=4", "--set", "model.hidden=16", "--quiet", *CHEAP_COMPILE]


@pytest.fixture(scope="module")
def mrmp_run(tiny_mrmp_run):
    return tiny_mrmp_run


def test_with_dense_masks_prunable_leaves_and_swaps_the_others():
    params = gcn.init(jax.random.key(0), gcn.GCNConfig(channels=4, hidden=8, num_nodes=3, num_features=2,
                                                       num_classes=2, edges=((0, 1), (1, 2))))
    prunable = gcn.prunable(params)
    rng = np.random.default_rng(0)
    masks = jax.tree.map(lambda p, k: (rng.random(p.shape) < 0.5).astype(p.dtype) if k else None, params, prunable)
    dense = jax.tree.map(lambda d: d + 1.0, probe.dense_leaves(params, prunable))
    seen = probe.with_dense(params, masks, dense)
    flat_masks = jax.tree.leaves(masks)[::-1]
    for w, p, k in zip(jax.tree.leaves(seen), jax.tree.leaves(params), jax.tree.leaves(prunable)):
        np.testing.assert_array_equal(w, p * flat_masks.pop() if k else p + 1.0)
    assert not flat_masks


def test_the_loss_floor_is_the_entropy_of_the_smoothed_targets():
    assert probe.smoothed_entropy(0.0, 8) == 0.0
    # 0.1 over 8 classes: 0.9125 on the label, 0.0125 on each other class
    assert probe.smoothed_entropy(0.1, 8) == pytest.approx(-(0.9125 * np.log(0.9125) + 7 * 0.0125 * np.log(0.0125)))
    assert probe.smoothed_entropy(0.1, 8) == pytest.approx(0.46698, abs=1e-5)


def test_probe_serves_the_runs_rows_and_writes_paired_tables(mrmp_run, tmp_path):
    probe.main(["--run", str(mrmp_run), "--out", str(tmp_path), "--epochs", "30", "--lr", "0.01"])
    records = json.loads((tmp_path / "probe.json").read_text())
    rows = json.loads((mrmp_run / "results.json").read_text())["runs"][0]["rates"]
    trained = {r["target_rate"]: r["accuracy"] for r in rows if r["trained"]}
    assert sorted(r["rate"] for r in records) == [0.5, 0.9]
    for r in records:                          # served: the saved model at its hard mask, as training scored it
        assert r["served"] == pytest.approx(trained[r["rate"]], abs=1e-4)
        assert 0.0 <= r["shared"] <= 100.0 and 0.0 <= r["private"] <= 100.0
    table = (tmp_path / "probe.md").read_text()
    assert "| 0.5 | 1 |" in table and "one pair: no verdict" in table     # one fold: no interval
    probe.main(["--run", str(mrmp_run), "--out", str(tmp_path), "--epochs", "30", "--lr", "0.01"])   # resumes
    assert json.loads((tmp_path / "probe.json").read_text()) == records
    with pytest.raises(SystemExit, match=r"tuned with \(epochs, lr\) \[\(30, 0.01\)\]"):   # other settings: refused
        probe.main(["--run", str(mrmp_run), "--out", str(tmp_path), "--epochs", "30"])
    assert json.loads((tmp_path / "probe.json").read_text()) == records


def test_every_arm_is_the_served_model_when_tuning_cannot_move(mrmp_run):
    _, _, folds = open_folds(mrmp_run)
    saved = next(folds)
    before = probe.tune_fold(saved, 1, 1e-12)             # a step too small to matter: every arm = served
    for arms in before.values():
        assert arms["shared"] == pytest.approx(arms["served"]) and arms["private"] == pytest.approx(arms["served"])
        assert arms["private_train_loss"] == pytest.approx(arms["served_train_loss"], rel=1e-5)
    tuned = probe.tune_fold(saved, 30, 0.05)               # tuning lowers the training loss it minimises
    assert all(arms["train_loss_floor"] < arms["private_train_loss"] < arms["served_train_loss"]
               for arms in tuned.values())
    mean = {arm: np.mean([arms[f"{arm}_train_loss"] for arms in tuned.values()]) for arm in ("served", "shared")}
    assert mean["shared"] < mean["served"]                 # the shared arm minimises the mean over the rates
    assert tuned[0.5]["train_loss_floor"] == pytest.approx(0.0)   # the tiny run has no label smoothing: H(one-hot) = 0


def test_refuses_a_run_of_another_method(tmp_path):
    out = tmp_path / "dense"
    assert main(["train", "--dataset", "synthetic", "--method", "dense", "--out", str(out), *TINY]) == 0
    with pytest.raises(SystemExit, match="a dense run; the probe tunes MRMP models"):
        probe.main(["--run", str(out), "--out", str(tmp_path / "p")])
