"""jaxprune on models that are not ours (issue 15): a linen MLP (the README's "Use it on your own
model" block, run as written), an nnx MLP and a linen conv net, each with its own batch dict, its
own loss and plain optax; MRMP (three rates, then an unseen one), CTF (then compacted) and a
baseline; achieved rates and learning checked."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune as jp

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block() -> str:
    """The python block of the README's "Use it on your own model" section."""
    section = README.read_text().split("## Use it on your own model", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def achieved(masks, prunable) -> float:
    """Fraction of the prunable weights that ``masks`` (no rate axis) zero."""
    flat = jax.tree.leaves(masks, is_leaf=lambda x: x is None)           # None at dense leaves
    kept = [(float(jnp.sum(m != 0)), m.size) for m, k in zip(flat, jax.tree.leaves(prunable)) if k]
    return 1.0 - sum(a for a, _ in kept) / sum(n for _, n in kept)


def test_the_readme_block_runs_as_written_and_prunes_a_linen_mlp():
    scope: dict = {}
    exec(compile(readme_block(), str(README), "exec"), scope)
    fit, accuracy, at = scope["fit"], scope["accuracy"], scope["at"]
    dense_params, _ = fit("dense", jp.PruneConfig())
    dense = accuracy(dense_params, None)
    assert 0.8 < dense < 0.98                               # learnable, and not trivially so
    assert min(scope["mrmp_accuracy"]) > dense - 0.08       # every MRMP rate, 0.9 never trained
    kernels = jp.methods.kernels(dense_params)
    for i, r in enumerate((0.5, 0.9, 0.95)):
        assert achieved(at(scope["mrmp_masks"], i), kernels) == pytest.approx(r, abs=0.03)
        assert scope["mrmp_achieved"][i] == pytest.approx(achieved(at(scope["mrmp_masks"], i), kernels), abs=1e-9)
    assert scope["ctf_accuracy"] > dense - 0.08
    assert achieved(scope["ctf_masks"], kernels) == pytest.approx(0.9, abs=0.03)
    assert jp.mlp_size(scope["small"]) < 0.2 * (64 * 64 + 64 * 4)       # the compact MLP is really smaller
    x, ctf_params = scope["test"]["image"], scope["ctf_params"]
    masked = scope["model"].apply({"params": jp.apply_masks(ctf_params, scope["ctf_masks"])}, x)
    np.testing.assert_allclose(jp.compact_mlp_apply(scope["small"], x), masked, atol=1e-5)
    assert achieved(at(scope["magnitude"].hard_masks(scope["magnitude_params"], jnp.array([0.9])), 0),
                    kernels) == pytest.approx(0.9, abs=0.01)
    assert scope["magnitude_accuracy"] > 0.5


def blobs(seed: int, n: int, shape, classes: int = 4, noise: float = 3.0, task: int = 5):
    """A dict batch {'x': (n, *shape) float32, 'y': (n,) int32}: the class's template (drawn from
    ``task``) plus noise (drawn from ``seed``)."""
    templates = np.random.default_rng(task).normal(size=(classes, *shape))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = templates[y] + noise * rng.normal(size=(n, *shape))
    return {"x": jnp.asarray(x, jnp.float32), "y": jnp.asarray(y, jnp.int32)}


def test_an_nnx_model_with_its_own_loop_trains_mrmp_and_serves_an_unseen_rate():
    """nnx state as the params, the pruner's hooks in a hand-written loop (no with_pruning), a
    loss with aux, and each rate given its own slice of the batch (split_batch)."""
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden, self.out = nnx.Linear(32, 48, rngs=rngs), nnx.Linear(48, 4, rngs=rngs)

        def __call__(self, x):
            return self.out(jax.nn.relu(self.hidden(x)))

    graph, params = nnx.split(Net(nnx.Rngs(0)), nnx.Param)
    data, held_out = blobs(0, 600, (32,), noise=2.0), blobs(1, 300, (32,), noise=2.0)

    def loss_fn(params, batch, key):
        logits = nnx.merge(graph, params)(batch["x"])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return ce, {"hits": jnp.mean(logits.argmax(-1) == batch["y"])}

    steps = 300
    pruner = jp.make_pruner("mrmp", params, prune=jp.PruneConfig(rates=(0.5, 0.8, 0.95)), total_steps=steps)
    loss = jp.pruned_loss(pruner, loss_fn, has_aux=True, split_batch=True)
    tx = optax.adam(1e-2)

    @jax.jit
    def step(params, opt_state, i):
        (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params, data, jax.random.key(i), i)
        updates, opt_state = tx.update(grads, opt_state, params)
        params, _ = pruner.update(optax.apply_updates(params, updates), None, i + 1)
        return params, opt_state, metrics

    opt_state, first = tx.init(params), None
    for i in range(steps):
        params, opt_state, metrics = step(params, opt_state, i)
        first = first or metrics
    assert set(metrics) >= {"loss", "hits", "kl"}
    assert float(metrics["loss"]) < float(first["loss"])
    masks = jax.jit(pruner.hard_masks)(params, jnp.array([0.7, 0.9]))      # 0.7: never trained
    for i, r in enumerate((0.7, 0.9)):
        m = jax.tree.map(lambda a: a[i], masks)
        assert achieved(m, jp.methods.kernels(params)) == pytest.approx(r, abs=0.03)
        logits = nnx.merge(graph, jp.apply_masks(params, m))(held_out["x"])
        assert float(jnp.mean(logits.argmax(-1) == held_out["y"])) > 0.8


def test_a_conv_net_prunes_its_conv_kernels_with_ctf_and_a_baseline_under_an_optimizer_with_value():
    """A linen conv net: CTF masks its (3, 3, c_in, c_out) kernel and meets the budget; the
    gradual baseline runs through with_pruning around an optimizer that needs value=."""
    import flax.linen as nn

    class ConvNet(nn.Module):
        @nn.compact
        def __call__(self, x):                          # x (B, 8, 8, 1)
            h = nn.relu(nn.Conv(8, (3, 3), name="conv")(x))
            return nn.Dense(4, name="out")(h.mean(axis=(1, 2)))

    model = ConvNet()
    data = blobs(2, 400, (8, 8, 1), noise=1.5)
    params = model.init(jax.random.key(0), data["x"][:1])["params"]

    def loss_fn(params, batch, key):
        logits = model.apply({"params": params}, batch["x"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    def train(method, prune, steps=200):
        pruner = jp.make_pruner(method, params, prune=prune, total_steps=steps)
        tx = jp.with_pruning(jp.make_optimizer(1e-2, "loss_trend", steps), pruner, pruner.init(params))
        loss = jp.pruned_loss(pruner, loss_fn)

        @jax.jit
        def step(p, opt_state, key):
            (value, _), grads = jax.value_and_grad(loss, has_aux=True)(p, data, key, opt_state.count,
                                                                       opt_state.prune_state)
            updates, opt_state = tx.update(grads, opt_state, p, value=value)
            return optax.apply_updates(p, updates), opt_state, value

        p, opt_state = params, tx.init(params)
        losses = []
        for i in range(steps):
            p, opt_state, value = step(p, opt_state, jax.random.key(i))
            losses.append(float(value))
        return p, pruner.finish(opt_state.prune_state), losses

    p, pruner, losses = train("ctf", jp.PruneConfig(rate=0.7, ctf_blocks="none"))
    masks = jax.tree.map(lambda m: m[0], pruner.hard_masks(p, jnp.array([0.7])))
    assert masks["conv"]["kernel"].shape == (3, 3, 1, 8)
    assert achieved(masks, jp.methods.kernels(p)) == pytest.approx(0.7, abs=0.05)
    assert np.mean(losses[-20:]) < 0.8 * np.mean(losses[:20])
    p, pruner, losses = train("gradual", jp.PruneConfig(rate=0.8))
    masks = jax.tree.map(lambda m: m[0], pruner.hard_masks(p, jnp.array([0.8])))
    assert achieved(masks, jp.methods.kernels(p)) == pytest.approx(0.8, abs=0.01)
    logits = model.apply({"params": jp.apply_masks(p, masks)}, data["x"])
    assert float(jnp.mean(logits.argmax(-1) == data["y"])) > 0.5


def test_sparsity_counts_any_pytree_of_masks_with_conv_uses():
    masks = {"conv": {"kernel": jnp.array([[1.0, 0.0], [0.0, 0.0]]), "bias": None},
             "out": {"kernel": jnp.ones((2, 3)), "bias": None}}
    counts = jp.sparsity(masks, uses={"conv": {"kernel": 16, "bias": 0}, "out": {"kernel": 1, "bias": 0}})
    assert (counts["kept_params"], counts["total_params"]) == (7, 10)
    assert counts["achieved_rate"] == pytest.approx(0.3)
    assert counts["flops"] == 2 * (1 * 16 + 6)                     # a conv weight used at 16 positions
    assert counts["layers"]["conv/kernel"]["achieved_rate"] == pytest.approx(0.75)
    assert jp.sparsity(masks)["flops"] == 2 * 7


def test_a_baselines_masks_are_none_at_dense_leaves_so_counts_are_of_the_pruned_weights():
    params = {"w": jax.random.normal(jax.random.key(0), (10, 10)), "b": jnp.ones(10)}
    pruner = jp.make_pruner("magnitude", params, prune=jp.PruneConfig(rate=0.9), total_steps=10)
    state = pruner.init(params)
    _, state = pruner.update(params, state, 5)                      # the one-shot step: (1 - 0.5)·10
    masks = jax.tree.map(lambda m: m[0], pruner.finish(state).hard_masks(params, jnp.array([0.9])))
    assert masks["b"] is None
    assert jp.sparsity(masks)["achieved_rate"] == pytest.approx(0.9)
