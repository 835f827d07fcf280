"""SBU loader: exact parsing on written fixtures, every bad input named, and the real release."""

import numpy as np
import pytest

from jaxprune.data.errors import DataError
from jaxprune.data.sbu import SBU_CLASS_NAMES, load_sbu, read_skeleton_file


def _row(frame, rng):
    vals = rng.uniform(0.1, 0.9, size=90).round(5)
    return [frame, *vals]


def write_seq(path, rows, crlf=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    end = "\r\n" if crlf else "\n"
    path.write_text(end.join(",".join(str(v) for v in r) for r in rows) + end)


@pytest.fixture
def tiny(tmp_path):
    """Two sets (folds 1 and 2), three classes, known values."""
    rng = np.random.default_rng(0)
    rows = {}
    for s in ("s01s02", "s02s03"):
        for c in ("01", "03", "08"):
            for q, t in (("001", 5), ("002", 7)):
                r = [_row(10 + i, rng) for i in range(t)]
                rows[(s, c, q)] = r
                write_seq(tmp_path / s / c / q / "skeleton_pos.txt", r)
    return tmp_path, rows


def test_parses_values_labels_folds(tiny):
    root, rows = tiny
    ds = load_sbu(root)
    assert ds.x.shape == (12, 7, 30, 3)
    assert sorted(np.unique(ds.folds)) == [1, 2]
    first = np.asarray(rows[("s01s02", "01", "001")])[:, 1:].reshape(5, 30, 3)
    i = ds.sample_ids.index("s01s02/01/001/skeleton_pos.txt")
    np.testing.assert_allclose(ds.x[i, :5, :, 0], 1280 - 2560 * first[..., 0], rtol=1e-6)
    np.testing.assert_allclose(ds.x[i, :5, :, 1], 960 - 1920 * first[..., 1], rtol=1e-6)
    np.testing.assert_allclose(ds.x[i, :5, :, 2], first[..., 2] * 10000 / 7.8125, rtol=1e-6)
    assert (ds.x[i, 5:] == 0).all() and ds.lengths[i] == 5
    assert ds.class_names == SBU_CLASS_NAMES
    assert sorted(set(ds.labels.tolist())) == [0, 2, 7]
    j = ds.sample_ids.index("s02s03/08/002/skeleton_pos.txt")
    assert ds.labels[j] == 7 and ds.folds[j] == 2 and ds.lengths[j] == 7


def test_lf_and_crlf_read_the_same(tmp_path):
    rng = np.random.default_rng(1)
    rows = [_row(i, rng) for i in range(4)]
    write_seq(tmp_path / "a.txt", rows, crlf=True)
    write_seq(tmp_path / "b.txt", rows, crlf=False)
    np.testing.assert_array_equal(read_skeleton_file(tmp_path / "a.txt"), read_skeleton_file(tmp_path / "b.txt"))


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"1,2,3\r\n", r"line 1: expected 91 comma-separated columns .* got 3"),
    (("1," + ",".join(["0.5"] * 90) + "\r\n2," + ",".join(["0.5"] * 89) + "\r\n").encode(), r"line 2: expected 91"),
    (("1," + ",".join(["0.5"] * 89) + ",abc\r\n").encode(), r"line 1: non-numeric"),
    (("1," + ",".join(["0.5"] * 89) + ",nan\r\n").encode(), r"line 1: NaN or infinite"),
    (("1," + ",".join(["0.5"] * 89) + ",inf\r\n").encode(), r"line 1: NaN or infinite"),
    (b"1,\xff\xfe,0.5\r\n", "not UTF-8"),
])
def test_bad_files_name_file_and_line(tmp_path, content, message):
    f = tmp_path / "s01s02" / "01" / "001" / "skeleton_pos.txt"
    f.parent.mkdir(parents=True)
    f.write_bytes(content)
    with pytest.raises(DataError, match=message) as e:
        load_sbu(tmp_path)
    assert "skeleton_pos.txt" in str(e.value)


def test_bad_layouts(tmp_path_factory, tiny):
    with pytest.raises(DataError, match="not found"):
        load_sbu(tmp_path_factory.mktemp("x") / "nowhere")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DataError, match="no set folders"):
        load_sbu(empty)
    root, _ = tiny
    (root / "s01s02" / "09").mkdir()
    with pytest.raises(DataError, match="unknown class folder '09'"):
        load_sbu(root)
    (root / "s01s02" / "09").rmdir()
    (root / "s09s09").mkdir()
    with pytest.raises(DataError, match="unknown set folder 's09s09'"):
        load_sbu(root)
    (root / "s09s09").rmdir()
    (root / "s01s02" / "01" / "003").mkdir()
    with pytest.raises(DataError, match="missing skeleton_pos.txt"):
        load_sbu(root)


def test_real_release_matches_its_readme(sbu):
    """Counts from data/README.md: 282 sequences, 6822 frames, folds 55/52/56/54/65, per class."""
    assert sbu.x.shape[0] == 282 and sbu.x.shape[2:] == (30, 3)
    assert int(sbu.lengths.sum()) == 6822
    assert (sbu.lengths.min(), sbu.lengths.max()) == (10, 46)
    assert [int((sbu.folds == k).sum()) for k in range(1, 6)] == [55, 52, 56, 54, 65]
    assert np.bincount(sbu.labels).tolist() == [42, 43, 40, 41, 18, 21, 39, 38]
    # z is de-normalised from the z column: in about [0, 10000] mm, never the y column's range.
    valid = np.arange(sbu.x.shape[1])[None] < sbu.lengths[:, None]
    z = sbu.x[..., 2][valid]
    assert z.min() > -500 and z.max() < 11000 and np.median(z) > 1000


def test_real_first_value(sbu_path):
    """The first row of s01s02/01/001 starts '55,0.21496,0.32665,1.7849'."""
    x = read_skeleton_file(sbu_path / "s01s02" / "01" / "001" / "skeleton_pos.txt")
    np.testing.assert_allclose(x[0, 0], [1280 - 2560 * 0.21496, 960 - 1920 * 0.32665, 1.7849 * 10000 / 7.8125],
                               rtol=1e-6)
