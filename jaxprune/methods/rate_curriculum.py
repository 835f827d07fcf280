"""When each rate of a multi-rate pruner joins the training: from the least to the most sparse.

Progressive shrinking (once-for-all networks, Cai et al. 2020) trains the largest network
first and brings the smaller ones in one after another, so the shared weights settle on what
the large networks need before the small ones pull on them. For MRMP's K rates (increasing)
and T optimizer steps, rate k joins at step

    s_k = round(f · T · k / (K − 1))        (rate 0 from the start, the sparsest at f·T)

and weighs 0 in the step's loss before it: w_k(step) = w_k · 1{step ≥ s_k}, so the loss
Σ_k w_k(step) loss_k / Σ_k w_k(step) is over the rates that have joined (``pruned_loss``).
A rate not yet joined still runs in the vmap (its loss is computed and weighed 0) and, with
``split_batch``, its slice of the batch teaches nothing: early steps learn from fewer samples.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.methods.config import check_curriculum


def join_steps(num_rates: int, total_steps: int, fraction: float) -> np.ndarray:
    """(K,) int: the optimizer step at which each rate (least sparse first) joins the loss."""
    check_curriculum(fraction)
    if fraction and total_steps < 1:
        raise ValueError(f"prune setting rate_curriculum: the curriculum needs the run's number of optimizer "
                         f"steps, got {total_steps} (build the pruner with total_steps)")
    share = np.arange(num_rates) / max(num_rates - 1, 1)
    return np.round(fraction * total_steps * share).astype(np.int64)


def curriculum(weights: Sequence[float], total_steps: int, fraction: float) -> Callable[[jax.Array], jax.Array]:
    """``step -> (K,)`` float32: ``weights`` (one per rate, least sparse first) with each rate's
    weight 0 before its join step (module docstring). Rate 0 always weighs its own weight, so
    the weights never sum to 0."""
    base = np.asarray(weights, np.float32)
    starts = join_steps(len(base), total_steps, fraction)

    def weights_at(step: jax.Array) -> jax.Array:
        return jnp.where(jnp.asarray(step) >= starts, base, 0.0).astype(jnp.float32)

    return weights_at
