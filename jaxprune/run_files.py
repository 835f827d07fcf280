"""Reading a run folder back: ``run.json``, ``results.json`` and ``fold<K>/rows.json``, each
checked field by field before anything uses it.

A run folder is the user's to move, copy and edit, so what comes back may be damaged or crafted.
Every reader here returns the parsed object only when the fields that jaxprune reads have the
right types and ranges (fold numbers whole and unique, so ``fold<K>`` never leaves the folder;
counts whole and non-negative; rates and seconds finite), and raises ValueError naming the file
and the field otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

MAX_BYTES = 64 * 2 ** 20   # a results.json of 100 folds x 1000 rates is about 20 MB
STAGING = ".overwrite"     # suffix of the folder where a run that replaces another one trains


def read_json(path: Path, what: str) -> dict:
    """The JSON object in ``path``; ValueError naming it if missing, not a regular file, too big,
    not UTF-8, not JSON, or not an object. ``what`` says what the file should be."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: not found; {what}")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file; {what}")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{path}: {size} bytes, more than a run file holds ({MAX_BYTES}); {what}")
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply to be a run file") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: holds a JSON {type(obj).__name__}, not an object; {what}")
    return obj


def _shown(value) -> str:
    return repr(value)[:60]


def _fail(path: Path, field: str, problem: str):
    raise ValueError(f"{path}: field {field!r} {problem}; the file is damaged or was not written by jaxprune")


def _text(obj: dict, key: str, path: Path, optional: bool = False) -> str | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > 4096:
        _fail(path, key, "is missing or not a short non-empty text" if value is None or isinstance(value, str)
              else f"is a {type(value).__name__}, not a text")
    return value


def whole(value, path: Path, field: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value > 2 ** 31:
        _fail(path, field, f"must be a whole number >= {minimum}, got {_shown(value)}")
    return value


def finite(value, path: Path, field: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        _fail(path, field, f"must be a finite number in [{low:g}, {high:g}], got {_shown(value)}")
    return float(value)


def fold_list(value, path: Path, field: str = "folds") -> list[int]:
    """A non-empty list of unique whole fold numbers >= 0 (ValueError naming ``path`` otherwise)."""
    if not isinstance(value, list) or not value:
        _fail(path, field, "must be a non-empty list of fold numbers")
    folds = [whole(f, path, f"{field}[{i}]") for i, f in enumerate(value)]
    if len(set(folds)) != len(folds):
        _fail(path, field, f"lists a fold twice: {_shown(folds)}")
    return folds


ROW_NUMBERS = {"target_rate": (0.0, 1.0), "achieved_rate": (0.0, 1.0), "accuracy": (0.0, 100.0)}
ROW_COUNTS = ("kept_params", "total_params", "flops")


def rate_rows(value, path: Path, field: str) -> list[dict]:
    """A non-empty list of ``results.json`` rate rows with finite rates and accuracy and whole counts."""
    if not isinstance(value, list) or not value:
        _fail(path, field, "must be a non-empty list of rate rows")
    for i, row in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(row, dict):
            _fail(path, where, f"is a {type(row).__name__}, not an object")
        for key, (low, high) in ROW_NUMBERS.items():
            finite(row.get(key), path, f"{where}.{key}", low, high)
        for key in ROW_COUNTS:
            whole(row.get(key), path, f"{where}.{key}")
    return value


def _fold_runs(value, path: Path, field: str = "runs") -> list[dict]:
    if not isinstance(value, list) or not value:
        _fail(path, field, "must be a non-empty list of folds")
    for i, run in enumerate(value):
        if not isinstance(run, dict):
            _fail(path, f"{field}[{i}]", f"is a {type(run).__name__}, not an object")
        whole(run.get("fold"), path, f"{field}[{i}].fold")
        rate_rows(run.get("rates"), path, f"{field}[{i}].rates")
        if "train_seconds" in run:
            finite(run["train_seconds"], path, f"{field}[{i}].train_seconds", 0.0)
    fold_list([r["fold"] for r in value], path, f"{field}[].fold")
    return value


def _common(obj: dict, path: Path) -> None:
    _text(obj, "method", path)
    _text(obj, "dataset", path)
    _text(obj, "loader", path, optional=True)
    _text(obj, "data_dir", path, optional=True)
    if not isinstance(obj.get("config"), dict):
        _fail(path, "config", "must be an object of settings")


def read_run_info(out_dir) -> dict:
    """``out_dir/run.json`` (written when a run starts), checked: method, dataset, config, folds,
    data digest, eval_every."""
    path = Path(out_dir) / "run.json"
    obj = read_json(path, "--resume takes the --out folder of a started 'jaxprune train'")
    _common(obj, path)
    fold_list(obj.get("folds"), path)
    digest = _text(obj, "data_sha256", path)
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        _fail(path, "data_sha256", "must be 64 hexadecimal digits")
    whole(obj.get("eval_every", 0), path, "eval_every")
    replaces = _text(obj, "replaces", path, optional=True)   # a staged --overwrite: the sibling it replaces
    if replaces is not None and (replaces in (".", "..") or "/" in replaces or "\\" in replaces
                                 or path.parent.name != replaces + STAGING):
        _fail(path, "replaces", f"must name the run folder beside this one that it replaces, got {replaces[:60]!r}")
    return obj


def read_results(run_dir) -> dict:
    """``run_dir/results.json`` (a finished run), checked: method, dataset, config and every fold's
    rows."""
    path = Path(run_dir) / "results.json"
    obj = read_json(path, "--run must be the --out folder of a finished 'jaxprune train'")
    _common(obj, path)
    _fold_runs(obj.get("runs"), path)
    if "train_seconds" in obj:
        finite(obj["train_seconds"], path, "train_seconds", 0.0)
    return obj


def read_fold_rows(path, fold: int) -> dict:
    """A finished fold's ``rows.json`` of fold ``fold``, checked: its fold, rows and seconds."""
    path = Path(path)
    obj = read_json(path, f"it records the finished fold {fold} of a stopped run")
    if obj.get("fold") != fold or isinstance(obj.get("fold"), bool):
        _fail(path, "fold", f"must be {fold} (the folder it is in), got {_shown(obj.get('fold'))}")
    rate_rows(obj.get("rates"), path, "rates")
    finite(obj.get("train_seconds"), path, "train_seconds", 0.0)
    return obj
