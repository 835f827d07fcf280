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


def test_erk_counts_every_axis_of_a_conv_kernel():
    """A small CNN (two 3x3 convs, a dense head) at a network rate of 0.9: ERK's weights are the
    sum of all axes over their product and every layer's density follows them (issue 15: conv
    kernels counted as 1/n were pruned to 0.9915 and 0.9997)."""
    shapes = [(3, 3, 1, 16), (3, 3, 16, 32), (512, 10)]
    np.testing.assert_allclose(erk_weights(shapes)[:2], [23 / 144, 54 / 4608])
    rates = np.asarray(layer_rates(0.9, shapes, "erk"))
    sizes = np.array([np.prod(s) for s in shapes])
    np.testing.assert_allclose((rates * sizes).sum() / sizes.sum(), 0.9, rtol=1e-5)
    density = 1 - rates
    np.testing.assert_allclose(density / erk_weights(shapes), density[0] / erk_weights(shapes)[0], rtol=1e-4)
    assert density.min() > 0.015, rates              # 1/n gave the 3x3x16x32 conv 0.9997 in the CNN


def test_unknown_allocation_is_named():
    with pytest.raises(ValueError, match="allocation"):
        layer_rates(0.5, SHAPES, "magic")
