"""Evaluation of one trained model at many pruning rates: one jitted, vmapped call per batch.

``evaluate_masks`` runs the network under R hard masks at once (``jax.vmap`` over the masks'
leading axis) and returns the accuracy and the non-zero count of every leaf per mask;
``rate_rows`` turns them into ``results.json`` rows (target and achieved rate, accuracy, kept
parameters, FLOPs, and each prunable layer's achieved rate).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.masks.bandstop import apply_masks

PyTree = Any


def leaf_name(path) -> str:
    """A readable leaf name, e.g. 'block0/attention/query', from a pytree key path."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


@partial(jax.jit, static_argnums=(0,))
def _batch(forward, params, masks, chunks, labels):
    def one(m):
        p = apply_masks(params, m)
        logits = forward(p, chunks, None, False)
        return jnp.sum(jnp.argmax(logits, -1) == labels), jax.tree.map(jnp.count_nonzero, p)
    return jax.vmap(one)(masks)


def evaluate_masks(forward: Callable, params: PyTree, masks: PyTree, chunks: np.ndarray,
                   labels: np.ndarray, batch_size: int = 1024) -> tuple[np.ndarray, PyTree]:
    """Accuracy (R,) in [0, 1] and non-zero counts (pytree like params, (R,) ints per leaf).

    ``masks``: a pytree aligned with ``params`` with a leading axis R at masked leaves (None
    elsewhere). ``chunks`` (N, ...) and ``labels`` (N,) are evaluated ``batch_size`` samples at a
    time, all R masks at once for each batch. ``forward(params, chunks, key, train)`` as in
    ``jaxprune.task.forward.make_forward``; it must be hashable (it is a static argument of the jit).
    """
    correct, counts = 0, None
    for i in range(0, len(labels), batch_size):
        c, counts = _batch(forward, params, masks, jnp.asarray(chunks[i:i + batch_size]),
                           jnp.asarray(labels[i:i + batch_size]))
        correct = correct + np.asarray(c)
    if counts is None:                      # no test samples: counts without accuracy
        _, counts = _batch(forward, params, masks, jnp.asarray(chunks[:1]), jnp.asarray(labels[:1]))
    return np.asarray(correct, np.float64) / max(len(labels), 1), jax.tree.map(np.asarray, counts)


def rate_rows(targets, accuracy: np.ndarray, counts: PyTree, params: PyTree, prunable: PyTree,
              flops: Callable[[PyTree], int], trained=(), layer_targets: PyTree = None) -> list[dict]:
    """One ``results.json`` row per target rate.

    ``counts``: non-zero counts (R,) per leaf (from ``evaluate_masks``); ``flops(counts_r)`` the
    FLOPs of one sample's forward pass given one rate's counts (pytree of ints like params);
    ``layer_targets``: optional per-layer target rates (R,) at prunable leaves (None elsewhere),
    reported as ``layer_target_rates``.
    """
    targets_by_name = {}
    if layer_targets is not None:
        flat_t, _ = jax.tree_util.tree_flatten_with_path(layer_targets, is_leaf=lambda x: x is None)
        targets_by_name = {leaf_name(p): np.asarray(t) for p, t in flat_t if t is not None}
    flat_c, _ = jax.tree_util.tree_flatten_with_path(counts)
    sizes = [int(np.size(w)) for w in jax.tree.leaves(params)]
    keep = jax.tree.leaves(prunable)
    rows = []
    for i, target in enumerate(np.asarray(targets, np.float64)):
        kept = total = 0
        layers = {}
        for (path, c), size, k in zip(flat_c, sizes, keep):
            if k:
                kept += int(c[i])
                total += size
                layers[leaf_name(path)] = 1.0 - int(c[i]) / size
        counts_i = jax.tree.map(lambda c: int(c[i]), counts)
        row = {"target_rate": float(target), "achieved_rate": 1.0 - kept / max(total, 1),
               "accuracy": 100.0 * float(accuracy[i]), "kept_params": kept, "total_params": total,
               "flops": int(flops(counts_i)), "trained": bool(np.any(np.isclose(target, trained))),
               "layer_rates": layers}
        if targets_by_name:
            row["layer_target_rates"] = {k: float(v[i]) for k, v in targets_by_name.items()}
        rows.append(row)
    return rows
