"""Dense GCN on SBU, 5-fold cross-validation over seeds: the reference accuracy (paper: 98.4 %).

    python -m experiments.sbu_dense --data-dir ../shared/data/sbu --out runs/sbu_dense
    python -m experiments.sbu_dense --data-dir ../shared/data/sbu --out runs/sbu_nested \
        --select-from runs/tune/validation.jsonl

Every fold is trained at each seed of ``--seeds`` (default 0, 1, 2), seed-major, in one pool of
``--workers`` processes (XLA single-threaded in each); the jobs resume (a finished fold is not
trained again). By default every fold uses SBU's default preset (``jaxprune.presets``: ``wide``;
``--preset`` picks another, e.g. ``paper`` or ``c8``). With ``--select-from``, each outer fold k
instead uses the candidate of ``experiments.tune_dense`` with the best validation accuracy among
the runs made for fold k (which neither trained nor validated on fold k): a strictly nested
choice. Extra ``--set NAME=VALUE`` apply on top.

Writes into ``--out``: ``dense_s<seed>/results.json`` (its ``config`` is fold 1's; with
``--select-from`` each fold's own settings are in its ``fold<k>/rows.json``) with each fold's
model and metrics, ``table.md`` / ``table.csv`` (accuracy of every seed and fold, mean ± std over
seeds × folds) and ``curves.png`` (training loss and accuracy of every seed and fold).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

from experiments.jobs import (Job, collect_all, fold_list, machine_line, pool_seeds, run_jobs,  # noqa: E402
                             seed_list, write_tables)
from experiments.plotting import pyplot, save  # noqa: E402
from jaxprune.presets import PRESETS, preset_name  # noqa: E402


def select_per_fold(validation_log: Path) -> dict[int, tuple[str, list[str]]]:
    """For each outer fold k: (candidate name, overrides) with the best mean validation accuracy
    over the tuning runs made for k. Ties go to the candidate listed first. A candidate tuned
    under a preset is named "name [preset]"; its overrides include the preset's settings."""
    try:
        text = validation_log.read_text()
    except OSError as e:
        raise SystemExit(f"--select-from {validation_log}: cannot be read ({e.strerror or e})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            row = json.loads(line) if line.strip() else None
            if row is not None:
                if not isinstance(row, dict) or not isinstance(row.get("overrides"), list):
                    raise TypeError("expected an object whose overrides are a list of NAME=VALUE")
                rows.append({"outer": int(row["outer"]), "candidate": str(row["candidate"]),
                             "overrides": [str(o) for o in row["overrides"]],
                             "val_accuracy": float(row["val_accuracy"]), "preset": row.get("preset", "none")})
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"--select-from {validation_log}, line {n}: not a row of experiments.tune_dense "
                             f"({type(e).__name__}: {e})") from None
    chosen = {}
    for k in sorted({r["outer"] for r in rows}):
        scores = {}
        for r in rows:
            if r["outer"] == k:
                name = r["candidate"] + (f" [{r['preset']}]" if r["preset"] != "none" else "")
                scores.setdefault(name, (r["overrides"], []))[1].append(r["val_accuracy"])
        name = max(scores, key=lambda n: np.mean(scores[n][1]))
        chosen[k] = (name, scores[name][0])
    return chosen


def markdown(results: dict, seeds, names: dict[int, str], command: str, machine: str) -> tuple[str, list[dict]]:
    """(markdown, csv rows): every (seed, fold)'s accuracy and training time, each seed's fold mean,
    and the mean ± std over seeds × folds (``pool_seeds``). ``results``: {"dense_s<seed>":
    results.json object}; ``names``: {fold: the settings it trained with}."""
    folds = sorted(names)
    per_seed = {s: results[f"dense_s{s}"] for s in seeds}
    lines = ["| seed | " + " | ".join(f"fold {k}" for k in folds) + " | mean over folds | train time (s) |",
             "|---" * (len(folds) + 3) + "|"]
    rows, seed_means = [], []
    for seed, res in per_seed.items():
        acc = {r["fold"]: r["rates"][0]["accuracy"] for r in res["runs"]}
        seed_means.append(float(np.mean(list(acc.values()))))
        lines.append(f"| {seed} | " + " | ".join(f"{acc[k]:.2f}" for k in folds)
                     + f" | {seed_means[-1]:.2f} | {res['train_seconds']:.0f} |")
        rows += [{"seed": seed, "fold": r["fold"], "settings": names[r["fold"]], "accuracy": r["rates"][0]["accuracy"],
                  "train_seconds": r["train_seconds"]} for r in res["runs"]]
    every = pool_seeds(results, ["dense"], seeds)["dense"]["summary"][0]
    settings = "; ".join(f"fold {k}: {n}" for k, n in names.items()) if len(set(names.values())) > 1 \
        else next(iter(names.values()))
    text = (f"# Dense GCN on SBU, {len(folds)} test fold(s), seeds {', '.join(map(str, per_seed))}\n\n"
            f"Command: `{command}`  \n{machine}  \nSettings: {settings}\n\n"
            f"**{every['accuracy_mean']:.2f} ± {every['accuracy_std']:.2f} %** "
            f"(mean ± std over {len(per_seed)} seed(s) × {len(folds)} folds); "
            f"std of the seeds' fold means {np.std(seed_means):.2f} points.\n\n"
            + "\n".join(lines) + "\n")
    return text, rows


