"""Choose an MRMP recipe by nested validation against SRMP: test folds are never looked at.

    python -m experiments.tune_mrmp --data-dir ../shared/data/sbu --out experiments/results/tune_mrmp \
        --candidate base= --candidate distill=prune.distill_weight=1 \
        --candidate "sandwich=prune.rates_per_step=4;prune.sandwich=true"

Every candidate (``NAME=override1;override2``) is one MRMP training that serves every rate of
``--rates`` from one model; the reference is SRMP trained at each of those rates. Both train on
the same splits: for each seed of ``--seeds`` and each outer test fold k of ``--outer``, the
validation fold j is k mod 5 + 1 (``--inner next``, the default) or every j ≠ k (``--inner
all``); each job trains on the folds other than k and j and scores on j (``experiments.jobs``
validation jobs, resumable; ``--report`` writes the tables without training).

Writes into ``--out``: ``validation.md`` (per candidate and rate: mean ± std validation
accuracy over seeds × splits, its paired difference from SRMP with a 95 % t-interval and
verdict, and the worst |achieved − target| rate; then each candidate's gap on each split, with
the range of its seeds), ``validation.csv`` and ``gap_vs_rate.png``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

from experiments.jobs import (Job, experiment_parser, fold_list, machine_line, run_jobs, seed_list,  # noqa: E402
                             write_tables)
from experiments.plotting import pyplot, save  # noqa: E402
from experiments.stats import paired, seed_range_cells  # noqa: E402

RATES = (0.5, 0.7, 0.9, 0.95, 0.98, 0.99)


def candidate(spec: str) -> tuple[str, tuple[str, ...]]:
    """("NAME", overrides) of ``NAME=o1;o2`` (SystemExit when the name is missing or reused)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip() or not name.replace("_", "").replace("-", "").isalnum():
        raise SystemExit(f"--candidate {spec!r}: expected NAME=override1;override2 with NAME of letters, "
                         "digits, - and _ (e.g. distill=prune.distill_weight=1)")
    return name.strip(), tuple(o.strip() for o in rest.split(";") if o.strip())


def splits(outer, inner: str, folds) -> list[tuple[int, int]]:
    """(test fold k, validation fold j) pairs: j = k mod n + 1 (``next``) or every j ≠ k (``all``)."""
    n = len(folds)
    return [(k, j) for k in outer for j in folds
            if j != k and (inner == "all" or j == folds[(folds.index(k) + 1) % n])]


def plan(candidates, rates, seeds, pairs, dataset: str, data_dir: str, out: str, preset, overrides) -> list[Job]:
    """Every validation job: each candidate's MRMP run and SRMP at each rate, per seed and split."""
    every = ",".join(f"{r:g}" for r in rates)
    jobs = []
    for s in seeds:
        runs = [(f"{name}_s{s}", "mrmp", (*overrides, f"prune.rates={every}", f"prune.eval_rates={every}",
                                          *extra, f"seed={s}")) for name, extra in candidates]
        runs += [(f"srmp_r{r:g}_s{s}", "srmp", (*overrides, f"prune.rate={r}", f"seed={s}")) for r in rates]
        jobs += [Job(dataset, data_dir, run, method, settings, k, out, preset, j)
                 for run, method, settings in runs for k, j in pairs]
    return jobs


def scores(jobs: list[Job], rates) -> dict:
    """{run: {rate: {(seed, k, j): (accuracy %, achieved rate)}}} of the jobs whose rows exist."""
    found: dict = {}
    for job in jobs:
        if not job.rows_path().exists():
            continue
        record = json.loads(job.rows_path().read_text())
        seed = record["config"]["seed"]
        for row in record["rates"]:
            rate = next((r for r in rates if abs(row["target_rate"] - r) < 1e-9), None)
            if rate is not None:
                found.setdefault(job.run.rsplit("_s", 1)[0], {}).setdefault(rate, {})[(seed, job.fold, job.validation)] = (
                    row["accuracy"], row["achieved_rate"])
    return found


