"""One pytree shared by K vmapped copies, with a backward pass that XLA:CPU runs fast.

``jax.vmap(f, in_axes=None)`` over K members makes autodiff sum the K cotangents of an
unbatched argument with one reduction over the new leading axis. XLA:CPU runs a reduction over
a major axis slowly: for a (6, 1920, 128) float32 array, 27 ms against 0.44 ms for the same sum
written as five adds (this 2-core CPU). ``shared`` broadcasts the tree to (K, ...) itself and
sums the cotangents slice by slice, so a multi-rate step (MRMP: K masked networks on one set of
weights) pays the adds, not the reduction. The values are those of the plain broadcast; the
gradient is the same sum, in a fixed order (k = 0, 1, …).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def shared(tree: PyTree, k: int) -> PyTree:
    """Every array leaf of ``tree`` broadcast to (k, *shape): vmap it with in_axes=0 where the
    K members share it (module docstring). ``k`` is static; None leaves stay None."""

    @jax.custom_vjp
    def broadcast(x):
        return jnp.broadcast_to(x, (k, *x.shape))

    def forward(x):
        return broadcast(x), None

    def backward(_, cotangent):
        total = cotangent[0]
        for i in range(1, k):
            total = total + cotangent[i]
        return (total,)

    broadcast.defvjp(forward, backward)
    return jax.tree.map(broadcast, tree)
