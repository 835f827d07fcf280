"""``results.json`` rows of a trained skeleton model: accuracy, achieved rate, kept parameters,
FLOPs and what compaction makes of each rate's mask, all rates in one vmapped evaluation."""

from __future__ import annotations

import jax
import numpy as np

from jaxprune.evaluate import evaluate_masks, rate_rows
from jaxprune.models import gcn
from jaxprune.models.compact import compact, compact_flops, compact_size
from jaxprune.models.flops import gcn_flops


def fold_rows(pruner, forward, model: gcn.GCNConfig, params, chunks, labels, rates) -> list[dict]:
    """``results.json`` rows of a trained model at ``rates``: all rates in one vmapped evaluation,
    each with what compaction makes of its mask (``structure_row``)."""
    masks = pruner.hard_masks(params, np.asarray(rates, np.float32))
    acc, counts = evaluate_masks(forward, params, masks, chunks, labels)
    layer_targets = pruner.layer_rates(params, np.asarray(rates, np.float32))
    rows = rate_rows(rates, acc, counts, params, gcn.prunable(params),
                     lambda nonzero: gcn_flops(params, model, nonzero), trained=pruner.trained_rates,
                     layer_targets=layer_targets)
    for i, row in enumerate(rows):
        row.update(structure_row(params, jax.tree.map(lambda m: m[i], masks), model, row))
    return rows


def structure_row(params, masks, model: gcn.GCNConfig, row: dict) -> dict:
    """How much of one rate's pruning is structured: the compact network's prunable weights and
    FLOPs (``jaxprune.models.compact``), and the fraction of the pruned weights that compaction removes."""
    net = compact(params, masks, model)
    size = compact_size(net)
    pruned = row["total_params"] - row["kept_params"]
    return {"compact_params": size, "compact_flops": compact_flops(net),
            "structured_fraction": (row["total_params"] - size) / pruned if pruned else 0.0}
