"""Resumable training jobs for experiment modules: one (run, fold) per job, run in worker processes.

A job trains one fold with ``jaxprune.runner.train_fold`` under its preset (default: the
dataset's) plus its overrides and writes ``<out>/<run>/fold<k>/rows.json`` (and ``model.npz``); a job whose rows exist
is not run again; jobs share compiled programs through JAX's persistent cache
(``experiments.compile_cache``). ``collect`` turns a run's per-fold rows into its ``results.json`` object.

A validation job (``validation`` j ≠ 0) is one step of nested validation: it never sees test fold
k, trains on the other folds but j, and scores on fold j (``validation_split``); its rows go to
``<out>/<run>/fold<k>_val<j>/rows.json``. Settings chosen on such scores never look at a test fold.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path
from typing import NamedTuple

from jaxprune.presets import PRESETS


class Job(NamedTuple):
    dataset: str            # sbu | fpha
    data_dir: str
    run: str                # the run's folder name under ``out``
    method: str
    overrides: tuple[str, ...]
    fold: int
    out: str
    preset: str | None = None     # a name in jaxprune.presets.PRESETS; None: the dataset's default
    validation: int = 0           # j: train without folds ``fold`` and j, score on j; 0: score on ``fold``

    def folder(self) -> Path:
        """The job's own folder: ``<out>/<run>/fold<k>``, or ``fold<k>_val<j>`` for a validation job."""
        name = f"fold{self.fold}" + (f"_val{self.validation}" if self.validation else "")
        return Path(self.out) / self.run / name

    def rows_path(self) -> Path:
        return self.folder() / "rows.json"


def validation_split(dataset, test_fold: int, validation: int):
    """``dataset`` without fold ``test_fold``, relabelled for nested validation: fold
    ``validation`` becomes the held-out fold 1, every other remaining fold training (0)."""
    import dataclasses
    import numpy as np
    if validation == test_fold or validation not in set(dataset.folds.tolist()):
        raise ValueError(f"validation fold {validation}: must be a fold of {dataset.name} other than the "
                         f"test fold {test_fold}")
    sub = dataset.subset(np.flatnonzero(dataset.folds != test_fold))
    return dataclasses.replace(sub, folds=np.where(sub.folds == validation, 1, 0).astype(np.int32))


def _prune_name(assignment: str) -> str | None:
    """'kl_weight' for 'prune.kl_weight=3', None for a setting outside the prune group."""
    name = assignment.split("=", 1)[0].strip()
    return name[len("prune."):] if name.startswith("prune.") else None


def for_method(method: str, overrides) -> list[str]:
    """``overrides`` for a run of ``method``: an experiment's ``--set`` applies to every method that
    reads the setting, so prune settings ``method`` does not read are left out (``check_read``
    makes sure each is read by some method of the experiment); unknown names stay, to be refused."""
    from jaxprune.methods import method as registered
    reads = registered(method).settings
    return [a for a in overrides if _prune_name(a) not in _prune_fields() or _prune_name(a) in reads]


def check_read(jobs: list[Job]) -> None:
    """ValueError naming a prune setting in the jobs' overrides that none of their methods reads."""
    from jaxprune.methods import method as registered
    read = {s for j in jobs for s in registered(j.method).settings}
    methods = sorted({j.method for j in jobs})
    for j in jobs:
        for a in j.overrides:
            name = _prune_name(a)
            if name is not None and name not in read and name in _prune_fields():
                raise ValueError(f"--set {a}: none of this experiment's methods ({', '.join(methods)}) reads "
                                 f"prune.{name}")


def _prune_fields() -> set[str]:
    from jaxprune.methods.config import PruneConfig
    return set(PruneConfig.__dataclass_fields__)


def job_config(job: Job):
    """The RunConfig of ``job``: its preset for its dataset and method, then its overrides."""
    from jaxprune.config import override
    from jaxprune.presets import preset_settings
    from jaxprune.run_config import RunConfig
    return override(RunConfig(method=job.method),
                    [*preset_settings(job.dataset, job.preset, job.method), *for_method(job.method, job.overrides)])


