"""How a network's pruning rate r is spread over its layers: per-layer rates r_ℓ(r).

    "uniform"  r_ℓ = r for every layer (METHOD.md §3's per-layer reading).
    "erk"      Erdős–Rényi-Kernel (Evci et al., "Rigging the Lottery", ICML 2020): the density
               1 − r_ℓ of a (fan_in × fan_out) layer is proportional to
               (fan_in + fan_out) / (fan_in · fan_out) (for a conv kernel: the sum of all its axes
               over their product), capped at 1, with the factor chosen so that
               Σ_ℓ n_ℓ r_ℓ = r · Σ_ℓ n_ℓ. Small layers keep relatively more weights, so a very
               high global rate does not empty them (at r = 0.99 a 64-weight layer at the uniform
               rate keeps 0.64 weights: the network is dead).

Both are monotone in r, so masks from thresholds at r_ℓ(r) stay nested across rates. Jittable
and vmappable in r (the ERK factor is found by bisection, 64 steps, float32-exact).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

ALLOCATIONS = ("uniform", "erk")


def erk_weights(shapes) -> np.ndarray:
    """ρ_ℓ = Σ_i s_i / Π_i s_i over every axis of a kernel of rank ≥ 2: (fan_in + fan_out) /
    (fan_in · fan_out) for a dense kernel, (k_h + k_w + c_in + c_out) / (k_h · k_w · c_in · c_out)
    for a conv kernel (RigL's ERK); 1 / n for a vector of n weights."""
    out = []
    for s in shapes:
        n = int(np.prod(s))
        out.append(sum(s) / n if len(s) >= 2 else 1.0 / max(n, 1))
    return np.asarray(out, np.float64)


def layer_rates(rate, shapes, allocation: str = "uniform") -> jax.Array:
    """Per-layer rates (..., L) for global rate(s) ``rate`` (...) and the L layers' ``shapes``."""
    rate = jnp.asarray(rate, jnp.float32)
    if allocation == "uniform":
        return jnp.broadcast_to(rate[..., None], rate.shape + (len(shapes),))
    if allocation != "erk":
        raise ValueError(f"prune setting allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    sizes = jnp.asarray([float(np.prod(s)) for s in shapes], jnp.float32)
    rho = jnp.asarray(erk_weights(shapes), jnp.float32)
    kept = (1.0 - rate) * sizes.sum()                               # weights to keep (...)

    def kept_at(eps):                                               # Σ n_ℓ min(1, ε ρ_ℓ), increasing in ε
        return (sizes * jnp.minimum(1.0, eps[..., None] * rho)).sum(-1)

    lo = jnp.zeros_like(rate)
    hi = jnp.full_like(rate, float(1.0 / erk_weights(shapes).min()))  # ε at which every layer is dense

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        low = kept_at(mid) < kept
        return jnp.where(low, mid, lo), jnp.where(low, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 64, bisect, (lo, hi))
    density = jnp.minimum(1.0, hi[..., None] * rho)
    return jnp.clip(1.0 - density, 0.0, 1.0)
