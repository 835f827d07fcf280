"""The band-stop mask of SRMP/MRMP (METHOD.md §2): W = Ŵ ⊙ h_{a,σ}(Ŵ), the mask a function of Ŵ.

    h_{a,σ}(x) = s(σ(x − a)) + s(−σ(x + a)),      s = logistic sigmoid

≈ 0 for |x| < a, ≈ 1 for |x| > a, even in x. Training uses the smooth ``band_stop`` (gradients
flow through it, no straight-through estimator) with σ annealed by ``sigma_schedule``; evaluation
uses ``hard_band_stop`` = 1{|x| > a}.

``BandStopMask`` applies it to any parameter pytree. Which leaves are prunable is stored as a
static tuple of key-path strings (``jax.tree_util.keystr``), not as a pytree of bools: a dict of
bools is not hashable, so it cannot be a static field, and a tuple of bools in leaf order would
silently mis-align when a tree gains or reorders a leaf. Key paths are hashable, readable, work
for any pytree with keyed nodes (dicts, lists, Flax ``FrozenDict``, dataclasses), and a missing
one is reported by name.

Thresholds are a pytree aligned with ``params``: a threshold (scalar, in weight units) at every
prunable leaf and ``None`` (or anything, it is ignored) elsewhere -- e.g. what
``jaxprune.priors.thresholds_for_rate`` returns. For K rates give every threshold a leading axis
(K,) and ``jax.vmap`` over it with ``params`` un-mapped: one vmapped call gives K masks.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def band_stop(x: jax.Array, a: jax.Array | float, sigma: jax.Array | float) -> jax.Array:
    """Smooth band-stop h_{a,σ}(x) = s(σ(x − a)) + s(−σ(x + a)), elementwise; in (0, 1] for a ≥ 0.

    ``x`` any shape; threshold ``a`` (weight units, ≥ 0) and steepness ``sigma`` (1 / weight
    units, > 0) broadcast against it. Stable for large σ·|x| (``jax.nn.sigmoid`` saturates to
    exactly 0 or 1, never NaN, for finite σ).
    """
    x = jnp.asarray(x)
    return jax.nn.sigmoid(sigma * (x - a)) + jax.nn.sigmoid(-sigma * (x + a))


def hard_band_stop(x: jax.Array, a: jax.Array | float) -> jax.Array:
    """Hard mask 1{|x| > a} as ``x.dtype`` (the σ → ∞ limit of ``band_stop``); broadcasts."""
    x = jnp.asarray(x)
    return (jnp.abs(x) > a).astype(x.dtype)


def sigma_schedule(step: jax.Array | int, total_steps: int, a: jax.Array | float,
                   start: float = 1.0, end: float = 100.0) -> jax.Array:
    """Steepness σ at ``step`` (METHOD.md §2): σ·a grows geometrically from ``start`` to ``end``.

    σ(step) = start·(end/start)^t / a with t = clip(step / total_steps, 0, 1), so the mask's
    transition width relative to its threshold is the same for every layer and rate. ``a`` may be
    an array (one σ per threshold, same shape); a ≤ 0 is treated as 1e-12 (σ huge, finite).
    Jittable in ``step`` and ``a``.
    """
    t = jnp.clip(jnp.asarray(step, jnp.float32) / max(int(total_steps), 1), 0.0, 1.0)
    sharpness = start * (end / start) ** t
    return sharpness / jnp.maximum(jnp.asarray(a, jnp.float32), 1e-12)


def _by_path(tree: PyTree) -> dict[str, Any]:
    """{keystr(path): leaf} of a pytree, ``None`` kept as a leaf."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is None)
    return {jax.tree_util.keystr(path): leaf for path, leaf in flat}


def _is_scalar_like(x: Any) -> bool:
    return isinstance(x, (int, float, np.ndarray, np.generic, jax.Array))


@flax.struct.dataclass
class BandStopMask:
    """Band-stop mask parametrization over any parameter pytree.

    ``prunable``: static tuple of ``jax.tree_util.keystr`` key paths of the leaves to mask, e.g.
    ``("['fc']['kernel']",)``; build it from a pytree of bools with ``from_prunable``.
    """

    prunable: tuple[str, ...] = flax.struct.field(pytree_node=False, default=())

    @classmethod
    def from_prunable(cls, prunable: PyTree) -> "BandStopMask":
        """From a pytree of bools like the params (e.g. ``jaxprune.models.gcn.prunable(params)``)."""
        flat, _ = jax.tree_util.tree_flatten_with_path(prunable)
        return cls(prunable=tuple(jax.tree_util.keystr(p) for p, keep in flat if bool(keep)))

    def _masks(self, params: PyTree, thresholds: PyTree, fn) -> PyTree:
        present = _by_path(params)
        missing = [p for p in self.prunable if p not in present]
        if missing:
            raise ValueError(f"BandStopMask: prunable leaves {missing} are not in the params pytree")
        by_path = _by_path(thresholds)
        targets = set(self.prunable)

        def leaf(path, w):
            key = jax.tree_util.keystr(path)
            if key not in targets:
                return None
            a = by_path.get(key)
            if a is None:
                raise ValueError(f"BandStopMask: no threshold for prunable leaf {key}")
            return fn(key, w, a)
        return jax.tree_util.tree_map_with_path(leaf, params)

    def soft_masks(self, params: PyTree, thresholds: PyTree, sigma: PyTree) -> PyTree:
        """Smooth masks h_{a,σ}(Ŵ): a pytree like ``params``, leaf-shaped arrays at prunable leaves,
        ``None`` elsewhere.

        ``thresholds``: pytree aligned with ``params``, one threshold per prunable leaf (weight
        units). ``sigma``: one steepness for every leaf (scalar), or a pytree aligned like
        ``thresholds`` (e.g. ``sigma_schedule`` mapped over it).
        """
        sigmas = None if _is_scalar_like(sigma) else _by_path(sigma)

        def fn(key, w, a):
            s = sigma if sigmas is None else sigmas[key]
            return band_stop(w, a, s)
        return self._masks(params, thresholds, fn)

    def hard_masks(self, params: PyTree, thresholds: PyTree) -> PyTree:
        """Hard masks 1{|Ŵ| > a} (dtype of the leaf) at prunable leaves, ``None`` elsewhere."""
        return self._masks(params, thresholds, lambda key, w, a: hard_band_stop(w, a))


def apply_masks(params: PyTree, masks: PyTree) -> PyTree:
    """Effective parameters: W = Ŵ ⊙ M where ``masks`` has an array, Ŵ unchanged where it has ``None``.

    ``masks`` is aligned with ``params`` (``None`` at unmasked leaves); works for any mask pytree
    (band-stop, hard, CTF, ...), and under ``jax.vmap`` over a leading axis of the masks.
    """
    return jax.tree.map(lambda m, w: w if m is None else w * m, masks, params,
                        is_leaf=lambda x: x is None)
