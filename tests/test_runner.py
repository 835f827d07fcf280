"""The runner end to end on a tiny synthetic dataset: results.json schema, determinism, refusing
to overwrite a finished run, and a feature scale fitted on training samples only."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from conftest import CHEAP_SETTING
from jaxprune.config import override
from jaxprune.data.features import FeatureConfig, chunk_positions, fit_scale
from jaxprune.data.synthetic import make_synthetic
from jaxprune.models import gcn
from jaxprune.models.flops import count_params, gcn_flops
from jaxprune.run_config import RunConfig
from jaxprune.run_folder import RunExistsError
from jaxprune.runner import run
from jaxprune.task.folds import fold_data
from jaxprune.task.forward import gcn_config
from jaxprune.train import TrainConfig

EPOCHS = 30


@pytest.fixture(scope="module")
def dataset():
    # max_len=12 needs min_len <= 12 (the default min_len is 20)
    return make_synthetic(per_class=6, num_classes=4, min_len=6, max_len=12)


def config(seed=0):
    return override(RunConfig(seed=seed, train=TrainConfig(epochs=EPOCHS, batch_size=8, learning_rate=3e-3)),
                    [CHEAP_SETTING])


@pytest.fixture(scope="module")
def first(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    results = run(dataset, config(), out_dir=out, progress=False)
    return out, results


def test_results_json_schema(first, dataset):
    out, results = first
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    for key in ("method", "dataset", "protocol", "seed", "epochs", "config", "runs", "summary",
                "train_seconds"):
        assert key in on_disk, key
    assert on_disk["method"] == "dense" and on_disk["dataset"] == "synthetic"
    assert on_disk["protocol"] == "train/test split"
    assert on_disk["seed"] == 0 and on_disk["epochs"] == EPOCHS
    assert on_disk["config"] == json.loads(json.dumps(dataclasses.asdict(config())))
    assert on_disk["train_seconds"] > 0

    assert [r["fold"] for r in on_disk["runs"]] == [1]
    rates = on_disk["runs"][0]["rates"]
    assert len(rates) == 1
    row = rates[0]
    for key in ("target_rate", "achieved_rate", "accuracy", "kept_params", "flops"):
        assert key in row, key
    model = gcn_config(dataset, config())
    fresh = gcn.init(jax.random.key(0), model)
    _, total = count_params(fresh)
    assert row["target_rate"] == 0.0
    assert row["kept_params"] == total  # dense training keeps every weight
    assert row["achieved_rate"] == pytest.approx(1 - row["kept_params"] / total)
    assert row["flops"] == gcn_flops(fresh, model)
    n_test = int((dataset.folds == 1).sum())
    assert 0.0 <= row["accuracy"] <= 100.0
    assert round(row["accuracy"] * n_test / 100) == pytest.approx(row["accuracy"] * n_test / 100,
                                                                 abs=1e-6)  # a count of test samples

    summary = on_disk["summary"]
    assert len(summary) == 1
    s = summary[0]
    for key in ("target_rate", "achieved_rate", "accuracy_mean", "accuracy_std"):
        assert key in s, key
    assert s["target_rate"] == 0.0
    assert s["accuracy_mean"] == pytest.approx(row["accuracy"])
    assert s["accuracy_std"] == 0.0
    assert s["achieved_rate"] == pytest.approx(row["achieved_rate"])

    metrics = (out / "fold1" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == EPOCHS
    assert json.loads(metrics[-1])["epoch"] == EPOCHS
    # it learned something on the training split
    losses = [json.loads(m)["loss"] for m in metrics]
    assert losses[-1] < losses[0]


def test_same_seed_same_figures(first, dataset, tmp_path):
    _, results = first
    again = run(dataset, config(), out_dir=tmp_path / "again", progress=False)
    assert again["runs"][0]["rates"] == results["runs"][0]["rates"]
    assert again["summary"] == results["summary"]
    a = (tmp_path / "again" / "fold1" / "metrics.jsonl").read_text()
    assert a == (first[0] / "fold1" / "metrics.jsonl").read_text()


def test_existing_run_is_refused_then_overwritten(first, dataset, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # a copy of the finished run, so the shared fixture stays intact
    (out / "results.json").write_bytes((first[0] / "results.json").read_bytes())
    (out / "fold1").mkdir()
    (out / "fold1" / "metrics.jsonl").write_bytes((first[0] / "fold1" / "metrics.jsonl").read_bytes())
    before = (out / "results.json").read_bytes()
    metrics_before = (out / "fold1" / "metrics.jsonl").read_bytes()
    with pytest.raises(RunExistsError, match="overwrite"):
        run(dataset, config(seed=1), out_dir=out, progress=False)
    assert (out / "results.json").read_bytes() == before
    assert (out / "fold1" / "metrics.jsonl").read_bytes() == metrics_before  # refused before training
    assert issubclass(RunExistsError, FileExistsError)

    small = dataclasses.replace(config(seed=1), train=TrainConfig(epochs=2, batch_size=8))
    results = run(dataset, small, out_dir=out, overwrite=True, progress=False)
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["seed"] == 1 and on_disk["epochs"] == 2
    assert on_disk == json.loads(json.dumps(results))
    assert len((out / "fold1" / "metrics.jsonl").read_text().splitlines()) == 2
    assert not list(out.glob("*.tmp"))  # the atomic write left no temporary file


def test_unknown_fold_is_refused_before_any_work(dataset, tmp_path):
    with pytest.raises(ValueError, match="fold 3"):
        run(dataset, config(), folds=[3], out_dir=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_fold_scale_is_fitted_on_training_samples_only(dataset):
    features = FeatureConfig()
    base = fold_data(dataset, 1, features)
    train, test = dataset.split(1)
    assert len(base.train_labels) == len(train) and len(base.test_labels) == len(test)
    np.testing.assert_array_equal(base.train_labels, dataset.labels[train])
    # the scale is the RMS of the centred training chunks, which it brings to 1
    raw = chunk_positions(dataset.x, dataset.lengths, features)
    assert base.scale == pytest.approx(fit_scale(raw[train]), rel=1e-6)
    assert fit_scale(base.train_chunks) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(base.test_chunks, raw[test] / base.scale, rtol=1e-5, atol=1e-6)

    # moving the test samples changes their chunks, not the scale
    x = dataset.x.copy()
    x[test] *= 5.0
    moved = fold_data(dataclasses.replace(dataset, x=x), 1, features)
    assert moved.scale == base.scale
    np.testing.assert_array_equal(moved.train_chunks, base.train_chunks)
    np.testing.assert_allclose(moved.test_chunks, 5.0 * base.test_chunks, rtol=1e-4, atol=1e-5)

    # moving the training samples does change it
    x = dataset.x.copy()
    x[train] *= 5.0
    assert fold_data(dataclasses.replace(dataset, x=x), 1, features).scale == pytest.approx(
        5.0 * base.scale, rel=1e-5)

    # scale="none": unit divisor
    assert fold_data(dataset, 1, FeatureConfig(scale="none")).scale == 1.0
