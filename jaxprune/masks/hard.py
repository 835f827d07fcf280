"""Hard 0/1 masks chosen by a score, for the baselines (METHOD.md §6): magnitude (layer-wise or
global), random, SNIP saliency and structured (whole columns) pruning. Pure, jittable functions
over a params pytree and a pytree of bools marking the prunable leaves; masks are float arrays
like the leaves at prunable leaves and None elsewhere.

A rate r keeps round((1 − r)·n) entries of the n scored (per layer, or over all prunable weights
for a global rule), the largest scores first; ties are broken by position, so counts are exact.
The rate may be a traced scalar (a schedule inside a jitted step).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def _sort_key(scores: jax.Array) -> jax.Array:
    """uint32 keys ordered as the float32 ``scores`` are, with sort's conventions: -0.0 equals 0.0,
    and NaN is below everything (a descending sort ranks it last)."""
    x = jnp.asarray(scores, jnp.float32)
    x = jnp.where(x == 0, 0.0, x)
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    negative = (bits >> 31) == 1
    key = jnp.where(negative, ~bits, bits | jnp.uint32(0x80000000))
    return jnp.where(jnp.isnan(x), jnp.uint32(0), key)


def top_count(scores: jax.Array, count) -> jax.Array:
    """Bools like the 1-D ``scores``: True at its ``count`` (an integer, may be traced) largest entries, ties
    broken by position, NaN last: the entries a stable descending sort puts first. Scores are
    compared as float32 (wider floats are rounded first, which can make near-equal scores ties).

    Without a sort: the count-th largest key is found bit by bit (32 passes that count the entries
    above a candidate), then the ties at it are taken in order. On a 2-core CPU, 257,920 scores:
    5.5 ms against 116 ms for the argsort and its inverse permutation it replaced, and an STE train
    step (masks recomputed every step) 26 ms against 106 ms (``benchmarks.keep_count``)."""
    if jnp.ndim(scores) != 1:
        raise ValueError(f"top_count ranks a 1-D array of scores, got shape {jnp.shape(scores)}")
    key = _sort_key(scores)
    count = jnp.asarray(count, jnp.int32)

    def bit(i, t):                       # the largest t with #(key >= t) >= count, from the top bit down
        candidate = t | (jnp.uint32(1) << (jnp.uint32(31) - jnp.asarray(i, jnp.uint32)))
        return jnp.where(jnp.sum(key >= candidate, dtype=jnp.int32) >= count, candidate, t)
    threshold = jax.lax.fori_loop(0, 32, bit, jnp.uint32(0))
    above = key > threshold
    ties = key == threshold
    room = count - jnp.sum(above, dtype=jnp.int32)
    return (above | (ties & (jnp.cumsum(ties, dtype=jnp.int32) <= room))) & (count > 0)


def _keep_largest(scores: jax.Array, rate) -> jax.Array:
    """0/1 (float32) keeping the round((1 − rate)·n) largest entries of a 1-D ``scores`` (n entries)."""
    n = scores.size
    keep = jnp.clip(jnp.round((1.0 - jnp.asarray(rate, jnp.float32)) * n), 0, n)
    return top_count(scores, keep.astype(jnp.int32)).astype(jnp.float32)


def _split(flat: jax.Array, leaves: list) -> list:
    out, start = [], 0
    for w in leaves:
        out.append(flat[start:start + w.size].reshape(w.shape))
        start += w.size
    return out


def _at_prunable(treedef, keep: list, masks: list) -> PyTree:
    """The pytree of ``treedef`` holding ``masks`` (in order) at the leaves ``keep`` marks, None elsewhere."""
    it = iter(masks)
    return jax.tree_util.tree_unflatten(treedef, [next(it) if k else None for k in keep])


def score_masks(scores: PyTree, prunable: PyTree, rate: float, scope: str = "layer") -> PyTree:
    """Masks keeping the largest ``scores`` (a pytree like the params) at ``rate``.

    ``scope`` "layer": every prunable leaf at the same rate; "global": one ranking over all of them.
    """
    flat, treedef = jax.tree_util.tree_flatten(scores)
    keep = jax.tree.leaves(prunable)
    chosen = [s for s, k in zip(flat, keep) if k]
    if scope == "layer":
        masks = [_keep_largest(s.ravel(), rate).reshape(s.shape) for s in chosen]
    elif scope == "global":
        allscores = jnp.concatenate([s.ravel() for s in chosen])
        masks = _split(_keep_largest(allscores, rate), chosen)
    else:
        raise ValueError(f"prune setting scope must be layer or global, got {scope!r}")
    return _at_prunable(treedef, keep, masks)


def magnitude_masks(params: PyTree, prunable: PyTree, rate: float, scope: str = "layer") -> PyTree:
    """Keep the largest |w| (Han et al. 2015)."""
    return score_masks(jax.tree.map(jnp.abs, params), prunable, rate, scope)


def random_masks(key: jax.Array, params: PyTree, prunable: PyTree, rate: float) -> PyTree:
    """Every prunable layer keeps a uniformly random round((1 − r)·n) of its entries."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    scores = jax.tree_util.tree_unflatten(treedef, [jax.random.uniform(k, w.shape) for k, w in zip(keys, leaves)])
    return score_masks(scores, prunable, rate, "layer")


def snip_masks(grads: PyTree, params: PyTree, prunable: PyTree, rate: float) -> PyTree:
    """SNIP (Lee et al. 2019): keep the largest connection sensitivities |g ⊙ w|, one global ranking."""
    return score_masks(jax.tree.map(lambda g, w: jnp.abs(g * w), grads, params), prunable, rate, "global")


def column_masks(params: PyTree, prunable: PyTree, rate: float) -> PyTree:
    """Structured pruning: whole columns (output units / channels) of the prunable 2-D leaves,
    smallest root-mean-square first, ranked over all layers, until at most (1 − r)·N weights remain."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keep = jax.tree.leaves(prunable)
    chosen = [w for w, k in zip(leaves, keep) if k]
    rms = jnp.concatenate([jnp.sqrt(jnp.mean(jnp.square(w), axis=0)) for w in chosen])
    sizes = jnp.concatenate([jnp.full((w.shape[1],), w.shape[0], jnp.float32) for w in chosen])
    budget = (1.0 - rate) * sum(w.size for w in chosen)
    order = jnp.argsort(-rms, stable=True)
    fits = jnp.cumsum(sizes[order]) <= budget + 0.5
    col_keep = jnp.zeros(rms.shape).at[order].set(fits.astype(jnp.float32))
    masks, start = [], 0
    for w in chosen:
        masks.append(jnp.broadcast_to(col_keep[start:start + w.shape[1]], w.shape))
        start += w.shape[1]
    return _at_prunable(treedef, keep, masks)
