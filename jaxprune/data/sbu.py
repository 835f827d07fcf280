"""SBU Kinect Interaction 2.0 ("clean" skeleton set) -> SkeletonDataset, with its 5 standard folds.

Layout: ``<data_dir>/<set sXXsYY>/<class 01..08>/<seq 001..>/skeleton_pos.txt``; each row is
comma-separated: frame number, then 2 persons x 15 joints x (x, y, z) normalised coordinates.
Coordinates are de-normalised to millimetre-like units as the dataset README says:
X = 1280 - 2560 x, Y = 960 - 1920 y, Z = z * 10000 / 7.8125.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from jaxprune.data.dataset import SkeletonDataset, check_splits
from jaxprune.data.numbers import plain_floats
from jaxprune.data.errors import DataError
from jaxprune.graphs import SBU_BONES

SBU_CLASS_NAMES = ("approaching", "departing", "kicking", "punching", "pushing", "hugging",
                   "shaking_hands", "exchanging_objects")
SBU_FOLDS = (
    ("s01s02", "s03s04", "s05s02", "s06s04"),
    ("s02s03", "s02s07", "s03s05", "s05s03"),
    ("s01s03", "s01s07", "s07s01", "s07s03"),
    ("s02s01", "s02s06", "s03s02", "s03s06"),
    ("s04s02", "s04s03", "s04s06", "s06s02", "s06s03"),
)
SBU_COLUMNS = 1 + 2 * 15 * 3
_SET_NAME = re.compile(r"^s0[1-7]s0[1-7]$")


def read_skeleton_file(path: str | os.PathLike) -> np.ndarray:
    """Reads one ``skeleton_pos.txt``; returns float32 (T, 30, 3) de-normalised positions.

    Raises DataError naming the file (and line) for unreadable bytes, a wrong column count,
    non-numeric or non-finite values (also values beyond float32 range once de-normalised), a
    file with no rows, or a last row without its line end (every file of the release ends its
    rows with CRLF, so a missing one means the file was cut, possibly inside the last number).
    A leading UTF-8 byte order mark is dropped.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read file ({e.strerror or e})", path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start})", path,
                        line) from None
    values, numbers = [], []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.rstrip(",").split(",")
        if len(fields) != SBU_COLUMNS:
            raise DataError(f"expected {SBU_COLUMNS} comma-separated columns (frame, 2x15 joints x 3), "
                            f"got {len(fields)}" + _cut_hint(text, number, len(lines)), path, number)
        try:
            row = plain_floats(fields)
        except ValueError:
            raise DataError(f"non-numeric value in {line[:60]!r}", path, number) from None
        if not np.isfinite(row).all():
            raise DataError("NaN or infinite coordinate", path, number)
        values.append(row)
        numbers.append(number)
    if not values:
        raise DataError("empty file: expected rows of 91 comma-separated numbers", path)
    if numbers[-1] == len(lines) and not text.endswith(("\n", "\r")):
        raise DataError("the last row has no line end: the file looks truncated (cut inside the "
                        "last number?); every skeleton_pos.txt ends each row with CRLF", path,
                        numbers[-1])
    xyz = np.asarray(values, np.float64)[:, 1:].reshape(-1, 30, 3)
    out = np.empty_like(xyz)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is caught just below
        out[..., 0] = 1280.0 - 2560.0 * xyz[..., 0]
        out[..., 1] = 960.0 - 1920.0 * xyz[..., 1]
        out[..., 2] = xyz[..., 2] * 10000.0 / 7.8125
        out = out.astype(np.float32)
    finite = np.isfinite(out).reshape(len(out), -1).all(axis=1)
    if not finite.all():
        raise DataError("coordinate beyond float32 range once de-normalised to mm", path,
                        numbers[int(np.flatnonzero(~finite)[0])])
    return out


def _cut_hint(text: str, line: int, num_lines: int) -> str:
    """A note for a short last row without a line end: the file was probably cut there."""
    if line == num_lines and not text.endswith(("\n", "\r")):
        return " (the last row has no line end: the file looks truncated)"
    return ""


