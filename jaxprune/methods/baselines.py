"""The baselines the papers are judged against (METHOD.md §6), as pruners with a mask schedule.

Each baseline trains the same GCN for the same ``train.epochs`` (every phase, fine-tuning and
rewinding round included) on masked weights W = Ŵ ⊙ M, where the 0/1 masks M live in the train
state and are rewritten at scheduled steps (``update_fn``). T = total optimizer steps; the rules
are in ``jaxprune.masks.hard``.

- ``magnitude``: one-shot magnitude pruning after dense training, then fine-tuning with the mask
  fixed (Han et al., "Learning both Weights and Connections for Efficient Neural Networks",
  NeurIPS 2015). Dense for (1 − f)·T steps, f = ``prune.finetune_fraction``; ``prune.scope`` =
  layer (every layer at r) or global (one threshold over all layers).
- ``gradual``: gradual magnitude pruning with the cubic schedule
  s_t = r·(1 − (1 − (t − t0)/(t1 − t0))³), the mask updated ``prune.gradual_updates`` times
  from t0 = 0.1·T to t1 = (1 − f)·T (Zhu & Gupta, "To prune, or not to prune", 2017).
- ``random``: a random mask per layer at r, fixed from initialisation (the sanity baseline of
  Liu et al., "Rethinking the Value of Network Pruning", ICLR 2019).
- ``structured``: whole columns (output units / channels) with the smallest RMS, ranked over
  all layers, pruned one-shot after dense training, then fine-tuning (Li et al., "Pruning
  Filters for Efficient ConvNets", ICLR 2017, with L2 instead of L1 norms).
- ``lottery``: iterative magnitude pruning with rewinding (Frankle & Carbin, ICLR 2019; Frankle
  et al., "Stabilizing the Lottery Ticket Hypothesis", 2019): ``prune.lottery_rounds`` rounds of
  T/R steps; after round i < R the weights are pruned globally to 1 − (1 − r)^(i/(R−1)) and the
  survivors rewound to their values at step ``prune.rewind_fraction``·T/R.
- ``snip``: single-shot pruning at initialisation by connection sensitivity |∂L/∂w · w| on one
  training batch, one global ranking (Lee et al., "SNIP", ICLR 2019).
- ``l1``: training with λ·mean|w| (``prune.reg_weight``) for (1 − f)·T steps, then global
  magnitude pruning and fine-tuning without the penalty.
- ``group_lasso``: the same with λ·Σ_columns ‖w_col‖₂ / √N (Wen et al., "Learning Structured
  Sparsity in Deep Neural Networks", NeurIPS 2016), then structured column pruning.

Every baseline serves its trained rate only; its final masks are saved with the model.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.losses import accuracy, cross_entropy
from jaxprune.masks.bandstop import apply_masks
from jaxprune.masks.hard import column_masks, magnitude_masks, random_masks, snip_masks
from jaxprune.methods.base import at_trained_rate
from jaxprune.methods.config import PruneConfig

PyTree = Any
BASELINES = ("magnitude", "gradual", "random", "structured", "lottery", "snip", "l1", "group_lasso")


def _fill(masks, params):
    """A mask at every leaf: the rule's masks at prunable leaves, ones elsewhere."""
    return jax.tree.map(lambda m, w: jnp.ones(w.shape, jnp.float32) if m is None else m, masks, params,
                        is_leaf=lambda x: x is None)


