"""Priors: closed-form thresholds, CDF/quantile/density against scipy, sampling, scales, errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from jaxprune.priors import (Gaussian, Laplace, Uniform, Weibull, init_scales, layer_priors,
                             make_prior, threshold_for_rate, thresholds_for_rate)

RATES = np.array([0.0, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 0.999])
PRIORS = {
    "gaussian": (make_prior("gaussian", 0.3), stats.norm(scale=0.3)),
    "laplace": (make_prior("laplace", 0.3), stats.laplace(scale=0.3)),
    "uniform": (make_prior("uniform", 0.3), stats.uniform(-0.3, 0.6)),
    "weibull": (make_prior("weibull", 0.3, shape=0.8), stats.dweibull(0.8, scale=0.3)),
}


def closed_form(name, r):
    """METHOD.md §3, literally."""
    if name == "gaussian":
        return 0.3 * np.sqrt(2) * special.erfinv(r)
    if name == "laplace":
        return -0.3 * np.log(1 - r)
    if name == "uniform":
        return r * 0.3
    return 0.3 * (-np.log(1 - r)) ** (1 / 0.8)


@pytest.mark.parametrize("name", PRIORS)
def test_threshold_matches_closed_form_and_quantile(name):
    prior, ref = PRIORS[name]
    a = threshold_for_rate(prior, jnp.asarray(RATES))
    chex.assert_shape(a, RATES.shape)
    np.testing.assert_allclose(a, closed_form(name, RATES), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a, ref.ppf((1 + RATES) / 2), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(prior.quantile((1 + RATES[:-1]) / 2), a[:-1], rtol=1e-4, atol=1e-6)
    # P_Q(|w| < a(r)) = r
    np.testing.assert_allclose(ref.cdf(a) - ref.cdf(-a), RATES, atol=1e-6)


@pytest.mark.parametrize("name", PRIORS)
def test_cdf_quantile_density_against_scipy(name):
    prior, ref = PRIORS[name]
    p = np.array([1e-4, 0.01, 0.2, 0.5, 0.6, 0.9, 0.9999], np.float32)   # exact float32 values
    np.testing.assert_allclose(prior.cdf(prior.quantile(p)), p, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(prior.quantile(p), ref.ppf(p.astype(np.float64)), rtol=1e-5, atol=1e-7)
    x = np.array([-0.9, -0.25, -0.01, 0.04, 0.2, 0.29, 1.3])
    np.testing.assert_allclose(prior.cdf(x), ref.cdf(x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(prior.log_density(x), ref.logpdf(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prior.std(), ref.std(), rtol=1e-5)


@pytest.mark.parametrize("name", PRIORS)
def test_samples_prune_the_rate_they_promise(name):
    prior, _ = PRIORS[name]
    w = np.asarray(prior.sample(jax.random.key(0), (200_000,)))
    assert abs(np.mean(w > 0) - 0.5) < 0.01                       # symmetric
    for r in (0.1, 0.5, 0.9, 0.99):
        assert abs(np.mean(np.abs(w) < float(threshold_for_rate(prior, r))) - r) < 0.01
    np.testing.assert_allclose(w.std(), prior.std(), rtol=0.02)


class JittedThresholds(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_threshold_for_rate_jits_with_the_prior_as_a_pytree(self):
        f = self.variant(threshold_for_rate)
        for prior in (Gaussian(2.0), Laplace(2.0), Uniform(2.0), Weibull(2.0, 1.5)):
            np.testing.assert_allclose(f(prior, jnp.array([0.5, 0.9])),
                                       prior.quantile(jnp.array([0.75, 0.95])), rtol=1e-5)
        np.testing.assert_allclose(f(Uniform(jnp.array([1.0, 4.0])), 0.5), [0.5, 2.0])


def test_priors_of_different_laws_have_unequal_treedefs():
    """jit's cache compares treedefs; in jax 0.10 those of same-field dataclasses of different
    classes compare equal unless their static data differs, and a hash collision then ran a
    Gaussian's trace for a Uniform (seen twice in CI)."""
    structures = {name: jax.tree.structure(cls(2.0)) for name, cls in
                  (("gaussian", Gaussian), ("laplace", Laplace), ("uniform", Uniform), ("weibull", Weibull))}
    for a in structures:
        for b in structures:
            assert (structures[a] == structures[b]) == (a == b), (a, b)


@pytest.mark.parametrize("name", PRIORS)
def test_match_std(name):
    prior = make_prior(name, 0.7, match_std=True)
    np.testing.assert_allclose(prior.std(), 0.7, rtol=1e-6)
    assert isinstance(prior, type(PRIORS[name][0]))


def test_make_prior_errors():
    with pytest.raises(ValueError, match="unknown prior 'cauchy'"):
        make_prior("cauchy", 1.0)
    for bad in (0.0, -1.0, float("nan"), np.array([1.0, 0.0])):
        with pytest.raises(ValueError, match="scale must be positive"):
            make_prior("laplace", bad)
    with pytest.raises(ValueError, match="shape must be positive"):
        make_prior("weibull", 1.0, shape=0.0)
    with pytest.raises(ValueError, match="rate must lie in"):
        threshold_for_rate(make_prior("gaussian", 1.0), jnp.array([0.5, 1.5]))
    assert make_prior("Gaussian", 2.0) == Gaussian(2.0)


def test_init_scales_layer_priors_and_thresholds():
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"a": {"kernel": 0.1 * jax.random.normal(k1, (64, 32)), "bias": jnp.zeros(32)},
              "b": [0.5 * jax.random.normal(k2, (32, 16)), jnp.ones(16)]}
    prunable = {"a": {"kernel": True, "bias": False}, "b": [True, False]}
    scales = init_scales(params, prunable)
    assert scales["a"]["bias"] is None and scales["b"][1] is None
    np.testing.assert_allclose(scales["a"]["kernel"], np.std(np.asarray(params["a"]["kernel"])), rtol=1e-5)
    np.testing.assert_allclose(scales["b"][0], 0.5, rtol=0.05)
    priors = layer_priors(params, prunable, "uniform")
    np.testing.assert_allclose(priors["b"][0].std(), scales["b"][0], rtol=1e-5)
    thresholds = thresholds_for_rate(priors, jnp.array([0.5, 0.9]))
    chex.assert_shape(thresholds["a"]["kernel"], (2,))
    assert thresholds["b"][1] is None
    np.testing.assert_allclose(thresholds["b"][0], np.array([0.5, 0.9]) * scales["b"][0] * np.sqrt(3), rtol=1e-5)
