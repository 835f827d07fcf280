"""The skeleton task's loss: cross-entropy (label smoothing, mixup) on a {'chunks', 'labels'} batch.

This is the ``loss_fn(params, batch, key)`` that ``jaxprune.methods.wrap.pruned_loss`` wraps for
every method when ``jaxprune train`` runs; a user's own model brings its own instead.
``forward(params, chunks, key, train) -> logits (B, classes)`` is ``jaxprune.task.forward.make_forward``'s
(augmentation inside when ``train``).
"""

from __future__ import annotations

import jax

from jaxprune.losses import accuracy, cross_entropy
from jaxprune.methods.rate_curriculum import curriculum
from jaxprune.methods.wrap import pruned_loss


def skeleton_loss(forward, label_smoothing: float = 0.0, mixup: float = 0.0, with_logits: bool = False):
    """``loss(params, batch, key) -> (ce, {"ce", "accuracy"})`` for batch {'chunks' (B, ...),
    'labels' (B,)}, the mean cross-entropy in nats of the training-mode forward; with ``with_logits``
    the aux also holds the logits (B, classes), for in-place distillation.

    With ``mixup`` α > 0 (Zhang et al. 2018), each step draws λ ~ Beta(α, α) and a permutation π
    of the batch, trains on λ·x + (1 − λ)·x_π (chunk positions, before augmentation) against
    λ·CE(y) + (1 − λ)·CE(y_π); accuracy is against y.
    """

    def loss(params, batch, key):
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
        aux = {"ce": ce, "accuracy": accuracy(logits, labels)}
        return ce, {**aux, "logits": logits} if with_logits else aux

    return loss


def score_loss(forward):
    """``loss(params, batch, key)``: plain cross-entropy of the evaluation-mode forward (no
    augmentation): what a pruner that scores weights at initialisation (SNIP) differentiates."""

    def loss(params, batch, key):
        return cross_entropy(forward(params, batch["chunks"], key, False), batch["labels"])

    return loss


def task_loss(pruner, forward, label_smoothing: float = 0.0, mixup: float = 0.0, split_batch: bool = False,
              distill: float = 0.0, temperature: float = 1.0, rate_weights=()):
    """The loss ``jaxprune train`` gives ``make_epoch``: ``skeleton_loss`` wrapped for ``pruner``
    (``jaxprune.methods.wrap.pruned_loss``, with in-place distillation when ``distill`` > 0 and
    the rates' losses weighted by ``rate_weights`` when given),
    ``loss(params, batch, key, step, prune_state)``."""
    return pruned_loss(pruner, skeleton_loss(forward, label_smoothing, mixup, with_logits=bool(distill)), has_aux=True,
                       split_batch=split_batch, distill=distill, temperature=temperature,
                       rate_weights=rate_weights)


def run_loss(pruner, forward, config):
    """``task_loss`` with every setting of a ``RunConfig`` that shapes the loss (label smoothing,
    mixup, the split batch, in-place distillation, weights per rate and their curriculum): the loss
    of ``jaxprune train``."""
    tc, prune = config.train, config.prune
    weights = prune.loss_weights()
    if prune.rate_curriculum:
        weights = curriculum(weights or (1.0,) * len(prune.rates), getattr(pruner, "total_steps", 0),
                             prune.rate_curriculum)
    return task_loss(pruner, forward, tc.label_smoothing, tc.mixup, prune.split_batch, prune.distill_weight,
                     prune.distill_temperature, weights)
