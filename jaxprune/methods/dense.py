"""Dense training: cross-entropy of the unmasked GCN (the reference every pruning method meets)."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.losses import accuracy, cross_entropy
from jaxprune.methods.base import Stateless


def make_loss(forward, label_smoothing: float = 0.0, mixup: float = 0.0):
    """``loss(params, batch, key, step) -> (loss, metrics)`` for batch {'chunks', 'labels'}.

    ``forward(params, chunks, key, train)`` returns logits (B, classes). With ``mixup`` α > 0
    (Zhang et al. 2018), each step draws λ ~ Beta(α, α) and a permutation π of the batch, trains on
    λ·x + (1 − λ)·x_π (chunk positions, before augmentation) against λ·CE(y) + (1 − λ)·CE(y_π).
    """

    def loss(params, batch, key, step, prune_state=None):
        del step, prune_state
        chunks, labels = batch["chunks"], batch["labels"]
        if not mixup:
            logits = forward(params, chunks, key, True)
            ce = cross_entropy(logits, labels, label_smoothing)
        else:
            key, mix_key, perm_key = jax.random.split(key, 3)
            lam = jax.random.beta(mix_key, mixup, mixup)
            perm = jax.random.permutation(perm_key, labels.shape[0])
            logits = forward(params, lam * chunks + (1 - lam) * chunks[perm], key, True)
            ce = lam * cross_entropy(logits, labels, label_smoothing) \
                + (1 - lam) * cross_entropy(logits, labels[perm], label_smoothing)
        return ce, {"loss": ce, "accuracy": accuracy(logits, labels)}

    return loss


@flax.struct.dataclass
class Dense(Stateless):
    """The dense method as a pruner: no mask; it serves rate 0 only."""

    trained_rates: tuple[float, ...] = flax.struct.field(pytree_node=False, default=(0.0,))
    serves_any_rate: bool = flax.struct.field(pytree_node=False, default=False)

    def loss(self, forward, label_smoothing: float = 0.0, mixup: float = 0.0):
        return make_loss(forward, label_smoothing, mixup)

    def hard_masks(self, params, rates: jax.Array):
        """All-ones masks (R, ...) at every leaf: a dense network has rate 0 and nothing else."""
        rates = np.asarray(rates)
        if np.any(rates != 0):
            raise ValueError(f"a dense run serves rate 0 only, asked for {rates.tolist()}")
        return jax.tree.map(lambda w: jnp.ones((len(rates),) + w.shape, w.dtype), params)

    def layer_rates(self, params, rates):
        """No per-layer targets: a dense network has none."""
        return None

    def artefacts(self) -> dict[str, np.ndarray]:
        return {}
