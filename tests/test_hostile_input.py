"""Hostile input (issue 6): one corpus of broken inputs, written at test time, each answered by a
clear error naming the file (and line) or the setting at fault, or by a documented skip.

Every case goes through the entry point a user hits: ``jaxprune.cli.main([...])`` (exit status 2,
stderr one line ``jaxprune: error: ...``, no traceback), or the loader function (a DataError
whose message names the file). Data cases run ``jaxprune train --fold 99``: a loader that wrongly
accepted the input would then stop at "no test fold 99" (a failed check here), never train.
Settings cases point at a missing .npz for the same reason: a setting that wrongly passed would
meet "file not found". The few settings that can only be checked against the data (joint counts)
use a tiny .npz and ``--epochs 1``; they fail before the first step.

SBU cases corrupt copies of five real files (../shared/data/sbu, or written ones when it is
absent); FPHA cases build the official layout in tmp_path.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import CHEAP_COMPILE, sbu_dir
from jaxprune.cli import main
from jaxprune.data.arrays import load_npz
from jaxprune.data.errors import DataError
from jaxprune.data.fpha import ANNOTATION_DIR, SPLIT_FILE, load_fpha
from jaxprune.data.sbu import load_sbu


def cli_error(capsys, argv) -> str:
    """Runs main(argv): status 2, stderr one line 'jaxprune: error: ...' without a traceback."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, (code, captured.out[-2000:], captured.err[-2000:])
    err = captured.err
    assert err.startswith("jaxprune: error: "), err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def train_argv(dataset: str, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", dataset, "--data-dir", str(data), "--out", str(out), "--quiet",
            "--fold", "99", *CHEAP_COMPILE, *extra]


def expect_data_error(capsys, tmp_path, dataset, data, pattern):
    """The CLI refuses the data with ``pattern`` in its one line, and writes nothing."""
    out = tmp_path / "out"
    err = cli_error(capsys, train_argv(dataset, data, out))
    assert re.search(pattern, err), err
    assert not out.exists()
    return err


# ----------------------------------------------------------------------------------------------
# SBU: <root>/<set>/<class>/<seq>/skeleton_pos.txt, 91 comma-separated columns, CRLF.

SBU_FILES = ("s01s02/01/001", "s01s02/02/001", "s02s03/01/001", "s02s03/02/001", "s01s03/01/001")
A = "s01s02/01/001/skeleton_pos.txt"


def _fake_sbu_file(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    rows = [[10 + i, *rng.uniform(0.1, 0.9, 90).round(5)] for i in range(12)]
    return "".join(",".join(str(v) for v in r) + "\r\n" for r in rows).encode()


@pytest.fixture
def sbu_root(tmp_path) -> Path:
    """Five sequences (3 sets in folds 1, 2, 3; classes 01 and 02): copies of the real files."""
    real = sbu_dir()
    root = tmp_path / "sbu"
    for k, seq in enumerate(SBU_FILES):
        f = root / seq / "skeleton_pos.txt"
        f.parent.mkdir(parents=True)
        f.write_bytes((real / seq / "skeleton_pos.txt").read_bytes() if real else _fake_sbu_file(k))
    return root


def _edit_bytes(rel, fn):
    def edit(root):
        f = root / rel
        f.write_bytes(fn(f.read_bytes()))
    return edit


def _edit_field(line: int, column: int, value: str, rel=A):
    """Line ``line`` (1-based), comma field ``column`` (0-based) replaced by ``value``."""
    def fn(data):
        rows = data.decode().split("\r\n")
        fields = rows[line - 1].split(",")
        fields[column] = value
        rows[line - 1] = ",".join(fields)
        return "\r\n".join(rows).encode()
    return _edit_bytes(rel, fn)


def _edit_row(line: int, fn_row, rel=A):
    def fn(data):
        rows = data.decode().split("\r\n")
        rows[line - 1] = fn_row(rows[line - 1])
        return "\r\n".join(rows).encode()
    return _edit_bytes(rel, fn)


def _rows(data: bytes) -> int:
    return data.count(b"\r\n")


def _mkdir_copy(rel_dir):
    def edit(root):
        f = root / rel_dir / "skeleton_pos.txt"
        f.parent.mkdir(parents=True)
        f.write_bytes((root / A).read_bytes())
    return edit


def _remove_all_sequences(root):
    for seq in SBU_FILES:
        (root / seq / "skeleton_pos.txt").unlink()
        (root / seq).rmdir()


# (id, edit of the root, path the message must name (relative to the root), regex on the message)
SBU_CASES = [
    ("truncated mid-row", _edit_bytes(A, lambda d: d[: len(d) - 2 - 40]), A,
     r", line (\d+): expected 91 comma-separated columns .*got \d+ \(the last row has no line "
     r"end: the file looks truncated\)"),
    ("truncated inside the last number", _edit_bytes(A, lambda d: d[: len(d) - 3]), A,
     r", line \d+: the last row has no line end: the file looks truncated"),
    ("empty file", _edit_bytes(A, lambda d: b""), A, r": empty file"),
    ("blank lines only", _edit_bytes(A, lambda d: b"\r\n  \r\n"), A, r": empty file"),
    ("92 columns", _edit_row(2, lambda r: r + ",0.5"), A,
     r", line 2: expected 91 comma-separated columns .*got 92"),
    ("90 columns", _edit_row(3, lambda r: r.rsplit(",", 1)[0]), A,
     r", line 3: expected 91 comma-separated columns .*got 90"),
    ("semicolon separated", _edit_row(1, lambda r: r.replace(",", ";")), A,
     r", line 1: expected 91 comma-separated columns .*got 1"),
    ("NaN coordinate", _edit_field(2, 5, "nan"), A, r", line 2: NaN or infinite coordinate"),
    ("inf coordinate", _edit_field(4, 90, "-inf"), A, r", line 4: NaN or infinite coordinate"),
    ("overflowing literal 1e999", _edit_field(1, 1, "1e999"), A, r", line 1: NaN or infinite"),
    ("beyond float32 once in mm", _edit_field(3, 2, "1e38"), A,
     r", line 3: coordinate beyond float32 range"),
    ("non-numeric value", _edit_field(2, 7, "0.5a"), A, r", line 2: non-numeric value"),
    ("empty field", _edit_field(2, 7, ""), A, r", line 2: non-numeric value"),
    ("digit groups 0.21_496", _edit_field(2, 7, "0.21_496"), A, r", line 2: non-numeric value"),
    ("digit groups in the frame number", _edit_field(3, 0, "1_0"), A, r", line 3: non-numeric value"),
    ("hexadecimal float", _edit_field(2, 9, "0x1p-2"), A, r", line 2: non-numeric value"),
    ("non-UTF-8 bytes", _edit_bytes(A, lambda d: d.replace(b"\r\n", b"\r\n\xff\xfe", 1)), A,
     r", line 2: not UTF-8 text \(byte 0xff"),
    ("unknown class folder", _mkdir_copy("s01s02/09/001"), "s01s02/09",
     r": unknown class folder '09': expected 01\.\.08"),
    ("class folder without zero", _mkdir_copy("s01s02/1/001"), "s01s02/1", r"unknown class folder '1'"),
    ("unknown set folder", _mkdir_copy("s08s01/01/001"), "s08s01", r": unknown set folder 's08s01'"),
    ("sequence folder without its file", lambda r: (r / "s01s02/01/002").mkdir(), "s01s02/01/002",
     r": missing skeleton_pos.txt"),
    ("skeleton_pos.txt is a folder", lambda r: (r / "s01s02/01/002/skeleton_pos.txt").mkdir(parents=True),
     "s01s02/01/002", r": missing skeleton_pos.txt"),
    ("no sequence at all", _remove_all_sequences, "", r": no skeleton_pos.txt files found"),
    # links (issue 18, group 10): followed, but never silently skipped or counted twice
    ("dangling set link", lambda r: (r / "s03s02").symlink_to(r / "gone"), "s03s02", r": a link that points nowhere"),
    ("looping class link", lambda r: (r / "s01s02/05").symlink_to(r / "s01s02/05"), "s01s02/05",
     r": a link that loops"),
    ("looping pair of links", lambda r: ((r / "s01s02/06").symlink_to(r / "s01s02/07"),
                                         (r / "s01s02/07").symlink_to(r / "s01s02/06")), "s01s02/06",
     r": a link that loops"),
    ("set linked to another set", lambda r: (r / "s03s02").symlink_to(r / "s01s02", target_is_directory=True),
     "s03s02/01/001/skeleton_pos.txt", r": the same file as s01s02/01/001/skeleton_pos.txt \(through a link\)"),
    ("sequence linked twice", lambda r: (r / "s01s02/01/009").symlink_to(r / "s01s02/01/001"),
     "s01s02/01/009/skeleton_pos.txt", r": the same file as s01s02/01/001/skeleton_pos.txt"),
    ("sets of one fold only", lambda r: [shutil.rmtree(r / s) for s in ("s02s03", "s01s03")], "",
     r": dataset 'sbu': every sample is in test fold 1, so its split has no training data"),
]


@pytest.mark.filterwarnings("ignore:.*SBU sets missing")  # the fixture holds 3 of the 21 sets
@pytest.mark.parametrize("edit, where, pattern", [c[1:] for c in SBU_CASES], ids=[c[0] for c in SBU_CASES])
def test_sbu(capsys, tmp_path, sbu_root, edit, where, pattern):
    edit(sbu_root)
    err = expect_data_error(capsys, tmp_path, "sbu", sbu_root, pattern)
    assert f"error: {sbu_root / where}".rstrip("/") + ("," if "line" in pattern else ":") in err
    with pytest.raises(DataError, match=pattern):  # the loader itself says the same
        load_sbu(sbu_root)


@pytest.mark.parametrize("data_dir, pattern", [
    ("nowhere", r"nowhere: SBU data directory not found"),
    ("empty", r"empty: no set folders"),
    ("a_file.txt", r"a_file.txt: SBU data directory not found"),
], ids=["missing data dir", "empty data dir", "data dir is a file"])
def test_sbu_data_dir(capsys, tmp_path, data_dir, pattern):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file.txt").write_text("x")
    expect_data_error(capsys, tmp_path, "sbu", tmp_path / data_dir, pattern)


def test_sbu_missing_set_folder_is_a_documented_skip(capsys, tmp_path, sbu_root):
    """A set of the release that is absent: the rest loads, with a warning naming the missing
    sets and the folds they leave incomplete; asking for the now empty fold is an error."""
    shutil.rmtree(sbu_root / "s02s03")
    with pytest.warns(UserWarning, match=r"19 of the 21 SBU sets missing or empty \(s01s07, s02s01, "
                      r"s02s03, .*fold\(s\) \[1, 2, 3, 4, 5\] are incomplete"):
        ds = load_sbu(sbu_root)
    assert ds.test_folds == (1, 3) and len(ds.sample_ids) == 3
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="SBU sets missing"):
        err = cli_error(capsys, ["train", "--dataset", "sbu", "--data-dir", str(sbu_root), "--out",
                                 str(out), "--quiet", "--fold", "2"])
    assert "has no test fold 2; its folds are [1, 3]" in err and not out.exists()