def check_done(job: Job) -> None:
    """A done job (its rows.json exists) must have been trained with the settings it asks for now
    (those its method reads, ``read_settings``): a changed default preset or --set would
    otherwise mix two networks in one table. Raises ValueError naming the file and the settings
    that differ."""
    from jaxprune.config import saved_differences
    from jaxprune.run_config import read_settings
    path = job.rows_path()
    try:
        saved = json.loads(path.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a finished job's rows ({e}); delete it to train the job again") from None
    differ = saved_differences(read_settings(job.method, saved), read_settings(job.method, job_config(job).to_dict()))
    if differ:
        raise ValueError(f"{path} was trained with other settings than this run asks for: {differ}. Pass the "
                         "--preset and --set it was trained with (see its config), or choose another --out")


def train_job(job: Job) -> str:
    """Trains one job; writes and returns the path of its rows.json."""
    from jaxprune.datasets import load_dataset
    from benchmarks.timing import machine
    from jaxprune.runner import train_fold
    config = job_config(job)
    dataset = load_dataset(job.dataset, job.data_dir)
    if job.validation:             # trained as fold 1 of the split, in the job's own folder
        result = train_fold(validation_split(dataset, job.fold, job.validation), 1, config,
                            out_dir=job.folder(), progress=False)
    else:
        result = train_fold(dataset, job.fold, config, out_dir=Path(job.out) / job.run, progress=False)
    record = {"fold": job.fold, "rates": result["rates"], "train_seconds": result["train_seconds"],
              "config": config.to_dict(), "host": machine(),
              **({"validation": job.validation} if job.validation else {})}
    job.rows_path().write_text(json.dumps(record))
    return str(job.rows_path())


class FolderInUse(RuntimeError):
    """Another process is running experiment jobs in the same output folder."""


def lock_folder(folder: Path):
    """An exclusive lock on ``folder/.jobs.lock``, held while the returned file stays open (the OS
    drops it when the process ends, so a killed run leaves no stale lock). Raises FolderInUse when
    another process holds it: two experiments in one folder would train the same jobs and
    overwrite each other's checkpoints. Where ``fcntl`` is missing (Windows), no lock is taken."""
    try:
        import fcntl
    except ImportError:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / ".jobs.lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise FolderInUse(f"{folder} is in use by another experiment (it holds {folder / '.jobs.lock'}); "
                          "wait for it to finish or choose another --out") from None
    return handle


