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

- ``ste``: magnitude masks recomputed from the latent weights after every step on the gradual
  schedule's sparsity ramp, with the gradient passed straight through to the pruned weights, so
  a pruned weight keeps learning and can come back (Lin et al., "Dynamic Model Pruning with
  Feedback", ICLR 2020; the straight-through estimator of Bengio et al. 2013; jaxpruner's
  ``SteMagnitudePruning``).
- ``set``: sparse from random masks at r; every ``prune.regrow_every`` steps until
  ``prune.regrow_until``·T, each layer drops the fraction ``prune.drop_fraction`` (cosine-decayed)
  of its active weights with the smallest |w| and grows as many at random, at 0 (Mocanu et al.,
  "Scalable training of artificial neural networks with adaptive sparse connectivity inspired by
  network science", Nature Communications 2018).
- ``rigl``: the same, growing where |∂L/∂w| is largest (the straight-through forward gives the
  gradient of inactive weights) (Evci et al., "Rigging the Lottery: Making All Tickets Winners",
  ICML 2020). Layers start at the rate itself (no ERK redistribution).

Each is built from parts rather than a switch on its name: a pruning ``rule`` (which weights a
rate removes), a ``schedule`` (when the rule rewrites the masks, and what it does to the params)
and an optional ``regulariser``; ``BASELINES`` maps every name to its parts. Every baseline serves
its trained rate only; its final masks are saved with the model.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.masks.bandstop import apply_masks
from jaxprune.masks.hard import column_masks, magnitude_masks, random_masks, snip_masks, top_count
from jaxprune.methods.base import at_trained_rate
from jaxprune.methods.config import PruneConfig

PyTree = Any


def _fill(masks, params):
    """A mask at every leaf: the rule's masks at prunable leaves, ones elsewhere."""
    return jax.tree.map(lambda m, w: jnp.ones(w.shape, jnp.float32) if m is None else m, masks, params,
                        is_leaf=lambda x: x is None)


def _ones(params):
    return _fill(jax.tree.map(lambda w: None, params), params)


# -- schedules: when the rule rewrites the masks ----------------------------------------------
class Schedule:
    """What every schedule has unless it says otherwise: all-ones masks before the first step, an
    update after every step (``updates``), masks applied as W ⊙ M (``straight_through`` False)."""

    updates = True
    straight_through = False

    def init(self, pruner, params, key, batch, score_loss):
        return {"masks": _ones(params)}


@dataclasses.dataclass(frozen=True)
class AtInit(Schedule):
    """Masks chosen once before training and kept: ``choose(key, params, batch, score_loss, rate)``."""

    choose: Callable
    updates = False

    def init(self, pruner, params, key, batch, score_loss):
        return {"masks": _fill(self.choose(key, params, batch, score_loss, pruner.rate), params)}


@dataclasses.dataclass(frozen=True)
class OneShot(Schedule):
    """All ones until ``step``, then the rule at the rate, fixed for the rest (fine-tuning)."""

    step: int

    def update(self, pruner, params, state, step, grads=None):
        masks = jax.lax.cond(step == self.step, lambda: _fill(pruner.rule(params, pruner.rate), params),
                             lambda: state["masks"])
        return params, {"masks": masks}


@dataclasses.dataclass(frozen=True)
class Gradual(Schedule):
    """The cubic schedule s_t = r·(1 − (1 − (t − t0)/(t1 − t0))³), applied to the masked weights every
    ``every`` steps from ``t0`` to ``t1`` (Zhu & Gupta 2017)."""

    t0: int
    t1: int
    every: int

    def update(self, pruner, params, state, step, grads=None):
        masks = state["masks"]
        t0, t1 = self.t0, self.t1
        due = (step >= t0) & (step <= t1) & (((step - t0) % self.every == 0) | (step == t1))
        frac = jnp.clip((step - t0) / (t1 - t0), 0.0, 1.0)
        sparsity = pruner.rate * (1.0 - (1.0 - frac) ** 3)
        masks = jax.lax.cond(due, lambda: _fill(pruner.rule(apply_masks(params, masks), sparsity), params),
                             lambda: masks)
        return params, {"masks": masks}


@dataclasses.dataclass(frozen=True)
class Rewinding(Schedule):
    """``rounds`` rounds of ``length`` steps; after round i < R the masked weights are pruned to
    1 − (1 − r)^(i/(R−1)) and the survivors rewound to their values at step ``rewind_at``."""

    rounds: int
    length: float
    rewind_at: int

    def init(self, pruner, params, key, batch, score_loss):
        return {"masks": _ones(params), "rewind": jax.tree.map(jnp.copy, params)}   # own buffers: the step donates

    def update(self, pruner, params, state, step, grads=None):
        masks = state["masks"]
        rewind = jax.tree.map(lambda r, p: jnp.where(step == self.rewind_at, p, r), state["rewind"], params)
        for i in range(1, self.rounds):
            at = int(round(i * self.length))
            rate_i = 1.0 - (1.0 - pruner.rate) ** (i / (self.rounds - 1))

            def prune(p=params, m=masks, r=rate_i):
                new = _fill(pruner.rule(apply_masks(p, m), r), p)
                return apply_masks(rewind, new), new
            params, masks = jax.lax.cond(step == at, prune, lambda: (params, masks))
        return params, {"masks": masks, "rewind": rewind}


@dataclasses.dataclass(frozen=True)
class StraightThrough(Schedule):
    """Masks recomputed from the latent weights after every step, at the cubic sparsity
    r·(1 − (1 − (t − t0)/(t1 − t0))³) from ``t0`` to ``t1`` and r after; the forward pass sees
    W ⊙ M, the gradient reaches every weight as if dense (straight-through), so a pruned weight
    that grows back is kept again."""

    t0: int
    t1: int
    straight_through = True

    def update(self, pruner, params, state, step, grads=None):
        frac = jnp.clip((step - self.t0) / (self.t1 - self.t0), 0.0, 1.0)
        sparsity = pruner.rate * (1.0 - (1.0 - frac) ** 3)
        return params, {"masks": _fill(pruner.rule(params, sparsity), params)}


@dataclasses.dataclass(frozen=True)
class DropAndGrow(Schedule):
    """Dynamic sparse training at a fixed count per layer: every ``every`` steps until ``stop``,
    each prunable layer drops the ⌊f·n_active⌉ active weights of smallest |w| and grows as many
    inactive ones (set to 0), f = ``drop_fraction``·(1 + cos(π t / stop))/2; ``grow`` "random"
    (SET) or "gradient" (RigL: the largest |∂L/∂w|, which the straight-through forward gives for
    inactive weights too). Starts from random masks at the rate; masked weights are held at 0."""

    every: int
    stop: int
    drop_fraction: float
    grow: str

    @property
    def straight_through(self):
        return self.grow == "gradient"

    def init(self, pruner, params, key, batch, score_loss):
        if key is None:
            raise ValueError(f"the {pruner.name} baseline draws its first masks at random: init needs a key")
        masks = _fill(random_masks(key, params, pruner.prunable, pruner.rate), params)
        return {"masks": masks, "key": jax.random.key_data(jax.random.fold_in(key, 1))}

    def update(self, pruner, params, state, step, grads=None):
        masks = state["masks"]
        key = jax.random.wrap_key_data(state["key"])
        due = (step % self.every == 0) & (step < self.stop)
        frac = self.drop_fraction * 0.5 * (1.0 + jnp.cos(jnp.pi * step / self.stop))

        def regrow(key):
            flat_p, treedef = jax.tree_util.tree_flatten(params)
            flat_m = jax.tree.leaves(masks)
            flat_g = jax.tree.leaves(grads) if grads is not None else [None] * len(flat_p)
            keys = jax.random.split(key, len(flat_p))
            new_p, new_m = [], []
            for w, m, g, k, keep in zip(flat_p, flat_m, flat_g, keys, jax.tree.leaves(pruner.prunable)):
                if not keep:
                    new_p.append(w); new_m.append(m); continue
                active = m > 0
                count = jnp.round(frac * jnp.sum(active)).astype(jnp.int32)
                dropped = top_count(jnp.where(active, -jnp.abs(w), -jnp.inf).ravel(), count).reshape(w.shape)
                kept = active & ~dropped
                score = jax.random.uniform(k, w.shape) if self.grow == "random" else jnp.abs(g)
                grown = top_count(jnp.where(kept, -jnp.inf, score).ravel(), count).reshape(w.shape)
                new_m.append((kept | grown).astype(m.dtype))
                new_p.append(jnp.where(grown, 0.0, w))
            return (jax.tree_util.tree_unflatten(treedef, new_p), jax.tree_util.tree_unflatten(treedef, new_m))

        key, sub = jax.random.split(key)
        params, masks = jax.lax.cond(due, regrow, lambda k: (params, masks), sub)
        params = apply_masks(params, masks)         # inactive weights stay at 0
        return params, {"masks": masks, "key": jax.random.key_data(key)}


# -- regularisers: λ·penalty(prunable weights) until the pruning step ------------------------------
def l1_penalty(leaves: list) -> jax.Array:
    """mean |w| over the prunable weights."""
    return sum(jnp.sum(jnp.abs(w)) for w in leaves) / sum(w.size for w in leaves)


def group_lasso_penalty(leaves: list) -> jax.Array:
    """Σ_columns ‖w_col‖₂ / √N (Wen et al. 2016): a column is an output unit of a kernel (last axis)."""
    n = sum(w.size for w in leaves)
    return sum(jnp.sum(jnp.sqrt(jnp.sum(jnp.square(w), axis=0) + 1e-12)) for w in leaves) / np.sqrt(n)


@dataclasses.dataclass(frozen=True)
class Regulariser:
    """λ·``penalty``(prunable leaves) before step ``until``, 0 from then on."""

    penalty: Callable
    weight: float
    until: int

    def __call__(self, params, prunable, step) -> jax.Array:
        leaves = [w for w, k in zip(jax.tree.leaves(params), jax.tree.leaves(prunable)) if k]
        return jnp.where(step < self.until, self.weight * self.penalty(leaves), 0.0)


# -- the pruner ---------------------------------------------------------------------------------
@flax.struct.dataclass
class Baseline:
    """A baseline at one rate: ``rule(params, rate) -> masks`` under ``schedule``, plus an optional
    ``regulariser``; ``masks`` (a pytree like the params) is set once training is done."""

    name: str = flax.struct.field(pytree_node=False)
    rule: Callable = flax.struct.field(pytree_node=False)
    schedule: Any = flax.struct.field(pytree_node=False)
    regulariser: Regulariser | None = flax.struct.field(pytree_node=False)
    prunable: PyTree = flax.struct.field(pytree_node=False)
    trained_rates: tuple[float, ...] = flax.struct.field(pytree_node=False)
    masks: PyTree = None
    serves_any_rate: bool = flax.struct.field(pytree_node=False, default=False)
    multi_rate = False
    draws_keys = False

    @property
    def rate(self) -> float:
        return self.trained_rates[0]

    def init(self, params, key=None, batch=None, score_loss=None) -> dict:
        """The masks before the first step (all ones, or chosen at initialisation), and the
        schedule's own state."""
        return self.schedule.init(self, params, key, batch, score_loss)

    @property
    def update_fn(self):
        return self.update if self.schedule.updates else None

    def update(self, params, state, step, grads=None):
        """After ``step`` optimizer steps (``grads``: that step's gradient, which RigL reads): the
        schedule prunes, rewinds or regrows when it is due."""
        if not self.schedule.updates:
            return params, state
        return self.schedule.update(self, params, state, step, grads)

    def apply(self, params, masks) -> PyTree:
        """The weights the task sees, W ⊙ M; under a straight-through schedule (ste, rigl) the
        gradient reaches every weight as if unmasked: W + stop_gradient(W ⊙ M − W)."""
        if not self.schedule.straight_through:
            return apply_masks(params, masks)
        return jax.tree.map(lambda m, w: w if m is None else w + jax.lax.stop_gradient(w * m - w), masks, params,
                            is_leaf=lambda x: x is None)

    def train_masks(self, params, prune_state, key, step) -> PyTree:
        """The current 0/1 masks, kept in the train state."""
        return prune_state["masks"]

    def penalty(self, params, masks, prune_state, key, step):
        """(the regulariser,) when there is one; () otherwise."""
        if self.regulariser is None:
            return (), {}
        return (self.regulariser(params, self.prunable, step),), {}

    def finish(self, prune_state) -> "Baseline":
        return self.replace(masks=prune_state["masks"])

    def template(self, params) -> "Baseline":
        """The baseline with all-ones masks like ``params`` (what a saved model's masks restore into)."""
        return self.replace(masks=_ones(params))

    def hard_masks(self, params, rates) -> PyTree:
        """The final masks with a leading (R,) axis at prunable leaves, None at the others (as every
        pruner's); every rate must be the trained one."""
        if self.masks is None:
            raise ValueError(f"the {self.name} baseline has no masks before training has finished")
        masks = jax.tree.map(lambda m, k: m if k else None, self.masks, self.prunable)
        return at_trained_rate(masks, rates, self.rate, self.name)

    def layer_rates(self, params, rates):
        return None


# -- the baselines, as parts ---------------------------------------------------------------------
def _choose_random(prunable, key, params, batch, score_loss, rate):
    return random_masks(key, params, prunable, rate)


def _choose_snip(prunable, key, params, batch, score_loss, rate):
    """SNIP: |∂L/∂w · w| with L = ``score_loss(params, batch, key)`` on the first 256 samples."""
    if batch is None or score_loss is None:
        raise ValueError("the snip baseline scores weights on data: init needs batch and score_loss")
    n = min(jax.tree.leaves(batch)[0].shape[0], 256)
    batch = jax.tree.map(lambda a: a[:n], batch)
    grads = jax.grad(lambda p: score_loss(p, batch, key))(params)
    return snip_masks(grads, params, prunable, rate)


def prune_step(config: PruneConfig, total_steps: int) -> int:
    """The step of the one-shot pruning: after (1 − ``finetune_fraction``) of the steps."""
    return max(1, int(round((1.0 - config.finetune_fraction) * total_steps)))


def _magnitude(prunable, scope):
    return lambda params, rate: magnitude_masks(params, prunable, rate, scope)


def _columns(prunable):
    return lambda params, rate: column_masks(params, prunable, rate)


def _parts(name: str, prunable, c: PruneConfig, total: int):
    """(rule, schedule, regulariser) of the baseline ``name``."""
    cut = prune_step(c, total)
    length = total / c.lottery_rounds            # lottery: steps per round
    t0 = int(0.1 * total)                        # gradual: from 10 % of the steps to the cut
    t1 = max(t0 + 1, cut)
    until = max(1, int(round(c.regrow_until * total)))   # set, rigl: the last regrowth before this step
    parts = {
        "magnitude": lambda: (_magnitude(prunable, c.scope), OneShot(cut), None),
        "gradual": lambda: (_magnitude(prunable, c.scope),
                            Gradual(t0, t1, max(1, (t1 - t0) // max(1, c.gradual_updates))), None),
        "random": lambda: (None, AtInit(partial(_choose_random, prunable)), None),
        "structured": lambda: (_columns(prunable), OneShot(cut), None),
        "lottery": lambda: (_magnitude(prunable, "global"), Rewinding(
            c.lottery_rounds, length, int(round(c.rewind_fraction * length))), None),
        "snip": lambda: (None, AtInit(partial(_choose_snip, prunable)), None),
        "l1": lambda: (_magnitude(prunable, "global"), OneShot(cut), Regulariser(l1_penalty, c.reg_weight, cut)),
        "group_lasso": lambda: (_columns(prunable), OneShot(cut),
                                Regulariser(group_lasso_penalty, c.reg_weight, cut)),
        "ste": lambda: (_magnitude(prunable, c.scope), StraightThrough(t0, t1), None),
        "set": lambda: (None, DropAndGrow(c.regrow_every, until, c.drop_fraction, "random"), None),
        "rigl": lambda: (None, DropAndGrow(c.regrow_every, until, c.drop_fraction, "gradient"), None),
    }
    return parts[name]()


BASELINES = ("magnitude", "gradual", "random", "structured", "lottery", "snip", "l1", "group_lasso", "ste", "set",
             "rigl")


def build(name: str, prunable, config: PruneConfig, total_steps: int) -> Baseline:
    """The baseline ``name`` at ``config.rate`` for a run of ``total_steps`` optimizer steps."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")
    rule, schedule, regulariser = _parts(name, prunable, config, int(total_steps))
    return Baseline(name=name, rule=rule, schedule=schedule, regulariser=regulariser, prunable=prunable,
                    trained_rates=(config.rate,))