# ----------------------------------------------------------------------------------------------
# FPHA: data_split_action_recognition.txt + Hand_pose_annotation_v1/Subject_k/<action>/<seq>/skeleton.txt

FPHA_SEQS = (("Subject_1/open_juice_bottle/1", 0), ("Subject_1/high_five/1", 44),
             ("Subject_2/open_juice_bottle/1", 0), ("Subject_2/high_five/1", 44))
# split lines: 1 "Training 2", 2-3 entries, 4 "Test 2", 5-6 entries
SKEL = f"{ANNOTATION_DIR}/Subject_1/high_five/1/skeleton.txt"  # on split line 3


def _fpha_rows(seed: int, frames: int = 6) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{i:04d} " + " ".join(f"{v:.4f}" for v in rng.uniform(-300, 300, 63)) for i in range(frames)]


@pytest.fixture
def fpha_root(tmp_path) -> Path:
    root = tmp_path / "fpha"
    for k, (seq, _) in enumerate(FPHA_SEQS):
        f = root / ANNOTATION_DIR / seq / "skeleton.txt"
        f.parent.mkdir(parents=True)
        f.write_text("\n".join(_fpha_rows(k)) + "\n")
    lines = (["Training 2"] + [f"{s} {lab}" for s, lab in FPHA_SEQS[:2]]
             + ["Test 2"] + [f"{s} {lab}" for s, lab in FPHA_SEQS[2:]])
    (root / SPLIT_FILE).write_text("\n".join(lines) + "\n")
    return root


def _split_line(line: int, text: str | None):
    """Split-file line ``line`` replaced by ``text`` (None: deleted)."""
    def edit(root):
        lines = (root / SPLIT_FILE).read_text().splitlines()
        if text is None:
            del lines[line - 1]
        else:
            lines[line - 1] = text
        (root / SPLIT_FILE).write_text("\n".join(lines) + "\n")
    return edit


def _write(rel, content: bytes):
    def edit(root):
        (root / rel).write_bytes(content)
    return edit


def _skel_line(line: int, fn):
    def edit(root):
        rows = (root / SKEL).read_text().splitlines()
        rows[line - 1] = fn(rows[line - 1])
        (root / SKEL).write_text("\n".join(rows) + "\n")
    return edit


def _skel_token(line: int, column: int, value: str):
    def fn(row):
        tokens = row.split()
        tokens[column] = value
        return " ".join(tokens)
    return _skel_line(line, fn)