def reuse_done(jobs: list[Job], folders) -> int:
    """Copies into each job not yet done the rows.json of a job already done in one of ``folders``
    (other experiments' ``--out``) with the same fold, validation fold and settings (every setting
    of its saved config that the method reads equal to this job's, ``read_settings``), so that two grids that share runs train them once.
    Only rows.json is copied (no model). Returns how many were copied."""
    from jaxprune.config import saved_differences
    from jaxprune.run_config import read_settings
    todo = [j for j in jobs if not j.rows_path().exists()]
    if not todo or not folders:
        return 0
    done: dict[tuple[int, int], list[tuple[Path, dict]]] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*/fold*/rows.json")):
            try:
                record = json.loads(path.read_text())
                key = (int(record["fold"]), int(record.get("validation", 0)))
                done.setdefault(key, []).append((path, record["config"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue                               # not a finished job's rows: not reused
    copied = 0
    for job in todo:
        wanted = read_settings(job.method, job_config(job).to_dict())
        match = next((path for path, saved in done.get((job.fold, job.validation), [])
                      if saved.get("method") == job.method
                      and not saved_differences(read_settings(job.method, saved), wanted)), None)
        if match is not None:
            job.rows_path().parent.mkdir(parents=True, exist_ok=True)
            job.rows_path().write_text(match.read_text())
            copied += 1
    return copied


def run_jobs(jobs: list[Job], workers: int, reuse=()) -> None:
    """Runs the jobs not yet done, in ``workers`` spawned processes (0: in this one), with progress.
    Holds each output folder's lock (``lock_folder``) meanwhile. A prune setting that none of the
    jobs' methods reads (``check_read``) or a run whose settings do not build is refused first.
    ``reuse``: folders whose done jobs stand in for identical ones here (``reuse_done``). A job listed
    twice runs once (two copies would train in one folder at once)."""
    jobs = list(dict.fromkeys(jobs))
    check_read(jobs)
    from jaxprune.config import SettingError
    for job in {j.run: j for j in jobs}.values():        # every run's settings build, before any training
        try:
            job_config(job)
        except (SettingError, ValueError) as e:
            raise ValueError(f"run {job.run}: {e}") from None
    for job in jobs:
        if job.rows_path().exists():
            check_done(job)
    with contextlib.ExitStack() as held:
        for out in sorted({j.out for j in jobs}):
            handle = lock_folder(Path(out))
            if handle is not None:
                held.enter_context(handle)
        copied = reuse_done(jobs, reuse)
        if copied:
            print(f"{copied} job(s) taken from {', '.join(map(str, reuse))} (same fold and settings)", flush=True)
        _run_unlocked([j for j in jobs if not j.rows_path().exists()], workers)


def _run_unlocked(todo: list[Job], workers: int) -> None:
    if todo:
        from experiments.compile_cache import use_compile_cache
        use_compile_cache()                   # one compile per program and machine, not per job
    start = time.perf_counter()
    if todo and workers == 0:
        for i, job in enumerate(todo, 1):
            print(f"[{i}/{len(todo)}] {time.perf_counter() - start:6.0f}s  {train_job(job)}", flush=True)
    elif todo:
        from concurrent.futures import ProcessPoolExecutor
        import multiprocessing as mp
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            for i, path in enumerate(pool.map(train_job, todo), 1):
                print(f"[{i}/{len(todo)}] {time.perf_counter() - start:6.0f}s  {path}", flush=True)


def collect(dataset, out: Path, run: str, folds, data_dir: str) -> dict | None:
    """The results.json object of ``run`` from its per-fold rows (None until every fold is done)."""
    from jaxprune.results import results_record
    from jaxprune.run_config import load_run_config
    records = []
    for k in folds:
        path = out / run / f"fold{k}" / "rows.json"
        if not path.exists():
            return None
        records.append(json.loads(path.read_text()))
    config = load_run_config({"config": records[0]["config"]}, out / run / f"fold{folds[0]}" / "rows.json")
    runs = [{"fold": r["fold"], "rates": r["rates"], "train_seconds": r["train_seconds"]} for r in records]
    return results_record(dataset, config, runs, sum(r["train_seconds"] for r in records), data_dir=data_dir)


def collect_all(dataset, out: Path, runs, folds, data_dir: str) -> dict:
    """{run: results.json object} of every run whose folds are all done, each also written to
    ``out/<run>/results.json``."""
    from jaxprune.results import write_json_atomic
    results = {}
    for name in runs:
        res = collect(dataset, out, name, folds, data_dir)
        if res is not None:
            write_json_atomic(out / name / "results.json", res)
            results[name] = res
    return results


def seed_list(text: str) -> list[int]:
    """The seeds of ``--seeds`` ("0,1,2"), or SystemExit naming the option (a repeated seed too:
    two jobs would train in one folder)."""
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        seeds = []
    if len(set(seeds)) < len(seeds):
        raise SystemExit(f"--seeds: a seed is repeated in {text!r}")
    if not seeds:
        raise SystemExit(f"--seeds: expected comma-separated integers, e.g. 0,1,2; got {text!r}")
    return seeds


def pool_seeds(results: dict, names, seeds) -> dict:
    """{name: results.json object pooled over the done seeds}: the runs of ``<name>_s<seed>``
    for every seed whose run is done, one list (each fold run gains its ``seed``), summarised
    again (``summary``: means and std over seeds × folds); ``seeds``: the seeds pooled; the other
    fields are the first seed's. Names with no seed done are left out."""
    from jaxprune.results import summarise
    pooled = {}
    for name in names:
        done = [(s, results[f"{name}_s{s}"]) for s in seeds if f"{name}_s{s}" in results]
        if done:
            runs = [{**run, "seed": s} for s, res in done for run in res["runs"]]
            pooled[name] = {**done[0][1], "runs": runs, "summary": summarise(runs), "seeds": [s for s, _ in done],
                            "train_seconds": sum(res["train_seconds"] for _, res in done)}
    return pooled


def pairs_at(pooled: dict | None, rate: float) -> dict[tuple[int, int], float]:
    """{(seed, fold): test accuracy %} at ``rate`` of a run pooled by ``pool_seeds`` (None: {}),
    the keys on which two methods are paired (``experiments.stats.paired``)."""
    out = {}
    for run in [] if pooled is None else pooled["runs"]:
        row = next((r for r in run["rates"] if abs(r["target_rate"] - rate) < 1e-9), None)
        if row is not None:
            out[(run["seed"], run["fold"])] = row["accuracy"]
    return out


def write_tables(out: Path, markdown: str, rows: list[dict], csv_name: str = "table.csv",
                 markdown_name: str = "table.md") -> None:
    """Writes ``out/<markdown_name>`` and (when there are rows) ``out/<csv_name>``, and prints the markdown."""
    import csv
    (out / markdown_name).write_text(markdown)
    if rows:
        with open(out / csv_name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(markdown)


def machine_line(results: dict | None = None) -> str:
    """'Machine: …' for a table's header: this host's CPU and cores, and the jax backend of the
    runs (of this process when ``results`` holds none)."""
    if results:
        backend = next(iter(results.values()))["backend"]
    else:
        import jax
        backend = jax.default_backend()
    from benchmarks.timing import machine
    return f"Machine: {machine()}, jax backend {backend}"


def listed(text: str, allowed, option: str) -> list[str]:
    """The comma-separated names of ``text``, each one of ``allowed`` (else SystemExit naming ``option``)."""
    names = [n.strip() for n in text.split(",")]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise SystemExit(f"{option}: unknown {unknown}; choose from {','.join(allowed)}")
    return names


def fold_list(dataset, text: str, option: str = "--folds") -> list[int]:
    """The folds of ``option``: 'all' (every test fold of ``dataset``) or distinct comma-separated
    test folds of ``dataset`` (else SystemExit naming the option)."""
    if text == "all":
        return list(dataset.test_folds)
    try:
        folds = [int(f) for f in text.split(",")]
    except ValueError:
        folds = []
    if not folds or len(set(folds)) < len(folds) or any(k not in dataset.test_folds for k in folds):
        raise SystemExit(f"{option}: expected 'all' or distinct comma-separated test folds of {dataset.name} "
                         f"({','.join(map(str, dataset.test_folds))}); got {text!r}")
    return folds


def experiment_parser(doc: str, rates, rates_help: str = "pruning rates") -> argparse.ArgumentParser:
    """The options every pruning experiment module shares: dataset, data, output, preset, rates,
    folds, workers and ``--set`` overrides."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--dataset", choices=("sbu", "fpha"), default="sbu")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--preset", choices=tuple(PRESETS),
                   help="the settings every run starts from (default: the dataset's, wide; see jaxprune/presets.py)")
    p.add_argument("--rates", default=",".join(f"{r:g}" for r in rates), help=rates_help)
    p.add_argument("--folds", default="all", help="comma-separated test folds, or all")
    p.add_argument("--workers", type=int, default=2, help="parallel processes; 0 = run in this process")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--reuse", action="append", default=[], metavar="DIR",
                   help="another experiment's --out whose finished jobs with the same fold and settings are "
                        "copied instead of trained again (repeatable)")
    return p
