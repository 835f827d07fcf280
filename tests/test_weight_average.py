"""The moving average of the parameters (train.ema): its arithmetic, what a run serves and saves
with it, that a resumed run ends with the same average, and its refusals."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import pytest

from jaxprune import runner
from jaxprune.cli import main
from jaxprune.evaluate import leaf_name
from jaxprune.optim import make_optimizer
from jaxprune.serving import evaluate_run
from jaxprune.train import TrainConfig
from jaxprune.weight_average import averaged_params, params_ema
from conftest import TINY_RUN, train_until


def test_average_is_the_bias_corrected_weighted_mean():
    decay = 0.7
    chain = optax.chain(optax.sgd(0.1), params_ema(decay))
    params = {"w": np.array([1.0, -2.0], np.float32), "b": np.float32(0.5)}
    state = chain.init(params)
    assert averaged_params(state) is None             # nothing averaged before a step
    seen = []
    for t in range(5):
        grads = {"w": np.array([t, 1.0 - t], np.float32), "b": np.float32(t * t)}
        updates, state = chain.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        seen.append(params)
        weights = np.array([(1 - decay) * decay ** (len(seen) - 1 - i) for i in range(len(seen))])
        weights /= 1 - decay ** len(seen)
        assert np.isclose(weights.sum(), 1.0)
        average = averaged_params(state)
        for k in params:
            want = sum(w * np.asarray(p[k]) for w, p in zip(weights, seen))
            np.testing.assert_allclose(average[k], want, rtol=1e-5, atol=1e-6, err_msg=k)
    assert not np.allclose(average["w"], params["w"])         # an average, not the last step


def test_absent_without_the_setting():
    opt = make_optimizer(1e-3, "loss_trend", 10)
    assert averaged_params(opt.init({"w": np.zeros(3, np.float32)})) is None


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_setting_out_of_range_names_it(bad):
    with pytest.raises(ValueError, match=r"training setting ema must be in \(0, 1\)"):
        TrainConfig(ema=bad)
    with pytest.raises(ValueError, match="ema"):
        params_ema(bad)


def test_run_serves_and_saves_the_average(tmp_path, monkeypatch):
    """The saved model and the returned params are the average, not the last step's params, and
    the results' rows are the saved model's."""
    finals = []
    real_fit = runner.fit

    def keeping_fit(*args, **kwargs):
        state, history = real_fit(*args, **kwargs)
        finals.append(state)
        return state, history

    monkeypatch.setattr(runner, "fit", keeping_fit)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--method", "mrmp", "--rates", "0.5,0.9", "--out", str(out),
                 *TINY_RUN, "--set", "train.ema=0.9"]) == 0
    state = runner.to_local(finals[0])
    average = averaged_params(state.opt_state)
    flat = jax.tree_util.tree_flatten_with_path(average)[0]
    last = jax.tree.leaves(state.params)
    with np.load(out / "fold1" / "model.npz") as saved:
        moved = 0.0
        for (path, mean), final in zip(flat, last):
            name = "params/" + leaf_name(path)
            np.testing.assert_array_equal(saved[name], np.asarray(mean), err_msg=name)
            moved = max(moved, float(np.max(np.abs(saved[name] - np.asarray(final)))))
    assert moved > 1e-4                                        # the average, not the last step
    written = json.loads((out / "results.json").read_text())["runs"][0]["rates"]
    served = evaluate_run(out, (0.5, 0.9))["runs"][0]["rates"]
    key = ("target_rate", "accuracy", "achieved_rate")
    assert [[r[k] for k in key] for r in served] == [[r[k] for k in key] for r in written if r["target_rate"]
                                                     in (0.5, 0.9)]


def test_refused_where_the_method_rewrites_parameters(tmp_path, capsys):
    """Refused before any folder is made: a saved run asked to be overwritten stays as it was, with
    no staged copy left behind (which the next --overwrite would take for a stopped one)."""
    run = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--method", "mrmp", "--out", str(run), *TINY_RUN]) == 0
    before = {p.relative_to(tmp_path): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    capsys.readouterr()
    assert main(["train", "--dataset", "synthetic", "--method", "magnitude", "--out", str(run), "--overwrite",
                 *TINY_RUN, "--set", "train.ema=0.9"]) == 2
    err = capsys.readouterr().err
    assert "training setting ema is not available with method 'magnitude'" in err
    assert "Traceback" not in err
    after = {p.relative_to(tmp_path): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_resumed_run_ends_with_the_same_average(tmp_path):
    """The average lives in the optimizer state, so a run stopped at a checkpoint and resumed saves
    the same averaged model, bit for bit, as one that ran through."""
    args = ["--method", "mrmp", "--rates", "0.5,0.9", *TINY_RUN, "--set", "train.ema=0.9",
            "--set", "train.checkpoint_every=5"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["train", "--dataset", "synthetic", "--out", str(whole), *args]) == 0
    train_until(["train", "--dataset", "synthetic", "--out", str(cut), *args], 10)
    runner.resume(cut, progress=False)
    with np.load(whole / "fold1" / "model.npz") as a, np.load(cut / "fold1" / "model.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
