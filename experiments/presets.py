"""What each named preset scores, over seeds: dense on SBU (5 folds) and on the synthetic data.

    python -m experiments.presets --data-dir ../shared/data/sbu --out experiments/results/presets

Dense runs of every (dataset, preset) row below, for each seed of ``--seeds`` and every test
fold (jobs resume: a finished fold is not trained again):

- SBU: ``wide`` (the default), ``c8`` and ``paper``;
- the synthetic data (2 folds, its own ``demo`` default): ``demo``, ``c8``, ``c8`` plus person
  swap (``augment.swap_groups=2``; the synthetic classes name the person who moves, so a swap
  changes the label: the check that swap must stay data-dependent) and ``wide``.

Writes ``table.md`` / ``table.csv`` (accuracy mean ± std over seeds × folds, the spread of the
seeds' fold means, training time) and ``presets.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from experiments.jobs import Job, collect_all, machine_line, run_jobs, write_tables
from experiments.plotting import pyplot, save

# (dataset, preset, extra settings, label)
ROWS = (("sbu", "wide", (), "wide"), ("sbu", "c8", (), "c8"), ("sbu", "paper", (), "paper"),
        ("synthetic", "demo", (), "demo"), ("synthetic", "c8", (), "c8"),
        ("synthetic", "c8", ("augment.swap_groups=2",), "c8 + person swap"), ("synthetic", "wide", (), "wide"))


def run_name(dataset: str, label: str, seed: int) -> str:
    return f"{dataset}_{label.replace(' + ', '+').replace(' ', '_')}_s{seed}"


def summary_rows(results: dict, seeds) -> list[dict]:
    """One row per (dataset, label) whose runs are done for every seed."""
    rows = []
    for dataset, preset, extra, label in ROWS:
        runs = [results.get(run_name(dataset, label, s)) for s in seeds]
        if any(r is None for r in runs):
            continue
        folds = [[f["rates"][0]["accuracy"] for f in r["runs"]] for r in runs]        # seeds x folds
        rows.append({"dataset": dataset, "preset": label, "channels": runs[0]["config"]["model"]["channels"],
                     "seeds": len(seeds), "folds": len(folds[0]),
                     "accuracy_mean": float(np.mean(folds)), "accuracy_std": float(np.std(folds)),
                     "seed_means": ";".join(f"{np.mean(f):.2f}" for f in folds),
                     "seed_std": float(np.std([np.mean(f) for f in folds])),
                     "train_seconds_per_fold": float(np.mean([r["train_seconds"] / len(r["runs"]) for r in runs]))})
    return rows


def markdown(rows: list[dict], command: str, machine: str, wall: float) -> str:
    lines = ["# Dense accuracy of each preset, over seeds", "", f"Command: `{command}`  ",
             f"{machine}; this invocation's wall time {wall / 60:.1f} min (finished folds were not rerun)", "",
             "| dataset | preset | C | seeds × folds | accuracy % (mean ± std over seeds × folds) | "
             "seeds' fold means | std of the seeds' means | training s / fold |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['preset']} | {r['channels']} | {r['seeds']} × {r['folds']} | "
              f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} | {r['seed_means'].replace(';', ' / ')} | "
              f"{r['seed_std']:.2f} | {r['train_seconds_per_fold']:.0f} |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> bool:
    plt = pyplot()
    if plt is None or not rows:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, dataset in zip(axes, ("sbu", "synthetic")):
        mine = [r for r in rows if r["dataset"] == dataset]
        ax.bar(range(len(mine)), [r["accuracy_mean"] for r in mine], yerr=[r["accuracy_std"] for r in mine],
               capsize=4, color="tab:blue")
        ax.set_xticks(range(len(mine)), [f"{r['preset']}\n(C = {r['channels']})" for r in mine], fontsize=8)
        ax.set_ylim(min([r["accuracy_mean"] - 2 * r["accuracy_std"] for r in mine], default=50), 100)
        ax.set_title(f"{dataset}: dense, mean ± std over seeds × folds", fontsize=9)
        ax.set_ylabel("test accuracy (%)")
    return save(fig, path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="the SBU root")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--datasets", default="sbu,synthetic", help="any of sbu,synthetic")
    p.add_argument("--workers", type=int, default=2, help="parallel processes; 0 = run in this process")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="on top of every row's preset (e.g. train.epochs=3 for a smoke test)")
    a = p.parse_args(argv)
    from jaxprune.datasets import load_dataset
    seeds = [int(s) for s in a.seeds.split(",")]
    datasets = {d.strip() for d in a.datasets.split(",")}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = {d: load_dataset(d, a.data_dir if d == "sbu" else None) for d in sorted(datasets)}
    rows = [r for r in ROWS if r[0] in datasets]
    jobs = [Job(d, a.data_dir if d == "sbu" else "", run_name(d, label, s), "dense",
                (f"seed={s}", *extra, *a.overrides), k, str(out), preset)
            for d, preset, extra, label in rows for s in seeds for k in data[d].test_folds]
    jobs.sort(key=lambda j: (j.preset != "paper", j.preset != "wide"))      # the longest first
    start = time.perf_counter()
    run_jobs(jobs, a.workers)
    wall = time.perf_counter() - start
    results = {}
    for d, dataset in data.items():
        names = sorted({j.run for j in jobs if j.dataset == d})
        results.update(collect_all(dataset, out, names, dataset.test_folds, a.data_dir if d == "sbu" else None))
    table = summary_rows(results, seeds)
    text = markdown(table, "python -m experiments.presets " + " ".join(argv), machine_line(results), wall)
    write_tables(out, text, table)
    plot(table, out / "presets.png")


if __name__ == "__main__":
    main()
