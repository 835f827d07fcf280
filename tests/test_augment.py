"""Augmentation: identity when inactive, exact geometry of each transform, keys, jit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CHEAP_SETTING
from jaxprune.data.augment import AugmentConfig
from jaxprune.data.augment import augment as eager_augment

# jitted once per config: eager vmap compiles every primitive and is slow on a busy CPU
augment = jax.jit(eager_augment, static_argnums=2)

B, J, M = 16, 6, 3


def batch(seed=0, b=B, j=J):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(b, j, M, 3)), jnp.float32)


def pairwise(x):
    """Pairwise distances between all points (J*M of them) of each sample: (B, P, P)."""
    p = np.asarray(x, np.float64).reshape(x.shape[0], -1, 3)
    return np.linalg.norm(p[:, :, None] - p[:, None, :], axis=-1)


def test_inactive_is_identity():
    cfg = AugmentConfig()
    assert not cfg.active
    x = batch()
    assert eager_augment(jax.random.key(0), x, cfg) is x
    np.testing.assert_array_equal(augment(jax.random.key(0), x, cfg), x)
    # rotation about an axis alone does not activate anything; swap_groups=1 is no grouping
    assert not AugmentConfig(vertical_axis=2, swap_groups=1).active
    for cfg in (AugmentConfig(rotate_deg=10), AugmentConfig(scale=0.1), AugmentConfig(swap_groups=2),
                AugmentConfig(noise=0.01)):
        assert cfg.active


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_rotation_keeps_vertical_and_distances(axis):
    x = batch(1)
    cfg = AugmentConfig(rotate_deg=30.0, vertical_axis=axis)
    out = np.asarray(augment(jax.random.key(1), x, cfg))
    np.testing.assert_allclose(out[..., axis], np.asarray(x)[..., axis], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pairwise(out), pairwise(x), rtol=1e-4, atol=1e-4)
    # norms preserved too (a rotation about the origin)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1),
                               rtol=1e-4, atol=1e-5)
    # it does rotate, and by at most rotate_deg: the signed angle each sample's first point turns
    i, k = [c for c in range(3) if c != axis]
    p0, p1 = np.asarray(x)[:, 0, 0], out[:, 0, 0]
    angles = np.degrees(np.arctan2(p0[:, i] * p1[:, k] - p0[:, k] * p1[:, i],
                                   p0[:, i] * p1[:, i] + p0[:, k] * p1[:, k]))
    assert np.abs(angles).max() <= 30.0 + 1e-3
    assert np.abs(angles).max() > 10.0  # 16 uniform draws in [-30, 30]: not all near 0
    assert len(np.unique(np.round(angles, 3))) == B  # one angle per sample


def test_scale_is_isotropic_and_in_range():
    x = batch(3, b=64)
    out = np.asarray(augment(jax.random.key(3), x, AugmentConfig(scale=0.2)))
    ratio = np.linalg.norm(out, axis=-1) / np.linalg.norm(np.asarray(x), axis=-1)  # (B, J, M)
    per_sample = ratio.reshape(64, -1)
    # one factor per sample, applied to every coordinate
    np.testing.assert_allclose(per_sample, np.broadcast_to(per_sample[:, :1], per_sample.shape), rtol=1e-5)
    np.testing.assert_allclose(out, np.asarray(x) * per_sample[:, :1, None, None], rtol=1e-5,
                               atol=1e-6)
    assert (per_sample >= 0.8 - 1e-6).all() and (per_sample <= 1.2 + 1e-6).all()
    assert per_sample[:, 0].std() > 0.05  # factors vary across samples


def test_swap_groups_exchanges_halves_exactly():
    x = batch(4, b=64)
    xs = np.asarray(x)
    swapped = np.concatenate([xs[:, J // 2:], xs[:, : J // 2]], axis=1)
    cfg = AugmentConfig(swap_groups=2)
    seen_same = seen_swapped = 0
    for k in range(4):
        out = np.asarray(augment(jax.random.key(10 + k), x, cfg))
        for i in range(len(xs)):
            same = np.array_equal(out[i], xs[i])
            swap = np.array_equal(out[i], swapped[i])
            assert same or swap, f"sample {i}: neither the input nor its swapped halves"
            seen_same += same
            seen_swapped += swap
    assert seen_same > 0 and seen_swapped > 0
    assert 0.3 < seen_swapped / (seen_same + seen_swapped) < 0.7  # probability 1/2


def test_swap_three_groups_reverses_group_order():
    x = np.arange(6 * 2 * 3, dtype=np.float32).reshape(1, 6, 2, 3)
    cfg = AugmentConfig(swap_groups=3)
    xs = np.repeat(x, 32, axis=0)
    out = np.asarray(augment(jax.random.key(0), jnp.asarray(xs), cfg))
    reversed_groups = x[:, [4, 5, 2, 3, 0, 1]]
    for o in out:
        assert np.array_equal(o, x[0]) or np.array_equal(o, reversed_groups[0])


def test_noise_has_requested_std():
    x = jnp.zeros((64, J, M, 3), jnp.float32)
    out = np.asarray(augment(jax.random.key(5), x, AugmentConfig(noise=0.05)))
    assert out.std() == pytest.approx(0.05, rel=0.1)
    assert abs(out.mean()) < 0.01


FULL = AugmentConfig(rotate_deg=20.0, vertical_axis=1, scale=0.1, swap_groups=2, noise=0.01)


def test_deterministic_for_a_key():
    x = batch(6)
    a = augment(jax.random.key(7), x, FULL)
    b = augment(jax.random.key(7), x, FULL)
    np.testing.assert_array_equal(a, b)
    c = augment(jax.random.key(8), x, FULL)
    assert not np.allclose(a, c)
    chex.assert_shape(a, x.shape)
    # samples are transformed independently: identical inputs get different outputs
    same = jnp.repeat(x[:1], B, axis=0)
    out = np.asarray(augment(jax.random.key(9), same, FULL))
    assert not np.allclose(out[0], out[1])


class AugmentJitTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_and_eager_agree(self):
        x = batch(7)
        fn = self.variant(eager_augment, static_argnums=2)
        out = fn(jax.random.key(11), x, FULL)
        expected = augment(jax.random.key(11), x, FULL)
        chex.assert_shape(out, (B, J, M, 3))
        chex.assert_trees_all_close(out, expected, rtol=1e-5, atol=1e-5)


def test_pick_version_takes_one_version_per_sample():
    from jaxprune.data.augment import pick_version
    versions = jnp.arange(5 * 3, dtype=jnp.float32).reshape(5, 3, 1, 1, 1) * jnp.ones((1, 1, 2, 4, 3))
    picked = pick_version(jax.random.key(0), versions)
    assert picked.shape == (5, 2, 4, 3)
    v = np.asarray(picked[:, 0, 0, 0]).astype(int)
    assert all(3 * i <= v[i] < 3 * (i + 1) for i in range(5))
    out = augment(jax.random.key(1), versions, AugmentConfig())               # inactive: just the pick
    assert out.shape == (5, 2, 4, 3)


def test_bad_crop_settings():
    with pytest.raises(ValueError, match="crops"):
        AugmentConfig(crops=-1)
    with pytest.raises(ValueError, match="crop_min"):
        AugmentConfig(crop_min=0.0)


def test_joint_drop_zeroes_whole_joints():
    chunks = jnp.ones((64, 10, 4, 3))
    out = np.asarray(eager_augment(jax.random.key(3), chunks, AugmentConfig(joint_drop=0.3)))
    per_joint = out.reshape(64, 10, -1)
    assert set(np.unique(per_joint.min(-1))) <= {0.0, 1.0}
    assert (per_joint.min(-1) == per_joint.max(-1)).all()       # a joint is dropped whole or kept
    assert 0.2 < (per_joint[..., 0] == 0).mean() < 0.4
    with pytest.raises(ValueError, match="joint_drop"):
        AugmentConfig(joint_drop=1.0)


def test_test_time_swap_averages_both_orders():
    from jaxprune.data.augment import swap_groups
    from jaxprune.data.features import FeatureConfig
    from jaxprune.models import gcn
    from jaxprune.task.forward import make_forward
    x = jax.random.normal(jax.random.key(0), (3, 6, 2, 3))
    swapped = swap_groups(x, 2)
    np.testing.assert_array_equal(swapped[:, :3], x[:, 3:])
    np.testing.assert_array_equal(swap_groups(swapped, 2), x)
    cfg = gcn.GCNConfig(num_nodes=6, num_features=6, num_classes=2, edges=((0, 1), (3, 4)), channels=2,
                        num_blocks=1, hidden=4)
    params = gcn.init(jax.random.key(1), cfg)
    plain = make_forward(cfg, FeatureConfig(chunks=2), AugmentConfig(swap_groups=2))
    tta = make_forward(cfg, FeatureConfig(chunks=2), AugmentConfig(swap_groups=2, test_swap=True))
    expected = 0.5 * (plain(params, x, None, False) + plain(params, swapped, None, False))
    np.testing.assert_allclose(tta(params, x, None, False), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="test_swap"):
        AugmentConfig(test_swap=True)


def test_test_time_crops_average_the_probabilities_of_the_views():
    from jaxprune.data.features import FeatureConfig
    from jaxprune.models import gcn
    from jaxprune.task.forward import make_forward
    cfg = gcn.GCNConfig(num_nodes=6, num_features=6, num_classes=3, edges=((0, 1), (3, 4)), channels=2,
                        num_blocks=1, hidden=4)
    params = gcn.init(jax.random.key(1), cfg)
    views = jax.random.normal(jax.random.key(0), (4, 7, 6, 2, 3))          # (B, V, J, M, 3)
    plain = make_forward(cfg, FeatureConfig(chunks=2), AugmentConfig())
    tta = make_forward(cfg, FeatureConfig(chunks=2), AugmentConfig(test_crops=True))
    probs = np.mean([jax.nn.softmax(plain(params, views[:, v], None, False), -1) for v in range(7)], 0)
    np.testing.assert_allclose(jnp.exp(tta(params, views, None, False)), probs, rtol=1e-5)
    np.testing.assert_allclose(tta(params, views[:, 0], None, False), plain(params, views[:, 0], None, False))


def test_a_run_with_test_crops_scores_the_views(monkeypatch):
    import jaxprune.task.folds as folds
    from jaxprune.config import override
    from jaxprune.data.features import fixed_crops
    from jaxprune.data.synthetic import make_synthetic
    from jaxprune.run_config import RunConfig
    from jaxprune.runner import train_fold
    from jaxprune.task.folds import fold_data
    from jaxprune.task.forward import gcn_config, make_forward
    ds = make_synthetic(per_class=8, seed=0)
    config = override(RunConfig(), ["train.epochs=40", "augment.test_crops=true", "augment.crop_min=0.6",
                                         CHEAP_SETTING])
    data = fold_data(ds, 1, config.features, config.augment)
    assert data.test_views.shape[:2] == (len(data.test_labels), 7) and data.eval_chunks is data.test_views
    np.testing.assert_allclose(data.test_views[:, 0], data.test_chunks, rtol=1e-6)
    assert fold_data(ds, 1, config.features).test_views is None           # off by default

    # Views that are other samples' sequences: scoring them gives another accuracy than scoring
    # the test sequences, so the run's row tells which of the two it scored.
    monkeypatch.setattr(folds, "fixed_crops", lambda *a: np.roll(fixed_crops(*a), 1, axis=0))
    result = train_fold(ds, 1, config, progress=False)
    shifted = fold_data(ds, 1, config.features, config.augment)
    forward = make_forward(gcn_config(ds, config), config.features, config.augment)

    def scored(chunks):
        return 100 * np.mean(np.argmax(forward(result["params"], jnp.asarray(chunks), None, False), -1)
                             == shifted.test_labels)
    assert scored(shifted.test_views) != scored(shifted.test_chunks)
    assert result["rates"][0]["accuracy"] == pytest.approx(scored(shifted.test_views))
