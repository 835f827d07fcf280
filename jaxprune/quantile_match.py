"""Quantile matching of a layer's weight magnitudes to its prior: a rank-exact alignment term.

The KL of ``jaxprune.alignment`` matches P to Q as densities, seen through a kernel one bin wide;
it leaves each threshold's count off by a few tenths of a percent of a layer (a few weights in
a layer of 64, where the tolerance is one). This term matches them as ranked samples: with the
magnitudes sorted, x_(1) ≤ … ≤ x_(n), and t_i = F_|Q|⁻¹((i − ½)/n) the prior's magnitude
quantiles (``Prior.magnitude_quantile``),

    W(P, Q) = (1/n) Σ_i ((x_(i) − t_i) / s)²          (s = the prior's std; unit-free)

the squared 2-Wasserstein distance between the magnitudes' empirical law and Q folded onto
[0, ∞), in units of s². It is 0 exactly when the i-th smallest magnitude sits at the i-th
quantile, and then the hard mask at a(r) prunes round(r·n) weights of the layer, ±1, for every r.
Its gradient moves each weight toward its own rank's quantile, so ranks, hence the nested
masks, are kept. Cost: one sort per layer, O(n log n).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.priors import Prior


def quantile_distance(weights: jax.Array, prior: Prior) -> jax.Array:
    """W(P, Q) (scalar, in units of the prior's variance) of ``weights`` (any shape, n values)."""
    x = jnp.sort(jnp.abs(jnp.ravel(weights)))
    n = x.shape[0]
    levels = (np.arange(n, dtype=np.float64) + 0.5) / n
    target = jnp.asarray(prior.magnitude_quantile(levels.astype(np.float32)), x.dtype)
    return jnp.mean(jnp.square((x - target) / prior.std()))
