"""CTF (METHOD.md §4): coarse-to-fine masks trained under one global budget.

    L = CE(f(x; {Ŵ^ℓ ⊙ ψ_σ(Ŵ^ℓ)}), y) + λ ((Σ_ℓ Σ ψ_σ(Ŵ^ℓ) − c) / N)²,    c = (1 − r)·N

N = the number of prunable weights (the penalty is normalised by N [choice]); ψ = B ⊙ C ⊙ R ⊙ E
(``jaxprune.masks.ctf``) with σ annealed as in MRMP (σ·a geometric from ``sigma_start`` to
``sigma_end`` over the first ``anneal_fraction`` of the steps). After training the hard mask
ψ = 1{· > a} of every factor is the pruned network; ``jaxprune.models.compact`` then removes its zero
rows, columns and blocks.

Choices [METHOD.md: ours]: scales = each layer's initialisation std; shift a = ``ctf_shift``
(0.5 std); blocks = what the model declares (``make_pruner(..., blocks=...)``; the GCN: its FC
rows grouped by the last graph convolution's channels, ``jaxprune.models.gcn.ctf_blocks``) with
``prune.ctf_blocks=channels``, none with ``none``; CTF itself reads no parameter names; λ = ``ctf_weight``.
``ctf_floor`` [ours; default 0.005, ``prune.ctf_floor=0`` for the paper's objective alone]: a least
soft kept fraction per layer, so that the global budget cannot remove a whole layer (at 0.99 on the
wide network it removed the FC: chance accuracy). While every layer keeps at least f, the term
and its gradient are 0 and a run equals the paper's.
CTF trains one rate and serves that rate only.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from jaxprune.masks.bandstop import sigma_schedule
from jaxprune.masks.ctf import CoarseToFineMask, mask_sum
from jaxprune.methods.base import Stateless, at_trained_rate
from jaxprune.methods.config import PruneConfig
from jaxprune.priors import init_scales

PyTree = Any


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

    def train_masks(self, params, prune_state, key, step) -> PyTree:
        """The soft CTF masks ψ_σ(step)(Ŵ) of one training step (no leading rate axis)."""
        return self.mask.soft_masks(params, self.sigma(step))

    def penalty(self, params, masks, prune_state, key, step):
        """(λ·(soft kept fraction − (1 − r))²,) over the N masked weights of ``masks``, and with
        ``ctf_floor`` f > 0 the floor term λ·Σ_ℓ (max(0, f − kept_ℓ) / f)² over the layers."""
        n = sum(m.size for m in jax.tree.leaves(masks))
        kept = mask_sum(masks) / n
        terms = (self.config.ctf_weight * jnp.square(kept - (1.0 - self.rate)),)
        floor = self.config.ctf_floor
        if floor > 0:
            short = sum(jnp.square(jax.nn.relu(floor - jnp.mean(m)) / floor) for m in jax.tree.leaves(masks))
            terms += (self.config.ctf_weight * short,)
        return terms, {"soft_kept": kept}

    def hard_masks(self, params, rates) -> PyTree:
        """The hard CTF masks with a leading (R,) axis; every rate must be the trained one."""
        return at_trained_rate(self.mask.hard_masks(params), rates, self.rate, "ctf")

    def layer_rates(self, params, rates):
        """None: one global budget, no per-layer targets."""
        return None


def chosen_blocks(config: PruneConfig, blocks) -> tuple[tuple[str, tuple], ...]:
    """The block partitions in force: the model's ``blocks`` under ``ctf_blocks=channels`` (a
    ValueError naming the setting when the model declares none), nothing under ``none``."""
    if config.ctf_blocks == "none":
        return ()
    if not blocks:
        raise ValueError("prune setting ctf_blocks=channels groups rows by the model's channels, but the model "
                         "declares no blocks (make_pruner(..., blocks=...); the skeleton GCN's are "
                         "jaxprune.models.gcn.ctf_blocks(params)); use prune.ctf_blocks=none (no block factor) "
                         "for another model")
    return tuple(blocks)


def build(params: PyTree, prunable: PyTree, config: PruneConfig, anneal_steps: int, blocks=()) -> CoarseToFine:
    """The CTF pruner for freshly initialised ``params`` (scales = their std per prunable leaf);
    ``blocks``: the model's block partitions (``jaxprune.masks.ctf``'s spec), used under
    ``ctf_blocks=channels``."""
    mask = CoarseToFineMask(scales=init_scales(params, prunable), shift=config.ctf_shift,
                            factors=config.ctf_factors, blocks=chosen_blocks(config, blocks))
    return CoarseToFine(mask=mask, trained_rates=(config.rate,), config=config, anneal_steps=int(anneal_steps))