FPHA_CASES = [
    # split file
    ("split: missing entries", _split_line(1, "Training 3"), SPLIT_FILE,
     r", line 4: header 'Training 3' \(line 1\) announces 3 entries, found 2"),
    ("split: Test section short", _split_line(6, None), SPLIT_FILE,
     r": header 'Test 2' \(line 4\) announces 2 entries, found 1"),
    ("split: duplicate entry", _split_line(5, f"{FPHA_SEQS[0][0]} 0"), SPLIT_FILE,
     r", line 5: duplicate entry 'Subject_1/open_juice_bottle/1' \(first on line 2\)"),
    ("split: names a missing sequence", _split_line(3, "Subject_1/high_five/9 44"), SPLIT_FILE,
     r", line 3: sequence 'Subject_1/high_five/9' has no annotation file"),
    ("split: label 45", _split_line(2, f"{FPHA_SEQS[0][0]} 45"), SPLIT_FILE,
     r", line 2: label 45 out of range \[0, 45\)"),
    ("split: label -1", _split_line(2, f"{FPHA_SEQS[0][0]} -1"), SPLIT_FILE,
     r", line 2: label -1 out of range"),
    ("split: label not a number", _split_line(2, f"{FPHA_SEQS[0][0]} zero"), SPLIT_FILE,
     r", line 2: expected an integer label, got 'zero'"),
    ("split: label missing", _split_line(3, FPHA_SEQS[1][0]), SPLIT_FILE,
     r", line 3: expected '<Subject_k/action_name/seq> <label>'"),
    ("split: path escapes the dataset", _split_line(3, "Subject_1/../../x 4"), SPLIT_FILE,
     r", line 3: expected a sequence path 'Subject_k/action_name/seq'"),
    ("split: header missing", _split_line(1, None), SPLIT_FILE,
     r", line 1: expected header 'Training <count>'"),
    ("split: header count not a number", _split_line(4, "Test two"), SPLIT_FILE,
     r", line 4: expected header 'Test <count>', got 'Test two'"),
    ("split: extra line after Test", lambda r: (r / SPLIT_FILE).write_text(
        (r / SPLIT_FILE).read_text() + "Subject_3/high_five/1 44\n"), SPLIT_FILE,
     r", line 7: unexpected line after the Test section"),
    ("split: empty file", _write(SPLIT_FILE, b""), SPLIT_FILE, r": missing header line 'Training <count>'"),
    ("split: non-UTF-8", _write(SPLIT_FILE, b"Training 2\n\xe9t\xe9 0\n"), SPLIT_FILE,
     r", line 2: not UTF-8 text \(byte 0xe9"),
    ("split: no training entries", lambda r: (r / SPLIT_FILE).write_text(
        "Training 0\nTest 2\n" + "".join(f"{s} {lab}\n" for s, lab in FPHA_SEQS[2:])), SPLIT_FILE,
     r": dataset 'fpha': every sample is in test fold 1, so its split has no training data"),
    ("split: no test entries", lambda r: (r / SPLIT_FILE).write_text(
        "Training 2\n" + "".join(f"{s} {lab}\n" for s, lab in FPHA_SEQS[:2]) + "Test 0\n"), SPLIT_FILE,
     r": dataset 'fpha': no test fold"),
    ("split file missing", lambda r: (r / SPLIT_FILE).unlink(), SPLIT_FILE, r": FPHA split file not found"),
    ("annotation folder missing", lambda r: (r / ANNOTATION_DIR).rename(r / "elsewhere"), ANNOTATION_DIR,
     r": FPHA annotation directory not found"),
    # skeleton.txt
    ("skeleton: blank lines only", _write(SKEL, b"\n \n"), SKEL, r": no rows \(expected 64 columns"),
    ("skeleton: 63 columns", _skel_line(2, lambda r: r.rsplit(" ", 1)[0]), SKEL,
     r", line 2: expected 64 columns \(frame id \+ 21 joints x 3\), got 63"),
    ("skeleton: 65 columns", _skel_line(5, lambda r: r + " 1.0"), SKEL, r", line 5: expected 64 columns"),
    ("skeleton: truncated mid-row", lambda r: (r / SKEL).write_bytes((r / SKEL).read_bytes()[:-200]),
     SKEL, r", line 6: expected 64 columns .*got \d+"),
    ("skeleton: comma separated", _skel_line(1, lambda r: r.replace(" ", ",")), SKEL,
     r", line 1: expected 64 columns .*got 1"),
    ("skeleton: NaN", _skel_token(3, 10, "nan"), SKEL, r", line 3: non-finite coordinate"),
    ("skeleton: inf", _skel_token(4, 63, "inf"), SKEL, r", line 4: non-finite coordinate"),
    ("skeleton: beyond float32", _skel_token(2, 1, "1e39"), SKEL, r", line 2: non-finite coordinate"),
    ("skeleton: non-numeric", _skel_token(2, 6, "1.2.3"), SKEL,
     r", line 2: expected 64 numbers separated by spaces or tabs; column 7: got '1.2.3'"),
    ("skeleton: non-UTF-8", lambda r: (r / SKEL).write_bytes((r / SKEL).read_bytes().replace(b"\n", b"\n\x80", 1)),
     SKEL, r", line 2: not UTF-8 text \(byte 0x80"),
]


@pytest.mark.parametrize("edit, where, pattern", [c[1:] for c in FPHA_CASES], ids=[c[0] for c in FPHA_CASES])
def test_fpha(capsys, tmp_path, fpha_root, edit, where, pattern):
    edit(fpha_root)
    err = expect_data_error(capsys, tmp_path, "fpha", fpha_root, pattern)
    assert f"error: {fpha_root / where}" in err
    with pytest.raises(DataError, match=pattern):
        load_fpha(fpha_root)


def test_fpha_empty_annotation_file_is_a_documented_skip(capsys, tmp_path, fpha_root):
    """load_fpha's docstring: an empty (0-byte) skeleton.txt named in the split is skipped with a
    UserWarning naming it (the release has three, none in the split); the rest loads."""
    (fpha_root / SKEL).write_bytes(b"")
    with pytest.warns(UserWarning, match=re.escape(f"{fpha_root / SKEL}: empty FPHA annotation file, "
                                                   f"sample 'Subject_1/high_five/1' skipped")):
        ds = load_fpha(fpha_root)
    assert ds.sample_ids == tuple(s for s, _ in FPHA_SEQS if s != "Subject_1/high_five/1")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="empty FPHA annotation file"):
        err = cli_error(capsys, train_argv("fpha", fpha_root, out))
    assert "has no test fold 99" in err  # loaded; only the guard fold stops it


def test_fpha_every_test_file_empty(capsys, tmp_path, fpha_root):
    for seq, _ in FPHA_SEQS[2:]:
        (fpha_root / ANNOTATION_DIR / seq / "skeleton.txt").write_bytes(b"")
    with pytest.warns(UserWarning):
        err = expect_data_error(capsys, tmp_path, "fpha", fpha_root, r"no test fold")
    assert f"error: {fpha_root / SPLIT_FILE}: " in err


# ----------------------------------------------------------------------------------------------
# Bring-your-own .npz: x (N, T, J, 3), y (N,), optional lengths, folds, edges, class_names, ...

N, T, J = 10, 6, 4


def npz_keys() -> dict:
    rng = np.random.default_rng(0)
    return dict(x=rng.normal(size=(N, T, J, 3)), y=np.arange(N) % 2)


def _set(**changes):
    return lambda k: k.update({name: (v(k) if callable(v) else v) for name, v in changes.items()})


def _pop(key):
    return lambda k: k.pop(key)


def _x_at(sample, frame, value):
    def edit(k):
        k["x"][sample, frame, 2, 1] = value
    return edit


