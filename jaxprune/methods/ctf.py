"""CTF (METHOD.md §4): coarse-to-fine masks trained under one global budget.

    L = CE(f(x; {Ŵ^ℓ ⊙ ψ_σ(Ŵ^ℓ)}), y) + λ ((Σ_ℓ Σ ψ_σ(Ŵ^ℓ) − c) / N)²,    c = (1 − r)·N

N = the number of prunable weights (the penalty is normalised by N [choice]); ψ = B ⊙ C ⊙ R ⊙ E
(``jaxprune.masks.ctf``) with σ annealed as in MRMP (σ·a geometric from ``sigma_start`` to
``sigma_end`` over the first ``anneal_fraction`` of the steps). After training the hard mask
ψ = 1{· > a} of every factor is the pruned network; ``jaxprune.compact`` then removes its zero
rows, columns and blocks.

Choices [METHOD.md: ours]: scales = each layer's initialisation std; shift a = ``ctf_shift``
(0.5 std); blocks = the GCN's channels at the layer after the flatten (``gcn_blocks``) and none
elsewhere (there a block would be a row, which the row factor already is); λ = ``ctf_weight``.
CTF trains one rate and serves that rate only.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.losses import accuracy, cross_entropy
from jaxprune.masks.bandstop import apply_masks, sigma_schedule
from jaxprune.masks.ctf import CoarseToFineMask, mask_sum
from jaxprune.methods.base import Stateless, at_trained_rate
from jaxprune.methods.config import PruneConfig
from jaxprune.priors import init_scales

PyTree = Any


def gcn_blocks(params: PyTree, setting: str) -> tuple[tuple[str, tuple], ...]:
    """Block partitions of the GCN's prunable leaves for ``prune.ctf_blocks``.

    "channels": the FC layer's rows (node-major flatten of J nodes × C channels) in C blocks, one
    per channel of the last graph convolution across all nodes; no block factor elsewhere.
    "none": no block factor anywhere.
    """
    if setting == "none":
        return ()
    blocks = sorted(k for k in params if str(k).startswith("block"))
    if "fc" not in params or not blocks:
        raise ValueError("prune setting ctf_blocks=channels groups the skeleton GCN's FC rows by channel, but "
                         "these params have no 'fc' layer after 'block<i>' layers; use prune.ctf_blocks=none "
                         "(no block factor) for another model")
    channels = int(np.shape(params[blocks[-1]]["conv"]["kernel"])[1])
    return (("['fc']['kernel']", ("row_mod", channels)),)


@flax.struct.dataclass
class CoarseToFine(Stateless):
    """The CTF pruner (see the module docstring); ``mask`` holds the scales, shift, factors, blocks."""

    mask: CoarseToFineMask
    trained_rates: tuple[float, ...] = flax.struct.field(pytree_node=False)
    config: PruneConfig = flax.struct.field(pytree_node=False)
    anneal_steps: int = flax.struct.field(pytree_node=False)
    serves_any_rate: bool = flax.struct.field(pytree_node=False, default=False)

    @property
    def rate(self) -> float:
        return self.trained_rates[0]

    def sigma(self, step) -> jax.Array:
        c = self.config
        return sigma_schedule(step, self.anneal_steps, c.ctf_shift, c.sigma_start, c.sigma_end)

    def loss(self, forward, label_smoothing: float = 0.0):
        """``loss(params, batch, key, step) -> (loss, metrics)``: CE of the soft-masked network +
        λ·(soft kept fraction − (1 − r))²."""

        def loss(params, batch, key, step, prune_state=None):
            masks = self.mask.soft_masks(params, self.sigma(step))
            n = sum(m.size for m in jax.tree.leaves(masks))
            kept = mask_sum(masks) / n
            logits = forward(apply_masks(params, masks), batch["chunks"], key, True)
            ce = cross_entropy(logits, batch["labels"], label_smoothing)
            budget = jnp.square(kept - (1.0 - self.rate))
            total = ce + self.config.ctf_weight * budget
            return total, {"loss": total, "ce": ce, "soft_kept": kept, "accuracy": accuracy(logits, batch["labels"])}

        return loss

    def hard_masks(self, params, rates) -> PyTree:
        """The hard CTF masks with a leading (R,) axis; every rate must be the trained one."""
        return at_trained_rate(self.mask.hard_masks(params), rates, self.rate, "ctf")

    def layer_rates(self, params, rates):
        """None: one global budget, no per-layer targets."""
        return None

    def artefacts(self) -> dict[str, np.ndarray]:
        """Each prunable leaf's scale (its initialisation std), which the hard mask needs."""
        flat, _ = jax.tree_util.tree_flatten_with_path(self.mask.scales, is_leaf=lambda x: x is None)
        return {"ctf_scale" + jax.tree_util.keystr(p): np.asarray(s) for p, s in flat if s is not None}


def _mask(scales, params, config: PruneConfig) -> CoarseToFineMask:
    return CoarseToFineMask(scales=scales, shift=config.ctf_shift, factors=config.ctf_factors,
                            blocks=gcn_blocks(params, config.ctf_blocks))


def build(params: PyTree, prunable: PyTree, config: PruneConfig, anneal_steps: int) -> CoarseToFine:
    """The CTF pruner for freshly initialised ``params`` (scales = their std per prunable leaf)."""
    return CoarseToFine(mask=_mask(init_scales(params, prunable), params, config), trained_rates=(config.rate,),
                        config=config, anneal_steps=int(anneal_steps))


def restore(params: PyTree, prunable: PyTree, config: PruneConfig, artefacts: dict) -> CoarseToFine:
    """The CTF pruner of a saved run, its scales read from ``artefacts``."""

    def scale(path, keep):
        if not keep:
            return None
        name = "ctf_scale" + jax.tree_util.keystr(path)
        if name not in artefacts:
            raise ValueError(f"saved model lacks {name!r}: not a CTF model, or from another version")
        return jnp.asarray(artefacts[name])

    scales = jax.tree_util.tree_map_with_path(scale, prunable)
    return CoarseToFine(mask=_mask(scales, params, config), trained_rates=(config.rate,), config=config,
                        anneal_steps=1)
