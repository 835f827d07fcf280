"""A user's loss, pruned: any ``loss_fn(params, batch, key)`` becomes the loss a pruner trains.

    loss = pruned_loss(pruner, loss_fn, has_aux=False, split_batch=False)
    loss(params, batch, key, step, prune_state) -> (total, metrics)

The pruner knows nothing of the task. It gives the masks of one training step
(``pruner.train_masks``: params-shaped, None at dense leaves; with a leading (K,) axis for a
multi-rate pruner, or None for no mask at all) and the penalty terms it adds (``pruner.penalty``:
KL alignment, budget, L1, ...). The wrapper evaluates ``loss_fn`` on the masked params (for K
rates, one ``jax.vmap`` over the masks, each rate on the whole batch or, with ``split_batch``, on
its own 1/K of any batch pytree), averages it and its aux over the rates (the loss weighted by
``rate_weights`` w_k when given, constant or a function of the step), and adds the penalty:

    total = Σ_k w_k loss_fn(params ⊙ M_k, batch_k, key_k) / Σ_k w_k + Σ penalty terms

``metrics`` = {"loss": total, **mean aux (a dict, or {"aux": ...}), **the penalty's metrics}.
Everything is a pure function of its arguments: jit, grad and vmap it as any JAX function.

In-place distillation (``distill`` α > 0, multi-rate pruners; after the sandwich rule's teacher
in universally slimmable networks, Yu & Huang 2019): the rate whose masks keep the most weights
this step is the teacher; its predictions, with the gradient stopped, are soft targets for all K
rates inside the same vmap, so a sparse network learns from a denser one sharing its weights:

    total = mean_k [loss_k + α·T²·KL(softmax(z_t / T) ‖ softmax(z_k / T))] + Σ penalty terms

(z_k the logits of rate k, t the teacher; its own term is 0). ``loss_fn`` then gives its logits
(B, classes) as ``aux["logits"]``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxprune.masks.bandstop import apply_masks
from jaxprune.shared_axis import shared

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


def distillation(logits: jax.Array, teacher: jax.Array, temperature: float = 1.0) -> jax.Array:
    """(K,): T²·mean_B KL(softmax(z_t / T) ‖ softmax(z_k / T)) in nats for logits (K, B, C) and
    teacher index ``teacher`` (int scalar), the teacher's logits held constant (stop-gradient)."""
    target = jax.nn.softmax(jax.lax.stop_gradient(logits[teacher]) / temperature, axis=-1)     # (B, C)
    log_target = jax.nn.log_softmax(jax.lax.stop_gradient(logits[teacher]) / temperature, axis=-1)
    log_student = jax.nn.log_softmax(logits / temperature, axis=-1)                            # (K, B, C)
    return temperature ** 2 * jnp.sum(target * (log_target - log_student), axis=-1).mean(axis=-1)


def densest(masks: PyTree) -> jax.Array:
    """The index (int scalar) of the rate whose masks (leading (K,) axis) keep the most weight."""
    leaves = jax.tree.leaves(masks)
    kept = sum(jnp.sum(m.reshape(m.shape[0], -1), axis=1) for m in leaves)
    return jnp.argmax(jax.lax.stop_gradient(kept))


def pruned_loss(pruner, loss_fn: Callable, *, has_aux: bool = False, split_batch: bool = False,
                distill: float = 0.0, temperature: float = 1.0, rate_weights=()) -> Callable:
    """``loss(params, batch, key, step, prune_state=None) -> (total, metrics)`` (module docstring).

    ``loss_fn(params, batch, key)`` returns a scalar loss, or (loss, aux) with ``has_aux``.
    ``batch`` is any pytree whose leaves share a leading batch axis (needed only with
    ``split_batch``); ``step`` is the number of optimizer steps taken (int scalar), which drives
    the pruner's schedules; ``prune_state`` is what ``pruner.init`` made (None for most pruners).
    ``distill``: α of in-place distillation, 0 for none (module docstring), needs a multi-rate
    pruner, ``has_aux`` with ``aux["logits"]``, and no ``split_batch`` (the rates must see one
    batch); ``temperature``: its T. ``rate_weights``: one positive weight per rate of a
    multi-rate pruner, in the order of its masks' leading axis (empty: the plain mean), or a
    function ``step -> (K,)`` of non-negative weights, the first positive (e.g. a curriculum,
    ``jaxprune.methods.rate_curriculum``).
    """
    weighted = callable(rate_weights) or len(rate_weights) > 0
    if distill:
        if not getattr(pruner, "multi_rate", False):
            raise ValueError("prune setting distill_weight: in-place distillation needs a multi-rate pruner (mrmp)")
        if split_batch:
            raise ValueError("prune settings distill_weight and split_batch: distillation needs every rate "
                             "on the same batch; turn one of them off")
        if not has_aux:
            raise ValueError("pruned_loss(distill=...): loss_fn must return (loss, aux) with aux['logits']")
    if not temperature > 0:
        raise ValueError(f"prune setting distill_temperature must be > 0, got {temperature}")
    if weighted and not getattr(pruner, "multi_rate", False):
        raise ValueError("prune setting rate_weights: weights per rate need a multi-rate pruner (mrmp)")

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
            def at_rate(p, m, b, k):
                with jax.named_scope("masks"):
                    masked = apply(p, m)
                return task(masked, b, k)
            k = jax.tree.leaves(masks)[0].shape[0]
            copies = shared(params, k)  # the K rates' weights: one tree, summed back by K adds
            if split_batch:            # rate k: the k-th slice of every leaf, its own key
                parts = jax.tree.map(lambda x: split_among(x, k), batch)
                value, aux = jax.vmap(at_rate)(copies, masks, parts, jax.random.split(key, k))
            else:
                value, aux = jax.vmap(at_rate, in_axes=(0, 0, None, None))(copies, masks, batch, key)
            if distill:                # the logits (K, B, C) are the distillation's, not a metric
                if "logits" not in aux:
                    raise ValueError("pruned_loss(distill=...): loss_fn's aux has no 'logits'")
                aux = dict(aux)
                kd = distillation(aux.pop("logits"), densest(masks), temperature)
                value, aux = value + distill * kd, {**aux, "distill": kd}
            if weighted:
                w = jnp.asarray(rate_weights(step) if callable(rate_weights) else rate_weights, value.dtype)
                if w.shape != (k,):
                    raise ValueError(f"prune setting rate_weights: {w.size} weights for the {k} "
                                     f"rates trained each step")
                value = jnp.sum(w * value) / jnp.sum(w)
            value, aux = value.mean(), jax.tree.map(jnp.mean, aux)
        with jax.named_scope("penalty"):
            terms, metrics = pruner.penalty(params, masks, prune_state, penalty_key, step)
        total = functools.reduce(lambda a, b: a + b, terms, value)   # in order: as the methods define it
        return total, {"loss": total, **aux, **metrics}

    return loss
