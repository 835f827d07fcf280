"""Is pruning a wide network better than training a narrow one? Test accuracy against kept weights.

    python -m experiments.width_pruning --data-dir ../shared/data/sbu --out experiments/results/width_pruning

On SBU (5 folds, each seed of ``--seeds``), under the default preset ``wide``:

- dense networks of widths C = 1 / 2 / 4 / 8 / 16 / 32 / 64 (``--widths``): the reference curve
  (the FC layer holds most weights, J·C·128, so C = 1-4 reach the sizes of C = 64 at rates 0.9-0.99);
- the C = 64 network pruned at each rate of ``--rates`` by SRMP, MRMP (one model for every
  rate), CTF and the two strongest baselines of ``experiments.sbu_compare`` (lottery rewinding
  and SNIP: the best mean accuracy over its six rates), ``--methods``.

Jobs resume (a finished fold is not trained again), and run seed-major in one pool (a seed's
jobs all start before the next seed's), so that an interrupted grid has whole seeds but for the
jobs in flight; ``--report`` writes the tables of a grid in progress (every
network with all folds of at least one seed done) without training. Writes ``table.md`` / ``table.csv`` (one row per network:
accuracy mean ± std over seeds × folds, kept weights, FLOPs), ``budgets.md`` (for each dense
width: the most accurate pruned network that keeps no more weights, and each method's least
sparse rate that keeps no more, paired with it by (seed, fold)) and
``accuracy_vs_weights.png`` (accuracy against kept weights and against FLOPs, log axes).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

from experiments.jobs import (Job, collect_all, experiment_parser, listed, machine_line, run_jobs,  # noqa: E402
                             fold_list, seed_list, write_tables)
from experiments.plotting import pyplot, save  # noqa: E402
from experiments.stats import paired, paired_cell  # noqa: E402

RATES = (0.5, 0.7, 0.9, 0.95, 0.98, 0.99)
WIDTHS = (1, 2, 4, 8, 16, 32, 64)   # below C = 8 the reference reaches the budgets of rates 0.9-0.99
# label -> (method, extra settings), as experiments.sbu_compare runs them
METHODS = {"SRMP": ("srmp", ()), "MRMP": ("mrmp", ()), "CTF": ("ctf", ()),
           "lottery rewinding": ("lottery", ()), "SNIP": ("snip", ())}
# run folders named as experiments.sbu_compare names them, so that its grid can take these runs
SLUG = {"SRMP": "srmp", "MRMP": "mrmp", "CTF": "ctf", "lottery rewinding": "lottery_rewinding", "SNIP": "snip"}


def plan(methods, rates, widths, seeds) -> list[tuple[str, str, tuple[str, ...], int]]:
    """[(run name, method, settings, seed)] in the order they train: seed-major, dense first."""
    runs = []
    for s in seeds:
        runs += [(f"dense_c{w}_s{s}", "dense", (f"model.channels={w}", f"seed={s}"), s) for w in widths]
        for label in methods:
            method, extra = METHODS[label]
            if method == "mrmp":
                listed = ",".join(f"{r:g}" for r in rates)
                runs.append((f"mrmp_s{s}", method, (*extra, f"prune.rates={listed}", f"prune.eval_rates={listed}",
                                                    f"seed={s}"), s))
            else:
                runs += [(f"{SLUG[label]}_r{r:g}_s{s}", method, (*extra, f"prune.rate={r}", f"seed={s}"), s)
                         for r in rates]
    return runs


def networks(results: dict, methods, rates, widths, seeds) -> list[dict]:
    """One row per network (a dense width, or a method at a rate) whose runs are done for at least
    one seed: accuracy over the done seeds × folds, kept weights and FLOPs (means), and under
    "pairs" each (seed, fold)'s accuracy (for paired comparisons; not a table column)."""
    def row(kind, label, rate, summaries):
        summaries = [s for s in summaries if s is not None]
        if not summaries:
            return None
        acc = [a for s in summaries for a in s["fold_accuracies"]]
        return {"kind": kind, "network": label, "target_rate": rate, "seeds": len(summaries),
                "folds": len(summaries[0]["fold_accuracies"]), "accuracy_mean": float(np.mean(acc)),
                "accuracy_std": float(np.std(acc)),
                "achieved_rate": float(np.mean([s["achieved_rate"] for s in summaries])),
                "kept_params": float(np.mean([s["kept_params_mean"] for s in summaries])),
                "flops": float(np.mean([s["flops_mean"] for s in summaries])),
                "train_minutes_per_fold": float(np.mean([s["fold_minutes"] for s in summaries])),
                "pairs": {key: a for s in summaries for key, a in s["pairs"].items()}}

    def at(name, rate, seed):
        res = results.get(name)
        if res is None:
            return None
        s = next((x for x in res["summary"] if abs(x["target_rate"] - rate) < 1e-9), None)
        if s is None:
            return None
        folds = [next(x for x in f["rates"] if abs(x["target_rate"] - rate) < 1e-9)["accuracy"] for f in res["runs"]]
        return {**s, "fold_accuracies": folds, "fold_minutes": res["train_seconds"] / 60 / len(res["runs"]),
                "pairs": {(seed, f["fold"]): a for f, a in zip(res["runs"], folds)}}

    rows = [row("dense", f"dense C = {w}", 0.0, [at(f"dense_c{w}_s{s}", 0.0, s) for s in seeds]) for w in widths]
    for label in methods:
        for r in rates:
            names = [f"mrmp_s{s}" if METHODS[label][0] == "mrmp" else f"{SLUG[label]}_r{r:g}_s{s}" for s in seeds]
            rows.append(row("pruned C = 64", label, r, [at(n, r, s) for n, s in zip(names, seeds)]))
    return [r for r in rows if r is not None]


