"""The GCN differentiated over the graph's pairs (``model.attention_backward=edges``, the default)
serves the same logits as the GCN as written and gives XLA's gradients to float rounding; served
over the pairs too (``model.attention_forward=edges``), it gives the same logits to float rounding."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.config import SettingError, override
from jaxprune.models import gcn
from jaxprune.models.edge_attention import edge_mix, neighbour_lists
from jaxprune.run_config import RunConfig

EDGES = ((0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (2, 6))      # a tree, degrees 1 to 3; node 7 alone


def setup(attention="bones", backward="edges", forward="dense"):
    """(config, params: noisy, non-zero biases, a third of the kernels' entries zero (a mask), features (5, 8, 4))."""
    config = gcn.GCNConfig(num_nodes=8, num_features=4, num_classes=3, edges=EDGES, channels=5, hidden=6,
                           attention_dim=3, num_blocks=2, attention=attention, attention_backward=backward,
                           attention_forward=forward)
    params = gcn.init(jax.random.key(0), config)
    params = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(1), a.shape), params)
    keep = jax.tree.map(lambda a: jax.random.uniform(jax.random.key(3), a.shape) > 1 / 3, params)
    params = jax.tree.map(lambda a, m, p: a * m if p else a, params, keep, gcn.prunable(params))
    return config, params, jax.random.normal(jax.random.key(2), (5, 8, 4))


def loss(config):
    return lambda p, x: jnp.sum(jnp.tanh(gcn.apply(p, x, config)) ** 2)


def close(got, want):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_served_logits_are_those_of_the_gcn_as_written_bit_for_bit():
    config, params, x = setup()
    xla = dataclasses.replace(config, attention_backward="autodiff")
    fwd = jax.jit(gcn.apply, static_argnums=2)
    assert bool(jnp.all(fwd(params, x, config) == fwd(params, x, xla)))


def test_gradients_equal_xla_including_the_attention_bias_and_the_input():
    config, params, x = setup()
    value, got = jax.jit(jax.value_and_grad(loss(config), argnums=(0, 1)))(params, x)
    xla = loss(dataclasses.replace(config, attention_backward="autodiff"))
    want_value, want = jax.jit(jax.value_and_grad(xla, argnums=(0, 1)))(params, x)
    np.testing.assert_allclose(value, want_value, rtol=1e-5)   # the loss a train step sees: the per-pair forward
    close(got, want)
    bias = np.asarray(got[0]["block1"]["attention"]["bias"])
    assert np.all(bias[~config.graph().astype(bool)] == 0) and np.any(bias != 0)   # only allowed pairs learn


def test_gradients_under_vmap_over_parameter_copies_as_mrmp_takes_them():
    config, params, x = setup()
    copies = jax.tree.map(lambda a: jnp.stack([a, 0.5 * a, -a]), params)
    got = jax.jit(jax.vmap(jax.grad(loss(config)), in_axes=(0, None)))(copies, x)
    xla = jax.grad(loss(dataclasses.replace(config, attention_backward="autodiff")))
    want = [xla(jax.tree.map(lambda a: a[i], copies), x) for i in range(3)]
    close(got, jax.tree.map(lambda *a: jnp.stack(a), *want))


def test_only_bones_mode_takes_the_pair_forms_and_autodiff_keeps_forward_mode():
    """The pair forms are custom VJPs: forward-mode autodiff stops there, and only there (so a
    pair forward served with XLA's backward is seen taken)."""
    for attention, backward, forward, works in (
            ("bones", "edges", "dense", False), ("bones", "autodiff", "dense", True),
            ("bones", "autodiff", "edges", False), ("biased", "edges", "edges", True),
            ("free", "edges", "edges", True)):
        config, params, x = setup(attention, backward, forward)
        run = lambda: jax.jvp(lambda x: gcn.apply(params, x, config), (x,), (jnp.ones_like(x),))
        if works:
            run()
        else:
            with pytest.raises(TypeError, match="custom_vjp"):
                run()


def test_mix_alone_matches_a_dense_softmax_on_a_graph_with_a_lonely_node():
    graph = np.eye(4, dtype=bool) | np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], bool)
    assert neighbour_lists(graph) == [[0, 1], [1, 0, 2], [2, 1], [3]]
    keys = jax.random.split(jax.random.key(0), 4)
    q, k, v = (jax.random.normal(kk, (n, 4, 6)) for kk, n in zip(keys, (3, 3, 2)))
    bias = jax.random.normal(keys[3], (4, 4))

    def dense(q, k, v, bias):
        logits = jnp.einsum("dib,djb->bij", q, k) / np.sqrt(3) + jnp.where(graph, bias, -jnp.inf)
        return jnp.einsum("bij,cjb->cib", jax.nn.softmax(logits, -1), v)
    mix = edge_mix(graph)
    np.testing.assert_allclose(mix(q, k, v, bias), dense(q, k, v, bias), rtol=1e-5, atol=1e-6)
    f = lambda fn: jax.grad(lambda *a: jnp.sum(jnp.sin(fn(*a))), argnums=(0, 1, 2, 3))
    close(f(mix)(q, k, v, bias), f(dense)(q, k, v, bias))
    with pytest.raises(ValueError, match="allowed pair"):
        edge_mix(np.zeros((2, 2), bool))


@pytest.mark.parametrize("backward", ["edges", "autodiff"])
def test_logits_served_over_the_pairs_equal_the_gcn_as_written_and_train_as_the_backward_says(
        backward, monkeypatch):
    config, params, x = setup(backward=backward, forward="edges")
    written = dataclasses.replace(config, attention_forward="dense", attention_backward="autodiff")
    want = gcn.apply(params, x, written)
    with monkeypatch.context() as m:                 # served over the pairs: the dense block never runs
        m.setattr(gcn, "apply_block", lambda *a: pytest.fail("the served pass ran the dense block"))
        got = jax.jit(gcn.apply, static_argnums=2)(params, x, config)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    close(jax.jit(jax.grad(loss(config)))(params, x), jax.grad(loss(written))(params, x))


def test_a_bad_attention_form_is_refused_by_name():
    for setting in ("attention_backward", "attention_forward"):
        with pytest.raises((SettingError, ValueError), match=setting):
            override(RunConfig(), [f"model.{setting}=xla"])