NPZ_CASES = [
    ("missing x", _pop("x"), r"key 'x': missing \(the file has keys \['y'\]\)"),
    ("missing y", _pop("y"), r"key 'y': missing"),
    ("x rank 3", _set(x=lambda k: k["x"][..., 0]), r"key 'x': expected shape \(N, T, J, 3\), got \(10, 6, 4\)"),
    ("x rank 5", _set(x=lambda k: k["x"][..., None]), r"key 'x': expected shape \(N, T, J, 3\)"),
    ("x 2 coordinates", _set(x=lambda k: k["x"][..., :2]), r"key 'x': expected shape \(N, T, J, 3\)"),
    ("x no frames", _set(x=np.zeros((N, 0, J, 3))), r"key 'x': expected at least one sample, frame and joint"),
    ("x strings", _set(x=lambda k: k["x"].astype(str)), r"key 'x': expected a numeric array, got dtype <U"),
    ("x bytes", _set(x=lambda k: k["x"].astype("S8")), r"key 'x': expected a numeric array, got dtype \|S8"),
    ("x booleans", _set(x=lambda k: k["x"] > 0), r"key 'x': expected a numeric array, got dtype bool"),
    ("x complex", _set(x=lambda k: k["x"] * 1j), r"key 'x': expected a numeric array"),
    ("x object array", _set(x=lambda k: k["x"].astype(object)), r"key 'x': cannot load without pickle"),
    ("x NaN", _x_at(3, 2, np.nan), r"key 'x': non-finite value .* in sample 3, frame 2"),
    ("x inf", _x_at(0, 5, -np.inf), r"key 'x': non-finite value .* in sample 0, frame 5"),
    ("x beyond float32", _x_at(9, 0, 1e40), r"key 'x': non-finite value .* in sample 9, frame 0"),
    ("y strings", _set(y=lambda k: k["y"].astype(str)), r"key 'y': expected integers, got dtype <U"),
    ("y fractional", _set(y=lambda k: k["y"] + 0.25), r"key 'y': expected integer values, got 0.25"),
    ("y wrong length", _set(y=lambda k: k["y"][:-1]), r"key 'y': expected shape \(10,\) \(N from x\), got \(9,\)"),
    ("y 2-D", _set(y=lambda k: k["y"][:, None]), r"key 'y': expected shape \(10,\)"),
    ("y negative", _set(y=lambda k: k["y"] - 1), r"key 'y': labels must be >= 0, got -1"),
    ("y beyond class_names", _set(class_names=np.array(["a", "b"]), y=lambda k: k["y"] * 2),
     r"key 'y': label 2 out of range for 2 class_names"),
    ("y 1-based without class_names", _set(y=lambda k: k["y"] + 1),
     r"key 'y': no sample has label 0, yet labels go up to 2: .*1-based"),
    ("y huge without class_names", _set(y=lambda k: np.where(k["y"] == 1, 10**9, 0)),
     r"key 'y': no sample has label 1 \(nor \[2, 3, 4, 5\]\), yet labels go up to 1000000000"),
    ("y beyond int32", _set(y=lambda k: k["y"] * 2**40, class_names=np.array(["a", "b"])),
     r"key 'y': value 1099511627776 does not fit in int32"),
    ("y single class", _set(y=np.zeros(N, int)), r"need at least 2 classes, got 1"),
    ("lengths > T", _set(lengths=np.full(N, T + 1)), r"key 'lengths': must be in \[1, 6\] \(T\), got range \[7, 7\]"),
    ("lengths zero", _set(lengths=np.arange(N) % T), r"key 'lengths': must be in \[1, 6\] \(T\), got range \[0, 5\]"),
    ("lengths wrong length", _set(lengths=np.full(N + 2, 3)), r"key 'lengths': expected shape \(10,\)"),
    ("edges out of range", _set(edges=np.array([[0, 1], [3, 4]])),
     r"key 'edges': joint indices must be in \[0, 4\) \(J\), got range \[0, 4\]"),
    ("edges negative", _set(edges=np.array([[0, -1]])), r"key 'edges': joint indices must be in \[0, 4\)"),
    ("edges wrong shape", _set(edges=np.array([[0, 1, 2]])), r"key 'edges': expected shape \(E, 2\)"),
    ("edges self-loop", _set(edges=np.array([[1, 1]])), r"key 'edges': self-loop \(1, 1\)"),
    ("folds wrong length", _set(folds=np.ones(N - 1, int)),
     r"key 'folds': expected shape \(10,\) \(N from x\), got \(9,\)"),
    ("folds negative", _set(folds=np.full(N, -2)), r"key 'folds': must be >= 0, got -2"),
    ("folds all 0", _set(folds=np.zeros(N, int)), r"no test fold \(every fold is 0\)"),
    ("folds all in one test fold", _set(folds=np.ones(N, int)),
     r"every sample is in test fold 1, so its split has no training data"),
    ("folds wrap around int32", _set(folds=np.full(N, 2**32)), r"key 'folds': value 4294967296 does not fit in int32"),
    ("class_names duplicated", _set(class_names=np.array(["wave", "wave"])),
     r"key 'class_names': duplicate class name 'wave'"),
    ("class_names numbers", _set(class_names=np.arange(2)), r"key 'class_names': expected a 1-D array of strings"),
    ("class_names non-UTF-8 bytes", _set(class_names=np.array([b"wave", b"\xffclap"])),
     r"key 'class_names': not UTF-8 text: byte 0xff"),
    ("sample_ids wrong length", _set(sample_ids=np.array(["a"])), r"key 'sample_ids': expected \(10,\) strings"),
    ("units not a string", _set(units=np.array(3.0)), r"key 'units': expected a scalar string"),
]


def _write_npz(path: Path, keys: dict, compressed=False) -> Path:
    with open(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **keys)
    return path


@pytest.mark.parametrize("edit, pattern", [c[1:] for c in NPZ_CASES], ids=[c[0] for c in NPZ_CASES])
def test_npz(capsys, tmp_path, edit, pattern):
    keys = npz_keys()
    edit(keys)
    path = _write_npz(tmp_path / "mine.npz", keys)
    err = expect_data_error(capsys, tmp_path, "npz", path, pattern)
    assert err.startswith(f"jaxprune: error: {path}: ")
    with pytest.raises(DataError, match=pattern) as e:
        load_npz(path)
    assert e.value.path == str(path)


def _npz_bytes(**kw) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if kw.get("compressed") else np.savez)(buf, **npz_keys())
    return buf.getvalue()


def _corrupt_deflate(data: bytes) -> bytes:
    """A compressed .npz whose 'x' member has damaged deflate data past the .npy header."""
    data = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        offset = z.getinfo("x.npy").header_offset
    name_len, extra_len = struct.unpack("<HH", data[offset + 26: offset + 30])
    start = offset + 30 + name_len + extra_len  # the member's compressed bytes
    for i in range(start + 60, start + 120):
        data[i] ^= 0xFF
    return bytes(data)


def _lying_header(compressed=False, shape=(10**6, 10**6, 30, 3)) -> bytes:
    """A valid .npz whose 'x' entry declares ``shape`` (terabytes) but holds a few bytes: numpy
    would try to allocate the declared size first."""
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<f4", "fortran_order": False, "shape": shape})
    npy.write(b"\0" * 64)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as z:
        z.writestr("x.npy", npy.getvalue())
        y = io.BytesIO()
        np.save(y, np.arange(N) % 2)
        z.writestr("y.npy", y.getvalue())
    return buf.getvalue()


