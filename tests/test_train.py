"""Shared training loop: a jitted epoch that learns, wrap-around batching, determinism, logging."""

import io
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxprune.losses import accuracy, cross_entropy
from jaxprune.optim import make_optimizer
from jaxprune.train import Progress, TrainConfig, fit, init_state, make_epoch, steps_per_epoch


def blobs(n=64, seed=0):
    """Two Gaussian blobs in 2-D, centred at (-2, -2) and (2, 2): linearly separable."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    x = rng.normal(size=(n, 2)) + np.where(labels[:, None] == 1, 2.0, -2.0)
    return {"x": jnp.asarray(x, jnp.float32), "labels": jnp.asarray(labels, jnp.int32)}


def linear_loss(params, batch, key, step, prune_state=None):
    del key, step
    logits = batch["x"] @ params["w"] + params["b"]
    ce = cross_entropy(logits, batch["labels"])
    return ce, {"loss": ce, "accuracy": accuracy(logits, batch["labels"])}


def linear_params(seed=0):
    k = jax.random.key(seed)
    return {"w": 0.1 * jax.random.normal(k, (2, 2)), "b": jnp.zeros(2)}


def test_steps_per_epoch():
    assert steps_per_epoch(10, 4) == 3
    assert steps_per_epoch(8, 4) == 2
    assert steps_per_epoch(10, 100) == 1
    assert steps_per_epoch(1, 1) == 1
    assert steps_per_epoch(7, 1) == 7


def test_epoch_lowers_the_loss():
    data = blobs()
    opt = make_optimizer(0.05, "constant", 100)
    epoch = make_epoch(linear_loss, opt, 64, 16)
    mine = linear_params()
    state = init_state(mine, opt, jax.random.key(1))
    state, hist = fit(state, epoch, data, 8, progress=False)
    chex.assert_trees_all_equal(mine, linear_params())      # epochs donate the state, not the caller's params
    assert len(hist) == 8 and [h["epoch"] for h in hist] == list(range(1, 9))
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"]
    assert hist[-1]["accuracy"] > 0.95
    assert int(state.step) == 8 * 4
    final, _ = linear_loss(state.params, data, None, None)
    assert float(final) < hist[0]["loss"]


@pytest.mark.parametrize("n, batch_size", [(10, 4), (10, 100), (9, 3), (5, 1)])
def test_wrap_around_batches(n, batch_size):
    """loss = sum of p[idx] over the batch: with SGD(lr=1) one epoch leaves p = -(times seen)."""
    batch = min(batch_size, n)
    steps = steps_per_epoch(n, batch_size)

    def count_loss(params, data, key, step, prune_state=None):
        del key, step
        loss = params["p"][data["idx"]].sum()
        return loss, {"loss": loss, "batch": jnp.asarray(data["idx"].shape[0], jnp.float32)}

    opt = optax.with_extra_args_support(optax.sgd(1.0))
    epoch = make_epoch(count_loss, opt, n, batch_size)
    data = {"idx": jnp.arange(n)}
    state = init_state({"p": jnp.zeros(n)}, opt, jax.random.key(0))
    for e in range(2):
        before = np.asarray(state.params["p"])
        state, metrics = epoch(state, data)
        seen = before - np.asarray(state.params["p"])
        assert float(metrics["batch"]) == batch          # every step has the same batch size
        assert seen.sum() == steps * batch              # steps x batch samples in all
        extra = steps * batch - n                       # the wrap-around repeats this many
        np.testing.assert_array_equal(np.sort(seen), [1] * (n - extra) + [2] * extra)
        assert int(state.step) == (e + 1) * steps


def test_fit_is_deterministic_and_logs_json_lines(tmp_path):
    data = blobs(40, seed=1)
    opt = make_optimizer(0.05, "loss_trend", 100)
    epoch = make_epoch(linear_loss, opt, 40, 16)
    runs = []
    for r in range(2):
        path = tmp_path / f"m{r}.jsonl"
        state = init_state(linear_params(3), opt, jax.random.key(7))
        calls = []

        def evaluate(s):
            calls.append(1)
            return {"acc": float(accuracy(data["x"] @ s.params["w"] + s.params["b"], data["labels"]))}

        state, hist = fit(state, epoch, data, 5, metrics_path=path, evaluate=evaluate, eval_every=2,
                          progress=False)
        lines = path.read_text().splitlines()
        assert len(lines) == 5
        rows = [json.loads(line) for line in lines]
        assert rows == hist
        assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
        assert set(rows[0]) == {"epoch", "loss", "accuracy"}
        assert [("eval_acc" in r) for r in rows] == [False, True, False, True, True]  # every 2 + end
        assert len(calls) == 3
        runs.append((state, hist))
    chex.assert_trees_all_equal(runs[0][0].params, runs[1][0].params)
    assert runs[0][1] == runs[1][1]
    # another key: another shuffle, other params
    state = init_state(linear_params(3), opt, jax.random.key(8))
    other, _ = fit(state, epoch, data, 5, progress=False)
    assert not np.array_equal(other.params["w"], runs[0][0].params["w"])


def test_fit_zero_epochs(tmp_path):
    opt = make_optimizer(0.05, "constant", 1)
    epoch = make_epoch(linear_loss, opt, 8, 4)
    params = linear_params()
    state, hist = fit(init_state(params, opt, jax.random.key(0)), epoch, blobs(8), 0,
                      metrics_path=tmp_path / "m.jsonl", progress=False)
    assert hist == []
    chex.assert_trees_all_equal(state.params, params)
    assert (tmp_path / "m.jsonl").read_text() == ""


def test_progress_plain_stream_writes_lines_by_decile():
    out = io.StringIO()
    bar = Progress(100, "demo", stream=out)
    for done in range(1, 101):
        bar.update(done, "loss 1")
    bar.update(100, "loss 1")  # a repeated final update writes nothing more
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split()[1] for line in lines] == ["1/100"] + [f"{d}/100" for d in range(10, 101, 10)]
    assert all(line.startswith("demo ") and "loss 1" in line for line in lines)


def test_progress_small_total_and_tty():
    out = io.StringIO()
    bar = Progress(3, "x", stream=out)
    for done in (1, 2, 3):
        bar.update(done)
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["1/3", "2/3", "3/3"]

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    bar = Progress(4, "t", stream=tty, min_interval=0.0)
    for done in range(1, 5):
        bar.update(done)
    text = tty.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and "4/4" in text
    assert "[" + "#" * 24 + "]" in text


def test_train_config_validation():
    for kwargs, name in [({"epochs": -1}, "epochs"), ({"batch_size": 0}, "batch_size"),
                         ({"label_smoothing": 1.0}, "label_smoothing"),
                         ({"label_smoothing": -0.1}, "label_smoothing")]:
        with pytest.raises(ValueError, match=name):
            TrainConfig(**kwargs)
    TrainConfig(epochs=0)


def test_mixup_mixes_inputs_and_targets_with_one_lambda():
    from jaxprune.task.loss import skeleton_loss
    seen = {}

    def forward(params, chunks, key, train):              # records what the network was given
        seen["chunks"] = chunks
        return chunks.reshape(chunks.shape[0], -1)[:, :3] * params

    chunks = jax.random.normal(jax.random.key(0), (6, 1, 1, 3))
    labels = jnp.array([0, 1, 2, 0, 1, 2])
    batch = {"chunks": chunks, "labels": labels}
    value, _ = skeleton_loss(forward, 0.0, mixup=0.4)(1.0, batch, jax.random.key(1))
    mixed = seen["chunks"]
    _, mix_key, perm_key = jax.random.split(jax.random.key(1), 3)
    lam = jax.random.beta(mix_key, 0.4, 0.4)
    perm = jax.random.permutation(perm_key, 6)
    np.testing.assert_allclose(mixed, lam * chunks + (1 - lam) * chunks[perm], rtol=1e-6)
    logits = mixed.reshape(6, -1)[:, :3]
    expected = lam * cross_entropy(logits, labels) + (1 - lam) * cross_entropy(logits, labels[perm])
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    plain, _ = skeleton_loss(forward, 0.0)(1.0, batch, jax.random.key(1))
    assert float(plain) == pytest.approx(float(cross_entropy(chunks.reshape(6, -1)[:, :3], labels)), rel=1e-6)
    with pytest.raises(ValueError, match="mixup must be >= 0"):
        TrainConfig(mixup=-0.1)


def test_mixup_is_part_of_the_task_loss_so_every_method_has_it():
    """Mixup lives in the skeleton task's loss (jaxprune.task.loss), not in a method: an MRMP
    loss with mixup mixes inputs for all rates (one draw) and differs from the plain one."""
    from jaxprune.data.synthetic import make_synthetic
    from jaxprune.config import override
    from jaxprune.methods import make_pruner
    from jaxprune.methods.config import PruneConfig
    from jaxprune.run_config import RunConfig
    from jaxprune.runner import check_settings_on
    from jaxprune.task.loss import task_loss
    params = {"w": jax.random.normal(jax.random.key(3), (3, 3))}
    pruner = make_pruner("mrmp", params, {"w": True}, PruneConfig(rates=(0.5, 0.9)), 10)

    def forward(params, chunks, key, train):
        return chunks.reshape(chunks.shape[0], -1)[:, :3] @ params["w"]
    batch = {"chunks": jax.random.normal(jax.random.key(0), (6, 1, 1, 3)), "labels": jnp.array([0, 1, 2, 0, 1, 2])}
    mixed, _ = jax.jit(task_loss(pruner, forward, 0.0, mixup=0.4))(params, batch, jax.random.key(1), 0)
    plain, _ = jax.jit(task_loss(pruner, forward, 0.0))(params, batch, jax.random.key(1), 0)
    assert np.isfinite(float(mixed)) and float(mixed) != pytest.approx(float(plain), rel=1e-4)
    check_settings_on(make_synthetic(per_class=4, seed=0), override(RunConfig(method="mrmp"), ["train.mixup=0.2"]))