def budgets(rows: list[dict]) -> str:
    """For each dense width, the most accurate pruned C = 64 network that keeps no more weights,
    and their difference paired by (seed, fold) with its 95 % interval (``experiments.stats.paired``).
    The pruned network is the best of up to 30 on the same test folds, which favours pruning."""
    pruned = [r for r in rows if r["kind"] != "dense"]
    lines = ["| dense network | kept weights | accuracy % | best pruned C = 64 within its weights | kept weights | "
             "accuracy % | pruned − dense, mean over shared (seed, fold) (points) | paired 95 % interval, verdict |", "|---|---|---|---|---|---|---|---|"]
    for d in sorted((r for r in rows if r["kind"] == "dense"), key=lambda r: r["kept_params"]):
        p = max((r for r in pruned if r["kept_params"] <= d["kept_params"]), key=lambda r: r["accuracy_mean"],
                default=None)
        if p is not None:
            diff, half, verdict, n = paired(p["pairs"], d["pairs"])
            interval = f"{verdict} ({n} pairs)" if np.isnan(half) else f"±{half:.2f}, {verdict} ({n} pairs)"
        best = ("none this small", "-", "-", "-", "-") if p is None else (
            f"{p['network']} at {p['target_rate']:g}", f"{p['kept_params']:.0f}",
            f"{p['accuracy_mean']:.2f} ± {p['accuracy_std']:.2f}", f"{diff:+.2f}",
            interval)
        lines.append(f"| {d['network']} | {d['kept_params']:.0f} | {d['accuracy_mean']:.2f} ± {d['accuracy_std']:.2f} | "
                     + " | ".join(best) + " |")
    return ("\n".join(lines) + "\n\nThe pruned network of each row is the most accurate of every pruned network "
            "within the budget, picked on the same test folds: the difference favours pruning.\n")


def method_budgets(rows: list[dict]) -> str:
    """For each dense width and each pruning method, that method's least sparse rate that keeps
    no more weights, paired with the dense width by (seed, fold): one fixed choice per method and
    budget, so no pick on the test folds (the cells differ from ``budgets``' best of all)."""
    labels = list(dict.fromkeys(r["network"] for r in rows if r["kind"] != "dense"))
    lines = ["| dense network | accuracy % | " + " | ".join(f"{m}: rate, pruned − dense (points), 95 % interval"
                                                     for m in labels) + " |",
             "|---|---|" + "---|" * len(labels)]
    for d in sorted((r for r in rows if r["kind"] == "dense"), key=lambda r: r["kept_params"]):
        cells = []
        for m in labels:
            p = min((r for r in rows if r["network"] == m and r["kept_params"] <= d["kept_params"]),
                    key=lambda r: r["target_rate"], default=None)
            if p is None:
                cells.append("-")
                continue
            cells.append(f"{p['target_rate']:g}: {paired_cell(p['pairs'], d['pairs'])}")
        lines.append(f"| {d['network']} | {d['accuracy_mean']:.2f} ± {d['accuracy_std']:.2f} | " + " | ".join(cells) + " |")
    return ("\n".join(lines) + "\n\nEach cell: the method's least sparse rate within the dense network's "
            "weights, its mean difference from the dense network over shared (seed, fold) pairs, the "
            "half-width of the paired 95 % t-interval and the verdict; '-': no rate of the method is that small.\n")


def markdown(rows: list[dict], command: str, machine: str, wall: float | None, hosts=()) -> str:
    """The table of every network; ``wall`` None: written by ``--report`` from the runs on disk;
    ``hosts``: the machines the runs' rows.json name (older rows name none)."""
    when = ("written by --report from the runs on disk (it trained nothing)" if wall is None else
            f"this invocation's wall time {wall / 60:.1f} min (finished folds were not rerun)")
    trained_on = f"Runs trained on: {', '.join(hosts)}.  " if hosts else ""
    lines = ["# Pruning the wide network against training a narrow one (SBU, preset wide)", "",
             f"Command: `{command}`  ", f"Tables written on {machine.removeprefix('Machine: ')}, {when}.  ",
             f"{trained_on}Train minutes are per fold (the runs' own training seconds), and MRMP's one training "
             "serves every rate.", "",
             "| network | rate | seeds × folds | accuracy % (mean ± std over seeds × folds) | achieved rate | "
             "kept weights | MFLOPs | train min per fold |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['network']} | {r['target_rate']:g} | {r['seeds']} × {r['folds']} | {r['accuracy_mean']:.2f} ± "
              f"{r['accuracy_std']:.2f} | {r['achieved_rate']:.3f} | {r['kept_params']:.0f} | {r['flops'] / 1e6:.3f} | "
              f"{r['train_minutes_per_fold']:.1f} |" for r in rows]
    return "\n".join(lines) + "\n"


