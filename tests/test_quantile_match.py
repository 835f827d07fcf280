"""The rank-exact quantile-matching term: zero exactly at the prior's quantiles, positive off
them, its gradient keeps ranks, and descending it makes every hard threshold exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.alignment import total_alignment
from jaxprune.priors import make_prior
from jaxprune.quantile_match import quantile_distance

NAMES = ("gaussian", "laplace", "uniform", "weibull")


def quantiles(q, n):
    """n magnitudes at the prior's quantiles (i − ½)/n, alternating in sign."""
    t = np.asarray(q.magnitude_quantile((np.arange(n) + 0.5) / n))
    return jnp.asarray(t * np.where(np.arange(n) % 2, 1.0, -1.0), jnp.float32)


@pytest.mark.parametrize("name", NAMES)
def test_zero_at_the_quantiles_small_for_samples_large_for_a_mismatch(name):
    q = make_prior(name, 0.3, match_std=True)
    assert float(quantile_distance(quantiles(q, 64), q)) == pytest.approx(0.0, abs=1e-10)
    own = float(quantile_distance(q.sample(jax.random.key(0), (5000,)), q))
    assert 0 < own < 0.01
    assert float(quantile_distance(1.5 * q.sample(jax.random.key(0), (5000,)), q)) > 20 * own


def test_descent_makes_every_threshold_exact_and_keeps_ranks():
    q = make_prior("gaussian", 0.3)
    n = 64
    w = 1.7 * q.sample(jax.random.key(1), (n,)) + 0.05              # wrong scale and offset
    order = np.argsort(np.abs(np.asarray(w)))
    grad = jax.jit(jax.grad(quantile_distance))
    for _ in range(200):
        w = w - 0.5 * n * 0.09 * grad(w, q)                          # plain gradient descent
    np.testing.assert_array_equal(np.argsort(np.abs(np.asarray(w))), order)   # ranks kept
    for r in (0.1, 0.5, 0.9, 0.97, 0.99):
        pruned = int(np.sum(np.abs(np.asarray(w)) < float(q.magnitude_quantile(r))))
        assert abs(pruned - r * n) <= 1.0, (r, pruned)


def test_sums_over_prunable_layers():
    q = make_prior("gaussian", 0.3)
    params = {"a": 2 * q.sample(jax.random.key(2), (8, 8)), "b": jnp.ones(3)}
    total = total_alignment(params, {"a": True, "b": False}, q, quantile_distance)
    assert float(total) == pytest.approx(float(quantile_distance(params["a"], q)))