def _folders(parent: Path) -> list[Path]:
    """The sub-folders of ``parent``, sorted; a link that dangles or loops is an error naming it."""
    folders = []
    for p in sorted(parent.iterdir()):
        if p.is_symlink():
            try:
                p.resolve(strict=True)
            except (OSError, RuntimeError) as e:
                kind = "loops" if isinstance(e, RuntimeError) or "loop" in str(e).lower() else "points nowhere"
                raise DataError(f"a link that {kind} (to {os.readlink(p)!r})", p) from None
        if p.is_dir():
            folders.append(p)
    return folders


def load_sbu(data_dir: str | os.PathLike) -> SkeletonDataset:
    """Loads every sequence under ``data_dir``; folds 1..5 are the standard cross-validation sets.

    Returns a SkeletonDataset with x (282, T_max, 30, 3) in mm for the full release. Empty
    set/class folders are allowed (the real release has five empty set/class cells). A set folder
    outside the 21 known sets, or a class folder other than 01..08, is an error naming that
    folder. Sets of the release that are missing (or hold no sequence) are a documented skip: the
    rest loads, with a ``UserWarning`` naming the missing sets and the folds they leave
    incomplete (results on such a copy are not comparable with the standard 5-fold protocol);
    a copy whose sets all belong to one fold is an error (that split has no training data).
    Links are followed; one that dangles or loops, or two paths to the same skeleton file (a set
    linked to another), is an error naming it.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError("SBU data directory not found (expected <dir>/<set sXXsYY>/<class 01..08>/"
                        "<seq>/skeleton_pos.txt)", root)
    fold_of = {s: k + 1 for k, sets in enumerate(SBU_FOLDS) for s in sets}
    seqs, labels, folds, ids = [], [], [], []
    seen: dict[Path, Path] = {}
    set_dirs = _folders(root)
    if not set_dirs:
        raise DataError("no set folders (expected s01s02 ... s07s03)", root)
    for set_dir in set_dirs:
        if set_dir.name not in fold_of:
            raise DataError(f"unknown set folder {set_dir.name!r}: expected one of the 21 SBU sets "
                            f"{sorted(fold_of)}", set_dir)
        for class_dir in _folders(set_dir):
            if not re.fullmatch(r"0[1-8]", class_dir.name):
                raise DataError(f"unknown class folder {class_dir.name!r}: expected 01..08", class_dir)
            for seq_dir in _folders(class_dir):
                f = seq_dir / "skeleton_pos.txt"
                if not f.is_file():
                    raise DataError("missing skeleton_pos.txt in a sequence folder", seq_dir)
                real = f.resolve()
                if real in seen:   # a linked folder: one recording in two places (two folds: a leak)
                    raise DataError(f"the same file as {seen[real]} (through a link): one recording would be "
                                    "counted twice, in two folds if the sets differ", f)
                seen[real] = f.relative_to(root)
                seqs.append(read_skeleton_file(f))
                labels.append(int(class_dir.name) - 1)
                folds.append(fold_of[set_dir.name])
                ids.append(str(f.relative_to(root)))
    if not seqs:
        raise DataError("no skeleton_pos.txt files found", root)
    missing = sorted(set(fold_of) - {Path(i).parts[0] for i in ids})
    if missing:
        shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
        folds_hit = sorted({fold_of[s] for s in missing})
        warnings.warn(f"{root}: {len(missing)} of the 21 SBU sets missing or empty ({shown}); "
                      f"fold(s) {folds_hit} are incomplete, so results are not comparable with "
                      "the standard 5-fold protocol", stacklevel=2)
    lengths = np.array([len(s) for s in seqs], np.int32)
    x = np.zeros((len(seqs), lengths.max(), 30, 3), np.float32)
    for n, s in enumerate(seqs):
        x[n, : len(s)] = s
    ds = SkeletonDataset(
        name="sbu", x=x, lengths=lengths, labels=np.array(labels, np.int32),
        class_names=SBU_CLASS_NAMES, folds=np.array(folds, np.int32), edges=SBU_BONES,
        sample_ids=tuple(ids), units="mm",
    )
    try:
        check_splits(ds)  # e.g. a copy holding the sets of one fold only
    except DataError as e:
        raise DataError(str(e), root) from e
    return ds
