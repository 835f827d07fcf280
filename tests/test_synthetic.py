"""The synthetic dataset: determinism, shapes, balance, stratified folds, time-reversed pairs."""

import numpy as np
import pytest

from jaxprune.data.synthetic import make_synthetic
from jaxprune.graphs import SBU_BONES

SMALL = dict(num_classes=4, per_class=6, min_len=8, max_len=16)


def test_same_seed_same_arrays_other_seed_other_arrays():
    a, b, c = make_synthetic(seed=3, **SMALL), make_synthetic(seed=3, **SMALL), make_synthetic(seed=4, **SMALL)
    for field in ("x", "lengths", "labels", "folds"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.class_names == b.class_names and a.sample_ids == b.sample_ids
    assert not np.array_equal(a.x, c.x)


def test_shapes_and_ranges():
    ds = make_synthetic(seed=0, **SMALL)
    n = 4 * 6
    assert ds.name == "synthetic" and ds.units == "mm"
    assert ds.x.shape == (n, 16, 30, 3) and ds.x.dtype == np.float32
    assert ds.lengths.shape == ds.labels.shape == ds.folds.shape == (n,)
    assert ds.lengths.dtype == ds.labels.dtype == np.int32
    assert ds.lengths.min() >= 8 and ds.lengths.max() <= 16
    assert len(np.unique(ds.lengths)) > 1  # lengths vary
    assert ds.edges == SBU_BONES and ds.num_joints == 30
    assert len(ds.sample_ids) == n and len(set(ds.sample_ids)) == n
    assert np.isfinite(ds.x).all()


def test_default_size():
    ds = make_synthetic()
    assert ds.x.shape == (384, 40, 30, 3) and ds.num_classes == 8
    assert ds.lengths.min() >= 20


def test_balanced_labels_stratified_folds_unique_names():
    ds = make_synthetic(seed=1, num_classes=6, per_class=9, min_len=5, max_len=10)
    np.testing.assert_array_equal(np.bincount(ds.labels), [9] * 6)
    assert set(np.unique(ds.folds)) == {0, 1}
    assert ds.test_folds == (1,)
    for c in range(6):
        in_class = ds.folds[ds.labels == c]
        assert (in_class == 1).sum() == 3  # round(9 / 3) test samples in every class
    assert len(ds.class_names) == 6 and len(set(ds.class_names)) == 6
    # pairs share everything but the direction of time
    for k in range(3):
        out, back = ds.class_names[2 * k], ds.class_names[2 * k + 1]
        assert out.endswith(f"_out{k}") and back.endswith(f"_back{k}")
        assert out[: -len(f"_out{k}")] == back[: -len(f"_back{k}")]


def test_test_fraction():
    ds = make_synthetic(seed=0, num_classes=2, per_class=10, min_len=4, max_len=6, test_fraction=0.5)
    for c in range(2):
        assert (ds.folds[ds.labels == c] == 1).sum() == 5


def test_padding_frames_are_zero_and_real_frames_are_not():
    ds = make_synthetic(seed=2, **SMALL)
    t = np.arange(ds.x.shape[1])
    pad = t[None, :] >= ds.lengths[:, None]
    assert pad.any()
    np.testing.assert_array_equal(ds.x[pad], 0.0)
    assert (np.abs(ds.x[~pad]).sum(axis=(-1, -2)) > 0).all()


def _resampled_motion(ds, i, points=16):
    """Sample i resampled to ``points`` time steps, each joint's temporal mean removed:
    (points, J*3), the motion without the static pose, gap and camera placement."""
    length = int(ds.lengths[i])
    s = ds.x[i, :length].reshape(length, -1).astype(np.float64)
    s = s - s.mean(0, keepdims=True)
    tt = np.linspace(0, length - 1, points)
    return np.stack([np.interp(tt, np.arange(length), s[:, k]) for k in range(s.shape[1])], axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_classes_are_time_reversals(seed):
    """The mean motion of class 2k played backwards is much closer to class 2k+1's mean motion
    than to its own: the pair differs by the direction of time (and the motion is not symmetric)."""
    ds = make_synthetic(seed=seed, num_classes=8, per_class=16, min_len=10, max_len=20)
    means = [np.mean([_resampled_motion(ds, i) for i in np.flatnonzero(ds.labels == c)], axis=0)
             for c in range(8)]
    for k in range(4):
        fwd, back = means[2 * k], means[2 * k + 1]
        reversed_fwd = fwd[::-1]
        to_pair = np.linalg.norm(reversed_fwd - back)
        to_self = np.linalg.norm(reversed_fwd - fwd)
        assert to_pair < 0.75 * to_self, (ds.class_names[2 * k], to_pair, to_self)
        # and the two classes are not the same motion played the same way
        assert np.linalg.norm(fwd - back) > 1.3 * to_pair


@pytest.mark.parametrize("kwargs", [dict(num_classes=1), dict(per_class=1), dict(min_len=0),
                                    dict(min_len=10, max_len=9)])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_synthetic(**kwargs)
