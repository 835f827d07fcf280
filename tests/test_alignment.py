"""KL alignment: METHOD.md §3's three checks (≈ 0 on Q's samples, > 0 on a mismatch, its gradient
moves samples toward Q), the estimator's pieces, and the per-layer sum."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.alignment import (grid_edges, kl_alignment, prior_histogram, soft_histogram,
                                total_alignment, window_bin_masses)
from jaxprune.priors import Gaussian, layer_priors, make_prior

S = 0.3
NAMES = ("gaussian", "laplace", "uniform", "weibull")
kl = jax.jit(kl_alignment)


def prior(name, std=S):
    return make_prior(name, std, match_std=True)


@functools.cache
def kl_on_own_samples(name):
    """Check (a): the KL of 5000 samples drawn from Q itself (mean of 3 draws)."""
    q = prior(name)
    return float(np.mean([kl(q.sample(jax.random.key(i), (5000,)), q) for i in range(3)]))


@pytest.mark.parametrize("name", NAMES)
def test_a_near_zero_for_samples_of_the_prior(name):
    assert 0 <= kl_on_own_samples(name) < 0.02


@pytest.mark.parametrize("samples, target", [
    ("gaussian", "laplace"),      # same std, different shape
    ("laplace", "gaussian"),
    ("uniform", "gaussian"),
    ("gaussian", "uniform"),
    ("laplace", "weibull"),       # Weibull k = 1.5 on |w|: no density at 0
    ("weibull", "laplace"),
])
def test_b_clearly_positive_for_a_mismatched_law(samples, target):
    w = prior(samples).sample(jax.random.key(7), (5000,))
    assert float(kl(w, prior(target))) > 10 * kl_on_own_samples(target)


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_b_clearly_positive_for_a_scale_mismatch(factor):
    w = factor * prior("gaussian").sample(jax.random.key(7), (5000,))
    assert float(kl(w, prior("gaussian"))) > 10 * kl_on_own_samples("gaussian")


def test_c_gradient_descent_moves_samples_toward_the_prior():
    q = Gaussian(S)
    w = 2 * q.sample(jax.random.key(3), (5000,))                    # N(0, (2s)²)
    lr = 0.01 * w.size * S ** 2                                    # the gradient per weight is O(1/n)

    @jax.jit
    def descend(w):                                                # 200 steps of plain GD
        def step(w, _):
            value, grad = jax.value_and_grad(kl_alignment)(w, q)
            return w - lr * grad, value
        w, values = jax.lax.scan(step, w, None, length=200)
        return w, jnp.append(values, kl_alignment(w, q))
    w, history = descend(w)
    history = np.asarray(history)
    assert history[-1] < 0.2 * history[0]
    checkpoints = history[::25]
    assert all(b <= a for a, b in zip(checkpoints, checkpoints[1:]))
    assert abs(float(w.std()) - S) < 0.05 * S < abs(2 * S - S)      # from 2s to within 5 % of s
    assert float(jnp.abs(w).max()) < 1.25 * float(q.quantile(0.9995)) + 0.1 * S  # no stragglers


def test_prior_histogram_is_the_smoothed_prior_binned():
    q = Gaussian(S)
    edges = grid_edges(q, 64)
    h = edges[1] - edges[0]
    from jax.scipy.special import ndtr
    g = ndtr(edges / jnp.sqrt(S ** 2 + h ** 2))                    # CDF of N(0, s² + h²), exact
    expected = jnp.concatenate([g[:1], jnp.diff(g), 1 - g[-1:]])
    mass = jax.jit(prior_histogram)(q, edges, h)
    np.testing.assert_allclose(mass, expected, atol=2e-7)
    np.testing.assert_allclose(mass.sum(), 1.0, atol=1e-6)
    np.testing.assert_allclose(mass, mass[::-1], atol=1e-8)        # symmetric


def test_soft_histogram_window_equals_dense_and_sums_to_one():
    w = jnp.concatenate([prior("laplace").sample(jax.random.key(1), (3000,)), jnp.array([-9.0, 0.95, 7.0])])
    edges = grid_edges(prior("laplace"), 48)
    windowed, dense = jax.jit(lambda w, e: (soft_histogram(w, e, 1.5, window=4.0),
                                            soft_histogram(w, e, 1.5, window=None)))(w, edges)
    chex.assert_shape(windowed, (50,))
    np.testing.assert_allclose(windowed, dense, atol=1e-5)
    np.testing.assert_allclose(dense.sum(), 1.0, atol=1e-6)
    assert float(dense[0]) >= 1 / 3003 - 1e-7                      # the weight at −9 is below



def test_windowed_histogram_gradient_is_the_dense_one():
    """The windowed histogram's written-out gradient = autodiff of the dense O(n·bins) path, for
    several layers in one table (window_bin_masses), weights beyond the grid included."""
    w = jnp.concatenate([prior("laplace").sample(jax.random.key(2), (500,)), jnp.array([-9.0, 0.95, 1.33, 7.0])])
    edges = grid_edges(prior("laplace"), 24)
    cotangent = jax.random.normal(jax.random.key(3), (26,))
    for bandwidth in (1.0, 1.5):
        grads = [jax.jit(jax.grad(lambda w, window=window: soft_histogram(w, edges, bandwidth, window, None)
                                  @ cotangent))(w) for window in (6.0, None)]
        np.testing.assert_allclose(grads[0], grads[1], atol=1e-4 * float(jnp.abs(grads[1]).max()))   # float rounding
    x = jnp.array([0.5, 3.2, -0.7, 2.9, 9.0])                    # two layers of 4 bins
    layer = np.array([0, 0, 0, 1, 1])
    masses = window_bin_masses(x, layer, 2, 4, 0.5, 6.0)
    dense = [soft_histogram(x[layer == l], jnp.arange(5.0), 0.5, None, None)[1:-1] * (layer == l).sum() for l in (0, 1)]
    np.testing.assert_allclose(masses, np.stack(dense), atol=1e-6)


@pytest.mark.parametrize("bandwidth", [0.5, 1.0, 1.5])
def test_linear_binning_equals_the_exact_histogram_and_its_gradient(bandwidth):
    """The default soft histogram (linear binning, 128 points a bin) = the exact O(n·bins) one
    to a few 1e-6 of the total mass, and its written-out gradient = autodiff of the exact one to
    ~1e-4 of the largest, weights beyond the grid and exactly on a bin edge included."""
    w = jnp.concatenate([prior("laplace").sample(jax.random.key(2), (3000,)), jnp.array([-9.0, 0.95, 1.33, 7.0])])
    edges = grid_edges(prior("laplace"), 24)
    w = w.at[0].set(edges[5])
    cotangent = jax.random.normal(jax.random.key(3), (26,))
    binned = jax.jit(lambda w: soft_histogram(w, edges, bandwidth))                    # resolution 128
    exact = jax.jit(lambda w: soft_histogram(w, edges, bandwidth, None, None))
    np.testing.assert_allclose(binned(w), exact(w), atol=3e-6)
    grads = [jax.grad(lambda w, f=f: f(w) @ cotangent)(w) for f in (binned, exact)]
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-4 * float(jnp.abs(grads[1]).max()))
    coarse = jax.grad(lambda w: soft_histogram(w, edges, bandwidth, resolution=8) @ cotangent)(w)
    assert float(jnp.abs(coarse - grads[1]).max()) > float(jnp.abs(grads[0] - grads[1]).max())   # finer is closer

def test_hand_made_histogram():
    edges = jnp.array([-1.0, 0.0, 1.0])
    hist = soft_histogram(jnp.array([-0.5, 0.5]), edges, 1e-3, window=None)   # bandwidth → 0
    np.testing.assert_allclose(hist, [0.0, 0.5, 0.5, 0.0], atol=1e-6)


def test_differentiable_any_shape_and_large_layers_run():
    q = Gaussian(S)
    w = q.sample(jax.random.key(4), (400, 250))                    # 1e5 weights, a matrix
    value, grad = jax.jit(jax.value_and_grad(kl_alignment))(w, q)
    chex.assert_shape(grad, (400, 250))
    chex.assert_tree_all_finite(grad)
    assert float(value) < 0.002                                    # less noise with more weights


def test_total_alignment_sums_layers():
    k1, k2 = jax.random.split(jax.random.key(5))
    params = {"l0": {"kernel": S * jax.random.normal(k1, (50, 40)), "bias": jnp.ones(40)},
              "l1": {"kernel": 3 * S * jax.random.normal(k2, (40, 30)), "bias": jnp.ones(30)}}
    prunable = {"l0": {"kernel": True, "bias": False}, "l1": {"kernel": True, "bias": False}}
    per_layer = layer_priors(params, prunable)                     # each layer's own std

    @jax.jit                                                       # one compile for all checks
    def check(params, q, per_layer):
        one, grads = jax.value_and_grad(total_alignment)(params, prunable, q)
        summed = kl_alignment(params["l0"]["kernel"], q) + kl_alignment(params["l1"]["kernel"], q)
        return one, summed, total_alignment(params, prunable, per_layer), grads
    one, summed, own, grads = check(params, Gaussian(S), per_layer)
    np.testing.assert_allclose(one, summed, rtol=1e-5)
    assert float(own) < 0.5 * float(one)
    np.testing.assert_array_equal(grads["l0"]["bias"], 0.0)
    assert float(jnp.abs(grads["l1"]["kernel"]).sum()) > 0
    q = Gaussian(S)
    with pytest.raises(ValueError, match=r"no prior for prunable leaf \['l1'\]\['kernel'\]"):
        total_alignment(params, prunable, {"l0": {"kernel": q, "bias": None}, "l1": {"kernel": None, "bias": None}})


def test_stacked_layers_equal_the_per_layer_sum(law="weibull"):
    """total_alignment's one stacked computation = Σ of kl_alignment per layer, value and gradient,
    in the "both" space (weight and quantile space together), on a shifted grid, with layers of
    different sizes and scales (some weights beyond the grid)."""
    keys = jax.random.split(jax.random.key(11), 3)
    params = {"a": 0.3 * jax.random.normal(keys[0], (30, 20)), "b": 2.0 * jax.random.normal(keys[1], (7,)),
              "c": 0.05 * jax.random.laplace(keys[2], (4, 5, 6))}
    prunable = {"a": True, "b": True, "c": True}
    priors = layer_priors(params, prunable, law)
    kw = dict(space="both", shift=0.3, bins=32)

    @jax.jit
    def both(params):
        return (jax.value_and_grad(lambda p: total_alignment(p, prunable, priors, **kw))(params),
                jax.value_and_grad(lambda p: sum(kl_alignment(p[n], priors[n], **kw) for n in p))(params))
    (stacked, g_stacked), (summed, g_summed) = both(params)
    np.testing.assert_allclose(stacked, summed, rtol=1e-6)
    for n in params:
        scale = float(jnp.abs(g_summed[n]).max())
        np.testing.assert_allclose(g_stacked[n], g_summed[n], atol=1e-5 * scale, err_msg=n)


@pytest.mark.parametrize("space", ["quantile", "both"])
def test_quantile_space_passes_the_three_checks(space):
    q = prior("gaussian")
    fn = jax.jit(functools.partial(kl_alignment, space=space))
    own = float(np.mean([fn(q.sample(jax.random.key(i), (5000,)), q) for i in range(3)]))
    assert 0 <= own < 0.02
    assert fn(prior("laplace").sample(jax.random.key(7), (5000,)), q) > 5 * max(own, 1e-3)
    assert fn(1.3 * q.sample(jax.random.key(8), (5000,)), q) > 5 * max(own, 1e-3)
    w = 1.5 * q.sample(jax.random.key(9), (2000,))                   # too wide
    grad = jax.grad(fn)(w, q)
    step = w - 1e-4 * grad / np.abs(grad).max()
    assert fn(step, q) < fn(w, q)


def test_unknown_space_is_named():
    with pytest.raises(ValueError, match="space"):
        kl_alignment(jnp.zeros(10), prior("gaussian"), space="other")


def test_shifted_grid_keeps_the_checks():
    q = prior("gaussian")
    w = q.sample(jax.random.key(11), (5000,))
    base = float(kl(w, q))
    assert float(kl_alignment(w, q, shift=0.0)) == pytest.approx(base, rel=1e-3)
    shifted = jax.jit(kl_alignment)
    for s in (-0.5, -0.2, 0.3, 0.5):
        assert 0 <= float(shifted(w, q, shift=s)) < 0.02
    assert float(shifted(1.3 * w, q, shift=0.25)) > 5 * max(base, 1e-3)


def test_the_resolution_setting_reaches_the_pruner_and_is_checked():
    """prune.kl_resolution=0 gives the kernel at each weight (the former form), the default the
    linear binning; both the same KL to ~1e-6; a resolution too coarse is refused by name."""
    from jaxprune.methods import make_pruner
    from jaxprune.methods.config import PruneConfig
    params = {"l0": {"kernel": S * jax.random.normal(jax.random.key(7), (60, 40)), "bias": jnp.zeros(40)}}
    prunable = {"l0": {"kernel": True, "bias": False}}
    values = [float(make_pruner("srmp", params, prunable, PruneConfig(rate=0.9, kl_resolution=r), 100).alignment(params))
              for r in (0, 128)]
    assert values[0] == pytest.approx(values[1], abs=1e-5) and values[0] != values[1]
    with pytest.raises(ValueError, match="kl_resolution must be 0 or in 8"):
        PruneConfig(kl_resolution=4)