def _short(row: dict) -> str:
    """'C = 1' for a dense width, 'SNIP at 0.99' for a pruned network."""
    return row["network"].replace("dense ", "") if row["kind"] == "dense" else f"{row['network']} at {row['target_rate']:g}"


FLOOR = 85.0   # accuracy % at the plot's foot: the narrowest dense widths lie far below it


def plot(rows: list[dict], path: Path) -> bool:
    """Accuracy against kept weights and against FLOPs (log x); y from ``FLOOR`` when a network
    lies below it (those are named in a corner), so the pruned networks' differences show."""
    plt = pyplot()
    if plt is None or not rows:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, xlabel in ((axes[0], "kept_params", "kept weights"), (axes[1], "flops", "FLOPs per sequence")):
        dense = sorted((r for r in rows if r["kind"] == "dense"), key=lambda r: r[key])
        ax.errorbar([r[key] for r in dense], [r["accuracy_mean"] for r in dense],
                    yerr=[r["accuracy_std"] for r in dense], color="black", marker="s", capsize=3,
                    label="dense, C = " + " / ".join(r["network"].split("= ")[1] for r in dense))
        for label in dict.fromkeys(r["network"] for r in rows if r["kind"] != "dense"):
            mine = sorted((r for r in rows if r["network"] == label), key=lambda r: r[key])
            ax.errorbar([r[key] for r in mine], [r["accuracy_mean"] for r in mine],
                        yerr=[r["accuracy_std"] for r in mine], marker="o", capsize=2, alpha=0.8,
                        label=f"{label} (C = 64 pruned)")
        low = [r for r in rows if r["accuracy_mean"] < FLOOR]       # off the axis: named in a corner
        if low:
            ax.text(0.02, 0.02, "below the axis: " + ", ".join(
                f"{_short(r)} {r['accuracy_mean']:.1f} %" for r in low),
                transform=ax.transAxes, fontsize=7, va="bottom")
        if low:
            ax.set_ylim(bottom=FLOOR)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%), mean ± std over seeds × folds")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("SBU: a pruned C = 64 network against dense networks of the same size", fontsize=10)
    return save(fig, path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = experiment_parser(__doc__, RATES, "the pruning rates of the C = 64 network")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--widths", default=",".join(map(str, WIDTHS)), help="dense widths C (default 1,2,4,8,16,32,64)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"any of {','.join(METHODS)}")
    p.add_argument("--report", action="store_true",
                   help="train nothing: write the tables and plot from the runs already done (a grid in progress)")
    a = p.parse_args(argv)
    from jaxprune.datasets import load_dataset
    from jaxprune.serving import parse_rates
    rates, seeds = parse_rates(a.rates), seed_list(a.seeds)
    widths = [int(w) for w in a.widths.split(",")]
    methods = listed(a.methods, METHODS, "--methods")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(a.dataset, a.data_dir)
    folds = fold_list(dataset, a.folds)
    runs = plan(methods, rates, widths, seeds)
    start = time.perf_counter()
    # one pool, seed-major: seed s's jobs all start before seed s + 1's (an interrupted grid has whole
    # seeds but for the jobs in flight), and no worker idles while a seed's last job ends
    if not a.report:
        run_jobs([Job(a.dataset, a.data_dir, name, method, (*a.overrides, *extra), k, str(out), a.preset)
                  for s in seeds for name, method, extra, seed in runs if seed == s for k in folds], a.workers, a.reuse)
    wall = time.perf_counter() - start
    results = collect_all(dataset, out, [name for name, _, _, _ in runs], folds, a.data_dir)
    rows = networks(results, methods, rates, widths, seeds)
    command = "python -m experiments.width_pruning " + " ".join(x for x in argv if x != "--report")
    hosts = sorted({json.loads(path.read_text()).get("host", "not recorded (older rows)")
                    for name, _, _, _ in runs for path in (out / name).glob("fold*/rows.json")})
    text = markdown(rows, command, machine_line(results), None if a.report else wall, hosts)
    write_tables(out, text, [{k: v for k, v in r.items() if k != "pairs"} for r in rows])
    text = (budgets(rows) + "\n## Each method at the dense network's size (no pick on the test folds)\n\n"
            + method_budgets(rows))
    (out / "budgets.md").write_text(text)
    print(text)
    plot(rows, out / "accuracy_vs_weights.png")


if __name__ == "__main__":
    main()
