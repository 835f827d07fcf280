"""The coarse-to-fine (CTF) mask of METHOD.md §4: W = Ŵ ⊙ ψ(Ŵ), ψ = B ⊙ C ⊙ R ⊙ E.

For a prunable 2-D leaf Ŵ (p inputs × q outputs; a conv kernel (..., inputs, outputs) groups the
same way, a row being one input channel and a column one output channel), measured in units of
its scale s (the layer's initialisation std [choice], so one shift serves every layer), x = Ŵ / s:

    E_ij = h(x_ij)              entry-wise
    R_ij = h(ρ(x_i,:))          row-wise (an input), broadcast along the row
    C_ij = h(ρ(x_:,j))          column-wise (an output), broadcast down the column
    B_ij = h(ρ(x_β(i,j)))       block-wise, broadcast over block β (a partition of the entries)

h is the band-stop ``h_{a,σ}`` of ``jaxprune.masks.bandstop`` with one fixed shift a (unitless),
ρ the root mean square of a group, so a group survives when its typical entry is above a [choice].
Soft masks (training) use σ; hard masks use 1{· > a} for every factor, so an entry survives only
if its block, row and column do.

A block partition is a small hashable spec per leaf (``block_ids``):
  ("row_mod", K)   -- row i in block i mod K: for the layer after a node-major flatten of J × K
                      features, block c is channel c across every node;
  ("row_div", K)   -- K consecutive rows per block;
  ("tile", P, Q)   -- P × Q tiles.
Leaves without a spec have no block factor. Any subset of the four factors can be used
(``factors``): ("entry",) is unstructured pruning, ("block", "column", "row") structured only.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.masks.bandstop import _by_path, band_stop

PyTree = Any
FACTORS = ("block", "column", "row", "entry")


def block_ids(shape: tuple[int, int], spec) -> tuple[np.ndarray, int]:
    """(block id of every entry (p, q) int32, number of blocks) for a block spec (module docstring)."""
    p, q = shape
    kind, *args = spec
    if any(int(a) < 1 for a in args):
        raise ValueError(f"block spec {spec!r}: sizes must be >= 1")
    rows, cols = np.arange(p)[:, None], np.arange(q)[None, :]
    if kind == "row_mod":
        ids = np.broadcast_to(rows % args[0], (p, q))
    elif kind == "row_div":
        ids = np.broadcast_to(rows // args[0], (p, q))
    elif kind == "tile":
        ids = (rows // args[0]) * (-(-q // args[1])) + cols // args[1]
    else:
        raise ValueError(f"block spec {spec!r}: kind must be row_mod, row_div or tile")
    ids = np.asarray(ids, np.int32)
    _, dense_ids = np.unique(ids, return_inverse=True)      # number blocks 0..n-1 without gaps
    dense_ids = dense_ids.reshape(p, q).astype(np.int32)
    return dense_ids, int(dense_ids.max()) + 1 if dense_ids.size else 0


def group_rms(x: jax.Array, ids: np.ndarray, num_groups: int) -> jax.Array:
    """Root mean square of ``x`` over each group of entries: (num_groups,), ``ids`` like ``x``."""
    flat_ids = jnp.asarray(ids.ravel())
    sq = jax.ops.segment_sum(jnp.square(x).ravel(), flat_ids, num_groups)
    count = np.bincount(ids.ravel(), minlength=num_groups).astype(np.float32)
    return jnp.sqrt(sq / count)


def _rms(x: jax.Array, axis) -> jax.Array:
    return jnp.sqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True))


def factor_masks(x: jax.Array, shift: float, sigma: float | jax.Array | None, factors=FACTORS,
                 block=None) -> dict[str, jax.Array]:
    """The CTF factors of one leaf x in scale units, each broadcastable to x's shape.

    x is (p inputs, q outputs), or a conv kernel (..., inputs, outputs) such as Flax's (k_h, k_w,
    c_in, c_out): a row is then one input channel (all its taps and outputs), a column one output
    channel. ``sigma`` None gives hard factors 1{· > shift}; otherwise band-stops h_{shift,sigma}.
    ``block`` is the leaf's block spec, for 2-D leaves (None: no block factor even if "block" is in
    ``factors``).
    """
    if x.ndim < 2:
        raise ValueError(f"CTF masks need weight leaves of rank >= 2 ((..., inputs, outputs)), got shape {x.shape}")
    if block is not None and x.ndim != 2:
        raise ValueError(f"CTF block spec {block!r} partitions 2-D leaves; this leaf has shape {x.shape}")
    every = tuple(range(x.ndim))

    def h(v):
        return (v > shift).astype(x.dtype) if sigma is None else band_stop(v, shift, sigma)

    out = {}
    if "entry" in factors:
        out["entry"] = h(jnp.abs(x)) if sigma is None else h(x)
    if "row" in factors:
        out["row"] = h(_rms(x, every[:-2] + every[-1:]))        # over all but the input axis
    if "column" in factors:
        out["column"] = h(_rms(x, every[:-1]))                 # over all but the output axis
    if "block" in factors and block is not None:
        ids, n = block_ids(x.shape, block)
        out["block"] = h(group_rms(x, ids, n))[jnp.asarray(ids)]
    return out


@flax.struct.dataclass
class CoarseToFineMask:
    """CTF mask parametrization over any parameter pytree of prunable leaves of rank >= 2.

    ``scales``: pytree like the params, the scale s (scalar, weight units) of each prunable leaf and
    ``None`` elsewhere (e.g. ``jaxprune.priors.init_scales``); a leaf is prunable iff it has one.
    ``shift``: a, in units of s. ``factors``: which of FACTORS multiply. ``blocks``: static tuple of
    (``jax.tree_util.keystr`` path, block spec) pairs.
    """

    scales: PyTree
    shift: float = flax.struct.field(pytree_node=False, default=0.5)
    factors: tuple[str, ...] = flax.struct.field(pytree_node=False, default=FACTORS)
    blocks: tuple[tuple[str, tuple], ...] = flax.struct.field(pytree_node=False, default=())

    def __post_init__(self):
        bad = [f for f in self.factors if f not in FACTORS]
        if bad or not self.factors:
            raise ValueError(f"CTF factors must be a non-empty subset of {FACTORS}, got {self.factors}")

    def _masks(self, params: PyTree, sigma) -> PyTree:
        scales = _by_path(self.scales)
        blocks = dict(self.blocks)

        def leaf(path, w):
            key = jax.tree_util.keystr(path)
            s = scales.get(key)
            if s is None:
                return None
            parts = factor_masks(w / s, self.shift, sigma, self.factors, blocks.get(key))
            m = jnp.ones_like(w)
            for f in parts.values():
                m = m * f
            return m
        return jax.tree_util.tree_map_with_path(leaf, params)

    def soft_masks(self, params: PyTree, sigma: float | jax.Array) -> PyTree:
        """Smooth ψ(Ŵ) (leaf-shaped) at prunable leaves, None elsewhere; σ in 1 / scale units."""
        return self._masks(params, sigma)

    def hard_masks(self, params: PyTree) -> PyTree:
        """Hard ψ(Ŵ) ∈ {0, 1} (leaf dtype) at prunable leaves, None elsewhere."""
        return self._masks(params, None)


def mask_sum(masks: PyTree) -> jax.Array:
    """Σ of every mask entry (the kept-weight count of hard masks), over leaves that are not None."""
    return sum((jnp.sum(m) for m in jax.tree.leaves(masks)), jnp.zeros((), jnp.float32))
