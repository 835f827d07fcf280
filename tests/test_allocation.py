"""Per-layer rates from a network rate: uniform and ERK meet the global rate, stay monotone
(so masks are nested) and keep small layers alive at very high rates."""

import jax
import numpy as np
import pytest

from jaxprune.masks.allocation import erk_weights, layer_rates

SHAPES = [(24, 8), (24, 8), (8, 8), (8, 8), (240, 128)]
SIZES = np.array([np.prod(s) for s in SHAPES], np.float64)


def test_uniform_is_the_rate_everywhere():
    r = np.asarray(layer_rates(np.array([0.3, 0.9]), SHAPES, "uniform"))
    np.testing.assert_array_equal(r, np.float32([[0.3] * 5, [0.9] * 5]))


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999])
def test_erk_meets_the_global_rate(rate):
    r = np.asarray(layer_rates(rate, SHAPES, "erk"), np.float64)
    assert (r >= 0).all() and (r <= 1).all()
    np.testing.assert_allclose((r * SIZES).sum() / SIZES.sum(), rate, atol=2e-6)


def test_erk_densities_follow_fan_sum_over_fan_product_where_not_capped():
    r = np.asarray(layer_rates(0.99, SHAPES, "erk"), np.float64)
    density = 1 - r
    rho = erk_weights(SHAPES)
    np.testing.assert_allclose(density / rho, (density / rho)[0], rtol=1e-4)   # none capped at 0.99
    assert r[-1] > 0.99 > r[2]         # the big layer pays for the small ones
    assert (SIZES * (1 - r))[2] >= 8   # an 8 x 8 layer keeps >= 8 weights


def test_erk_is_monotone_in_the_rate_and_jittable():
    rates = np.linspace(0, 0.999, 200)
    r = np.asarray(jax.jit(lambda x: layer_rates(x, SHAPES, "erk"))(rates))
    assert r.shape == (200, 5)
    assert (np.diff(r, axis=0) >= -1e-6).all()


def test_unknown_allocation_is_named():
    with pytest.raises(ValueError, match="allocation"):
        layer_rates(0.5, SHAPES, "magic")