def rows(found: dict, names, rates) -> list[dict]:
    """One row per (candidate, rate) with validation scores: accuracy mean ± std over seeds ×
    splits, the paired difference from SRMP at that rate (mean, 95 % half-width, verdict, pairs)."""
    out = []
    for name in names:
        for r in rates:
            mine = found.get(name, {}).get(r, {})
            if not mine:
                continue
            ref = found.get(f"srmp_r{r:g}", {}).get(r, {})
            diff, half, verdict, n = paired({k: a for k, (a, _) in mine.items()}, {k: a for k, (a, _) in ref.items()})
            acc = [a for a, _ in mine.values()]
            out.append({"candidate": name, "target_rate": r, "runs": len(mine), "accuracy_mean": float(np.mean(acc)),
                        "accuracy_std": float(np.std(acc)),
                        "srmp_accuracy_mean": float(np.mean([a for a, _ in ref.values()])) if ref else float("nan"),
                        "gap_to_srmp": diff, "gap_half_width": half, "verdict": verdict, "pairs": n,
                        "worst_rate_error": float(max(abs(ach - r) for _, ach in mine.values()))})
    return out


def markdown(table_rows: list[dict], header: str) -> str:
    lines = [header, "", "| candidate | rate | runs | validation accuracy % | SRMP % | MRMP − SRMP (points) | "
             "95 % interval | verdict | worst rate error (points) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in table_rows:
        half = "-" if np.isnan(r["gap_half_width"]) else f"±{r['gap_half_width']:.2f}"
        if r["pairs"]:
            ref = (f"{r['srmp_accuracy_mean']:.2f} | {r['gap_to_srmp']:+.2f} | {half} | "
                   f"{r['verdict']} ({r['pairs']} pairs)")
        else:                              # a round in progress: its SRMP reference not trained yet
            ref = "not trained yet | - | - | -"
        lines.append(f"| {r['candidate']} | {r['target_rate']:g} | {r['runs']} | {r['accuracy_mean']:.2f} ± "
                     f"{r['accuracy_std']:.2f} | {ref} | {100 * r['worst_rate_error']:.2f} |")
    means = {}
    for r in table_rows:
        if r["pairs"]:
            means.setdefault(r["candidate"], []).append(r["gap_to_srmp"])
    lines += ["", "Mean gap to SRMP over the rates: " + ("; ".join(f"{n} {np.mean(g):+.2f}" for n, g in means.items())
                                                       or "none yet (no SRMP reference trained)"),
              "", "Validation folds only: no test fold was scored. The aim (issue 16): within 1 point of SRMP "
              "at every rate."]
    return "\n".join(lines) + "\n"


def by_split(found: dict, names, rates) -> str:
    """Markdown: each candidate's gap to SRMP on each (test, validation) split, the mean over seeds
    of each seed's mean over the rates, with the range of the seeds' means
    (``experiments.stats.seed_range_cells``): whether a split's gap holds on every seed."""
    splits_seen = sorted({(k, j) for name in names for by_key in found.get(name, {}).values() for _, k, j in by_key})
    lines = []
    for name in names:
        diffs = {}                                        # ((k, j), seed, rate) -> MRMP − SRMP
        for r in rates:
            mine, ref = found.get(name, {}).get(r, {}), found.get(f"srmp_r{r:g}", {}).get(r, {})
            diffs |= {((k, j), s, r): mine[(s, k, j)][0] - ref[(s, k, j)][0] for s, k, j in set(mine) & set(ref)}
        if diffs:
            lines.append(f"| {name} | " + " | ".join(seed_range_cells(diffs, splits_seen)) + " |")
    if not lines:
        return ""
    head = "| candidate | " + " | ".join(f"test {k}, validation {j}" for k, j in splits_seen) + " |"
    return ("\n## MRMP − SRMP on each split, mean over the rates [range of the seeds' means]\n\n"
            + "\n".join([head, "|---" * (len(splits_seen) + 1) + "|", *lines]) + "\n")


def plot(table_rows: list[dict], path: Path) -> bool:
    plt = pyplot()
    if plt is None or not table_rows:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    table_rows = [r for r in table_rows if r["pairs"]]      # a gap needs its SRMP reference
    if not table_rows:
        return False
    for name in dict.fromkeys(r["candidate"] for r in table_rows):
        mine = [r for r in table_rows if r["candidate"] == name]
        ax.errorbar([r["target_rate"] for r in mine], [r["gap_to_srmp"] for r in mine],
                    yerr=[0 if np.isnan(r["gap_half_width"]) else r["gap_half_width"] for r in mine],
                    marker="o", capsize=3, label=name)
    ax.axhline(0, color="gray", lw=1)
    ax.axhspan(-1, 1, color="gray", alpha=0.12, label="within 1 point")
    ax.set_xscale("logit")
    ax.set(xlabel="target pruning rate (logit scale)", ylabel="MRMP − SRMP, validation accuracy (points)",
           title="MRMP recipes against SRMP on validation folds (95 % paired intervals)")
    ax.legend(fontsize=8)
    return save(fig, path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = experiment_parser(__doc__, RATES, "the rates MRMP serves and SRMP trains")
    p.add_argument("--candidate", action="append", default=[], help="NAME=override1;override2 (default: base=)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--outer", default="all", help="comma-separated outer test folds left out, or all")
    p.add_argument("--inner", choices=("next", "all"), default="next",
                   help="validation folds per outer fold k: k mod 5 + 1 (one), or every j != k")
    p.add_argument("--report", action="store_true", help="train nothing: write the tables from the jobs done")
    a = p.parse_args(argv)
    if a.folds != "all":
        raise SystemExit("--folds: tune_mrmp scores validation folds only; choose the left-out test folds with --outer")
    from jaxprune.datasets import load_dataset
    from jaxprune.serving import parse_rates
    candidates = [candidate(c) for c in a.candidate or ["base="]]
    if len({n for n, _ in candidates}) < len(candidates):
        raise SystemExit("--candidate: each name once")
    rates = parse_rates(a.rates)
    seeds = seed_list(a.seeds)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(a.dataset, a.data_dir)
    folds = fold_list(dataset, "all")
    pairs = splits(fold_list(dataset, a.outer, "--outer"), a.inner, folds)
    jobs = plan(candidates, rates, seeds, pairs, a.dataset, a.data_dir, str(out), a.preset, tuple(a.overrides))
    start = time.perf_counter()
    # one pool, seed-major: seed s's jobs all start before seed s + 1's (an interrupted grid has whole
    # seeds but for the jobs in flight), and no worker idles while a seed's last job ends
    if not a.report:                                      # plan lists them seed-major, MRMP first
        run_jobs(jobs, a.workers, a.reuse)
    wall = time.perf_counter() - start
    found = scores(jobs, rates)
    table_rows = rows(found, [n for n, _ in candidates], rates)
    from jaxprune.presets import preset_name
    header = (f"# MRMP recipes against SRMP by nested validation ({a.dataset.upper()}, preset "
              f"{preset_name(a.dataset, a.preset)}, seeds {a.seeds}, {len(pairs)} (test, validation) splits)\n\n"
              f"Command: `python -m experiments.tune_mrmp {' '.join(argv)}`  \n"
              f"{machine_line()}; this invocation's wall time {wall / 60:.1f} min (jobs already done were not rerun)\n\n"
              + "\n".join(f"- {n}: {'; '.join(o) or 'the preset as it is'}" for n, o in candidates))
    text = markdown(table_rows, header) + by_split(found, [n for n, _ in candidates], rates)
    write_tables(out, text, table_rows, "validation.csv", "validation.md")
    plot(table_rows, out / "gap_vs_rate.png")


if __name__ == "__main__":
    main()
