"""Parameter and FLOP counts of the GCN, counting only non-zero weights (unstructured sparsity).

FLOPs are 2 x multiply-accumulates of one forward pass for one sample; a zero weight costs
nothing, as in the pruning literature. Attention products (q.k and A.H) are data-dependent and
counted dense.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxprune.models.gcn import GCNConfig, prunable


def count_params(params, only_prunable: bool = True) -> tuple[int, int]:
    """(non-zero, total) weight counts over prunable leaves (or all leaves)."""
    flags = prunable(params)
    nonzero = total = 0
    for leaf, flag in zip(jax.tree.leaves(params), jax.tree.leaves(flags)):
        if flag or not only_prunable:
            a = np.asarray(leaf)
            nonzero += int(np.count_nonzero(a))
            total += a.size
    return nonzero, total


def gcn_flops(params, config: GCNConfig, nonzero=None) -> int:
    """FLOPs (2 x MACs) of one sample's forward pass, zero weights skipped.

    ``nonzero``: optional pytree like ``params`` with each leaf's non-zero count (e.g. of a masked
    network, without materialising it); default: counted in ``params``.
    """
    return sum(gcn_stage_flops(params, config, nonzero))


def gcn_stage_flops(params, config: GCNConfig, nonzero=None) -> list[int]:
    """``gcn_flops`` stage by stage: [block 0, ..., block L-1, head (FC + classifier)]."""
    j = config.num_nodes
    if nonzero is None:
        nonzero = jax.tree.map(lambda a: int(np.count_nonzero(np.asarray(a))), params)
    stages = []
    for b in range(config.num_blocks):
        name = f"block{b}"
        att, conv = nonzero[name]["attention"], nonzero[name]["conv"]
        macs = j * (int(att["query"]) + int(att["key"]))              # node projections
        macs += j * j * params[name]["attention"]["query"].shape[1]   # q . k logits
        macs += j * int(conv["kernel"])                               # H W
        macs += j * j * params[name]["conv"]["kernel"].shape[1]       # A (H W)
        stages.append(2 * macs)
    stages.append(2 * (int(nonzero["fc"]["kernel"]) + int(nonzero["classifier"]["kernel"])))
    return stages
