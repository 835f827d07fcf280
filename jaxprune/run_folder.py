"""A run's output folder: refusing to overwrite a finished or stopped run, and an overwrite that
trains beside the old run (``<out>.overwrite``) and replaces it only once it has finished."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from jaxprune.results import check_writable_folder, write_json_atomic
from jaxprune.run_files import STAGING


class RunExistsError(FileExistsError):
    """The output folder holds a finished run (its results.json) and overwriting was not asked."""


def staging_folder(out_dir: Path) -> Path:
    """Where a run started with ``overwrite`` over ``out_dir`` trains until it has finished."""
    return out_dir.with_name(out_dir.name + STAGING)


def holds_a_run(out_dir: Path) -> bool:
    return out_dir.is_dir() and ((out_dir / "results.json").exists() or (out_dir / "run.json").exists()
                                 or any(out_dir.glob("fold*/model.npz")) or any(out_dir.glob("fold*/rows.json"))
                                 or any(out_dir.glob("fold*/checkpoints")))


def start_folder(out_dir: Path, folds: list[int], overwrite: bool, run_info: dict) -> bool:
    """Refuses a folder holding a finished or stopped run (unless ``overwrite``) and writes the new
    run's ``run.json``: in ``out_dir``, or (True is returned) in its staging folder when it
    replaces a run there. The start of a run, on its writing process."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: is a file, not a folder; choose a folder for the run's files")
    if (out_dir / "results.json").exists() and not overwrite:
        raise RunExistsError(f"{out_dir / 'results.json'} exists: this folder holds a finished run. "
                             "Choose another --out, or pass --overwrite to replace it.")
    stopped = [p for p in [out_dir / "run.json"] + [out_dir / f"fold{f}" / name for f in folds
                                                    for name in ("rows.json", "checkpoints")] if p.exists()]
    if stopped and not overwrite:
        raise RunExistsError(f"{stopped[0]} exists: {out_dir} holds a stopped run. Continue it with "
                             f"--resume {out_dir}, choose another --out, or pass --overwrite to start over.")
    staged = overwrite and holds_a_run(out_dir)
    folder = staging_folder(out_dir) if staged else out_dir
    if staged and folder.exists():   # an earlier overwrite that did not finish: its partial run goes
        shutil.rmtree(folder)
    check_writable_folder(folder, "--out")
    write_json_atomic(folder / "run.json", {**run_info, "replaces": out_dir.name} if staged else run_info)
    return staged


def replace_run(staged: Path, replaces: str) -> None:
    """Moves the finished run in ``staged`` over the run it replaces (``replaces``: the name of a
    sibling folder): the old folder is renamed aside, the new one renamed into place, the old one
    deleted."""
    final = staged.with_name(replaces)
    aside = final.with_name(final.name + ".replaced")
    if aside.exists():
        shutil.rmtree(aside)
    if final.exists():
        os.replace(final, aside)
    os.replace(staged, final)
    shutil.rmtree(aside, ignore_errors=True)
