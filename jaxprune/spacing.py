"""D_KL(P‖Q) of a layer's weight magnitudes by m-spacings (Vasicek 1976), an option beside the
soft histogram of ``jaxprune.alignment``.

Pruning only sees |w|, so this estimator compares the law of |w| with Q folded onto [0, ∞)
(density 2q, CDF 2F_Q − 1; for a symmetric law the two KLs are equal). With the magnitudes sorted,
x_(1) ≤ … ≤ x_(n), and x_(0) = 0 (the boundary of |w|), the density at x_(i) is estimated from the
span of its 2m nearest neighbours in rank, i_lo = max(i − m, 0), i_hi = min(i + m, n):

    p̂_i = (k_i / n) / (x_(i_hi) − x_(i_lo)),         k_i = i_hi − i_lo
    D̂ = (1/n) Σ_i [ψ(k_i) − ψ(n + 1) − log(x_(i_hi) − x_(i_lo)) − log(2 q(x_(i)))]      (nats)

where log(k_i/n) is replaced by ψ(k_i) − ψ(n + 1), the expected log of that span's prior mass
when the weights are drawn from Q (a Beta(k_i, n − k_i + 1) variable), so D̂ ≈ 0 there.

Why offer it: the histogram sees P only through a kernel one bin wide, so structure finer than
that (weights piling up or leaving a gap within a bin, a few tenths of a percent of a layer
each) costs it nothing, and each such pile moves the achieved rate at every threshold inside
it. Here each term is a log-barrier between neighbours in rank: it pushes the magnitudes toward
equal spacing in prior mass, i.e. toward Q's quantiles, at the resolution of m weights. Its
minimum lies slightly below 0 (evenly spaced quantiles are more regular than random samples).

Cost: one sort, O(n log n) time and O(n) memory per layer, against O(n) for the histogram.
Gradients flow through the sort (each weight's own term and its neighbours').
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import digamma

from jaxprune.priors import Prior


def default_spacing(n: int) -> int:
    """m for n weights: round(√n / 4), at least 1 (e.g. 44 for 30 720 weights, 2 for 64)."""
    return max(1, round(math.sqrt(n) / 4))


def spacing_kl(weights: jax.Array, prior: Prior, spacing: int = 0) -> jax.Array:
    """D̂_KL (scalar, nats) of the magnitudes of ``weights`` (any shape, n values) against
    ``prior`` folded onto [0, ∞). ``spacing``: m (static), 0 = ``default_spacing(n)``."""
    x = jnp.sort(jnp.abs(jnp.ravel(weights)))
    n = x.shape[0]
    m = min(spacing or default_spacing(n), n)
    i = np.arange(1, n + 1)
    hi, lo = np.minimum(i + m, n), np.maximum(i - m, 0)
    expected = (digamma(hi - lo) - digamma(n + 1)).astype(np.float32)
    ranked = jnp.concatenate([jnp.zeros((1,), x.dtype), x])          # x_(0) = 0, x_(1..n)
    span = jnp.maximum(ranked[hi] - ranked[lo], 1e-12 * prior.std())
    log_q = math.log(2.0) + jnp.maximum(prior.log_density(x), -100.0)    # finite off a bounded support
    return jnp.mean(expected - jnp.log(span) - log_q)
