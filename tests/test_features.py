"""Node features: chunk weights, chunk means by hand, interpolation, centring, scale, velocities."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.data.errors import DataError
from jaxprune.data.features import (FeatureConfig, chunk_positions, chunk_weights, fit_scale,
                                    node_features)

RAW = FeatureConfig(centre="none", scale="none")


def padded(seqs, max_len, pad_value=0.0):
    """List of (L_n, J, 3) -> (N, max_len, J, 3) padded with ``pad_value``, and lengths."""
    j = seqs[0].shape[1]
    x = np.full((len(seqs), max_len, j, 3), pad_value, np.float64)
    for n, s in enumerate(seqs):
        x[n, : len(s)] = s
    return x, np.array([len(s) for s in seqs], np.int32)


# ---------------------------------------------------------------------------------------------
# chunk_weights


@pytest.mark.parametrize("pooling", ["mean", "interp"])
def test_chunk_weights_rows_sum_to_one_and_skip_padding(pooling):
    lengths = np.array([1, 2, 3, 5, 7, 10, 16])
    w = chunk_weights(lengths, 16, 4, pooling)
    chex.assert_shape(w, (7, 4, 16))
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=0, atol=1e-12)
    assert (w >= 0).all()
    t = np.arange(16)
    for n, length in enumerate(lengths):
        assert (w[n][:, t >= length] == 0).all(), f"length {length}: padding frames weighted"


def test_chunk_weights_mean_exact_values():
    # L = 5, M = 2: chunk 0 covers [0, 2.5), chunk 1 covers [2.5, 5).
    w = chunk_weights(np.array([5]), 6, 2, "mean")[0]
    np.testing.assert_allclose(w, [[1 / 2.5, 1 / 2.5, 0.5 / 2.5, 0, 0, 0],
                                   [0, 0, 0.5 / 2.5, 1 / 2.5, 1 / 2.5, 0]], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# chunk means by hand


def test_chunk_means_when_length_divides_chunks():
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(8, 2, 3))
    x, lengths = padded([seq], 11, pad_value=99.0)
    out = chunk_positions(x, lengths, FeatureConfig(chunks=4, centre="none", scale="none"))
    chex.assert_shape(out, (1, 2, 4, 3))
    assert out.dtype == np.float32
    expected = np.stack([seq[2 * m: 2 * m + 2].mean(0) for m in range(4)], axis=1)  # (J, M, 3)
    np.testing.assert_allclose(out[0], expected, rtol=1e-6, atol=1e-6)


def test_chunk_means_fractional_overlap():
    # L = 5, M = 2: chunk 0 = (x0 + x1 + 0.5 x2) / 2.5, chunk 1 = (0.5 x2 + x3 + x4) / 2.5.
    # L = 7, M = 3: chunk edges 0, 7/3, 14/3, 7:
    #   chunk 0 = (x0 + x1 + 1/3 x2) / (7/3)
    #   chunk 1 = (2/3 x2 + x3 + 2/3 x4) / (7/3)
    #   chunk 2 = (1/3 x4 + x5 + x6) / (7/3)
    rng = np.random.default_rng(1)
    s5 = rng.normal(size=(5, 3, 3))
    x, lengths = padded([s5], 9, pad_value=-50.0)
    out = chunk_positions(x, lengths, FeatureConfig(chunks=2, centre="none", scale="none"))[0]
    np.testing.assert_allclose(out[:, 0], (s5[0] + s5[1] + 0.5 * s5[2]) / 2.5, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], (0.5 * s5[2] + s5[3] + s5[4]) / 2.5, rtol=1e-5, atol=1e-6)

    s7 = rng.normal(size=(7, 3, 3))
    x, lengths = padded([s7], 7)
    out = chunk_positions(x, lengths, FeatureConfig(chunks=3, centre="none", scale="none"))[0]
    span = 7 / 3
    np.testing.assert_allclose(out[:, 0], (s7[0] + s7[1] + s7[2] / 3) / span, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], (2 / 3 * s7[2] + s7[3] + 2 / 3 * s7[4]) / span,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 2], (s7[4] / 3 + s7[5] + s7[6]) / span, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "interp"])
def test_shorter_than_chunks_gives_finite_chunks(pooling):
    s2 = np.array([[[1.0, 2.0, 3.0]], [[5.0, 6.0, 7.0]]])  # L = 2, J = 1
    s1 = np.array([[[4.0, -4.0, 2.0]]])                     # L = 1
    x, lengths = padded([s2, s1], 6, pad_value=1e6)
    out = chunk_positions(x, lengths, FeatureConfig(chunks=4, pooling=pooling, centre="none",
                                                    scale="none"))
    chex.assert_shape(out, (2, 1, 4, 3))
    assert np.isfinite(out).all()
    # A one-frame sequence: every chunk is that frame.
    np.testing.assert_allclose(out[1, 0], np.repeat(s1[0], 4, axis=0), rtol=1e-6)
    if pooling == "mean":  # chunks [0, .5), [.5, 1), [1, 1.5), [1.5, 2): x0, x0, x1, x1
        np.testing.assert_allclose(out[0, 0], s2[[0, 0, 1, 1], 0], rtol=1e-6)
    # every chunk lies between the two frames (a convex combination of real frames only)
    assert (out[0, 0] >= s2[0, 0] - 1e-5).all() and (out[0, 0] <= s2[1, 0] + 1e-5).all()


def test_interp_on_linear_trajectory_hits_chunk_centres():
    length, chunks = 10, 4
    t = np.arange(length, dtype=np.float64)
    a = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])      # (J, 3)
    b = np.array([[0.3, 0.1, -0.7], [-1.2, 2.0, 0.25]])
    seq = a[None] + b[None] * t[:, None, None]               # (L, J, 3)
    x, lengths = padded([seq], 13, pad_value=7.0)
    out = chunk_positions(x, lengths, FeatureConfig(chunks=chunks, pooling="interp", centre="none",
                                                    scale="none"))[0]
    centres = (np.arange(chunks) + 0.5) * length / chunks - 0.5  # 0.75, 3.25, 5.75, 8.25
    np.testing.assert_allclose(centres, [0.75, 3.25, 5.75, 8.25])
    expected = a[:, None] + b[:, None] * centres[None, :, None]  # (J, M, 3)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# centring and scale


@pytest.mark.parametrize("pooling", ["mean", "interp"])
def test_centring_removes_mean_over_valid_frames_only(pooling):
    rng = np.random.default_rng(2)
    seqs = [rng.normal(loc=100.0, size=(length, 4, 3)) for length in (8, 5, 12, 3)]
    x0, lengths = padded(seqs, 12, pad_value=0.0)
    x1, _ = padded(seqs, 12, pad_value=-1234.0)
    cfg = FeatureConfig(chunks=4, pooling=pooling, centre="sequence", scale="none")
    out0 = chunk_positions(x0, lengths, cfg)
    out1 = chunk_positions(x1, lengths, cfg)
    np.testing.assert_array_equal(out0, out1)  # padding values play no part
    raw = chunk_positions(x0, lengths, FeatureConfig(chunks=4, pooling=pooling, centre="none",
                                                     scale="none"))
    for n, s in enumerate(seqs):
        centre = s.reshape(-1, 3).mean(0)
        # centring subtracts exactly the valid-frame mean position from every chunk
        np.testing.assert_allclose(raw[n] - out0[n], np.broadcast_to(centre, raw[n].shape),
                                   rtol=1e-5, atol=1e-4)
    if pooling == "mean":  # chunk means partition the frames equally: their mean is the frame mean
        np.testing.assert_allclose(out0.mean(axis=(1, 2)), 0.0, atol=1e-5)


def test_fit_scale_and_dataset_scale():
    np.testing.assert_allclose(fit_scale(np.full((2, 3, 4, 3), -2.0)), 2.0)
    chunks = np.array([3.0, 4.0, 0.0, 0.0]).reshape(1, 1, 1, 4)  # RMS = sqrt(25 / 4) = 2.5
    assert fit_scale(chunks) == pytest.approx(2.5)
    assert fit_scale(np.zeros((2, 2, 2, 3))) == 1.0  # degenerate data: no division by zero
    rng = np.random.default_rng(3)
    c = rng.normal(scale=37.0, size=(5, 6, 4, 3))
    assert np.sqrt(np.mean(np.square(c / fit_scale(c)))) == pytest.approx(1.0)

    seq = rng.normal(size=(6, 2, 3))
    x, lengths = padded([seq], 6)
    cfg = FeatureConfig(scale="dataset")
    base = chunk_positions(x, lengths, cfg)
    np.testing.assert_allclose(chunk_positions(x, lengths, cfg, scale=4.0), base / 4.0, rtol=1e-6)
    # scale="none" ignores the divisor
    cfg_none = FeatureConfig(scale="none")
    np.testing.assert_array_equal(chunk_positions(x, lengths, cfg_none, scale=4.0), base)


# ---------------------------------------------------------------------------------------------
# node_features


class NodeFeaturesTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_positions_only(self):
        rng = np.random.default_rng(4)
        chunks = jnp.asarray(rng.normal(size=(2, 5, 4, 3)), jnp.float32)
        cfg = FeatureConfig(chunks=4)
        feats = self.variant(node_features, static_argnums=1)(chunks, cfg)
        chex.assert_shape(feats, (2, 5, cfg.num_features()))
        assert cfg.num_features() == 12
        # flattened chunk-major: feature 3 m + c is chunk m's coordinate c
        chex.assert_trees_all_close(feats, chunks.reshape(2, 5, 12))

    @chex.variants(with_jit=True, without_jit=True)
    def test_velocities(self):
        rng = np.random.default_rng(5)
        chunks = jnp.asarray(rng.normal(size=(3, 5, 4, 3)), jnp.float32)
        cfg = FeatureConfig(chunks=4, velocities=True)
        feats = self.variant(node_features, static_argnums=1)(chunks, cfg)
        assert cfg.num_features() == 24
        chex.assert_shape(feats, (3, 5, 24))
        per_chunk = np.asarray(feats).reshape(3, 5, 4, 6)
        np.testing.assert_allclose(per_chunk[..., :3], chunks, rtol=1e-6)
        vel = per_chunk[..., 3:]
        np.testing.assert_array_equal(vel[:, :, 0], 0.0)
        c = np.asarray(chunks)
        np.testing.assert_allclose(vel[:, :, 1:], c[:, :, 1:] - c[:, :, :-1], rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_partner_offsets(self):
        rng = np.random.default_rng(6)
        chunks = jnp.asarray(rng.normal(size=(2, 6, 4, 3)), jnp.float32)    # 2 persons x 3 joints
        cfg = FeatureConfig(chunks=4, velocities=True, partner_offsets=True)
        feats = self.variant(node_features, static_argnums=1)(chunks, cfg)
        assert cfg.num_features() == 36
        per_chunk = np.asarray(feats).reshape(2, 6, 4, 9)
        c = np.asarray(chunks)
        np.testing.assert_allclose(per_chunk[:, :3, :, 6:], c[:, :3] - c[:, 3:], rtol=1e-6)  # A minus B
        np.testing.assert_allclose(per_chunk[:, 3:, :, 6:], c[:, 3:] - c[:, :3], rtol=1e-6)  # B minus A


# ---------------------------------------------------------------------------------------------
# FeatureConfig validation


@pytest.mark.parametrize("kwargs, name", [
    ({"chunks": 0}, "chunks"), ({"chunks": -3}, "chunks"), ({"pooling": "max"}, "pooling"),
    ({"centre": "frame"}, "centre"), ({"scale": "sample"}, "scale"),
])
def test_feature_config_rejects_bad_settings(kwargs, name):
    with pytest.raises(DataError, match=name):
        FeatureConfig(**kwargs)


def test_feature_config_sizes():
    assert FeatureConfig(chunks=5).num_features() == 15
    assert FeatureConfig(chunks=5, velocities=True).num_features() == 30
    assert FeatureConfig(chunks=1).num_features() == 3
    assert FeatureConfig(chunks=2, partner_offsets=True).num_features() == 12


def test_partner_offsets_need_two_persons():
    with pytest.raises(DataError, match="partner_offsets"):
        node_features(jnp.zeros((1, 5, 4, 3)), FeatureConfig(partner_offsets=True))


def test_crop_bank_versions():
    from jaxprune.data.features import crop_bank
    rng = np.random.default_rng(0)
    n, t, j = 4, 20, 3
    frames = np.arange(t, dtype=np.float64)
    x = np.broadcast_to(frames[None, :, None, None], (n, t, j, 3)).copy()   # position = frame index
    lengths = np.array([20, 12, 8, 5])
    cfg = FeatureConfig(chunks=2, centre="none", scale="none")
    bank = crop_bank(x, lengths, cfg, crops=3, crop_min=0.5, rng=rng)
    assert bank.shape == (n, 4, j, 2, 3)
    np.testing.assert_allclose(bank[:, 0], chunk_positions(x, lengths, cfg))
    for i, length in enumerate(lengths):
        # a crop of a ramp: its chunk means lie within the sequence, in order, over >= half of it
        crops = bank[i, 1:, 0, :, 0]
        assert (crops >= 0).all() and (crops <= length - 1).all()
        assert (crops[:, 1] >= crops[:, 0]).all()
    full = crop_bank(x, lengths, cfg, crops=2, crop_min=1.0, rng=rng)
    np.testing.assert_allclose(full[:, 1], full[:, 0])                      # crop_min = 1: no crop


def test_fixed_crops_are_the_sequence_then_six_deterministic_crops():
    from jaxprune.data.synthetic import make_synthetic
    from jaxprune.data.features import _cropped, fixed_crops
    ds = make_synthetic(per_class=2, seed=1)
    config = FeatureConfig(chunks=4)
    views = fixed_crops(ds.x, ds.lengths, config, crop_min=0.6)
    n, _, j, _ = ds.x.shape
    assert views.shape == (n, 7, j, 4, 3)
    np.testing.assert_allclose(views[:, 0], chunk_positions(ds.x, ds.lengths, config), rtol=1e-6)
    new = np.maximum(1, np.round(0.8 * ds.lengths)).astype(np.int64)
    end = _cropped(ds.x, ds.lengths - new, new, config)                 # (1 + 0.6) / 2 = 0.8, at the end
    np.testing.assert_allclose(views[:, 6], end, rtol=1e-6)
    assert not np.allclose(views[:, 1], views[:, 3])                    # start and end crops differ
    whole = fixed_crops(ds.x, ds.lengths, config, crop_min=1.0)         # crops of the whole length
    np.testing.assert_allclose(whole, np.repeat(whole[:, :1], 7, axis=1), rtol=1e-6)
