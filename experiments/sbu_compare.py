"""The head-to-head table: every method on the same GCN, data, epochs and seeds, accuracy vs rate.

    python -m experiments.sbu_compare --data-dir ../shared/data/sbu --out experiments/results/sbu_compare_seeds
    python -m experiments.sbu_compare --data-dir ../shared/data/sbu --out runs/quick --quick

Methods: dense; MRMP (one model per fold for every rate); SRMP and CTF (one model per rate and
fold); the baselines of ``jaxprune.methods.baselines`` (magnitude pruning is run twice, layer-wise
and global) and the dynamic and straight-through ones of ``jaxprune.methods`` (SET, RigL, STE).
Every run uses the dataset's preset (``--preset``; the network is named in the table) plus
``--set`` overrides and the same ``train.epochs`` (every phase counted), except where the preset
gives a method a recipe of its own (``jaxprune.presets.METHOD_RECIPES``: MRMP on ``wide`` trains
6000 epochs on split batches, the header says so). Each method's own
hyper-parameters are its documented defaults (``jaxprune settings``) except λ of L1 and group
lasso, chosen by nested validation on training folds (``experiments.tune_dense``, results in
``experiments/results/tune_baselines``); all are written in each run's results, none was chosen
on a test fold.

Every run is trained at each seed of ``--seeds`` (default 0, 1, 2); the jobs run in one pool of
``--workers`` processes, seed-major (a seed's jobs all start before the next seed's, so that an
interrupted grid has whole seeds but for the jobs in flight), and resume (a finished fold is not
trained again); ``--report`` writes the tables of a grid in progress without training.
Accuracies are pooled over seeds × folds, and each comparison is paired by (seed, fold).

MRMP is also scored at ``--unseen-rates`` (default 0.8, 0.93, 0.97), rates not in its trained list,
served from the same model. With ``prune.rate_jitter`` on (the default) each falls inside a listed
rate's stratum, so training draws rates near it, but the model is never scored there; its rows
are marked ``trained=False`` and a table sets each against MRMP at the listed rates beside it.
The served rates are part of an MRMP job's settings: an output folder made before this option
refuses to resume under the default, unless given ``--unseen-rates ''``.

``--quick`` (a first look in well under 15 minutes on 2 CPU cores): fold 1 only, rates 0.5, 0.9
and 0.98, 300 epochs, seed 0.

Writes into ``--out``: ``<run>_s<seed>/results.json`` per run, ``table.md`` (accuracy mean ± std
and achieved rate per method and rate, the paired verdicts, and each test fold's differences),
``summary.csv`` (one row per method and target rate: ``SUMMARY_COLUMNS``, methods as the CLI
spells them, then the table's label) and ``accuracy_vs_rate.png``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


import numpy as np  # noqa: E402

from experiments.jobs import (Job, collect_all, experiment_parser, fold_list, listed, machine_line,  # noqa: E402
                             pairs_at, pool_seeds, run_jobs, seed_list, write_tables)
from experiments.plotting import pyplot, save  # noqa: E402
from experiments.stats import paired, seed_range_cells  # noqa: E402

RATES = (0.5, 0.7, 0.9, 0.95, 0.98, 0.99)
OURS = ("MRMP", "SRMP", "CTF")    # the papers' methods; every other label below is a baseline
UNSEEN = (0.8, 0.93, 0.97)        # MRMP also scored at these rates outside its list
QUICK = {"rates": "0.5,0.9,0.98", "folds": "1", "epochs": 300, "seeds": "0"}
# (label, method, extra settings); one model per rate unless the method serves many (mrmp)
METHODS = [
    ("MRMP", "mrmp", ()), ("SRMP", "srmp", ()), ("CTF", "ctf", ()),
    ("magnitude, layer-wise", "magnitude", ("prune.scope=layer",)),
    ("magnitude, global", "magnitude", ("prune.scope=global",)),
    ("gradual magnitude", "gradual", ()), ("random", "random", ()), ("structured (columns)", "structured", ()),
    ("lottery rewinding", "lottery", ()), ("SNIP", "snip", ()),
    # λ chosen by nested validation on the training folds at rate 0.9 (experiments/results/tune_baselines)
    ("L1 then threshold", "l1", ("prune.reg_weight=0.01",)),
    ("group lasso then threshold", "group_lasso", ("prune.reg_weight=0.1",)),
    ("STE magnitude", "ste", ()), ("SET", "set", ()), ("RigL", "rigl", ()),
]
# the one variant whose CLI name needs its setting: magnitude's default scope is layer
CLI_NAME = {"magnitude, global": "magnitude prune.scope=global"}
SUMMARY_COLUMNS = ("method", "target_rate", "seeds", "folds", "accuracy_mean", "accuracy_std",
                   "achieved_rate_mean", "kept_params_mean", "flops_mean")


def slug(label: str) -> str:
    """``label`` as a name for ``--methods`` and run folders: "magnitude, global" -> magnitude_global."""
    name = "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")
    while "__" in name:
        name = name.replace("__", "_")
    return name


def base_name(label: str, rate: float | None) -> str:
    """The run of ``label`` at ``rate`` (None: its one multi-rate run), without its seed."""
    return slug(label) if rate is None else f"{slug(label)}_r{rate:g}"


def run_name(label: str, rate: float | None, seed: int) -> str:
    """The run folder of ``label`` at ``rate`` (None: its one multi-rate run) and ``seed``."""
    return f"{base_name(label, rate)}_s{seed}"


def cli_name(label: str) -> str:
    """The method as ``jaxprune train --method`` spells it (with the setting that makes a variant)."""
    if label == "dense":
        return "dense"
    return CLI_NAME.get(label, next(m for lab, m, _ in METHODS if lab == label))


def pooled_at(results: dict, label: str, rate: float, seeds) -> dict | None:
    """The runs of ``label`` that hold ``rate`` (its runs at that rate, or its one multi-rate run),
    pooled over the done seeds (``experiments.jobs.pool_seeds``); None when no seed is done."""
    names = [base_name(label, rate), base_name(label, None)]
    pooled = pool_seeds(results, names, seeds)
    return next((pooled[n] for n in names if n in pooled), None)


def row_at(results: dict, rate: float) -> dict | None:
    return next((s for s in results["summary"] if abs(s["target_rate"] - rate) < 1e-9), None)


def pair_accuracies(results: dict, label: str, rate: float, seeds) -> dict[tuple[int, int], float]:
    """{(seed, fold): test accuracy %} of ``label`` at ``rate`` over the seeds whose run is done."""
    return pairs_at(pooled_at(results, label, rate, seeds), rate)


def summary_rows(results: dict, rates, seeds, unseen=()) -> list[dict]:
    """One row per (method, target rate) with a done run: ``SUMMARY_COLUMNS`` (accuracy mean and
    std over seeds × folds; achieved rate, kept weights and FLOPs means), then its label and
    whether the rate was one it was trained for (MRMP's ``unseen`` rates: no)."""
    rows = []
    for label in ["dense", *(lab for lab, _, _ in METHODS)]:
        for r in [0.0] if label == "dense" else sorted({*rates, *(unseen if label == "MRMP" else ())}):
            pooled = pooled_at(results, label, r, seeds)
            s = None if pooled is None else row_at(pooled, r)
            if s is None:
                continue
            n = len(pooled["seeds"])
            rows.append({"method": cli_name(label), "target_rate": r, "seeds": n, "folds": s["folds"] // n,
                         "accuracy_mean": s["accuracy_mean"], "accuracy_std": s["accuracy_std"],
                         "achieved_rate_mean": s["achieved_rate"], "kept_params_mean": s["kept_params_mean"],
                         "flops_mean": s["flops_mean"], "label": label, "trained": r not in unseen})
    return rows


def unseen_table(rows: list[dict], rates) -> str:
    """Markdown: MRMP at each rate outside its trained list, against MRMP at the nearest trained
    rate on either side (each one's accuracy, and the difference from their mean)."""
    mrmp = {r["target_rate"]: r for r in rows if r["label"] == "MRMP"}
    trained = sorted(r for r in rates if r in mrmp and mrmp[r]["trained"])
    lines = []
    for r, row in sorted(mrmp.items()):
        below, above = [t for t in trained if t < r][-1:], [t for t in trained if t > r][:1]
        if row["trained"] or not (below and above):
            continue
        lo, hi = mrmp[below[0]]["accuracy_mean"], mrmp[above[0]]["accuracy_mean"]
        lines.append(f"| {r:g} | {row['accuracy_mean']:.2f} ± {row['accuracy_std']:.2f} | "
                     f"{row['achieved_rate_mean']:.3f} | {below[0]:g}: {lo:.2f}, {above[0]:g}: {hi:.2f} | "
                     f"{row['accuracy_mean'] - (lo + hi) / 2:+.2f} |")
    if not lines:
        return ""
    return ("\n## MRMP at rates outside its trained list (served from the same models)\n\n"
            "| rate | accuracy % | achieved rate | MRMP at the trained rates beside it | − their mean (points) |\n"
            "|---|---|---|---|---|\n" + "\n".join(lines) + "\n")


def table(rows: list[dict], rates, seeds: int = 1) -> str:
    """Markdown: one row per method and a column per rate; a cell pooled over fewer than ``seeds``
    seeds (a grid in progress) says how many."""
    by = {(r["label"], r["target_rate"]): r for r in rows}
    lines = ["| method | " + " | ".join(f"{r:g}" for r in rates) + " |", "|---" * (len(rates) + 1) + "|"]
    for label, _, _ in METHODS:
        if any((label, r) in by for r in rates):
            cells = ["-" if (c := by.get((label, r))) is None else
                     f"{c['accuracy_mean']:.2f} ± {c['accuracy_std']:.2f} ({c['achieved_rate_mean']:.3f})"
                     + ("" if c["seeds"] >= seeds else f" [{c['seeds']} seed(s)]") for r in rates]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    top = ""
    if (d := by.get(("dense", 0.0))) is not None:
        top = (f"Dense: {d['accuracy_mean']:.2f} ± {d['accuracy_std']:.2f} % over {d['seeds']} seed(s) × "
               f"{d['folds']} fold(s), {d['flops_mean'] / 1e6:.3f} MFLOPs.\n\n")
    note = ("\n\nCells: test accuracy %, mean ± std over seeds × folds (achieved rate, mean). Kept parameters "
            "and FLOPs per method and rate are in summary.csv.\n")
    return top + "\n".join(lines) + note


def verdicts(results: dict, rates, seeds) -> str:
    """Markdown: at each rate, each of our methods against the best baseline (highest mean accuracy
    among the baselines at that rate with the most (seed, fold) pairs done, picked on the same test
    folds, which favours the baselines) and against the dense network (what pruning costs), and
    MRMP against SRMP. Differences are paired by (seed, fold) (``experiments.stats.paired``)."""
    lines = ["| rate | method | against | difference (points) | 95 % interval | pairs | verdict |",
             "|---|---|---|---|---|---|---|"]
    baselines = [label for label, _, _ in METHODS if label not in OURS]
    dense = pair_accuracies(results, "dense", 0.0, seeds)

    def line(r, label, against, name):
        diff, half, verdict, n = paired(pair_accuracies(results, label, r, seeds), against)
        if n:
            lines.append(f"| {r:g} | {label} | {name} | {diff:+.2f} | "
                         f"{'-' if np.isnan(half) else f'±{half:.2f}'} | {n} | {verdict} |")

    for r in rates:
        scored = [(np.mean(list(acc.values())), label, acc) for label in baselines
                  if (acc := pair_accuracies(results, label, r, seeds))]
        most = max((len(acc) for _, _, acc in scored), default=0)
        scored = [t for t in scored if len(t[2]) == most]     # a grid in progress: not a baseline's lucky seed
        if scored:
            best_mean, best, best_acc = max(scored, key=lambda t: t[0])
            for label in OURS:
                line(r, label, best_acc, f"best baseline: {best} ({best_mean:.2f})")
        for label in OURS:
            line(r, label, dense, "dense")
        line(r, "MRMP", pair_accuracies(results, "SRMP", r, seeds), "SRMP")
    return "\n".join(lines) + "\n"


BY_FOLD = (("MRMP", "SRMP"), ("MRMP", "dense"), ("SRMP", "dense"), ("CTF", "dense"))


def by_fold(results: dict, rates, seeds, folds) -> str:
    """Markdown: for each pair of ``BY_FOLD``, the paired difference a − b (points) on each test
    fold, the mean over seeds of each seed's mean over ``rates``, with the range of the seeds'
    means (``experiments.stats.seed_range_cells``): whether a fold's difference holds on every
    seed or moves with it."""
    lines = ["| a − b | " + " | ".join(f"fold {k}" for k in folds) + " |", "|---" * (len(folds) + 1) + "|"]
    dense = pair_accuracies(results, "dense", 0.0, seeds)
    for a, b in BY_FOLD:
        diffs = {}                                       # (fold, seed, rate) -> a − b
        for r in rates:
            x = pair_accuracies(results, a, r, seeds)
            y = dense if b == "dense" else pair_accuracies(results, b, r, seeds)
            diffs |= {(k, s, r): x[(s, k)] - y[(s, k)] for s, k in set(x) & set(y)}
        if diffs:
            lines.append(f"| {a} − {b} | " + " | ".join(seed_range_cells(diffs, folds)) + " |")
    if len(lines) == 2:
        return ""
    return ("\n## Where the differences are: each test fold, mean over seeds and rates\n\n"
            "Cells: mean a − b in points [range of the seeds' own means over the rates every seed has].\n\n"
            + "\n".join(lines) + "\n")


def total_train_seconds(results: dict) -> float:
    """Training seconds summed over every fold of every run (one worker's time, excluding evaluation)."""
    return sum(run["train_seconds"] for res in results.values() for run in res["runs"])


def _clamped(ax, x, y, err, floor: float, color, **style) -> None:
    """``ax.errorbar`` of (x, y ± err) with each y below ``floor`` drawn on it as a triangle with its value."""
    ax.errorbar(x, [max(v, floor) for v in y], yerr=err, color=color, **style)
    for xi, yi in zip(x, y):
        if yi < floor:
            ax.plot(xi, floor, marker="v", ms=9, color=color)
            ax.annotate(f"{yi:.1f}", (xi, floor), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)


def plot(rows: list[dict], results: dict, seeds, path: Path) -> bool:
    """Two panels against the achieved rate: each method's accuracy (mean over seeds × folds, bars:
    std for ours), and each method's paired difference from dense by (seed, fold) (bars: the 95 %
    interval for ours, ``experiments.stats.paired``), where differences of a point show. Each
    axis starts 10 points below dense (left) or 8 points below it (right); lower means are drawn
    on that floor as a triangle with their value."""
    plt = pyplot()
    if plt is None or not rows:
        return False
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 5.5))
    dense_row = next((r for r in rows if r["label"] == "dense"), None)
    floor = -np.inf if dense_row is None else dense_row["accuracy_mean"] - 10
    dense = pair_accuracies(results, "dense", 0.0, seeds)
    for i, (label, _, _) in enumerate(METHODS):
        color, ours = plt.cm.tab20(i % 20), label in OURS
        style = dict(marker="o", ls="-" if ours else "--", lw=2.2 if ours else 1.2, capsize=3, label=label)
        mine = [r for r in rows if r["label"] == label]
        pts = sorted((r["achieved_rate_mean"], r["accuracy_mean"], r["accuracy_std"]) for r in mine if r["trained"])
        extra = [(r["achieved_rate_mean"], r["accuracy_mean"]) for r in mine if not r["trained"]]
        if extra:                                  # MRMP at its unlisted rates: hollow, off the line
            ax.scatter(*zip(*extra), facecolor="white", edgecolor=color, zorder=3,
                       label=f"{label}, rates outside its list")
        if pts:
            x, y, e = zip(*pts)
            _clamped(ax, x, y, e if ours else None, floor, color, **style)
        diffs = []
        for r in mine:
            diff, half, _, n = paired(pair_accuracies(results, label, r["target_rate"], seeds), dense)
            if r["trained"] and n >= 2:
                diffs.append((r["achieved_rate_mean"], diff, half))
        if diffs:
            x, d, h = zip(*sorted(diffs))
            _clamped(ax2, x, d, h if ours else None, -8.0, color, **style)
    if dense_row is not None:
        ax.axhline(dense_row["accuracy_mean"], color="gray", ls=":", label="dense")
        ax.set_ylim(floor - 1, 100)
    ax2.axhline(0.0, color="gray", ls=":")
    ax2.set_ylim(-9, None)
    ticks = [0.5, 0.7, 0.9, 0.95, 0.98, 0.99]
    for a in (ax, ax2):
        a.set_xscale("logit")
        a.set_xticks(ticks, [f"{t:g}" for t in ticks])
        a.minorticks_off()
        a.set_xlabel("achieved pruning rate (logit scale)")
        a.legend(fontsize=7, ncol=2)
    ax.set(ylabel="test accuracy (%), mean over seeds × folds (bars: std, ours)",
           title="Accuracy vs pruning rate (▼: below the axis, value shown)")
    ax2.set(ylabel="method − dense (points), paired by (seed, fold)",
            title="Paired difference from the dense network (bars: 95 % interval, ours)")
    fig.suptitle("Every method on the same GCN and budget", fontsize=11)
    return save(fig, path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = experiment_parser(__doc__, RATES, "the pruning rates of the table")
    p.add_argument("--quick", action="store_true", help="fold 1, rates 0.5,0.9,0.98, 300 epochs, seed 0")
    p.add_argument("--methods", help="comma-separated labels' run names to keep (default: all)")
    p.add_argument("--seeds", help="comma-separated seeds (default 0,1,2; with --quick 0)")
    p.add_argument("--unseen-rates", default=",".join(map(str, UNSEEN)),
                   help="rates outside MRMP's list it is also scored at (default 0.8,0.93,0.97; '' for none, "
                        "as in folders made before this option)")
    p.add_argument("--report", action="store_true",
                   help="train nothing: write the tables and plot from the runs already done (a grid in progress)")
    a = p.parse_args(argv)
    from jaxprune.datasets import load_dataset
    from jaxprune.serving import parse_rates
    rates_text, folds_text, overrides = a.rates, a.folds, list(a.overrides)
    seeds_text = a.seeds or (QUICK["seeds"] if a.quick else "0,1,2")
    if a.quick:
        rates_text, folds_text = QUICK["rates"], QUICK["folds"]
        overrides.insert(0, f"train.epochs={QUICK['epochs']}")
    rates = parse_rates(rates_text)
    unseen = tuple(r for r in (parse_rates(a.unseen_rates) if a.unseen_rates.strip() else ()) if r not in rates)
    seeds = seed_list(seeds_text)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(a.dataset, a.data_dir)
    folds = fold_list(dataset, folds_text)
    keep = None if not a.methods else listed(a.methods, [slug(label) for label, _, _ in METHODS], "--methods")
    runs = []                                             # (name, method, settings, seed)
    for s in seeds:
        runs.append((run_name("dense", None, s), "dense", (f"seed={s}",), s))
        for label, method, extra in METHODS:
            if keep is not None and slug(label) not in keep:
                continue
            if method == "mrmp":
                every, served = ",".join(map(str, rates)), ",".join(map(str, sorted({*rates, *unseen})))
                runs.append((run_name(label, None, s), method,
                             (*extra, f"prune.rates={every}", f"prune.eval_rates={served}", f"seed={s}"), s))
            else:
                runs += [(run_name(label, r, s), method, (*extra, f"prune.rate={r}", f"seed={s}"), s) for r in rates]
    start = time.perf_counter()
    # one pool, seed-major: seed s's jobs all start before seed s + 1's (an interrupted grid has whole
    # seeds but for the jobs in flight), and no worker idles while a seed's last job ends; within a
    # seed the longest (MRMP) first
    jobs = [Job(a.dataset, a.data_dir, name, method, (*overrides, *extra), k, str(out), a.preset)
            for name, method, extra, _ in sorted(runs, key=lambda r: (seeds.index(r[3]), r[1] != "mrmp"))
            for k in folds]
    if not a.report:
        run_jobs(jobs, a.workers, a.reuse)
    wall = time.perf_counter() - start
    results = collect_all(dataset, out, [name for name, _, _, _ in runs], folds, a.data_dir)
    command = "python -m experiments.sbu_compare " + " ".join(argv)
    dense = next((results[n] for n, m, _, _ in runs if m == "dense" and n in results), None)
    from jaxprune.presets import preset_name
    network = f"preset {preset_name(a.dataset, a.preset)}" + (
        "" if dense is None else f", C = {dense['config']['model']['channels']}")
    other_epochs = sorted({(m, results[n]["epochs"]) for n, m, _, _ in runs
                           if n in results and dense is not None and results[n]["epochs"] != dense["epochs"]})
    header = (f"# Every method on {a.dataset.upper()} ({len(folds)} fold(s), seeds {seeds_text}, "
              f"{dense['epochs'] if dense else '?'} epochs"
              + "".join(f", {m} {e}" for m, e in other_epochs) + f"; network: {network})\n\n"
              f"Command: `{command}`  \n{machine_line(results)}; this invocation's wall time {wall / 60:.1f} min "
              f"(jobs already done were not rerun)\n\n")
    rows = summary_rows(results, rates, seeds, unseen)
    text = table(rows, rates, len(seeds)) + unseen_table(rows, rates)
    if len(seeds) == 1:
        text += "\nOne seed: a first look, not a result (a seed alone moves a 5-fold mean by 1-3 points).\n"
    text += (f"\nTraining time summed over all {sum(len(r['runs']) for r in results.values())} fold runs: "
             f"{total_train_seconds(results) / 3600:.2f} h of one worker.\n\n"
             "## MRMP, SRMP and CTF against the best baseline and the dense network at each rate, "
             "and MRMP against SRMP\n\n"
             + verdicts(results, rates, seeds) + by_fold(results, rates, seeds, folds))
    write_tables(out, header + text, rows, "summary.csv")
    plot(rows, results, seeds, out / "accuracy_vs_rate.png")


if __name__ == "__main__":
    main()
