"""Bring-your-own .npz format: round trip, defaults, and every rejected input."""

import re

import numpy as np
import pytest

from jaxprune.data.arrays import load_npz, save_npz, stratified_folds
from jaxprune.data.dataset import SkeletonDataset
from jaxprune.data.errors import DataError

N, T, J = 12, 9, 4


def arrays(seed=0):
    """A valid minimal set of keys: x (12, 9, 4, 3) float64 and y (12,) int over 3 classes."""
    rng = np.random.default_rng(seed)
    return dict(x=rng.normal(size=(N, T, J, 3)), y=np.array([0, 1, 2, 0, 0, 1, 0, 0, 0, 2, 0, 1]))


def write(path, **keys):
    with open(path, "wb") as f:
        np.savez(f, **keys)
    return path


def assert_same(a: SkeletonDataset, b: SkeletonDataset):
    for field in ("x", "lengths", "labels", "folds"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert getattr(a, field).dtype == getattr(b, field).dtype
    for field in ("class_names", "edges", "sample_ids", "units"):
        assert getattr(a, field) == getattr(b, field)


def test_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, T + 1, N).astype(np.int32)
    x = rng.normal(size=(N, T, J, 3)).astype(np.float32)
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0
    ds = SkeletonDataset(
        name="mine", x=x, lengths=lengths, labels=rng.integers(0, 3, N).astype(np.int32),
        class_names=("wave", "clap", "jump"), folds=np.arange(N, dtype=np.int32) % 3,
        edges=((0, 1), (1, 2), (2, 3)), sample_ids=tuple(f"s{i}" for i in range(N)), units="mm",
    )
    save_npz(tmp_path / "mine.npz", ds)
    back = load_npz(tmp_path / "mine.npz")
    assert back.name == "mine"
    assert_same(ds, back)


def test_round_trip_without_edges_or_ids_and_exact_file_name(tmp_path):
    ds = load_npz(write(tmp_path / "a.npz", **arrays()))
    save_npz(tmp_path / "copy.data", ds)  # written under exactly that name
    back = load_npz(tmp_path / "copy.data")
    assert back.name == "copy" and back.edges == () and back.sample_ids == ()
    assert_same(ds, back)


def test_defaults(tmp_path):
    keys = arrays()
    ds = load_npz(write(tmp_path / "walks.npz", **keys))
    assert ds.name == "walks" and ds.units == "arbitrary"
    assert ds.x.dtype == np.float32 and ds.x.shape == (N, T, J, 3)
    np.testing.assert_array_equal(ds.x, keys["x"].astype(np.float32))
    np.testing.assert_array_equal(ds.labels, keys["y"])
    np.testing.assert_array_equal(ds.lengths, np.full(N, T))
    assert ds.class_names == ("class_0", "class_1", "class_2")
    assert ds.edges == () and ds.sample_ids == ()
    # y = 0 1 2 0 0 1 0 0 0 2 0 1: class 0 in order gets 1 2 3 4 5 1 2, class 1 gets 1 2 3, ...
    np.testing.assert_array_equal(ds.folds, [1, 1, 1, 2, 3, 2, 4, 5, 1, 2, 2, 3])
    for arr in (ds.lengths, ds.labels, ds.folds):
        assert arr.dtype == np.int32


def test_stratified_folds():
    np.testing.assert_array_equal(stratified_folds(np.array([5, 5, 5, 3, 5, 5, 5, 3])),
                                  [1, 2, 3, 1, 4, 5, 1, 2])
    np.testing.assert_array_equal(stratified_folds(np.array([0, 1, 0, 1]), num_folds=2),
                                  [1, 1, 2, 2])


def test_accepts_integer_x_and_integer_valued_float_labels(tmp_path):
    keys = arrays()
    keys["x"] = np.arange(N * T * J * 3, dtype=np.int16).reshape(N, T, J, 3) % 100
    keys["y"] = keys["y"].astype(np.float64)
    keys["lengths"] = np.full(N, 5.0)
    ds = load_npz(write(tmp_path / "d.npz", **keys))
    assert ds.labels.dtype == np.int32 and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.x[:, :5], keys["x"][:, :5].astype(np.float32))


def test_padding_beyond_lengths_is_zeroed_even_if_nan(tmp_path):
    keys = arrays()
    keys["lengths"] = np.array([3] * N)
    keys["x"][:, 3:] = np.nan
    ds = load_npz(write(tmp_path / "d.npz", **keys))
    assert not ds.x[:, 3:].any()
    np.testing.assert_array_equal(ds.x[:, :3], keys["x"][:, :3].astype(np.float32))


def test_class_names_given(tmp_path):
    ds = load_npz(write(tmp_path / "d.npz", **arrays(), class_names=np.array(["a", "b", "c", "d"])))
    assert ds.class_names == ("a", "b", "c", "d") and ds.num_classes == 4


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothere.npz: file not found"):
        load_npz(tmp_path / "nothere.npz")


@pytest.mark.parametrize("content", [b"not a zip file at all", b"PK\x03\x04 truncated", b""])
def test_not_an_npz(tmp_path, content):
    (tmp_path / "bad.npz").write_bytes(content)
    with pytest.raises(DataError, match="bad.npz: not a valid .npz"):
        load_npz(tmp_path / "bad.npz")


