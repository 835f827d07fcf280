"""The CTF mask (jaxprune.masks.ctf): block partitions, group RMS, each factor on hand-made weights,
the coarse-gates-fine product, soft → hard, and use on a Flax model's params."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.masks.bandstop import apply_masks
from jaxprune.masks.ctf import CoarseToFineMask, block_ids, factor_masks, group_rms, mask_sum
from jaxprune.priors import init_scales


def test_block_ids_of_each_spec():
    ids, n = block_ids((6, 2), ("row_mod", 3))
    assert n == 3
    np.testing.assert_array_equal(ids[:, 0], [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(ids[:, 0], ids[:, 1])
    ids, n = block_ids((5, 1), ("row_div", 2))
    assert n == 3
    np.testing.assert_array_equal(ids[:, 0], [0, 0, 1, 1, 2])
    ids, n = block_ids((4, 3), ("tile", 2, 2))
    assert n == 4
    np.testing.assert_array_equal(ids, [[0, 0, 1], [0, 0, 1], [2, 2, 3], [2, 2, 3]])
    with pytest.raises(ValueError, match="kind"):
        block_ids((4, 3), ("diagonal", 2))
    with pytest.raises(ValueError, match=">= 1"):
        block_ids((4, 3), ("row_mod", 0))


def test_group_rms_exact():
    x = jnp.array([[3.0, 4.0], [1.0, 1.0], [0.0, 0.0]])
    ids = np.array([[0, 0], [1, 1], [1, 1]])
    np.testing.assert_allclose(group_rms(x, ids, 2), [np.sqrt(12.5), np.sqrt(0.5)], rtol=1e-6)


def test_hard_factors_on_hand_made_weights():
    # a = 0.5 (scale units). Row 2 is small overall (RMS 0.3 < 0.5) though one entry is 0.6;
    # column 0 is small (RMS ≈ 0.37); entry (0, 1) = 0.1 is small on its own.
    x = jnp.array([[0.4, 0.1, 2.0],
                   [0.3, 1.0, 1.0],
                   [0.6, 0.2, 0.0],
                   [0.2, 1.0, 1.0]])
    f = factor_masks(x, 0.5, None, block=("row_div", 2))
    np.testing.assert_array_equal(f["entry"], np.abs(x) > 0.5)
    np.testing.assert_array_equal(f["row"][:, 0], [1, 1, 0, 1])
    np.testing.assert_array_equal(f["column"][0], [0, 1, 1])
    np.testing.assert_array_equal(f["block"][:, 0], [1, 1, 1, 1])     # both 2-row blocks have RMS > 0.5
    psi = f["entry"] * f["row"] * f["column"] * f["block"]
    np.testing.assert_array_equal(psi, [[0, 0, 1], [0, 1, 1], [0, 0, 0], [0, 1, 1]])
    # the entry (2, 0) = 0.6 is above a but dies with its row and its column: coarse gates fine
    assert f["entry"][2, 0] == 1 and psi[2, 0] == 0


def test_soft_factors_approach_the_hard_ones():
    x = jax.random.normal(jax.random.key(0), (12, 7))
    hard = factor_masks(x, 0.5, None, block=("row_mod", 3))
    soft = factor_masks(x, 0.5, 1e5, block=("row_mod", 3))
    assert set(hard) == set(soft) == {"entry", "row", "column", "block"}
    for name in hard:
        np.testing.assert_allclose(jnp.broadcast_to(soft[name], x.shape), jnp.broadcast_to(hard[name], x.shape),
                                   atol=1e-3)
    gentle = factor_masks(x, 0.5, 1.0)
    assert all(bool(jnp.all((v > 0) & (v < 1.0 + 1e-6))) for v in gentle.values())


def test_conv_kernels_group_by_input_and_output_channel():
    """(issue 15) A (k_h, k_w, c_in, c_out) kernel: a row is an input channel (all its taps and
    outputs), a column an output channel; the soft factors approach the hard ones."""
    x = jax.random.normal(jax.random.key(3), (3, 3, 4, 5))
    x = x.at[:, :, 1].multiply(0.1).at[..., 2].multiply(0.1)       # input channel 1, output channel 2 weak
    hard = factor_masks(x, 0.5, None)
    rms_in = jnp.sqrt(jnp.mean(x ** 2, axis=(0, 1, 3)))
    rms_out = jnp.sqrt(jnp.mean(x ** 2, axis=(0, 1, 2)))
    np.testing.assert_array_equal(jnp.broadcast_to(hard["row"], x.shape)[0, 0, :, 0], rms_in > 0.5)
    np.testing.assert_array_equal(jnp.broadcast_to(hard["column"], x.shape)[0, 0, 0, :], rms_out > 0.5)
    assert not bool(hard["row"][0, 0, 1, 0]) and not bool(hard["column"][0, 0, 0, 2])
    soft = factor_masks(x, 0.5, 1e5)
    for name in ("row", "column", "entry"):
        np.testing.assert_allclose(jnp.broadcast_to(soft[name], x.shape), jnp.broadcast_to(hard[name], x.shape),
                                   atol=1e-3)


def test_vectors_block_specs_on_conv_and_bad_factors_are_refused():
    with pytest.raises(ValueError, match="rank >= 2"):
        factor_masks(jnp.ones((4,)), 0.5, None)
    with pytest.raises(ValueError, match="partitions 2-D leaves"):
        factor_masks(jnp.ones((2, 3, 4)), 0.5, None, block=("row_div", 2))
    with pytest.raises(ValueError, match="subset"):
        CoarseToFineMask(scales={}, factors=("rows",))


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(nn.relu(nn.Dense(16)(x)))


def test_mask_on_flax_linen_params():
    params = MLP().init(jax.random.key(0), jnp.ones((1, 8)))["params"]
    prunable = jax.tree_util.tree_map_with_path(lambda p, _: p[-1].key == "kernel", params)
    mask = CoarseToFineMask(scales=init_scales(params, prunable), shift=0.5,
                            blocks=(("['Dense_0']['kernel']", ("row_div", 4)),))
    hard = mask.hard_masks(params)
    assert hard["Dense_0"]["bias"] is None
    chex.assert_trees_all_equal_shapes(hard["Dense_0"]["kernel"], params["Dense_0"]["kernel"])
    w, s = params["Dense_1"]["kernel"], jnp.std(params["Dense_1"]["kernel"])
    x = w / s                                    # no block factor on Dense_1: column, row, entry
    expected = ((jnp.abs(x) > 0.5) & (jnp.sqrt(jnp.mean(x ** 2, 1, keepdims=True)) > 0.5)
                & (jnp.sqrt(jnp.mean(x ** 2, 0, keepdims=True)) > 0.5))
    np.testing.assert_array_equal(hard["Dense_1"]["kernel"], expected)
    assert float(mask_sum(hard)) == sum(float(jnp.sum(m)) for m in jax.tree.leaves(hard))
    out = MLP().apply({"params": apply_masks(params, hard)}, jnp.ones((2, 8)))
    chex.assert_shape(out, (2, 3))
    soft = jax.jit(mask.soft_masks)(params, 2.0)
    grads = jax.jit(jax.grad(lambda p: mask_sum(mask.soft_masks(p, 2.0))))(params)
    assert float(jnp.abs(grads["Dense_0"]["kernel"]).sum()) > 0      # the budget can move the weights
    assert soft["Dense_1"]["bias"] is None


def test_entry_only_is_magnitude_pruning():
    params = {"w": jax.random.normal(jax.random.key(1), (20, 10))}
    mask = CoarseToFineMask(scales={"w": jnp.float32(2.0)}, shift=0.5, factors=("entry",))
    np.testing.assert_array_equal(mask.hard_masks(params)["w"], jnp.abs(params["w"]) > 1.0)
