"""A user's loss, pruned: any ``loss_fn(params, batch, key)`` becomes the loss a pruner trains.

    loss = pruned_loss(pruner, loss_fn, has_aux=False, split_batch=False)
    loss(params, batch, key, step, prune_state) -> (total, metrics)

The pruner knows nothing of the task. It gives the masks of one training step
(``pruner.train_masks``: params-shaped, None at dense leaves; with a leading (K,) axis for a
multi-rate pruner, or None for no mask at all) and the penalty terms it adds (``pruner.penalty``:
KL alignment, budget, L1, ...). The wrapper evaluates ``loss_fn`` on the masked params (for K
rates, one ``jax.vmap`` over the masks, each rate on the whole batch or, with ``split_batch``, on
its own 1/K of any batch pytree), averages it and its aux over the rates, and adds the penalty:

    total = mean_k loss_fn(params ⊙ M_k, batch_k, key_k) + Σ penalty terms

``metrics`` = {"loss": total, **mean aux (a dict, or {"aux": ...}), **the penalty's metrics}.
Everything is a pure function of its arguments: jit, grad and vmap it as any JAX function.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxprune.masks.bandstop import apply_masks

PyTree = Any


def split_among(x: jax.Array, k: int) -> jax.Array:
    """A batch (B, ...) as k disjoint slices (k, B // k, ...); the last B mod k samples are left
    out of this step (the batch is a fresh random draw every step)."""
    per = x.shape[0] // k
    if per < 1:
        raise ValueError(f"prune setting split_batch: a batch of {x.shape[0]} samples cannot give each of "
                         f"the {k} rates a sample; use a batch of at least {k} or rates_per_step")
    return x[: per * k].reshape(k, per, *x.shape[1:])


def _as_dict(aux) -> dict:
    return aux if isinstance(aux, dict) else {"aux": aux}


def pruned_loss(pruner, loss_fn: Callable, *, has_aux: bool = False, split_batch: bool = False) -> Callable:
    """``loss(params, batch, key, step, prune_state=None) -> (total, metrics)`` (module docstring).

    ``loss_fn(params, batch, key)`` returns a scalar loss, or (loss, aux) with ``has_aux``.
    ``batch`` is any pytree whose leaves share a leading batch axis (needed only with
    ``split_batch``); ``step`` is the number of optimizer steps taken (int scalar), which drives
    the pruner's schedules; ``prune_state`` is what ``pruner.init`` made (None for most pruners).
    """

    apply = getattr(pruner, "apply", apply_masks)   # W ⊙ M, or the pruner's own (e.g. straight-through)

    def task(params, batch, key):
        out = loss_fn(params, batch, key)
        value, aux = out if has_aux else (out, {})
        return value, _as_dict(aux)

    def loss(params, batch, key, step, prune_state=None):
        mask_key = penalty_key = None
        if pruner.draws_keys:          # its own draws (e.g. MRMP's rates); the task keeps ``key``
            key, mask_key, penalty_key = jax.random.split(key, 3)
        with jax.named_scope("masks"):       # scopes name the parts in profiles (benchmarks.op_profile)
            masks = pruner.train_masks(params, prune_state, mask_key, step)
        if masks is None:
            value, aux = task(params, batch, key)
        elif not pruner.multi_rate:
            with jax.named_scope("masks"):
                masked = apply(params, masks)
            value, aux = task(masked, batch, key)
        else:
            def at_rate(m, b, k):
                with jax.named_scope("masks"):
                    masked = apply(params, m)
                return task(masked, b, k)
            if split_batch:            # rate k: the k-th slice of every leaf, its own key
                k = jax.tree.leaves(masks)[0].shape[0]
                parts = jax.tree.map(lambda x: split_among(x, k), batch)
                value, aux = jax.vmap(at_rate)(masks, parts, jax.random.split(key, k))
            else:
                value, aux = jax.vmap(at_rate, in_axes=(0, None, None))(masks, batch, key)
            value, aux = value.mean(), jax.tree.map(jnp.mean, aux)
        with jax.named_scope("penalty"):
            terms, metrics = pruner.penalty(params, masks, prune_state, penalty_key, step)
        total = functools.reduce(lambda a, b: a + b, terms, value)   # in order: as the methods define it
        return total, {"loss": total, **aux, **metrics}

    return loss
