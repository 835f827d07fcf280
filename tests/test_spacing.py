"""The m-spacing KL estimator: METHOD.md §3's three checks, and what it adds over the histogram
(it sees structure finer than a histogram bin)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxprune.alignment import kl_alignment, total_alignment
from jaxprune.priors import Gaussian, make_prior
from jaxprune.spacing import default_spacing, spacing_kl

S = 0.3
NAMES = ("gaussian", "laplace", "uniform", "weibull")
kl = jax.jit(spacing_kl, static_argnums=2)


def prior(name):
    return make_prior(name, S, match_std=True)


@functools.cache
def own(name):
    """Check (a): mean estimate over 3 draws of 5000 samples of Q itself."""
    q = prior(name)
    return float(np.mean([kl(q.sample(jax.random.key(i), (5000,)), q, 0) for i in range(3)]))


@pytest.mark.parametrize("name", NAMES)
def test_a_near_zero_for_samples_of_the_prior(name):
    assert abs(own(name)) < 0.01


@pytest.mark.parametrize("samples, target", [("gaussian", "laplace"), ("laplace", "gaussian"),
                                             ("uniform", "gaussian"), ("gaussian", "uniform"),
                                             ("laplace", "weibull"), ("weibull", "laplace")])
def test_b_clearly_positive_for_a_mismatched_law(samples, target):
    w = prior(samples).sample(jax.random.key(7), (5000,))
    assert float(kl(w, prior(target), 0)) > 0.02 > 2 * abs(own(target))


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_b_clearly_positive_for_a_scale_mismatch(factor):
    w = factor * prior("gaussian").sample(jax.random.key(7), (5000,))
    assert float(kl(w, prior("gaussian"), 0)) > 0.1


def test_c_gradient_descent_moves_samples_toward_the_prior():
    q = Gaussian(S)
    w = 2 * q.sample(jax.random.key(3), (5000,))                    # N(0, (2s)²)

    opt = optax.adam(0.02 * S)                                     # as in training: the log-barrier
                                                                   # between close neighbours is steep
    @jax.jit
    def descend(w):                                                # 600 Adam steps
        def step(carry, _):
            w, state = carry
            value, grad = jax.value_and_grad(spacing_kl)(w, q)
            updates, state = opt.update(grad, state)
            return (optax.apply_updates(w, updates), state), value
        (w, _), history = jax.lax.scan(step, (w, opt.init(w)), None, length=600)
        return w, history
    w, history = descend(w)
    history = np.asarray(history)
    assert float(spacing_kl(w, q)) < 0.05 * history[0]
    assert all(b < a for a, b in zip(history[::60], history[60::60]))
    assert abs(float(jnp.sqrt(jnp.mean(w ** 2))) - S) < 0.15 * S          # from 2s to near s


def test_sees_a_gap_finer_than_a_histogram_bin():
    """Exact Gaussian quantiles, then the weights of the magnitude band from the 10 % to the
    14 % quantile moved to its ends (a gap 0.05 s wide, a third of a histogram bin): every
    threshold inside the gap now prunes up to 2 points too few. The histogram barely changes;
    the spacing estimate rises clearly."""
    q = Gaussian(S)
    n = 20000
    mags = np.asarray(q.magnitude_quantile((np.arange(n) + 0.5) / n))
    lo, hi = np.asarray(q.magnitude_quantile(0.10)), np.asarray(q.magnitude_quantile(0.14))
    inside = (mags > lo) & (mags < hi)
    gapped = np.where(inside, np.where(mags < (lo + hi) / 2, lo, hi), mags)
    signs = np.where(np.arange(n) % 2, 1.0, -1.0)
    base, moved = jnp.asarray(signs * mags), jnp.asarray(signs * gapped)
    hist_rise = float(kl_alignment(moved, q)) - float(kl_alignment(base, q))
    spacing_rise = float(spacing_kl(moved, q)) - float(spacing_kl(base, q))
    assert spacing_rise > 0.01 > 10 * abs(hist_rise)


def test_default_spacing_and_layer_sum():
    assert (default_spacing(30720), default_spacing(64), default_spacing(1)) == (44, 2, 1)
    q = Gaussian(S)
    params = {"a": q.sample(jax.random.key(0), (40, 30)), "b": jnp.zeros(3)}
    total = total_alignment(params, {"a": True, "b": False}, q, spacing_kl, spacing=3)
    assert float(total) == pytest.approx(float(spacing_kl(params["a"], q, 3)))
    assert np.isfinite(float(spacing_kl(jnp.array([0.0, 0.0, 1.0]), q)))       # ties stay finite