def test_single_npy_is_not_an_npz(tmp_path):
    with open(tmp_path / "one.npz", "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DataError, match="one.npz: not an .npz archive"):
        load_npz(tmp_path / "one.npz")


def test_object_array_is_refused(tmp_path):
    keys = arrays()
    keys["x"] = keys["x"].astype(object)
    with pytest.raises(DataError, match="d.npz: key 'x': cannot load without pickle"):
        load_npz(write(tmp_path / "d.npz", **keys))


def _set(key, value):
    return lambda keys: keys.update({key: value(keys) if callable(value) else value})


def _nan_at(sample, frame, value=np.nan):
    def edit(keys):
        keys["x"][sample, frame, 1, 2] = value
    return edit


BAD = {
    "missing x": (lambda k: k.pop("x"), "'x': missing"),
    "missing y": (lambda k: k.pop("y"), "'y': missing"),
    "x string": (_set("x", lambda k: k["x"].astype(str)), "'x': expected a numeric array"),
    "x complex": (_set("x", lambda k: k["x"] + 1j), "'x': expected a numeric array"),
    "x bool": (_set("x", lambda k: k["x"] > 0), "'x': expected a numeric array"),
    "x 3-D": (_set("x", lambda k: k["x"][..., 0]), r"'x': expected shape \(N, T, J, 3\)"),
    "x last dim 2": (_set("x", lambda k: k["x"][..., :2]), r"'x': expected shape \(N, T, J, 3\)"),
    "x no samples": (_set("x", np.zeros((0, T, J, 3))), "'x': expected at least one sample"),
    "y fractional": (_set("y", lambda k: k["y"] + 0.5), "'y': expected integer values, got 0.5"),
    "y nan": (_set("y", lambda k: np.where(k["y"] == 2, np.nan, k["y"])), "'y': expected integer"),
    "y string": (_set("y", lambda k: k["y"].astype(str)), "'y': expected integers, got dtype"),
    "y negative": (_set("y", lambda k: k["y"] - 1), "'y': labels must be >= 0, got -1"),
    "y 2-D": (_set("y", lambda k: k["y"][:, None]), r"'y': expected shape \(12,\)"),
    "y short": (_set("y", lambda k: k["y"][:-1]), r"'y': expected shape \(12,\) .*got \(11,\)"),
    "y beyond class_names": (_set("class_names", np.array(["a", "b"])),
                             "'y': label 2 out of range for 2 class_names"),
    "class_names numbers": (_set("class_names", np.arange(3)), "'class_names': expected a 1-D"),
    "lengths short": (_set("lengths", np.full(N - 1, 2)), r"'lengths': expected shape \(12,\)"),
    "lengths zero": (_set("lengths", np.arange(N)), r"'lengths': must be in \[1, 9\]"),
    "lengths > T": (_set("lengths", np.full(N, T + 1)), r"'lengths': must be in \[1, 9\]"),
    "lengths fractional": (_set("lengths", np.full(N, 2.5)), "'lengths': expected integer values"),
    "folds long": (_set("folds", np.ones(N + 1, int)), r"'folds': expected shape \(12,\)"),
    "folds negative": (_set("folds", np.full(N, -1)), "'folds': must be >= 0"),
    "folds all zero": (_set("folds", np.zeros(N, int)), "no test fold"),
    "nan in x": (_nan_at(4, 2), "'x': non-finite value .* in sample 4, frame 2"),
    "inf in x": (_nan_at(0, 8, -np.inf), "'x': non-finite value .* in sample 0, frame 8"),
    "beyond float32": (_nan_at(7, 0, 1e300), "'x': non-finite value .* in sample 7, frame 0"),
    "nan in valid frames": (lambda k: (k.update(lengths=np.full(N, 3)), _nan_at(1, 2)(k)),
                            "in sample 1, frame 2"),
    "edges (E, 3)": (_set("edges", np.zeros((2, 3), int)), r"'edges': expected shape \(E, 2\)"),
    "edges 1-D": (_set("edges", np.array([0, 1])), r"'edges': expected shape \(E, 2\)"),
    "edges out of range": (_set("edges", np.array([[0, 1], [2, 4]])),
                           r"'edges': joint indices must be in \[0, 4\)"),
    "edges negative": (_set("edges", np.array([[0, -1]])), r"'edges': joint indices must be in"),
    "edges self-loop": (_set("edges", np.array([[0, 1], [2, 2]])), r"'edges': self-loop \(2, 2\)"),
    "edges float": (_set("edges", np.array([[0, 1.5]])), "'edges': expected integer values"),
    "single class": (_set("y", np.zeros(N, int)), "need at least 2 classes"),
    "sample_ids short": (_set("sample_ids", np.array(["a"])), "'sample_ids': expected"),
    "units array": (_set("units", np.array(["mm", "cm"])), "'units': expected a scalar string"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input(tmp_path, case):
    edit, message = BAD[case]
    keys = arrays()
    edit(keys)
    path = write(tmp_path / "d.npz", **keys)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: .*{message}") as info:
        load_npz(path)
    assert info.value.path == str(path)


def test_accepts_empty_edges(tmp_path):
    for edges in (np.zeros((0, 2), int), np.array([], int)):
        assert load_npz(write(tmp_path / "d.npz", **arrays(), edges=edges)).edges == ()
