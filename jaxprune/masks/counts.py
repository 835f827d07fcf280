"""Parameter and FLOP counts of any model's masks: what a pruned network keeps, leaf by leaf.

``masks`` is a pytree like the params with a 0/1 (or any, zero = pruned) array at each masked
leaf and None at dense ones, e.g. one rate's ``pruner.hard_masks(params, rates)`` sliced at that
rate. FLOPs count 2 × multiply-accumulates per sample with a pruned weight costing nothing, as in
the pruning literature: a weight used ``uses`` times per sample (1 for a dense layer, the number
of output positions H·W for a conv kernel) costs 2·uses FLOPs.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxprune.evaluate import leaf_name

PyTree = Any


def sparsity(masks: PyTree, uses: PyTree | None = None) -> dict:
    """{"kept_params", "total_params", "achieved_rate", "flops", "layers": {name: {...}}} over the
    masked leaves of ``masks`` (None leaves are not counted); ``uses``: an int at every leaf of
    ``masks`` or of the params (or None: every weight used once per sample)."""
    is_none = lambda x: x is None   # noqa: E731
    flat, _ = jax.tree_util.tree_flatten_with_path(masks, is_leaf=is_none)
    use = [1] * len(flat) if uses is None else jax.tree.leaves(
        jax.tree.map(lambda m, u: u, masks, uses, is_leaf=is_none), is_leaf=is_none)
    layers, kept, total, flops = {}, 0, 0, 0
    for (path, m), u in zip(flat, use):
        if m is None:
            continue
        name = leaf_name(path)
        k, n = int(np.count_nonzero(np.asarray(m))), int(np.size(m))
        layers[name] = {"kept_params": k, "total_params": n, "achieved_rate": 1.0 - k / n if n else 0.0,
                        "flops": 2 * k * int(u)}
        kept, total, flops = kept + k, total + n, flops + 2 * k * int(u)
    return {"kept_params": kept, "total_params": total, "achieved_rate": 1.0 - kept / total if total else 0.0,
            "flops": flops, "layers": layers}
