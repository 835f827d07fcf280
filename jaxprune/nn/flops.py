"""Parameter and FLOP counts of the GCN, counting only non-zero weights (unstructured sparsity).

FLOPs are 2 x multiply-accumulates of one forward pass for one sample; a zero weight costs
nothing, as in the pruning literature. Attention products (q.k and A.H) are data-dependent and
counted dense.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxprune.nn.gcn import GCNConfig, prunable


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


def gcn_flops(params, config: GCNConfig) -> int:
    """FLOPs (2 x MACs) of one sample's forward pass, zero weights skipped."""
    j = config.num_nodes
    nnz = lambda a: int(np.count_nonzero(np.asarray(a)))
    macs = 0
    for b in range(config.num_blocks):
        block = params[f"block{b}"]
        att, conv = block["attention"], block["conv"]
        macs += j * (nnz(att["query"]) + nnz(att["key"]))           # node projections
        macs += j * j * att["query"].shape[1]                         # q . k logits
        macs += j * nnz(conv["kernel"])                               # H W
        macs += j * j * conv["kernel"].shape[1]                       # A (H W)
    macs += nnz(params["fc"]["kernel"]) + nnz(params["classifier"]["kernel"])
    return 2 * macs
