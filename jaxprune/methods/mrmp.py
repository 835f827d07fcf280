"""MRMP and SRMP (METHOD.md §3): one-shot multi-rate magnitude pruning with band-stop masks.

Latent weights Ŵ of every prunable layer ℓ are masked by h_{a,σ}(Ŵ); a KL term aligns their
distribution with a prior Q_ℓ, so the threshold for a rate r is the quantile a_ℓ(r) of Q_ℓ.
For rates r_1..r_K sharing one Ŵ:

    L = (1/K) Σ_k CE(f(x; {Ŵ^ℓ ⊙ h_{a_ℓ(r_k),σ}(Ŵ^ℓ)}), y) + λ Σ_ℓ D_KL(P^ℓ ‖ Q_ℓ)

The K masked networks are one ``jax.vmap`` over the thresholds inside the jitted step. SRMP is the
single-rate case (K = 1). After training any rate r*, trained or not, is served by the hard mask
1{|Ŵ| > a(r*)}: ``hard_masks(params, rates)`` gives them all in one vmapped call.

Choices (METHOD.md §3, configurable in ``PruneConfig``): Gaussian prior with each layer's
initialisation std as its scale; a network rate r is spread over layers by ERK
(``jaxprune.masks.allocation``) and layer ℓ is thresholded at its prior's quantile for r_ℓ(r);
all K rates every step (``rates_per_step`` draws a subset instead), each drawn within its stratum
of the rate span (``rate_jitter``, so rates between the listed ones are served well too); λ = 10;
σ·a geometric from 1 to 100 over the first 80 % of the steps, then crisp; the KL's histogram grid
shifted by a random fraction of a bin each step (``kl_shift``).

Late alignment, off by default: once σ has annealed, ``kl_ramp`` grows λ, and ``quantile_weight``
ramps in a rank-exact term (``jaxprune.quantile_match``) that makes every threshold prune
round(r·n) weights of its layer: + w(step) Σ_ℓ W(P^ℓ, Q_ℓ).
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.alignment import total_alignment
from jaxprune.masks.allocation import layer_rates
from jaxprune.masks.bandstop import BandStopMask, sigma_schedule
from jaxprune.methods.base import Stateless
from jaxprune.methods.config import PruneConfig
from jaxprune.priors import is_prior, layer_priors, threshold_for_rate
from jaxprune.quantile_match import quantile_distance
from jaxprune.shared_axis import shared

PyTree = Any


@flax.struct.dataclass
class MultiRate(Stateless):
    """Band-stop pruner at several rates over shared latent weights (SRMP when one rate).

    Its training masks have a leading (K,) axis, one per rate of the step (``multi_rate``); the
    rates' jitter and the KL's grid shift draw from keys of its own (``draws_keys``).

    ``priors``: pytree like the params, a prior at each prunable leaf, None elsewhere.
    ``prunable``: pytree of bools like the params (static).
    """

    priors: PyTree
    prunable: PyTree = flax.struct.field(pytree_node=False)
    trained_rates: tuple[float, ...] = flax.struct.field(pytree_node=False)
    config: PruneConfig = flax.struct.field(pytree_node=False)
    anneal_steps: int = flax.struct.field(pytree_node=False)
    total_steps: int = flax.struct.field(pytree_node=False, default=0)
    serves_any_rate: bool = flax.struct.field(pytree_node=False, default=True)
    multi_rate = True
    draws_keys = True

    @property
    def mask(self) -> BandStopMask:
        return BandStopMask.from_prunable(self.prunable)

    def layer_rates(self, params, rates) -> PyTree:
        """Per-layer rates r_ℓ(r) (R,) at prunable leaves for network rates (R,); None elsewhere."""
        flat, treedef = jax.tree_util.tree_flatten(params)
        keep = jax.tree.leaves(self.prunable)
        shapes = [np.shape(w) for w, k in zip(flat, keep) if k]
        per_layer = iter(jnp.moveaxis(layer_rates(rates, shapes, self.config.allocation), -1, 0))
        return jax.tree_util.tree_unflatten(treedef, [next(per_layer) if k else None for k in keep])

    def thresholds(self, params, rates) -> PyTree:
        """Threshold a_ℓ(r_ℓ(r)) per prunable leaf, shape (R,) for rates (R,); None elsewhere."""
        rates = jnp.asarray(rates, jnp.float32)
        per_layer = self.layer_rates(params, rates)
        return jax.tree.map(lambda q, r: None if q is None else threshold_for_rate(q, r), self.priors,
                            per_layer, is_leaf=lambda x: x is None or is_prior(x))

    def soft_masks(self, params, rates, step) -> PyTree:
        """Smooth masks (R, ...) at prunable leaves for rates (R,) at training step ``step``."""
        th = self.thresholds(params, rates)
        c = self.config
        sig = jax.tree.map(lambda a: None if a is None else
                           sigma_schedule(step, self.anneal_steps, a, c.sigma_start, c.sigma_end),
                           th, is_leaf=lambda x: x is None)
        shared_params = shared(params, jnp.shape(rates)[0])   # its backward: K adds, not a slow reduction
        return jax.vmap(self.mask.soft_masks, in_axes=(0, 0, 0))(shared_params, th, sig)

    def hard_masks(self, params, rates) -> PyTree:
        """Hard masks 1{|Ŵ| > a_ℓ(r)} with a leading (R,) axis at prunable leaves, None elsewhere."""
        return jax.vmap(self.mask.hard_masks, in_axes=(None, 0))(params, self.thresholds(params, rates))

    def alignment(self, params, key: jax.Array | None = None) -> jax.Array:
        """Σ_ℓ D_KL(P^ℓ‖Q_ℓ) in nats; with ``key`` and ``kl_shift``, on a grid shifted at random."""
        shift = 0.0
        if key is not None and self.config.kl_shift:
            shift = jax.random.uniform(key, (), minval=-0.5, maxval=0.5)
        return total_alignment(params, self.prunable, self.priors, bins=self.config.kl_bins,
                               bandwidth=self.config.kl_bandwidth, space=self.config.kl_space, shift=shift,
                               resolution=self.config.kl_resolution or None)

    def crisp_progress(self, step) -> jax.Array:
        """How far ``step`` is into the steps after σ's annealing: 0 up to ``anneal_steps``,
        growing linearly to 1 at ``total_steps`` (float32 scalar)."""
        span = max(self.total_steps - self.anneal_steps, 1)
        return jnp.clip((jnp.asarray(step, jnp.float32) - self.anneal_steps) / span, 0.0, 1.0)

    def kl_weight(self, step) -> jax.Array:
        """λ at ``step``: ``kl_weight`` while σ anneals, then growing geometrically to
        ``kl_weight · kl_ramp`` at the last step (constant when kl_ramp = 1)."""
        c = self.config
        if c.kl_ramp == 1:
            return jnp.float32(c.kl_weight)
        return c.kl_weight * jnp.float32(c.kl_ramp) ** self.crisp_progress(step)

    def quantile_weight(self, step) -> jax.Array:
        """Weight of the quantile-matching term at ``step``: 0 while σ anneals, then growing
        linearly to ``quantile_weight`` at the last step."""
        return self.config.quantile_weight * self.crisp_progress(step)

    def step_rates(self, key: jax.Array) -> jax.Array:
        """The rates of one training step: the K trained rates, each moved uniformly within
        ``rate_jitter`` of its stratum when jitter is on, then ``rates_per_step`` of them drawn
        without replacement when that is set, always the first and last with ``sandwich`` (see
        ``PruneConfig``). Shape (K,) or (m,); with ``sandwich`` the least sparse rate comes first
        and the most sparse last."""
        m = self.config.rates_per_step
        if not 0 < m < len(self.trained_rates):
            return self.jittered_rates(key)
        jitter_key, subset_key = jax.random.split(key)
        rates = self.jittered_rates(jitter_key)
        if self.config.sandwich:                  # the least and the most sparse, m − 2 between
            middle = jax.random.choice(subset_key, rates[1:-1], (m - 2,), replace=False)
            return jnp.concatenate([rates[:1], middle, rates[-1:]])
        return jax.random.choice(subset_key, rates, (m,), replace=False)

    def jittered_rates(self, key: jax.Array) -> jax.Array:
        """The K trained rates (K,), each moved uniformly within ``rate_jitter`` of its stratum."""
        rates = jnp.asarray(self.trained_rates, jnp.float32)
        jitter = self.config.rate_jitter
        if jitter == 0 or len(self.trained_rates) < 2:
            return rates
        t = -np.log1p(-np.asarray(self.trained_rates, np.float64))
        mids = (t[1:] + t[:-1]) / 2
        lo = np.concatenate([[max(0.0, t[0] - (mids[0] - t[0]))], mids])
        hi = np.concatenate([mids, [t[-1] + (t[-1] - mids[-1])]])
        lo, hi = t + jitter * (lo - t), t + jitter * (hi - t)
        u = jax.random.uniform(key, rates.shape)
        return (-jnp.expm1(-(jnp.asarray(lo) + u * jnp.asarray(hi - lo)))).astype(jnp.float32)

    def train_masks(self, params, prune_state, key, step) -> PyTree:
        """The soft masks (K, ...) of one training step: at the rates ``step_rates(key)`` draws."""
        return self.soft_masks(params, self.step_rates(key), step)

    def penalty(self, params, masks, prune_state, key, step):
        """(λ(step)·Σ_ℓ KL, [w(step)·quantile term]), with the KL's grid shifted by ``key``."""
        kl = self.alignment(params, key)
        terms, metrics = [self.kl_weight(step) * kl], {"kl": kl}
        if self.config.quantile_weight:
            metrics["quantile"] = total_alignment(params, self.prunable, self.priors, quantile_distance)
            terms.append(self.quantile_weight(step) * metrics["quantile"])
        return tuple(terms), metrics


def _prior_shape(config: PruneConfig) -> dict:
    """The prior's shape argument: the Weibull shape k, nothing for the other laws."""
    return {"shape": config.weibull_shape} if config.prior == "weibull" else {}


def build(params: PyTree, prunable: PyTree, config: PruneConfig, rates, anneal_steps: int,
          total_steps: int = 0) -> MultiRate:
    """A pruner whose priors take each layer's scale from ``params`` (fresh initialisation)."""
    priors = layer_priors(params, prunable, config.prior, **_prior_shape(config))
    return MultiRate(priors=priors, prunable=prunable, trained_rates=tuple(float(r) for r in rates),
                     config=config, anneal_steps=int(anneal_steps), total_steps=int(total_steps))