NPZ_FILE_CASES = [
    ("header declares terabytes", lambda: _lying_header(),
     r"key 'x': its header declares shape \(1000000, 1000000, 30, 3\) float32 \(360000000000000 bytes\), "
     r"but the entry holds 64 bytes"),
    ("compressed, header declares terabytes", lambda: _lying_header(compressed=True), r"key 'x': its header declares"),
    ("header declares one value too many", lambda: _lying_header(shape=(17,)),
     r"key 'x': its header declares shape \(17,\) float32 \(68 bytes\), but the entry holds 64 bytes"),
    ("text file named .npz", lambda: b"x,y\n1,2\n", r"not a valid .npz file: it starts with b'x,y\\n1,', "
     r"not like a zip archive"),
    ("empty file", lambda: b"", r"not a valid .npz file: the file is empty"),
    ("truncated archive", lambda: _npz_bytes()[:1000], r"not a valid .npz"),
    ("zip header only", lambda: b"PK\x03\x04 cut", r"not a valid .npz file"),
    ("damaged compressed member", lambda: _corrupt_deflate(_npz_bytes(compressed=True)),
     r"key 'x': not a valid .npz entry \(damaged or truncated file\?\)"),
    ("a single .npy", lambda: _npy_bytes(), r"not an .npz archive \(a single .npy array\?\)"),
]


def _npy_bytes() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    return buf.getvalue()


@pytest.mark.parametrize("content, pattern", [c[1:] for c in NPZ_FILE_CASES], ids=[c[0] for c in NPZ_FILE_CASES])
def test_npz_file(capsys, tmp_path, content, pattern):
    path = tmp_path / "mine.npz"
    path.write_bytes(content())
    err = expect_data_error(capsys, tmp_path, "npz", path, pattern)
    assert err.startswith(f"jaxprune: error: {path}: ")


@pytest.mark.parametrize("data, pattern", [
    ("nothere.npz", r"nothere.npz: file not found"),
    ("", r"dataset 'npz' needs --data-dir pointing to the .npz file"),
], ids=["npz file missing", "npz without --data-dir"])
def test_npz_path(capsys, tmp_path, data, pattern):
    argv = train_argv("npz", tmp_path / data, tmp_path / "out")
    if not data:
        argv = [a for a in argv if a not in ("--data-dir", str(tmp_path / data))]
    err = cli_error(capsys, argv)
    assert re.search(pattern, err), err


def test_npz_named_pipe_is_refused_without_blocking(capsys, tmp_path):
    """(issue 18, group 8) opening a named pipe would wait forever for a writer."""
    os.mkfifo(tmp_path / "data.npz")
    err = cli_error(capsys, train_argv("npz", tmp_path / "data.npz", tmp_path / "out"))
    assert re.search(r"data\.npz: not a regular file \(a folder, a named pipe or a device\)", err), err


# ----------------------------------------------------------------------------------------------
# Settings: checked before any data is read, named in the message.

SETTING_CASES = [
    # (id, extra argv, regex: names the setting and what is allowed)
    ("negative epochs (--epochs)", ["--epochs", "-1"], r"train\.epochs=-1.*epochs must be >= 0, got -1"),
    ("negative epochs (--set)", ["--set", "train.epochs=-3"], r"epochs must be >= 0, got -3"),
    ("epochs as text", ["--set", "train.epochs=ten"], r"setting train\.epochs: cannot read 'ten' as int"),
    ("epochs fractional", ["--set", "train.epochs=2.5"], r"setting train\.epochs: cannot read '2\.5' as int"),
    ("epochs empty", ["--set", "train.epochs="], r"setting train\.epochs: cannot read '' as int"),
    ("100 kB value for a number", ["--set", "train.epochs=" + "9x" * 50_000],
     r"setting train\.epochs: cannot read '(9x){30}\.\.\. \(100000 characters\)' as int$"),
    ("100 kB value for a choice", ["--set", "model.attention=" + "b" * 100_000],
     r"model\.attention=b{60}\.\.\. \(100000 characters\): model setting attention must be one of .{1,360}$"),
    ("100 kB setting name", ["--set", "a" * 100_000 + "=1"], r"setting 'a{60}\.\.\. \(100000 characters\)' does not exist"),
    ("100 kB argument without =", ["--set", "c" * 100_000], r"setting 'c{60}\.\.\. \(100000 characters\)': expected NAME=VALUE"),
    ("rate 1 (--rate)", ["--method", "srmp", "--rate", "1"], r"--rate: every rate must lie in \[0, 1\), got \[1\.0\]"),
    ("rate 1.5 (--set)", ["--method", "srmp", "--set", "prune.rate=1.5"],
     r"prune setting rate: every rate must lie in \[0, 1\), got \[1\.5\]"),
    ("negative rate", ["--method", "ctf", "--rate", "-0.1"], r"--rate: every rate must lie in \[0, 1\), got \[-0\.1\]"),
    ("NaN rate (--rate)", ["--method", "srmp", "--rate", "nan"], r"every rate must lie in \[0, 1\), got \[nan\]"),
    ("NaN rate (--set)", ["--set", "prune.rate=nan"], r"setting prune\.rate: nan is not a usable value"),
    ("rate as text", ["--method", "srmp", "--rate", "high"], r"--rate: 'high' is not a number"),
    ("two rates for --rate", ["--method", "srmp", "--rate", "0.5,0.9"], r"--rate takes one rate"),
    ("NaN among rates", ["--method", "mrmp", "--rates", "0.5,nan"], r"every rate must lie in \[0, 1\), got \[nan\]"),
    ("rate 1 among rates", ["--method", "mrmp", "--rates", "0.5,1.0"],
     r"--rates: every rate must lie in \[0, 1\), got \[1\.0\]"),
    ("empty rates (--rates)", ["--method", "mrmp", "--rates", ""], r"--rates is empty"),
    ("empty rates (--set)", ["--set", "prune.rates="], r"prune setting rates is empty"),
    ("rates with a bad separator", ["--set", "prune.rates=0.5;0.9"],
     r"setting prune\.rates: cannot read '0\.5;0\.9' as float"),
    ("--rate for dense", ["--rate", "0.5"], r"--rate is the single rate of a one-rate method"),
    ("zero channels", ["--set", "model.channels=0"], r"setting model\.channels=0: model setting channels must be in \[1, 4096\]"),
    ("zero hidden", ["--set", "model.hidden=0"], r"setting model\.hidden=0: model setting hidden must be in \[1, 65536\]"),
    ("zero blocks", ["--set", "model.num_blocks=0"], r"model setting num_blocks must be in \[1, 64\]"),
    ("unknown attention", ["--set", "model.attention=all"], r"model setting attention must be one of"),
    ("NaN bone_bias", ["--set", "model.bone_bias=nan"], r"setting model\.bone_bias: nan is not a usable value"),
    ("batch_size 0", ["--set", "train.batch_size=0"], r"training setting batch_size must be >= 1, got 0"),
    ("label_smoothing 1", ["--set", "train.label_smoothing=1"], r"label_smoothing must be in \[0, 1\), got 1\.0"),
    ("NaN learning rate", ["--set", "train.learning_rate=nan"], r"setting train\.learning_rate: nan is not a usable"),
    ("infinite weight decay", ["--set", "train.weight_decay=inf"], r"setting train\.weight_decay: inf is not a usable"),
    ("zero chunks", ["--set", "features.chunks=0"], r"feature setting chunks must be >= 1, got 0"),
    ("unknown pooling", ["--set", "features.pooling=max"], r"feature setting pooling must be one of"),
    ("one align joint only", ["--set", "features.align_from=2"], r"align_from/align_to must both be -1"),
    ("joint_drop 1", ["--set", "augment.joint_drop=1"], r"augment setting joint_drop must be in \[0, 1\)"),
    ("augment scale 1", ["--set", "augment.scale=1"], r"augment setting scale must be in \[0, 1\)"),
    ("negative augment scale", ["--set", "augment.scale=-0.1"], r"augment setting scale must be in \[0, 1\)"),
    ("negative noise", ["--set", "augment.noise=-1"], r"augment setting noise must be >= 0"),
    ("vertical axis 3", ["--set", "augment.vertical_axis=3"], r"augment setting vertical_axis must be 0, 1 or 2"),
    ("rotation 400 degrees", ["--set", "augment.rotate_deg=400"], r"augment setting rotate_deg must be in \[0, 180\]"),
    ("negative swap_groups", ["--set", "augment.swap_groups=-2"], r"augment setting swap_groups must be >= 0"),
    ("negative crops", ["--set", "augment.crops=-1"], r"augment setting crops must be >= 0"),
    ("test_swap without groups", ["--set", "augment.test_swap=true"], r"test_swap needs swap_groups >= 2"),
    ("bool as text", ["--set", "augment.test_swap=maybe"], r"setting augment\.test_swap: cannot read 'maybe' as bool"),
    ("NaN kl_weight", ["--set", "prune.kl_weight=nan"], r"setting prune\.kl_weight: nan is not a usable"),
    ("negative kl_weight", ["--set", "prune.kl_weight=-1"], r"prune setting kl_weight must be >= 0"),
    ("unknown prior", ["--set", "prune.prior=cauchy"], r"prune setting prior must be"),
    ("sigma_start > sigma_end", ["--set", "prune.sigma_start=200"], r"sigma_start, sigma_end must satisfy"),
    ("unknown ctf factor", ["--set", "prune.ctf_factors=entry,cube"], r"ctf_factors must be a non-empty subset"),
    ("unknown method (--set)", ["--set", "method=magic"], r"method must be one of"),
    ("unknown setting", ["--set", "train.epoch=3"], r"setting 'train\.epoch' does not exist; known here: \["),
    ("unknown group", ["--set", "optim.lr=3"], r"setting 'optim\.lr' does not exist"),
    ("a group given a value", ["--set", "model=3"], r"setting 'model' is a group; set one of its fields"),
    ("a setting used as a group", ["--set", "train.epochs.max=3"],
     r"setting 'train\.epochs\.max' does not exist: 'train\.epochs' is a single setting, not a group"),
    ("no equals sign", ["--set", "train.epochs"], r"setting 'train\.epochs': expected NAME=VALUE"),
]


