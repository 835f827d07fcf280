"""Optimizers and learning-rate rules, built from a TrainConfig's settings."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxprune.weight_average import params_ema

LR_RULES = ("constant", "cosine", "loss_trend")


class LossTrendState(NamedTuple):
    scale: jnp.ndarray      # current multiplier of the base learning rate
    previous: jnp.ndarray   # loss seen at the previous update (inf before the first)


def scale_by_loss_trend(factor: float = 0.99, min_scale: float = 1e-3,
                        max_scale: float = 10.0) -> optax.GradientTransformationExtraArgs:
    """The papers' rule: the learning rate is divided by ``factor`` after a step whose loss fell,
    and multiplied by ``factor`` after one whose loss rose. Needs ``update(..., value=loss)``.

    The multiplier is clipped to [min_scale, max_scale] so a long run cannot blow it up.
    """

    def init(params):
        del params
        return LossTrendState(jnp.ones((), jnp.float32), jnp.full((), jnp.inf, jnp.float32))

    def update(updates, state, params=None, *, value, **extra):
        del params, extra
        fell = value < state.previous
        scale = jnp.clip(jnp.where(fell, state.scale / factor, state.scale * factor), min_scale, max_scale)
        updates = jax.tree.map(lambda u: scale * u, updates)
        return updates, LossTrendState(scale, jnp.asarray(value, jnp.float32))

    return optax.GradientTransformationExtraArgs(init, update)


def make_optimizer(learning_rate: float, lr_rule: str, total_steps: int,
                   weight_decay: float = 0.0, ema: float = 0.0) -> optax.GradientTransformationExtraArgs:
    """Adam (AdamW when weight_decay > 0) under ``lr_rule`` in LR_RULES, with ``ema`` > 0 followed by
    ``jaxprune.weight_average.params_ema(ema)`` (read back with ``averaged_params``).

    "cosine" decays the rate from ``learning_rate`` to 1% of it over ``total_steps``; "loss_trend"
    is ``scale_by_loss_trend`` on top of a constant rate. The returned transformation accepts
    ``value=loss`` in ``update`` whatever the rule.
    """
    if lr_rule not in LR_RULES:
        raise ValueError(f"training setting lr_rule must be one of {LR_RULES}, got {lr_rule!r}")
    if learning_rate <= 0:
        raise ValueError(f"training setting learning_rate must be > 0, got {learning_rate}")
    lr = optax.cosine_decay_schedule(learning_rate, max(total_steps, 1), alpha=0.01) \
        if lr_rule == "cosine" else learning_rate
    base = optax.adamw(lr, weight_decay=weight_decay) if weight_decay else optax.adam(lr)
    parts = [base]
    if lr_rule == "loss_trend":
        parts.append(scale_by_loss_trend())
    if ema:
        parts.append(params_ema(ema))
    return optax.chain(*parts)
