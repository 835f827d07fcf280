"""The benchmark's per-pair form computes the GCN's own logits and XLA's gradients,
benchmarks.train_wall's table reports every per-fold accuracy that two checkouts disagree on, and
interleaved timing times every call in every round."""

import contextlib
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.attention_cost import apply_edges
from benchmarks.timing import interleaved_medians
from benchmarks.train_wall import table
from jaxprune.models import gcn

EDGES = ((0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (2, 6))      # a small tree: degrees 1 to 3


def small_gcn():
    """(config, params with non-zero biases, features (4, 7, 5)) of a 2-block GCN on EDGES."""
    config = gcn.GCNConfig(num_nodes=7, num_features=5, num_classes=3, edges=EDGES, channels=4, hidden=6,
                           attention_dim=3, num_blocks=2)
    params = gcn.init(jax.random.key(0), config)
    params = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(1), a.shape), params)
    return config, params, jax.random.normal(jax.random.key(2), (4, 7, 5))


def test_the_edge_form_equals_the_gcn_with_gradients():
    # the slot form is checked by the benchmark itself before it is timed (here it took 10 s)
    config, params, x = small_gcn()

    def loss(fn):
        return lambda p, x: jnp.sum(fn(p, x, config) ** 2)
    np.testing.assert_allclose(jax.jit(apply_edges, static_argnums=2)(params, x, config), gcn.apply(params, x, config),
                               rtol=1e-5, atol=1e-6)
    got = jax.jit(jax.grad(loss(apply_edges), argnums=(0, 1)))(params, x)
    xla = lambda p, x, c: gcn.apply(p, x, dataclasses.replace(c, attention_backward="autodiff"))
    want = jax.jit(jax.grad(loss(xla), argnums=(0, 1)))(params, x)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_train_wall_table_names_the_folds_that_differ():
    def row(label, fold2):
        return {"label": label, "commit": "abc", "method": "mrmp", "cli_args": "", "wall_seconds": 1.0,
                "train_seconds": 1.0, "channels": 8,
                "accuracy_by_fold": {"1": {"0.5": 90.0, "0.9": 80.0}, "2": {"0.5": 70.0, "0.9": fold2}}}
    lines = table({"machine": "m", "rows": [row("before", 60.0), row("after", 62.5)]})
    assert "- mrmp, after vs before: fold 2 rate 0.9: 62.5 vs 60.0" in lines
    assert any("0.5: 80.00, 0.9: 71.25" in line for line in lines)            # means over folds
    same = table({"machine": "m", "rows": [row("before", 60.0), row("after", 60.0)]})
    assert "- mrmp, after vs before: none" in same


def test_interleaved_medians_time_every_call_in_every_round():
    order = []

    def call(name):
        return lambda: order.append(name) or jnp.zeros(())
    medians = interleaved_medians({"a": (call("a"), ()), "b": (call("b"), ())}, rounds=3, repeats=2, min_seconds=0)
    assert set(medians) == {"a", "b"} and all(m >= 0 for m in medians.values())
    assert order == (["a"] * 3 + ["b"] * 3) * 3          # a warm-up and 2 timed calls each, a then b, 3 rounds


def test_stage_programs_chain_to_the_whole_network_and_their_flops_add_up():
    # benchmarks.ctf_inference times each stage on the previous stage's output: the chain must be
    # the network itself, dense and compact, and the per-stage FLOPs must sum to the totals
    from benchmarks.ctf_inference import stage_programs
    from jaxprune.masks.bandstop import apply_masks
    from jaxprune.models.compact import compact, compact_apply, compact_flops, compact_stage_flops
    from jaxprune.models.flops import gcn_flops, gcn_stage_flops
    config = gcn.GCNConfig(num_nodes=7, num_features=5, num_classes=3, edges=EDGES, channels=4, hidden=6,
                           attention_dim=3, num_blocks=2)
    params = gcn.init(jax.random.key(0), config)
    rng = np.random.default_rng(3)
    masks = jax.tree.map(lambda a, f: jnp.asarray(rng.random(a.shape) > 0.4, a.dtype) if f else None,
                         params, gcn.prunable(params))
    masks["fc"]["kernel"] = masks["fc"]["kernel"].at[:, :2].set(0.0)     # whole hidden units go
    masked = apply_masks(params, masks)
    net = compact(params, masks, config)
    x = jax.random.normal(jax.random.key(2), (4, 7, 5))
    for form, p, want in (("dense", masked, gcn.apply(masked, x, config)), ("compact", net, compact_apply(net, x))):
        stages = stage_programs(form, p, config, x)
        assert [name for name, _, _ in stages] == ["block 0", "block 1", "FC + classifier"]
        name, fn, h = stages[-1]
        np.testing.assert_allclose(fn(p, h), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compact_apply(net, x), gcn.apply(masked, x, config), rtol=1e-5, atol=1e-5)
    assert sum(gcn_stage_flops(masked, config)) == gcn_flops(masked, config)
    assert sum(compact_stage_flops(net)) == compact_flops(net)
    assert len(compact_stage_flops(net)) == 3 and compact_stage_flops(net)[-1] < gcn_stage_flops(params, config)[-1]


def test_attention_share_swaps_the_attention_while_tracing_and_restores_it():
    from benchmarks.attention_share import attention_form
    from jaxprune.models.layers import attention
    config, params, x = small_gcn()
    out = {}
    for form in ("before", "autodiff", "fixed adjacency"):
        with attention_form(form):
            out[form] = jax.jit(lambda p, x: gcn.apply(p, x, config)).lower(params, x).compile()(params, x)
    assert gcn.attention is attention
    np.testing.assert_allclose(out["before"], out["autodiff"], rtol=1e-6, atol=1e-6)
    assert float(jnp.max(jnp.abs(out["fixed adjacency"] - out["autodiff"]))) > 1e-3


def test_layout_barriers_swaps_only_the_barriers_while_tracing_and_restores_them():
    from benchmarks.layout_barriers import bare_transposes
    from jaxprune.models import edge_attention
    config, params, x = small_gcn()
    config = dataclasses.replace(config, attention_forward="edges")
    hlo, out = {}, {}
    for form in ("barriers", "bare"):
        with bare_transposes() if form == "bare" else contextlib.nullcontext():
            lowered = jax.jit(lambda p, x: gcn.apply(p, x, config)).lower(params, x)
            hlo[form], out[form] = lowered.as_text(), lowered.compile()(params, x)
    np.testing.assert_array_equal(out["barriers"], out["bare"])           # the same values either way
    assert "optimization_barrier" in hlo["barriers"] and "optimization_barrier" not in hlo["bare"]
    restored = jax.jit(edge_attention.feature_major).lower(x).as_text()   # the library's own again
    assert "optimization_barrier" in restored


def test_keep_count_times_the_argsort_only_where_it_swaps_it_in():
    # benchmarks.keep_count traces the STE step with the former argsort rule patched in: the rule
    # the masks call must change while patched, and come back after
    from unittest import mock
    from benchmarks.keep_count import by_sort
    from jaxprune.masks import hard
    params = {"w": jax.random.normal(jax.random.key(0), (40, 30))}
    def masks():   # a new function each time: jax caches a traced function's program
        return jax.jit(lambda p: hard.magnitude_masks(p, {"w": True}, 0.9, "global"))
    with mock.patch.object(hard, "top_count", by_sort):
        patched, m_sort = masks().lower(params).as_text(), masks()(params)["w"]
    own, m_own = masks().lower(params).as_text(), masks()(params)["w"]
    assert "sort" in patched and "sort" not in own
    np.testing.assert_array_equal(m_sort, m_own)