LATE_CHECKS = [  # checks that once ran only after the data was read
    pytest.param(["--seed", "-1"], r"seed", id="negative seed"),
    pytest.param(["--seed", str(2**64)], r"seed", id="seed beyond 64 bits"),
    pytest.param(["--set", "train.weight_decay=-1"], r"weight_decay", id="negative weight decay"),
    pytest.param(["--set", "train.learning_rate=-1"], r"learning_rate", id="negative learning rate"),
    pytest.param(["--set", "train.lr_rule=fast"], r"lr_rule", id="unknown lr_rule"),
    pytest.param(["--set", "train.devices=-1"], r"devices", id="negative device count"),
    pytest.param(["--eval-every", "-1"], r"eval-every", id="negative --eval-every"),
]


@pytest.mark.parametrize("extra, pattern", [pytest.param(*c[1:], id=c[0]) for c in SETTING_CASES] + LATE_CHECKS)
def test_setting(capsys, tmp_path, extra, pattern):
    """Refused before any data is read: the guard .npz does not exist, so a setting that wrongly
    passed would end on 'file not found' instead."""
    out = tmp_path / "out"
    argv = ["train", "--dataset", "npz", "--data-dir", str(tmp_path / "absent.npz"), "--out", str(out),
            "--quiet", *extra]
    err = cli_error(capsys, argv)
    assert re.search(pattern, err), err
    assert "file not found" not in err and not out.exists()


@pytest.fixture
def tiny_npz(tmp_path) -> Path:
    """8 sequences of 5 frames, 3 joints (odd: no two persons), folds 0 (training) and 1 (test)."""
    rng = np.random.default_rng(0)
    return _write_npz(tmp_path / "tiny.npz", dict(
        x=rng.normal(size=(8, 5, 3, 3)), y=np.arange(8) % 2, folds=np.array([0] * 6 + [1] * 2),
        edges=np.array([[0, 1], [1, 2]])))


DATA_SETTING_CASES = [
    # settings that can only be checked against the data; all fail before the first step
    ("swap_groups not dividing the joints", ["--set", "augment.swap_groups=2"],
     r"augment setting swap_groups=2 needs the skeleton's joints to form 2 equal groups, but it has 3 joints"),
    ("partner_offsets with an odd joint count", ["--set", "features.partner_offsets=true"],
     r"feature setting partner_offsets needs two persons .* got 3 joints"),
    ("align joints outside the skeleton", ["--set", "features.align_from=0", "--set", "features.align_to=7"],
     r"feature settings align_from/align_to = 0, 7 name a joint outside the skeleton's 3 joints"),
    ("negative learning rate", ["--set", "train.learning_rate=-0.001"],
     r"training setting learning_rate must be > 0, got -0\.001"),
    ("unknown lr_rule", ["--set", "train.lr_rule=fast"], r"training setting lr_rule must be one of"),
    ("test fold that does not exist", ["--fold", "3"], r"dataset 'tiny' has no test fold 3; its folds are \[1\]"),
]


@pytest.mark.parametrize("extra, pattern", [c[1:] for c in DATA_SETTING_CASES],
                         ids=[c[0] for c in DATA_SETTING_CASES])
