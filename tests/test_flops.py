"""Parameter and FLOP counts: exact non-zero counting and the per-weight cost of each layer."""

import jax
import numpy as np
import pytest

from jaxprune.models import gcn
from jaxprune.models.flops import count_params, gcn_flops

EDGES = ((0, 1), (1, 2), (2, 3))
J, F, C, D, H, K, BLOCKS = 4, 6, 5, 3, 7, 3, 3


@pytest.fixture(scope="module")
def cfg():
    return gcn.GCNConfig(num_nodes=J, num_features=F, num_classes=K, edges=EDGES, channels=C,
                         num_blocks=BLOCKS, attention_dim=D, hidden=H)


@pytest.fixture
def params(cfg):
    return jax.tree.map(np.array, gcn.init(jax.random.key(0), cfg))  # mutable numpy copies


PRUNABLE_TOTAL = (F * D * 2 + F * C) + 2 * (C * D * 2 + C * C) + J * C * H
ALL_TOTAL = (PRUNABLE_TOTAL + BLOCKS * (J * J + C) + H + H * K + K)


def dense_flops():
    """2 x MACs by hand: per block J*(|q|+|k|) + J*J*d + J*|W| + J*J*C, then fc and classifier."""
    macs, width = 0, F
    for _ in range(BLOCKS):
        macs += J * (2 * width * D) + J * J * D + J * width * C + J * J * C
        width = C
    macs += J * C * H + H * K
    return 2 * macs


def test_count_params_dense(params):
    assert count_params(params) == (PRUNABLE_TOTAL, PRUNABLE_TOTAL)
    # all leaves: fresh biases (and the bones-mode attention bias) are exactly zero
    nonzero_all = PRUNABLE_TOTAL + H * K
    assert count_params(params, only_prunable=False) == (nonzero_all, ALL_TOTAL)


def test_count_params_after_zeroing(params):
    params["block0"]["conv"]["kernel"][0, :3] = 0.0          # 3
    params["block1"]["attention"]["query"][:, 1] = 0.0       # C = 5
    params["block2"]["attention"]["key"][2, 2] = 0.0         # 1
    params["fc"]["kernel"][::2, 0] = 0.0                     # ceil(J*C / 2) = 10
    params["classifier"]["kernel"][0, 0] = 0.0               # not prunable
    zeroed = 3 + C + 1 + (J * C + 1) // 2
    assert count_params(params) == (PRUNABLE_TOTAL - zeroed, PRUNABLE_TOTAL)
    params["fc"]["bias"][:2] = 1.0
    assert count_params(params, only_prunable=False) == (PRUNABLE_TOTAL - zeroed + H * K - 1 + 2,
                                                         ALL_TOTAL)


def test_dense_flops_match_formula(params, cfg):
    assert gcn_flops(params, cfg) == dense_flops()


@pytest.mark.parametrize("block", range(BLOCKS))
@pytest.mark.parametrize("leaf", [("attention", "query"), ("attention", "key"), ("conv", "kernel")])
def test_each_zeroed_block_weight_saves_2j(params, cfg, block, leaf):
    before = gcn_flops(params, cfg)
    arr = params[f"block{block}"][leaf[0]][leaf[1]]
    rng = np.random.default_rng(block)
    flat = rng.choice(arr.size, size=4, replace=False)
    arr.reshape(-1)[flat] = 0.0
    assert gcn_flops(params, cfg) == before - 4 * 2 * J


def test_fc_and_classifier_entries_save_2(params, cfg):
    before = gcn_flops(params, cfg)
    params["fc"]["kernel"][:3, :2] = 0.0  # 6 entries
    assert gcn_flops(params, cfg) == before - 6 * 2
    params["classifier"]["kernel"][1, :] = 0.0  # K entries
    assert gcn_flops(params, cfg) == before - 6 * 2 - K * 2


def test_biases_and_attention_products_are_not_weights(params, cfg):
    before = gcn_flops(params, cfg)
    for b in range(BLOCKS):
        params[f"block{b}"]["attention"]["bias"][:] = 3.0
        params[f"block{b}"]["conv"]["bias"][:] = 1.0
    assert gcn_flops(params, cfg) == before


def test_fully_pruned_model_keeps_the_dense_attention_products(params, cfg):
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if getattr(path[-1], "key", None) in ("kernel", "query", "key"):
            leaf[...] = 0.0
    assert count_params(params) == (0, PRUNABLE_TOTAL)
    assert gcn_flops(params, cfg) == 2 * BLOCKS * (J * J * D + J * J * C)