def plot_curves(out: Path, seeds, folds, path: Path) -> bool:
    """Training loss and accuracy per epoch of every (seed, fold), read from each fold's
    ``metrics.jsonl``, coloured by fold; False if matplotlib is missing."""
    plt = pyplot()
    if plt is None:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for i, k in enumerate(folds):
        for j, seed in enumerate(seeds):
            path_k = out / f"dense_s{seed}" / f"fold{k}" / "metrics.jsonl"
            if not path_k.exists():      # reused or trained elsewhere: rows only
                continue
            hist = [json.loads(line) for line in path_k.read_text().splitlines() if line.strip()]
            epochs = [h["epoch"] for h in hist]
            label = f"fold {k}" if j == 0 else None
            ax1.semilogy(epochs, [h["loss"] for h in hist], color=f"C{i}", lw=0.8, label=label)
            ax2.plot(epochs, [100 * h["accuracy"] for h in hist], color=f"C{i}", lw=0.8, label=label)
    ax1.set(xlabel="epoch", ylabel="training loss (nats)", title="Dense GCN on SBU: training loss, every seed")
    ax2.set(xlabel="epoch", ylabel="training accuracy (%)", title="training accuracy (augmented)")
    ax1.legend()
    return save(fig, path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="SBU root")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2), trained seed-major")
    p.add_argument("--folds", default="all", help="comma-separated test folds, or all")
    p.add_argument("--select-from", type=Path, help="validation.jsonl of experiments.tune_dense")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--preset", choices=tuple(PRESETS), help="the settings of every fold (default: SBU's, wide)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes; 0 = run in this process")
    a = p.parse_args(argv)
    from jaxprune.datasets import load_dataset
    seeds = seed_list(a.seeds)
    out = Path(a.out)
    if (out / "results.json").exists():
        raise SystemExit(f"{out / 'results.json'}: {out} is an sbu_dense folder from before --seeds (one seed, "
                         "its results.json at the top); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset("sbu", a.data_dir)
    folds = fold_list(dataset, a.folds)
    chosen = select_per_fold(a.select_from) if a.select_from else {}
    missing = [k for k in folds if chosen and k not in chosen]
    if missing:
        raise SystemExit(f"--select-from {a.select_from}: no tuning runs for outer fold(s) {missing}")
    extra = " + --set" if a.overrides else ""
    names = {k: (chosen[k][0] if chosen else f"preset {preset_name('sbu', a.preset)}") + extra for k in folds}
    start = time.perf_counter()
    # one pool, seed-major: seed s's jobs all start before seed s + 1's (an interrupted grid has whole
    # seeds but for the jobs in flight), and no worker idles while a seed's last job ends
    run_jobs([Job("sbu", a.data_dir, f"dense_s{s}", "dense", (*(chosen[k][1] if chosen else ()), *a.overrides,
                  f"seed={s}"), k, str(out), "none" if chosen else a.preset) for s in seeds for k in folds], a.workers)
    print(f"trained in {time.perf_counter() - start:.0f} s", flush=True)
    results = collect_all(dataset, out, [f"dense_s{s}" for s in seeds], folds, a.data_dir)
    text, rows = markdown(results, seeds, names, "python -m experiments.sbu_dense " + " ".join(argv),
                          machine_line(results))
    write_tables(out, text, rows)
    plot_curves(out, seeds, folds, out / "curves.png")


if __name__ == "__main__":
    main()