def test_setting_against_the_data(capsys, tmp_path, tiny_npz, extra, pattern):
    out = tmp_path / "out"
    argv = ["train", "--dataset", "npz", "--data-dir", str(tiny_npz), "--out", str(out), "--quiet",
            "--epochs", "1", "--set", "model.channels=2", "--set", "model.hidden=4", *extra]
    err = cli_error(capsys, argv)
    assert re.search(pattern, err), err
    assert not (out / "results.json").exists()


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
    (["--method", "magic"], "argument --method: invalid choice: 'magic'"),
    (["--fold", "first"], "--fold must be a fold number or 'all', got 'first'"),
    (["--dataset", "kinetics"], "argument --dataset: invalid choice: 'kinetics'"),
], ids=["epochs as text (--epochs)", "unknown method", "fold as text", "unknown dataset"])
def test_usage_errors(capsys, tmp_path, extra, message):
    """Malformed options are argparse's usage errors: status 2, the usage line, then one
    'jaxprune train: error: ...' line naming the option; no traceback."""
    with pytest.raises(SystemExit) as e:
        main(["train", "--out", str(tmp_path / "out"), *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0].startswith("usage: jaxprune train") and lines[-1].startswith("jaxprune train: error: ")
    assert message in lines[-1] and "Traceback" not in err


# ----------------------------------------------------------------------------------------------
# A saved run's results.json, broken (jaxprune eval / export read it before anything else).

RUN_CASES = [
    pytest.param(None, r"results\.json: not found; --run must be the --out folder", id="run folder missing"),
    pytest.param(b'{"method": "mrmp", "datas', r"results\.json: not valid JSON \(line 1\)",
                 id="results.json truncated"),
    pytest.param(b"", r"results\.json: not valid JSON \(line 1\)", id="results.json empty"),
    pytest.param(b"[1, 2]", r"results\.json", id="results.json not an object"),
    pytest.param(b'{"method": "\xff"}', r"results\.json: not UTF-8", id="results.json non-UTF-8"),
]


@pytest.mark.parametrize("command", ["eval", "export"])
@pytest.mark.parametrize("content, pattern", RUN_CASES)
def test_broken_run(capsys, tmp_path, command, content, pattern):
    run = tmp_path / "run"
    if content is not None:
        run.mkdir()
        (run / "results.json").write_bytes(content)
    argv = (["eval", "--run", str(run), "--rates", "0.5"] if command == "eval"
            else ["export", "--run", str(run), "--out", str(tmp_path / "m.npz")])
    err = cli_error(capsys, argv)
    assert re.search(pattern, err), err
    if content is not None:
        assert (run / "results.json").read_bytes() == content  # nothing saved is touched


def test_model_file_with_a_lying_header_is_refused(tmp_path):
    """A saved model.npz whose entry declares more than it holds: ValueError naming file and entry,
    before numpy allocates the declared size."""
    from jaxprune.model_io import load_model
    path = tmp_path / "model.npz"
    path.write_bytes(_lying_header())
    with pytest.raises(ValueError, match=r"model\.npz: not a readable model file \(key 'x': its header declares"):
        load_model(path, {"w": np.zeros(2, np.float32)})


# ----------------------------------------------------------------------------------------------
# Tampered run folders (issue 18, groups 4, 6, 7, 8): every file read back is checked like --set.
# One tiny finished run is written once; each case edits a copy of it.

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--dataset", "synthetic", "--method", "dense", "--epochs", "1", "--quiet",
                 "--set", "model.channels=4", "--set", "model.hidden=16", "--out", str(run), *CHEAP_COMPILE]) == 0
    return run


def _json_edit(rel: str, fn):
    def edit(run: Path):
        path = run / rel
        obj = json.loads(path.read_text())
        fn(obj)
        path.write_text(json.dumps(obj))
    return edit


def _replace_with(rel: str, kind: str):
    def edit(run: Path):
        path = run / rel
        path.unlink()
        if kind == "folder":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.write_text(kind)
    return edit


def _set_in(path: str, value):
    """An edit of a nested field 'a.b.0.c' of the loaded JSON object."""
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]

    def fn(obj):
        for k in keys[:-1]:
            obj = obj[k]
        obj[keys[-1]] = value
    return fn


RESULTS_CASES = [  # jaxprune eval --run (and export) read results.json, then each fold's model.npz
    ("no folds", _json_edit("results.json", _set_in("runs", [])), r"field 'runs' must be a non-empty list"),
    ("fold is a path", _json_edit("results.json", _set_in("runs.0.fold", "1/../../other/fold1")),
     r"field 'runs\[0\]\.fold' must be a whole number"),
    ("fold fractional", _json_edit("results.json", _set_in("runs.0.fold", 1.5)), r"runs\[0\]\.fold' must be a whole"),
    ("fold true", _json_edit("results.json", _set_in("runs.0.fold", True)), r"runs\[0\]\.fold' must be a whole"),
    ("fold not in the data", _json_edit("results.json", _set_in("runs.0.fold", 7)),
     r"results\.json: fold\(s\) \[7\] are not test folds of the synthetic data"),
    ("fold twice", _json_edit("results.json", lambda o: o["runs"].append(o["runs"][0])), r"lists a fold twice"),
    ("rows empty", _json_edit("results.json", _set_in("runs.0.rates", [])), r"runs\[0\]\.rates' must be a non-empty"),
    ("accuracy infinite", _json_edit("results.json", _set_in("runs.0.rates.0.accuracy", float("inf"))),
     r"runs\[0\]\.rates\[0\]\.accuracy' must be a finite number in \[0, 100\]"),
    ("kept count text", _json_edit("results.json", _set_in("runs.0.rates.0.kept_params", "12")),
     r"kept_params' must be a whole number >= 0"),
    ("method a number", _json_edit("results.json", _set_in("method", 5)), r"field 'method' is a int, not a text"),
    ("config a list", _json_edit("results.json", _set_in("config", [])), r"field 'config' must be an object"),
    ("absurd width", _json_edit("results.json", _set_in("config.model.channels", 10 ** 9)),
     r"model setting channels must be in \[1, 4096\], got 1000000000"),
    ("train seconds negative", _json_edit("results.json", _set_in("train_seconds", -1)), r"'train_seconds' must be"),
    ("nested too deep", _replace_with("results.json", "[" * 100_000 + "]" * 100_000), r"nested too deeply"),
    ("results.json a folder", _replace_with("results.json", "folder"), r"results\.json: not a regular file"),
    ("model a named pipe", _replace_with("fold1/model.npz", "fifo"), r"model\.npz: not a readable model file "
                                                                      r"\(not a regular file"),
    ("model a folder", _replace_with("fold1/model.npz", "folder"), r"model\.npz: not a readable model file"),
]


