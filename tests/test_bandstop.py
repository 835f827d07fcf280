"""The band-stop mask: exact values, limits, σ schedule, masks on any params pytree, vmapped rates."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.masks.bandstop import (BandStopMask, apply_masks, band_stop, hard_band_stop,
                                     sigma_schedule)
from jaxprune.models import gcn
from jaxprune.priors import layer_priors, threshold_for_rate, thresholds_for_rate


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


class PureFunctions(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_band_stop_exact_values(self):
        f = self.variant(band_stop)
        x = jnp.array([-2.0, -0.5, 0.0, 0.25, 0.5, 2.0])
        a, sigma = 0.5, 4.0
        expected = sigmoid(sigma * (np.asarray(x) - a)) + sigmoid(-sigma * (np.asarray(x) + a))
        np.testing.assert_allclose(f(x, a, sigma), expected, rtol=1e-6)
        np.testing.assert_allclose(f(0.0, a, sigma), 2 * sigmoid(-sigma * a), rtol=1e-6)
        np.testing.assert_allclose(f(0.5, 0.5, 4.0), 0.5 + sigmoid(-4.0), rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sigma_schedule_is_geometric_in_sigma_times_a(self):
        f = self.variant(lambda step, a: sigma_schedule(step, 100, a, start=1.0, end=100.0))
        a = jnp.array([0.5, 2.0])
        np.testing.assert_allclose(f(0, a) * a, [1.0, 1.0], rtol=1e-6)
        np.testing.assert_allclose(f(50, a) * a, [10.0, 10.0], rtol=1e-5)   # √(1·100)
        np.testing.assert_allclose(f(100, a) * a, [100.0, 100.0], rtol=1e-5)
        np.testing.assert_allclose(f(1000, a) * a, [100.0, 100.0], rtol=1e-5)  # clamped
        assert np.all(np.diff([float(f(s, 1.0)) for s in range(0, 101, 10)]) > 0)


def test_band_stop_is_even_and_in_unit_interval():
    x = jax.random.normal(jax.random.key(0), (1000,)) * 3
    a = jnp.array(0.7)
    h = band_stop(x, a, 5.0)
    chex.assert_trees_all_close(h, band_stop(-x, a, 5.0))
    assert float(h.min()) > 0 and float(h.max()) <= 1


def test_band_stop_tends_to_hard_mask_and_never_nans():
    x = jnp.linspace(-3, 3, 601)
    a = 1.005                                               # no grid point within 0.005 of ±a
    np.testing.assert_array_equal(band_stop(x, a, 1e5), hard_band_stop(x, a))
    assert np.all(np.isfinite(band_stop(x, a, 1e38)))
    np.testing.assert_array_equal(band_stop(x, a, 1e38), hard_band_stop(x, a))
    # softer σ gives a mask strictly between 0 and 1 near the threshold
    assert 0.3 < float(band_stop(1.005, a, 10.0)) < 0.7


def test_hard_band_stop_values_and_dtype():
    x = jnp.array([-1.0, -0.5, -0.1, 0.0, 0.5, 0.6], jnp.bfloat16)
    m = hard_band_stop(x, 0.5)
    assert m.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(m, np.float32), [1, 0, 0, 0, 0, 1])  # |x| == a is pruned


def test_band_stop_gradient_flows_through_the_soft_mask():
    g = jax.grad(lambda w: jnp.sum(w * band_stop(w, 0.5, 10.0)))(jnp.array([0.1, 0.45, 0.55, 2.0]))
    assert np.all(np.isfinite(g)) and np.all(g > 0)
    assert float(g[1]) > 1.0 and float(g[2]) > 1.0          # the mask's slope adds near ±a


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(16)(x))                         # Dense_0: kernel (8, 16)
        return nn.Dense(3)(h)                                # Dense_1: kernel (16, 3)


@pytest.fixture(scope="module")
def linen():
    params = MLP().init(jax.random.key(0), jnp.ones((1, 8)))["params"]
    prunable = jax.tree_util.tree_map_with_path(lambda p, _: p[-1].key == "kernel", params)
    return params, prunable


def test_mask_on_flax_linen_params(linen):
    params, prunable = linen
    mask = BandStopMask.from_prunable(prunable)
    assert mask.prunable == ("['Dense_0']['kernel']", "['Dense_1']['kernel']")
    thresholds = thresholds_for_rate(layer_priors(params, prunable), 0.5)
    assert thresholds["Dense_0"]["bias"] is None
    hard = mask.hard_masks(params, thresholds)
    assert hard["Dense_0"]["bias"] is None and hard["Dense_1"]["bias"] is None
    chex.assert_trees_all_equal_shapes(hard["Dense_0"]["kernel"], params["Dense_0"]["kernel"])
    effective = apply_masks(params, hard)
    for layer in ("Dense_0", "Dense_1"):
        w, a = params[layer]["kernel"], thresholds[layer]["kernel"]
        np.testing.assert_array_equal(effective[layer]["kernel"], jnp.where(jnp.abs(w) > a, w, 0.0))
        np.testing.assert_array_equal(effective[layer]["bias"], params[layer]["bias"])
    zeros = sum(int(jnp.sum(effective[k]["kernel"] == 0)) for k in ("Dense_0", "Dense_1"))
    assert 0.3 < zeros / (8 * 16 + 16 * 3) < 0.7           # ≈ the rate, for weights near the prior
    out = MLP().apply({"params": effective}, jnp.ones((2, 8)))
    chex.assert_shape(out, (2, 3))


def test_soft_masks_with_scalar_or_per_leaf_sigma(linen):
    params, prunable = linen
    mask = BandStopMask.from_prunable(prunable)
    thresholds = thresholds_for_rate(layer_priors(params, prunable), 0.6)
    soft = mask.soft_masks(params, thresholds, 3.0)
    w, a = params["Dense_0"]["kernel"], thresholds["Dense_0"]["kernel"]
    chex.assert_trees_all_close(soft["Dense_0"]["kernel"], band_stop(w, a, 3.0))
    assert soft["Dense_1"]["bias"] is None
    sigmas = jax.tree.map(lambda t: None if t is None else sigma_schedule(1000, 1000, t), thresholds,
                          is_leaf=lambda t: t is None)
    crisp = mask.soft_masks(params, thresholds, sigmas)   # σ·a = 100: within 5 % of the hard mask
    hard = mask.hard_masks(params, thresholds)
    near = jnp.abs(jnp.abs(w) - a) < 0.05 * a
    np.testing.assert_array_equal(jnp.where(near, 0, jnp.round(crisp["Dense_0"]["kernel"])),
                                  jnp.where(near, 0, hard["Dense_0"]["kernel"]))


def test_vmapped_hard_masks_over_rates_are_nested(linen):
    params, prunable = linen
    mask = BandStopMask.from_prunable(prunable)
    rates = jnp.array([0.3, 0.5, 0.7, 0.9, 0.99])
    thresholds = thresholds_for_rate(layer_priors(params, prunable), rates)
    assert thresholds["Dense_1"]["kernel"].shape == (5,)
    masks = jax.jit(jax.vmap(mask.hard_masks, in_axes=(None, 0)))(params, thresholds)
    m = masks["Dense_0"]["kernel"]
    chex.assert_shape(m, (5, 8, 16))
    assert masks["Dense_0"]["bias"] is None
    assert bool(jnp.all(m[1:] <= m[:-1]))                   # higher rate keeps a subset
    kept = [float(masks["Dense_0"]["kernel"][k].mean()) for k in range(5)]
    assert kept == sorted(kept, reverse=True) and kept[0] > kept[-1]
    effective = jax.vmap(apply_masks, in_axes=(None, 0))(params, masks)
    chex.assert_shape(effective["Dense_0"]["bias"], (5, 16))
    np.testing.assert_array_equal(effective["Dense_0"]["kernel"][2], params["Dense_0"]["kernel"] * m[2])
    one = mask.hard_masks(params, jax.tree.map(lambda t: t[3], thresholds))
    np.testing.assert_array_equal(one["Dense_1"]["kernel"], masks["Dense_1"]["kernel"][3])

    def soft(params, thresholds, step):                     # what an MRMP step does per rate
        sigmas = jax.tree.map(lambda a: sigma_schedule(step, 100, a), thresholds)
        return mask.soft_masks(params, thresholds, sigmas)
    softs = jax.jit(jax.vmap(soft, in_axes=(None, 0, None)))(params, thresholds, 100)
    chex.assert_shape(softs["Dense_1"]["kernel"], (5, 16, 3))
    a3 = thresholds["Dense_1"]["kernel"][3]
    chex.assert_trees_all_close(softs["Dense_1"]["kernel"][3],
                                band_stop(params["Dense_1"]["kernel"], a3, 100.0 / a3), rtol=1e-5)


def test_mask_is_a_jittable_pytree_with_static_paths():
    params = gcn.init(jax.random.key(1), gcn.GCNConfig(num_nodes=4, num_features=3, num_classes=2,
                                                      edges=((0, 1), (1, 2)), num_blocks=1,
                                                      channels=2, attention_dim=2, hidden=5))
    prunable = gcn.prunable(params)
    mask = BandStopMask.from_prunable(prunable)
    assert "['classifier']['kernel']" not in mask.prunable and "['fc']['kernel']" in mask.prunable
    assert jax.tree.leaves(mask) == []                      # nothing traced: all static
    thresholds = jax.tree.map(lambda w, k: jnp.float32(0.1) if k else None, params, prunable)
    f = jax.jit(lambda m, p, t: apply_masks(p, m.hard_masks(p, t)))
    out = f(mask, params, thresholds)
    w = params["fc"]["kernel"]
    np.testing.assert_array_equal(out["fc"]["kernel"], jnp.where(jnp.abs(w) > 0.1, w, 0))
    np.testing.assert_array_equal(out["classifier"]["kernel"], params["classifier"]["kernel"])


def test_mask_errors_name_the_leaf(linen):
    params, prunable = linen
    mask = BandStopMask.from_prunable(prunable)
    thresholds = jax.tree.map(lambda k: 0.1 if k else None, prunable)
    thresholds["Dense_1"]["kernel"] = None
    with pytest.raises(ValueError, match=r"\['Dense_1'\]\['kernel'\]"):
        mask.hard_masks(params, thresholds)
    with pytest.raises(ValueError, match="not in the params"):
        BandStopMask(prunable=("['Dense_9']['kernel']",)).hard_masks(params, thresholds)


def test_threshold_from_prior_prunes_the_expected_fraction_of_prior_samples():
    from jaxprune.priors import make_prior
    prior = make_prior("laplace", 0.2)
    w = prior.sample(jax.random.key(3), (100_000,))
    mask = BandStopMask(prunable=("['w']",))
    m = mask.hard_masks({"w": w}, {"w": threshold_for_rate(prior, 0.8)})["w"]
    assert abs(1 - float(m.mean()) - 0.8) < 0.01