@flax.struct.dataclass
class Baseline:
    """One baseline (``kind`` in BASELINES) at one rate; ``masks`` is set once training is done."""

    kind: str = flax.struct.field(pytree_node=False)
    prunable: PyTree = flax.struct.field(pytree_node=False)
    trained_rates: tuple[float, ...] = flax.struct.field(pytree_node=False)
    config: PruneConfig = flax.struct.field(pytree_node=False)
    total_steps: int = flax.struct.field(pytree_node=False)
    masks: PyTree = None
    serves_any_rate: bool = flax.struct.field(pytree_node=False, default=False)

    @property
    def rate(self) -> float:
        return self.trained_rates[0]

    # -- the schedule ------------------------------------------------------------------------
    @property
    def prune_step(self) -> int:
        """The step of the one-shot pruning (magnitude, structured, l1, group_lasso)."""
        return max(1, int(round((1.0 - self.config.finetune_fraction) * self.total_steps)))

    def _rule(self, params, rate):
        """The kind's pruning rule at ``rate`` (may be traced), masks at prunable leaves."""
        if self.kind in ("structured", "group_lasso"):
            return column_masks(params, self.prunable, rate)
        scope = "global" if self.kind in ("l1", "lottery") else self.config.scope
        return magnitude_masks(params, self.prunable, rate, scope)

    def init_prune_state(self, params, key, data, forward) -> dict:
        """The masks before the first step (all ones, or random / SNIP at initialisation)."""
        if self.kind == "random":
            masks = random_masks(key, params, self.prunable, self.rate)
        elif self.kind == "snip":
            n = min(len(data["labels"]), 256)
            batch = jax.tree.map(lambda a: a[:n], data)

            def ce(p):
                return cross_entropy(forward(p, batch["chunks"], key, False), batch["labels"])
            masks = snip_masks(jax.grad(ce)(params), params, self.prunable, self.rate)
        else:
            masks = jax.tree.map(lambda w: None, params)         # nothing pruned yet: all ones
        state = {"masks": _fill(masks, params)}
        if self.kind == "lottery":
            state["rewind"] = jax.tree.map(jnp.copy, params)   # its own buffers: the step donates both
        return state

    @property
    def update_fn(self):
        if self.kind in ("random", "snip"):
            return None
        return self._update

    def _update(self, params, state, step):
        """After ``step`` optimizer steps: prune (and rewind) when the schedule says so."""
        masks = state["masks"]
        if self.kind == "gradual":
            t0 = int(0.1 * self.total_steps)
            t1 = max(t0 + 1, self.prune_step)
            every = max(1, (t1 - t0) // max(1, self.config.gradual_updates))
            due = (step >= t0) & (step <= t1) & (((step - t0) % every == 0) | (step == t1))
            frac = jnp.clip((step - t0) / (t1 - t0), 0.0, 1.0)
            sparsity = self.rate * (1.0 - (1.0 - frac) ** 3)
            masks = jax.lax.cond(due, lambda: _fill(self._rule(apply_masks(params, masks), sparsity), params),
                                 lambda: masks)
            return params, {"masks": masks}
        if self.kind == "lottery":
            rounds = self.config.lottery_rounds
            length = self.total_steps / rounds
            rewind_at = int(round(self.config.rewind_fraction * length))
            rewind = jax.tree.map(lambda r, p: jnp.where(step == rewind_at, p, r), state["rewind"], params)
            for i in range(1, rounds):
                at = int(round(i * length))
                rate_i = 1.0 - (1.0 - self.rate) ** (i / (rounds - 1))

                def prune(p=params, m=masks, r=rate_i):
                    new = _fill(self._rule(apply_masks(p, m), r), p)
                    return apply_masks(rewind, new), new
                params, masks = jax.lax.cond(step == at, prune, lambda: (params, masks))
            return params, {"masks": masks, "rewind": rewind}
        masks = jax.lax.cond(step == self.prune_step, lambda: _fill(self._rule(params, self.rate), params),
                             lambda: masks)
        return params, {"masks": masks}

    # -- training and serving -----------------------------------------------------------------
    def regulariser(self, params, step) -> jax.Array:
        """λ·penalty before the pruning step (l1, group_lasso), 0 otherwise."""
        if self.kind not in ("l1", "group_lasso"):
            return jnp.zeros(())
        leaves = [w for w, k in zip(jax.tree.leaves(params), jax.tree.leaves(self.prunable)) if k]
        n = sum(w.size for w in leaves)
        if self.kind == "l1":
            penalty = sum(jnp.sum(jnp.abs(w)) for w in leaves) / n
        else:
            penalty = sum(jnp.sum(jnp.sqrt(jnp.sum(jnp.square(w), axis=0) + 1e-12)) for w in leaves) / np.sqrt(n)
        return jnp.where(step < self.prune_step, self.config.reg_weight * penalty, 0.0)

    def loss(self, forward, label_smoothing: float = 0.0):
        """CE of the masked network (+ the regulariser of l1 / group_lasso)."""

        def loss(params, batch, key, step, prune_state):
            logits = forward(apply_masks(params, prune_state["masks"]), batch["chunks"], key, True)
            ce = cross_entropy(logits, batch["labels"], label_smoothing)
            total = ce + self.regulariser(params, step)
            return total, {"loss": total, "ce": ce, "accuracy": accuracy(logits, batch["labels"])}

        return loss

    def finish(self, prune_state) -> "Baseline":
        return self.replace(masks=prune_state["masks"])

    def hard_masks(self, params, rates) -> PyTree:
        """The final masks with a leading (R,) axis; every rate must be the trained one."""
        if self.masks is None:
            raise ValueError(f"the {self.kind} baseline has no masks before training has finished")
        return at_trained_rate(self.masks, rates, self.rate, self.kind)

    def layer_rates(self, params, rates):
        return None

    def artefacts(self) -> dict[str, np.ndarray]:
        flat, _ = jax.tree_util.tree_flatten_with_path(self.masks)
        return {"mask" + jax.tree_util.keystr(p): np.asarray(m) for p, m in flat}


def build(kind: str, prunable, config: PruneConfig, total_steps: int) -> Baseline:
    """The ``kind`` baseline at ``config.rate`` for a run of ``total_steps`` optimizer steps."""
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; choose one of {BASELINES}")
    return Baseline(kind=kind, prunable=prunable, trained_rates=(config.rate,), config=config,
                    total_steps=int(total_steps))


def restore(kind: str, params, prunable, config: PruneConfig, artefacts: dict) -> Baseline:
    """The baseline of a saved run, its final masks read from ``artefacts``."""

    def mask(path, w):
        name = "mask" + jax.tree_util.keystr(path)
        if name not in artefacts:
            raise ValueError(f"saved model lacks {name!r}: not a {kind} model, or from another version")
        return jnp.asarray(artefacts[name])
    masks = jax.tree_util.tree_map_with_path(mask, params)
    return build(kind, prunable, config, 1).replace(masks=masks)
