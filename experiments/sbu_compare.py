"""The head-to-head table: every method on the same GCN, data, epochs and seeds, accuracy vs rate.

    python -m experiments.sbu_compare --data-dir ../shared/data/sbu --out runs/sbu_compare
    python -m experiments.sbu_compare --data-dir ../shared/data/sbu --out runs/quick --quick

Methods: dense; MRMP (one model per fold for every rate); SRMP and CTF (one model per rate and
fold); the baselines of ``jaxprune.methods.baselines`` (magnitude pruning is run twice, layer-wise
and global). Every run uses the dataset's preset plus ``--set`` overrides, the same
``train.epochs`` (every phase counted) and seed. Each method's own hyper-parameters are its
documented defaults (``jaxprune settings``) except λ of L1 and group lasso, chosen by nested
validation on training folds (``experiments.tune_dense``, results in
``experiments/results/tune_baselines``); all are written in each run's results, none was chosen
on a test fold. Jobs run in ``--workers`` processes and are resumable.

``--quick`` (a first look in well under 15 minutes on 2 CPU cores): fold 1 only, rates 0.5, 0.9
and 0.98, 300 epochs.

Writes into ``--out``: ``<run>/results.json`` per run, ``table.md`` and ``table.csv`` (mean ± std
accuracy, achieved rate, kept parameters, FLOPs per method and rate) and ``accuracy_vs_rate.png``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


import numpy as np  # noqa: E402
from scipy.stats import t as student_t  # noqa: E402  (scipy is a dependency of jax)

from experiments.jobs import (Job, collect_all, experiment_parser, fold_list, machine_line, run_jobs,  # noqa: E402
                             write_tables)
from experiments.plotting import pyplot, save  # noqa: E402

RATES = (0.5, 0.7, 0.9, 0.95, 0.98, 0.99)
OURS = ("MRMP", "SRMP", "CTF")    # the papers' methods; every other label below is a baseline
QUICK = {"rates": "0.5,0.9,0.98", "folds": "1", "epochs": 300}
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
]


def run_name(label: str, rate: float | None) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")
    while "__" in slug:
        slug = slug.replace("__", "_")
    return slug if rate is None else f"{slug}_r{rate:g}"


def run_at(results: dict, label: str, rate: float) -> dict | None:
    """The results of ``label`` that hold ``rate``: its run at that rate, or its one multi-rate run."""
    return results.get(run_name(label, rate)) or results.get(run_name(label, None))


def row_at(results: dict, rate: float) -> dict | None:
    return next((s for s in results["summary"] if abs(s["target_rate"] - rate) < 1e-9), None)


def table(results: dict, rates) -> tuple[str, list[dict]]:
    """(markdown with one row per method and a column per rate, CSV rows)."""
    rows, csv_rows = [], []
    dense = results.get("dense")
    head = "| method | " + " | ".join(f"{r:g}" for r in rates) + " |"
    rows += [head, "|---" * (len(rates) + 1) + "|"]
    for label, _, _ in METHODS:
        cells = []
        for r in rates:
            res = run_at(results, label, r)
            s = None if res is None else row_at(res, r)
            if s is None:
                cells.append("-")
                continue
            cells.append(f"{s['accuracy_mean']:.2f} ± {s['accuracy_std']:.2f} ({s['achieved_rate']:.3f})")
            csv_rows.append({"method": label, "target_rate": r, "accuracy_mean": s["accuracy_mean"],
                             "accuracy_std": s["accuracy_std"], "achieved_rate": s["achieved_rate"],
                             "kept_params": s["kept_params_mean"], "flops": s["flops_mean"], "folds": s["folds"]})
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    top = ""
    if dense:
        d = row_at(dense, 0.0)
        top = f"Dense: {d['accuracy_mean']:.2f} ± {d['accuracy_std']:.2f} %, {d['flops_mean'] / 1e6:.3f} MFLOPs.\n\n"
        csv_rows.insert(0, {"method": "dense", "target_rate": 0.0, "accuracy_mean": d["accuracy_mean"],
                            "accuracy_std": d["accuracy_std"], "achieved_rate": 0.0,
                            "kept_params": d["kept_params_mean"], "flops": d["flops_mean"], "folds": d["folds"]})
    note = ("\n\nCells: test accuracy %, mean ± std over folds (achieved rate, mean). Kept parameters and FLOPs "
            "per method and rate are in table.csv.\n")
    return top + "\n".join(rows) + note, csv_rows


def fold_accuracies(results: dict, rate: float) -> dict[int, float]:
    """{fold: test accuracy %} of a run at target ``rate``."""
    out = {}
    for run in results["runs"]:
        row = next((r for r in run["rates"] if abs(r["target_rate"] - rate) < 1e-9), None)
        if row is not None:
            out[run["fold"]] = row["accuracy"]
    return out


def verdicts(results: dict, rates) -> str:
    """Markdown: at each rate, each of our methods against the best baseline (highest mean accuracy
    among the baselines at that rate, picked on the same test folds, which favours the baselines).

    The difference is paired by fold; "win" / "loss" when the 95 % t-interval of the mean paired
    difference excludes 0, "tie" otherwise.
    """
    lines = ["| rate | best baseline | method | difference (points) | 95 % interval | verdict |",
             "|---|---|---|---|---|---|"]
    baselines = [label for label, _, _ in METHODS if label not in OURS]
    for r in rates:
        scored = [(np.mean(list(acc.values())), label, acc) for label in baselines
                  if (res := run_at(results, label, r)) is not None and (acc := fold_accuracies(res, r))]
        if not scored:
            continue
        best_mean, best, best_acc = max(scored, key=lambda t: t[0])
        for label in OURS:
            res = run_at(results, label, r)
            acc = {} if res is None else fold_accuracies(res, r)
            folds = sorted(set(acc) & set(best_acc))
            if not folds:
                continue
            d = np.array([acc[k] - best_acc[k] for k in folds])
            if len(d) < 2:
                half, verdict = float("nan"), "one fold: no verdict"
            else:
                half = student_t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
                verdict = "tie" if abs(d.mean()) <= half else ("win" if d.mean() > 0 else "loss")
            lines.append(f"| {r:g} | {best} ({best_mean:.2f}) | {label} | {d.mean():+.2f} | "
                         f"{'-' if np.isnan(half) else f'±{half:.2f}'} | {verdict} |")
    return "\n".join(lines) + "\n"


def total_train_seconds(results: dict) -> float:
    """Training seconds summed over every fold of every run (one worker's time, excluding evaluation)."""
    return sum(run["train_seconds"] for res in results.values() for run in res["runs"])


def plot(csv_rows: list[dict], path: Path) -> bool:
    plt = pyplot()
    if plt is None or not csv_rows:
        return False
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, (label, _, _) in enumerate(METHODS):
        pts = sorted((r["achieved_rate"], r["accuracy_mean"]) for r in csv_rows if r["method"] == label)
        if pts:
            style = "-" if label in OURS else "--"
            ax.plot(*zip(*pts), marker="o", ls=style, color=plt.cm.tab20(i % 20), label=label,
                    lw=2.2 if style == "-" else 1.2)
    dense = [r for r in csv_rows if r["method"] == "dense"]
    if dense:
        ax.axhline(dense[0]["accuracy_mean"], color="gray", ls=":", label="dense")
    ticks = [0.5, 0.7, 0.9, 0.95, 0.98, 0.99]
    ax.set_xscale("logit")
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set(xlabel="achieved pruning rate (logit scale)", ylabel="test accuracy (%), mean over folds",
           title="Every method on the same GCN and budget: accuracy vs pruning rate")
    ax.legend(fontsize=7, ncol=2)
    return save(fig, path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = experiment_parser(__doc__, RATES, "the pruning rates of the table")
    p.add_argument("--quick", action="store_true", help="fold 1, rates 0.5,0.9,0.98, 300 epochs")
    p.add_argument("--methods", help="comma-separated labels' run names to keep (default: all)")
    a = p.parse_args(argv)
    from jaxprune.datasets import load_dataset
    from jaxprune.serving import parse_rates
    rates_text, folds_text, overrides = a.rates, a.folds, list(a.overrides)
    if a.quick:
        rates_text, folds_text = QUICK["rates"], QUICK["folds"]
        overrides.insert(0, f"train.epochs={QUICK['epochs']}")
    rates = parse_rates(rates_text)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(a.dataset, a.data_dir)
    folds = fold_list(dataset, folds_text)
    keep = None if not a.methods else {m.strip() for m in a.methods.split(",")}
    runs = [("dense", "dense", (), None)]
    for label, method, extra in METHODS:
        if keep is not None and run_name(label, None) not in keep:
            continue
        if method == "mrmp":
            runs.append((run_name(label, None), method, (*extra, f"prune.rates={','.join(map(str, rates))}",
                                                         f"prune.eval_rates={','.join(map(str, rates))}"), None))
        else:
            runs += [(run_name(label, r), method, (*extra, f"prune.rate={r}"), r) for r in rates]
    jobs = [Job(a.dataset, a.data_dir, name, method, (*overrides, *extra), k, str(out), a.preset)
            for name, method, extra, _ in runs for k in folds]
    jobs.sort(key=lambda j: j.method != "mrmp")                       # the longest first
    start = time.perf_counter()
    run_jobs(jobs, a.workers)
    wall = time.perf_counter() - start
    results = collect_all(dataset, out, [name for name, _, _, _ in runs], folds, a.data_dir)
    command = "python -m experiments.sbu_compare " + " ".join(argv)
    header = (f"# Every method on {a.dataset.upper()} ({len(folds)} fold(s), "
              f"{results['dense']['epochs'] if 'dense' in results else '?'} epochs)\n\n"
              f"Command: `{command}`  \n{machine_line(results)}; this invocation's wall time {wall / 60:.1f} min "
              f"(jobs already done were not rerun)\n\n")
    text, csv_rows = table(results, rates)
    text += (f"\nTraining time summed over all {sum(len(r['runs']) for r in results.values())} fold runs: "
             f"{total_train_seconds(results) / 3600:.2f} h of one worker.\n\n"
             "## MRMP, SRMP and CTF against the best baseline at each rate\n\n" + verdicts(results, rates))
    write_tables(out, header + text, csv_rows)
    plot(csv_rows, out / "accuracy_vs_rate.png")


if __name__ == "__main__":
    main()