@pytest.mark.parametrize("edit, pattern", [c[1:] for c in RESULTS_CASES], ids=[c[0] for c in RESULTS_CASES])
def test_tampered_finished_run(capsys, tmp_path, finished_run, edit, pattern):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    edit(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for argv in (["eval", "--run", str(run), "--rates", "0"], ["export", "--run", str(run), "--out",
                                                                  str(tmp_path / "m.npz")]):
        err = cli_error(capsys, argv)
        assert re.search(pattern, err), err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before   # nothing saved is touched
    assert not (tmp_path / "m.npz").exists()


STOPPED_CASES = [  # jaxprune train --resume reads run.json, then each finished fold's rows.json
    ("folds empty", _json_edit("run.json", _set_in("folds", [])), r"run\.json: field 'folds' must be a non-empty"),
    ("folds fractional", _json_edit("run.json", _set_in("folds", [1.5])), r"field 'folds\[0\]' must be a whole"),
    ("folds twice", _json_edit("run.json", _set_in("folds", [1, 1])), r"field 'folds' lists a fold twice"),
    ("folds a path", _json_edit("run.json", _set_in("folds", ["../x"])), r"field 'folds\[0\]' must be a whole"),
    ("fold not in the data", _json_edit("run.json", _set_in("folds", [3])),
     r"run\.json: field 'folds': dataset 'synthetic' has no test fold 3"),
    ("digest short", _json_edit("run.json", _set_in("data_sha256", "abc")), r"'data_sha256' must be 64 hexadecimal"),
    ("eval_every negative", _json_edit("run.json", _set_in("eval_every", -1)), r"'eval_every' must be a whole"),
    ("dataset missing", _json_edit("run.json", lambda o: o.pop("dataset")), r"field 'dataset' is missing"),
    ("run.json a folder", _replace_with("run.json", "folder"), r"run\.json: not a regular file"),
    ("rows of another fold", _json_edit("fold1/rows.json", _set_in("fold", 2)),
     r"rows\.json: field 'fold' must be 1 \(the folder it is in\), got 2"),
    ("rows seconds text", _json_edit("fold1/rows.json", _set_in("train_seconds", "x")),
     r"rows\.json: field 'train_seconds' must be a finite number"),
    ("rows empty", _json_edit("fold1/rows.json", _set_in("rates", [])), r"rows\.json: field 'rates' must be a non-empty"),
    ("rows not an object", _replace_with("fold1/rows.json", "[1]"), r"rows\.json: holds a JSON list, not an object"),
]


@pytest.mark.parametrize("edit, pattern", [c[1:] for c in STOPPED_CASES], ids=[c[0] for c in STOPPED_CASES])
def test_tampered_stopped_run(capsys, tmp_path, finished_run, edit, pattern):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "results.json").unlink()   # a stopped run: fold 1 finished (rows.json), results not written
    edit(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    err = cli_error(capsys, ["train", "--resume", str(run), "--quiet"])
    assert re.search(pattern, err), err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert not (run / "results.json").exists()


def _output_cases(run: Path, tmp: Path) -> list[tuple[list[str], str]]:
    a_file = tmp / "a_file"
    a_file.write_text("keep me")
    a_folder = tmp / "a_folder"
    a_folder.mkdir()
    train = ["train", "--dataset", "synthetic", "--epochs", "1", "--quiet", "--out"]
    return [
        (train + [str(a_file)], r"--out .*a_file: is a file, not a folder"),
        (train + [str(a_file / "sub")], r"--out .*a_file/sub: cannot write there \(Not a directory\)"),
        (["eval", "--run", str(run), "--rates", "0", "--out", str(a_file)], r"--out .*a_file: is a file"),
        (["eval", "--run", str(run), "--rates", "0", "--out", str(a_file / "sub")], r"cannot write there"),
        (["export", "--run", str(run), "--out", str(a_folder)], r"--out .*a_folder: is a folder; give the name"),
        (["export", "--run", str(run), "--overwrite", "--out", str(a_folder)], r"--out .*a_folder: is a folder"),
        (["export", "--run", str(run), "--out", str(a_file / "m.npz")], r"a_file is a file, so no folder can hold the new file"),
    ]


@pytest.mark.parametrize("case", range(7))
def test_output_paths_are_checked_before_any_work(capsys, tmp_path, finished_run, case):
    """(issue 18, group 5) an --out that cannot be written is refused before training or evaluating."""
    argv, pattern = _output_cases(finished_run, tmp_path)[case]
    err = cli_error(capsys, argv)
    assert re.search(pattern, err), err
    assert (tmp_path / "a_file").read_text() == "keep me" and not any((tmp_path / "a_folder").iterdir())


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs POSIX file-size limits")
@pytest.mark.parametrize("limit_kb, pattern", [(1, r"File too large: '.*/run/run\.json'"),
                                               (20, r"checkpoint .*/run/fold1/checkpoints/1 could not be saved: "
                                                    r"File too large \(errno 27\)")], ids=["run.json", "checkpoint"])
def test_a_full_disk_ends_with_one_line(tmp_path, limit_kb, pattern):
    """(issue 18, group 5) A write that the file system refuses (here: a file-size limit, which
    fails writes like a full disk, with EFBIG instead of ENOSPC) ends the run with exit 2 and one
    error line: no tracebacks from orbax's threads, no partial checkpoint left behind."""
    import resource
    import subprocess

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kb * 1024, limit_kb * 1024))
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "jaxprune.cli", "train", "--dataset", "synthetic", "--method",
                           "dense", "--epochs", "1", "--set", "model.channels=4", "--set", "model.hidden=16",
                           "--out", str(out), "--quiet", *CHEAP_COMPILE], capture_output=True, text=True, timeout=300,
                          preexec_fn=limit, env={**os.environ, "JAX_COMPILATION_CACHE_DIR": ""})
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxprune: error: "), proc.stderr[-2000:]
    assert re.search(pattern, lines[0]), lines
    assert not list(out.rglob("*orbax-checkpoint-tmp*"))


@pytest.fixture(scope="module")
def compact_file(finished_run, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("compact") / "net.npz"
    assert main(["export", "--run", str(finished_run), "--out", str(path)]) == 0
    return path


def _meta_edit(fn):
    def edit(arrays: dict):
        meta = json.loads(str(arrays["meta"]))
        meta = fn(meta) or meta
        arrays["meta"] = np.asarray(json.dumps(meta))
    return edit


def _entry(name, value):
    def edit(arrays: dict):
        arrays[name] = value
    return edit


COMPACT_CASES = [  # issue 18, group 9: load_compact checks its metadata's types before using them
    ("meta a list", _meta_edit(lambda m: [1]), r"'meta' entry holds a JSON list, not an object"),
    ("nodes text", _meta_edit(_set_in("num_nodes", "30")), r"'meta\.num_nodes' must be a whole number >= 1"),
    ("blocks negative", _meta_edit(_set_in("num_blocks", -1)), r"'meta\.num_blocks' must be a whole number >= 0"),
    ("blocks absurd", _meta_edit(_set_in("num_blocks", 10 ** 6)), r"'meta\.num_blocks' is 1000000, more than"),
    ("scale NaN", _meta_edit(_set_in("attention_scale", float("nan"))), r"'meta\.attention_scale' must be a finite"),
    ("graph misshapen", _meta_edit(_set_in("graph", [[True]])), r"'meta\.graph' must be null or \d+ lists of \d+"),
    ("graph numbers", _meta_edit(lambda m: m.update(graph=[[0.5] * m["num_nodes"]] * m["num_nodes"])),
     r"'meta\.graph' must be null or"),
    ("bcoo shape text", _meta_edit(_set_in("bcoo", {"params/fc/kernel": "x"})), r"must be a kernel shape"),
    ("bcoo shape negative", _meta_edit(_set_in("bcoo", {"params/fc/kernel": [-1, 4]})),
     r"'meta\.bcoo\.params/fc/kernel\[0\]' must be a whole number >= 1"),
    ("bcoo without data", _meta_edit(_set_in("bcoo", {"params/fc/kernel": [4, 4]})), r"missing .* data or indices"),
    ("info a list", _meta_edit(_set_in("info", [])), r"'meta\.info' must be an object"),
    ("entry outside params", _entry("x", np.zeros(2, np.float32)), r"entry 'x' is not a 'params/\.\.\.' array"),
    ("index fractional", _entry("params/input_index", np.zeros(3, np.float32)),
     r"'params/input_index' must be a 1-D array of whole numbers >= 0"),
    ("index negative", _entry("params/fc/index", -np.ones(3, np.int32)), r"'params/fc/index' must be a 1-D array"),
    ("entry of text", _entry("params/fc/bias", np.asarray(["a", "b"])), r"'params/fc/bias' has dtype <U1"),
]


@pytest.mark.parametrize("edit, pattern", [c[1:] for c in COMPACT_CASES], ids=[c[0] for c in COMPACT_CASES])
def test_tampered_compact_network(tmp_path, compact_file, edit, pattern):
    from jaxprune.models.export import load_compact
    with np.load(compact_file, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    edit(arrays)
    path = tmp_path / "net.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=pattern):
        load_compact(path)
