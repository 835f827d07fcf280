"""The skeleton GCN: parameter pytree, shapes, attention modes, prunable leaves, masks, gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.losses import cross_entropy
from jaxprune.models import gcn
from jaxprune.models.layers import attention, graph_conv

EDGES = ((0, 1), (1, 2), (2, 3), (1, 4))  # J = 5, a small tree
J, F, C, D, H, K = 5, 6, 4, 3, 7, 3


def config(**kw):
    base = dict(num_nodes=J, num_features=F, num_classes=K, edges=EDGES, channels=C, num_blocks=2,
                attention_dim=D, hidden=H)
    return gcn.GCNConfig(**{**base, **kw})


def features(b=4, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(b, J, F)), jnp.float32)


GRAPH = np.eye(J, dtype=bool)
for _i, _j in EDGES:
    GRAPH[_i, _j] = GRAPH[_j, _i] = True


def test_graph_is_adjacency_with_self_loops():
    np.testing.assert_array_equal(config().graph(), GRAPH.astype(np.float32))


def test_init_pytree_shapes():
    params = gcn.init(jax.random.key(0), config())
    shapes = jax.tree.map(lambda a: (a.shape, a.dtype), params)
    f32 = jnp.float32
    assert shapes == {
        "block0": {"attention": {"query": ((F, D), f32), "key": ((F, D), f32), "bias": ((J, J), f32)},
                   "conv": {"kernel": ((F, C), f32), "bias": ((C,), f32)}},
        "block1": {"attention": {"query": ((C, D), f32), "key": ((C, D), f32), "bias": ((J, J), f32)},
                   "conv": {"kernel": ((C, C), f32), "bias": ((C,), f32)}},
        "fc": {"kernel": ((J * C, H), f32), "bias": ((H,), f32)},
        "classifier": {"kernel": ((H, K), f32), "bias": ((K,), f32)},
    }
    # fresh init: kernels random and distinct, biases zero
    assert not np.allclose(params["block0"]["attention"]["query"], params["block0"]["attention"]["key"])
    np.testing.assert_array_equal(params["fc"]["bias"], 0.0)
    # the same key gives the same params, another key others
    chex.assert_trees_all_equal(params, gcn.init(jax.random.key(0), config()))
    assert not np.allclose(params["fc"]["kernel"], gcn.init(jax.random.key(1), config())["fc"]["kernel"])


class ApplyTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_apply_output_shape(self):
        cfg = config()
        params = gcn.init(jax.random.key(0), cfg)
        logits = self.variant(gcn.apply, static_argnums=2)(params, features(4), cfg)
        chex.assert_shape(logits, (4, K))
        chex.assert_tree_all_finite(logits)


@pytest.mark.parametrize("shape", [(2, J + 1, F), (2, J, F + 1), (J, F)])
def test_apply_rejects_wrong_shapes(shape):
    cfg = config()
    params = gcn.init(jax.random.key(0), cfg)
    with pytest.raises(AssertionError):
        gcn.apply(params, jnp.zeros(shape), cfg)


def test_bones_attention_is_row_stochastic_on_the_graph():
    params = gcn.init(jax.random.key(1), config(attention="bones"))["block0"]["attention"]
    h = features(3, seed=1) * 2.0  # larger logits: softmax far from uniform
    a = np.asarray(attention(params, h, jnp.asarray(GRAPH)))
    chex.assert_shape(a, (3, J, J))
    np.testing.assert_array_equal(a[:, ~GRAPH], 0.0)
    assert (a[:, GRAPH] > 0).all()
    np.testing.assert_allclose(a.sum(-1), 1.0, rtol=1e-6)
    assert a.max() > 0.6  # not uniform over the neighbours
    # without a mask nodes outside the graph are attended too
    free = np.asarray(attention(params, h))
    assert (free[:, ~GRAPH] > 1e-3).any()
    np.testing.assert_allclose(free.sum(-1), 1.0, rtol=1e-6)


def test_attention_formula_by_hand():
    rng = np.random.default_rng(2)
    q, k = rng.normal(size=(F, D)), rng.normal(size=(F, D))
    bias = rng.normal(size=(J, J))
    h = rng.normal(size=(J, F))
    params = {"query": jnp.asarray(q, jnp.float32), "key": jnp.asarray(k, jnp.float32),
              "bias": jnp.asarray(bias, jnp.float32)}
    logits = (h @ q) @ (h @ k).T / np.sqrt(D) + bias
    logits = np.where(GRAPH, logits, -np.inf)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    got = attention(params, jnp.asarray(h, jnp.float32), jnp.asarray(GRAPH))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_masked_attention_equals_masking_the_logits_with_gradients():
    """The bias masked once (``masked_bias``) gives the logits-masked softmax's values and
    gradients: nothing reaches q, k or the bias through a pair outside the graph."""
    params = gcn.init(jax.random.key(3), config(attention="bones"))["block0"]["attention"]
    params = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(4), a.shape), params)
    h, mask = features(5, seed=3), jnp.asarray(GRAPH)
    target = jax.random.normal(jax.random.key(5), (5, J, J))

    def logits_masked(p, h):
        q, k = h @ p["query"], h @ p["key"]
        logits = jnp.einsum("...id,...jd->...ij", q, k) / jnp.sqrt(q.shape[-1]) + p["bias"]
        return jax.nn.softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)

    def loss(fn):
        return lambda p, h: jnp.sum(fn(p, h) * target)
    np.testing.assert_allclose(attention(params, h, mask), logits_masked(params, h), rtol=1e-6, atol=1e-7)
    got = jax.grad(loss(lambda p, h: attention(p, h, mask)), argnums=(0, 1))(params, h)
    want = jax.grad(loss(logits_masked), argnums=(0, 1))(params, h)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert np.isfinite(np.asarray(g)).all()
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(got[0]["bias"])[~GRAPH], 0.0)


def test_attention_bias_init_per_mode():
    for mode in ("bones", "free"):
        params = gcn.init(jax.random.key(0), config(attention=mode))
        for b in range(2):
            np.testing.assert_array_equal(params[f"block{b}"]["attention"]["bias"], 0.0)
    params = gcn.init(jax.random.key(0), config(attention="biased", bone_bias=2.5))
    for b in range(2):
        bias = np.asarray(params[f"block{b}"]["attention"]["bias"])
        np.testing.assert_array_equal(bias[GRAPH], 0.0)
        np.testing.assert_array_equal(bias[~GRAPH], -2.5)


def test_zero_fc_kernel_leaves_only_the_bias_path():
    cfg = config()
    params = gcn.init(jax.random.key(3), cfg)
    fc_bias = jnp.asarray([0.5, -1.0, 2.0, 0.0, -0.3, 1.5, 0.7], jnp.float32)
    params["fc"] = {"kernel": jnp.zeros_like(params["fc"]["kernel"]), "bias": fc_bias}
    params["classifier"]["bias"] = jnp.asarray([0.1, -0.2, 0.3], jnp.float32)
    logits = gcn.apply(params, features(5, seed=3), cfg)
    expected = jax.nn.relu(fc_bias) @ params["classifier"]["kernel"] + params["classifier"]["bias"]
    chex.assert_trees_all_close(logits, jnp.broadcast_to(expected, (5, K)), rtol=1e-5, atol=1e-6)
    # sanity: with its kernel, the logits depend on the input
    intact = gcn.apply(gcn.init(jax.random.key(3), cfg), features(5, seed=3), cfg)
    assert not np.allclose(intact[0], intact[1])


def test_prunable_flags():
    params = gcn.init(jax.random.key(0), config())
    flags = gcn.prunable(params)
    assert flags == {
        "block0": {"attention": {"query": True, "key": True, "bias": False},
                   "conv": {"kernel": True, "bias": False}},
        "block1": {"attention": {"query": True, "key": True, "bias": False},
                   "conv": {"kernel": True, "bias": False}},
        "fc": {"kernel": True, "bias": False},
        "classifier": {"kernel": False, "bias": False},
    }


@pytest.mark.parametrize("kwargs, name", [
    ({"channels": 0}, "channels"), ({"num_blocks": 0}, "num_blocks"),
    ({"attention_dim": 0}, "attention_dim"), ({"hidden": -1}, "hidden"),
    ({"attention": "sparse"}, "attention"), ({"dropout": 1.0}, "dropout"), ({"dropout": -0.1}, "dropout"),
])
def test_model_config_rejects_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gcn.ModelConfig(**kwargs)
    with pytest.raises(ValueError, match=name):
        config(**kwargs)


@pytest.mark.parametrize("kwargs, name", [
    ({"num_nodes": 0}, "num_nodes"), ({"num_features": 0}, "num_features"),
    ({"num_classes": 1}, "num_classes"),
])
def test_gcn_config_rejects_bad_sizes(kwargs, name):
    with pytest.raises(ValueError, match=name):
        config(**kwargs)


@pytest.mark.parametrize("mode", gcn.ATTENTION_MODES)
def test_cross_entropy_gradients_are_finite(mode):
    cfg = config(attention=mode)
    params = gcn.init(jax.random.key(4), cfg)
    x, labels = features(6, seed=4), jnp.asarray([0, 1, 2, 0, 1, 2])
    grads = jax.jit(jax.grad(lambda p: cross_entropy(gcn.apply(p, x, cfg), labels)))(params)   # eager: 2x slower
    chex.assert_trees_all_equal_shapes(grads, params)
    chex.assert_tree_all_finite(grads)
    # every weight matrix gets a signal
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        if getattr(path[-1], "key", None) in ("kernel", "query", "key"):
            assert np.abs(np.asarray(g)).sum() > 0, f"zero gradient at {jax.tree_util.keystr(path)}"
    if mode == "bones":  # masked-out logits get no gradient (and no NaN from the -inf)
        g_bias = np.asarray(grads["block0"]["attention"]["bias"])
        np.testing.assert_array_equal(g_bias[~GRAPH], 0.0)


def test_mask_on_kernel_changes_output_as_expected():
    cfg = config()
    params = gcn.init(jax.random.key(5), cfg)
    params["block0"]["conv"]["bias"] = jnp.asarray([0.3, -0.1, 0.0, 1.2], jnp.float32)
    flags = gcn.prunable(params)
    x = features(3, seed=5)
    a = attention(params["block0"]["attention"], x, jnp.asarray(GRAPH))

    # all-ones mask: nothing changes
    ones = jax.tree.map(lambda p, f: jnp.ones_like(p) if f else None, params, flags)
    masked = jax.tree.map(lambda p, m: p if m is None else p * m, params, ones,
                          is_leaf=lambda v: v is None)
    chex.assert_trees_all_close(gcn.apply(masked, x, cfg), gcn.apply(params, x, cfg))

    # a zero mask on block0's conv kernel: the first conv output is its bias alone
    mask = jax.tree.map(jnp.ones_like, params)
    mask["block0"]["conv"]["kernel"] = jnp.zeros_like(params["block0"]["conv"]["kernel"])
    masked = jax.tree.map(lambda p, m: p * m, params, mask)
    out = graph_conv(masked["block0"]["conv"], a, x)
    chex.assert_shape(out, (3, J, C))
    chex.assert_trees_all_close(out, jnp.broadcast_to(params["block0"]["conv"]["bias"], (3, J, C)))
    # and the model no longer depends on its input
    logits = gcn.apply(masked, x, cfg)
    chex.assert_trees_all_close(logits, jnp.broadcast_to(logits[0], logits.shape), atol=1e-6)

    # zeroing one output column of the kernel: only that channel becomes the bias
    col = jnp.ones_like(params["block0"]["conv"]["kernel"]).at[:, 2].set(0.0)
    conv = {**params["block0"]["conv"], "kernel": params["block0"]["conv"]["kernel"] * col}
    full, part = graph_conv(params["block0"]["conv"], a, x), graph_conv(conv, a, x)
    np.testing.assert_allclose(part[..., 2], 0.0, atol=1e-7)  # that channel's bias is 0
    chex.assert_trees_all_close(part[..., [0, 1, 3]], full[..., [0, 1, 3]])
    assert not np.allclose(full[..., 2], 0.0)


def test_graph_conv_by_hand():
    rng = np.random.default_rng(6)
    adj = rng.random((J, J))
    h = rng.normal(size=(2, J, F))
    w, b = rng.normal(size=(F, C)), rng.normal(size=(C,))
    got = graph_conv({"kernel": jnp.asarray(w, jnp.float32), "bias": jnp.asarray(b, jnp.float32)},
                     jnp.asarray(adj, jnp.float32), jnp.asarray(h, jnp.float32))
    np.testing.assert_allclose(got, adj @ (h @ w) + b, rtol=1e-4, atol=1e-5)


def test_dropout_only_with_a_key_and_only_on_the_fc_layers():
    params = gcn.init(jax.random.key(0), config())
    x = features(64)
    plain = gcn.apply(params, x, config())
    np.testing.assert_array_equal(gcn.apply(params, x, config(dropout=0.5)), plain)     # evaluation
    np.testing.assert_array_equal(gcn.apply(params, x, config(), jax.random.key(1)), plain)  # rate 0
    a = gcn.apply(params, x, config(dropout=0.5), jax.random.key(1))
    b = gcn.apply(params, x, config(dropout=0.5), jax.random.key(2))
    assert np.isfinite(np.asarray(a)).all() and not np.allclose(a, plain) and not np.allclose(a, b)
    y = gcn._dropout(jax.random.key(3), jnp.ones((200, 500)), 0.3)          # inverted dropout
    assert abs(float(jnp.mean(y == 0)) - 0.3) < 0.01 and abs(float(jnp.mean(y)) - 1.0) < 0.01


def test_jitted_gcn_equals_its_ops_run_one_by_one():
    """jaxlib 0.10.2's XLA:CPU miscompiles some reductions over products of matmul outputs (README,
    "Known problem: jaxlib 0.10.2 on CPU": garbage at batch 1 for q_i . k_j written as a broadcast product and sum):
    the GCN's compiled forward pass and gradient, at the SBU shape and at batch 1 and a test fold's
    size, must give what its operations give run one by one. (The per-pair form is held to this
    one, compiled, by test_edge_attention.)"""
    from jaxprune.graphs import SBU_BONES
    cfg = gcn.GCNConfig(num_nodes=30, num_features=24, num_classes=8, edges=SBU_BONES, channels=8, hidden=32,
                        attention_backward="autodiff")
    params = gcn.init(jax.random.key(0), cfg)

    def loss(p, x):
        return jnp.sum(gcn.apply(p, x, cfg) ** 2)
    for batch in (1, 55):
        x = jax.random.normal(jax.random.key(batch), (batch, 30, 24))
        with jax.disable_jit():
            want = gcn.apply(params, x, cfg)
        chex.assert_trees_all_close(jax.jit(lambda p, x: gcn.apply(p, x, cfg))(params, x), want, atol=1e-5, rtol=1e-5)
    with jax.disable_jit():                          # a train step's gradient, at batch 1
        want_grad = jax.grad(loss)(params, x[:1])
    chex.assert_trees_all_close(jax.jit(jax.grad(loss))(params, x[:1]), want_grad, atol=1e-4, rtol=1e-4)
