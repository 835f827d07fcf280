"""Dense training: the unmasked network (the reference every pruning method meets)."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from jaxprune.methods.base import Stateless, at_trained_rate


@flax.struct.dataclass
class Dense(Stateless):
    """The dense method as a pruner: no mask; it serves rate 0 only."""

    trained_rates: tuple[float, ...] = flax.struct.field(pytree_node=False, default=(0.0,))
    serves_any_rate: bool = flax.struct.field(pytree_node=False, default=False)

    def train_masks(self, params, prune_state, key, step):
        """None: the task's loss sees the params as they are."""
        return None

    def hard_masks(self, params, rates: jax.Array):
        """All-ones masks (R, ...) at every leaf: a dense network has rate 0 and nothing else."""
        return at_trained_rate(jax.tree.map(lambda w: jnp.ones(w.shape, w.dtype), params), rates, 0.0, "dense")

    def layer_rates(self, params, rates):
        """No per-layer targets: a dense network has none."""
        return None
