"""CTF on SBU (or FPHA) and its ablations: accuracy, structure, FLOPs and speed-up vs pruning rate.

    python -m experiments.sbu_ctf --data-dir ../shared/data/sbu --out runs/sbu_ctf

Variants (``prune.ctf_factors``): full CTF (block, column, row, entry), entry-only (unstructured)
and coarse-only (block, column, row: structured). Each trains one model per rate and fold under the
dataset's preset plus ``--set`` overrides, at each seed of ``--seeds`` (default 0, 1, 2); a dense
run gives the reference. Jobs run in ``--workers`` processes and are resumable.

Writes into ``--out``: ``<variant>_r<rate>_s<seed>/results.json`` and ``dense_s<seed>/results.json``, ``table.md``
and ``table.csv`` (accuracy mean ± std, its difference from dense and, for the ablations, from
full CTF at the same rate, paired by (seed, fold), achieved rate, share of the pruned weights removed
structurally, FLOPs of the masked and of the compact network, measured speed-up of the compact
network over the dense one on the fold-1 model, batch ``--batch``), and ``ctf_vs_rate.png``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

from experiments.jobs import (Job, collect_all, experiment_parser, fold_list, listed, machine_line,  # noqa: E402
                             pairs_at, pool_seeds, run_jobs, seed_list, write_tables)
from experiments.plotting import pyplot, save  # noqa: E402
from experiments.stats import PAIRED_NOTE, paired, paired_text  # noqa: E402

RATES = (0.5, 0.7, 0.9, 0.95, 0.98)
VARIANTS = {"ctf": "block,column,row,entry", "ctf_entry": "entry", "ctf_coarse": "block,column,row"}
LABELS = {"ctf": "CTF (full)", "ctf_entry": "entry only (unstructured)", "ctf_coarse": "coarse only (structured)"}


def run_name(variant: str, rate: float) -> str:
    return f"{variant}_r{rate:g}"


def speedup(run_dir: Path, fold: int, batch: int, data_dir: str) -> dict:
    """Latency of the dense and the compact network of one saved fold (batch ``batch``)."""
    import jax
    from benchmarks.timing import median_seconds
    from jaxprune.models.compact import compact, compact_apply
    from jaxprune.data.features import node_features
    from jaxprune.models import gcn
    from jaxprune.serving import open_folds
    _, _, folds = open_folds(run_dir, data_dir)
    saved = next(s for s in folds if s.fold == fold)
    rate = saved.pruner.trained_rates[0]
    masks = jax.tree.map(lambda m: m[0], saved.pruner.hard_masks(saved.params, np.asarray([rate], np.float32)))
    features = node_features(saved.data.test_chunks, saved.config.features)
    x = np.resize(np.asarray(features), (batch,) + features.shape[1:])
    dense = jax.jit(lambda p, f: gcn.apply(p, f, saved.model))
    net = compact(saved.params, masks, saved.model)
    t_dense = median_seconds(dense, saved.params, x, repeats=50, min_seconds=0.5)
    t_compact = median_seconds(jax.jit(compact_apply), net, x, repeats=50, min_seconds=0.5)
    return {"dense_ms": 1e3 * t_dense, "compact_ms": 1e3 * t_compact, "speedup": t_dense / t_compact}


def _at(results, rate):
    return next((s for s in results["summary"] if abs(s["target_rate"] - rate) < 1e-9), None)


def _mean(results, rate, key):
    rows = [r for run in results["runs"] for r in run["rates"] if abs(r["target_rate"] - rate) < 1e-9]
    return float(np.mean([r[key] for r in rows]))


def _paired_fields(name: str, result: tuple) -> dict:
    """CSV fields of a ``paired`` result: ``name`` (mean difference, points), ``name_half`` (95 %
    half-width) and ``name_pairs``; empty (None) where there is no pair or no interval."""
    diff, half, _, n = result
    return {name: diff if n else None, f"{name}_half": None if np.isnan(half) else half, f"{name}_pairs": n}


def tables(results: dict, rates, speed: dict) -> tuple[str, list[dict]]:
    """(markdown, csv rows): one row per (variant, rate), with its difference from dense and (the
    ablations) from full CTF at the same rate, paired by (seed, fold) (``results``: ``pool_seeds``'s)."""
    dense = results.get("dense")
    dense_flops = _mean(dense, 0.0, "flops") if dense else None
    head = ("| variant | target rate | accuracy % (mean ± std) | − dense, paired | − CTF (full), paired | "
            "achieved rate (worst fold) | structured share of pruning | MFLOPs masked | MFLOPs compact | "
            "compact speed-up (batch) |")
    lines = [head, "|---" * 10 + "|"]
    dense_pairs = pairs_at(dense, 0.0)
    rows = []
    for variant in VARIANTS:
        for r in rates:
            res = results.get(run_name(variant, r))
            if res is None:
                continue
            s = _at(res, r)
            worst = max(abs(row["achieved_rate"] - r) for run in res["runs"] for row in run["rates"])
            sp = speed.get(run_name(variant, r))
            mine = pairs_at(res, r)
            full = {} if variant == "ctf" else pairs_at(results.get(run_name("ctf", r)), r)
            vs_dense, vs_full = paired(mine, dense_pairs), paired(mine, full)
            row = {"variant": variant, "target_rate": r, "accuracy_mean": s["accuracy_mean"],
                   "accuracy_std": s["accuracy_std"], **_paired_fields("minus_dense", vs_dense),
                   **_paired_fields("minus_full", vs_full), "achieved_rate": s["achieved_rate"],
                   "worst_rate_error": worst, "kept_params": s["kept_params_mean"],
                   "structured_fraction": _mean(res, r, "structured_fraction"), "flops": s["flops_mean"],
                   "compact_flops": _mean(res, r, "compact_flops"),
                   "compact_speedup": None if sp is None else sp["speedup"]}
            rows.append(row)
            lines.append(f"| {LABELS[variant]} | {r:g} | {row['accuracy_mean']:.2f} ± {row['accuracy_std']:.2f} | "
                         f"{paired_text(vs_dense)} | {paired_text(vs_full)} | "
                         f"{row['achieved_rate']:.4f} ({100 * worst:.2f} pts) | {100 * row['structured_fraction']:.1f} % | "
                         f"{row['flops'] / 1e6:.3f} | {row['compact_flops'] / 1e6:.3f} | "
                         + ("-" if sp is None else f"{sp['speedup']:.2f}× ({sp['dense_ms']:.2f} → {sp['compact_ms']:.2f} ms)")
                         + " |")
    top = ""
    if dense:
        d = _at(dense, 0.0)
        top = (f"Dense: {d['accuracy_mean']:.2f} ± {d['accuracy_std']:.2f} %, {dense_flops / 1e6:.3f} MFLOPs, "
               f"{int(_mean(dense, 0.0, 'total_params'))} prunable weights.\n\n")
    note = (f"\n\n{PAIRED_NOTE} "
            "Structured share: the fraction of the pruned weights that compaction removes physically "
            "(whole channels, attention dimensions, hidden units, FC inputs); the rest are zeros inside "
            "the compact kernels. MFLOPs masked count non-zero weights only; compact counts the smaller "
            "dense matrices. Speed-up: jitted inference of the fold-1 model, dense / compact median latency "
            "(XLA on one thread, as the experiment's workers run; `benchmarks/ctf_inference.py` measures it "
            "on the whole machine).\n")
    return top + "\n".join(lines) + note, rows


def plot(results: dict, rates, path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for i, variant in enumerate(VARIANTS):
        got = [(r, results[run_name(variant, r)]) for r in rates if run_name(variant, r) in results]
        if not got:
            continue
        x = [_at(res, r)["achieved_rate"] for r, res in got]
        ax.errorbar(x, [_at(res, r)["accuracy_mean"] for r, res in got],
                    [_at(res, r)["accuracy_std"] for r, res in got], marker="o", capsize=2, color=f"C{i}",
                    label=LABELS[variant])
        ax2.plot(x, [100 * _mean(res, r, "structured_fraction") for r, res in got], marker="o", color=f"C{i}",
                 label=LABELS[variant])
    if "dense" in results:
        ax.axhline(_at(results["dense"], 0.0)["accuracy_mean"], color="gray", ls="--", label="dense")
    ticks = [0.5, 0.7, 0.9, 0.95, 0.98]
    for a in (ax, ax2):
        a.set_xscale("logit")
        a.set_xticks(ticks, [f"{t:g}" for t in ticks])
        a.minorticks_off()
        a.legend(fontsize=8)
    ax.set(xlabel="achieved pruning rate (logit scale)", ylabel="test accuracy (%), mean ± std over folds",
           title="CTF and its ablations: accuracy vs rate")
    ax2.set(xlabel="achieved pruning rate (logit scale)", ylabel="% of pruned weights removed structurally",
            title="How much of the pruning compaction removes")
    return save(fig, path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = experiment_parser(__doc__, RATES, "the rates each variant trains, one model per rate")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"any of {','.join(VARIANTS)}")
    p.add_argument("--no-dense", action="store_true", help="skip the dense reference run")
    p.add_argument("--batch", type=int, default=256, help="batch of the speed-up measurement (0: skip it)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2), trained seed-major")
    a = p.parse_args(argv)
    from jaxprune.datasets import load_dataset
    from jaxprune.serving import parse_rates
    rates = parse_rates(a.rates)
    variants = listed(a.variants, VARIANTS, "--variants")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(a.dataset, a.data_dir)
    folds = fold_list(dataset, a.folds)
    runs = [] if a.no_dense else [("dense", "dense", ())]
    runs += [(run_name(v, r), "ctf", (f"prune.rate={r}", f"prune.ctf_factors={VARIANTS[v]}"))
             for v in variants for r in rates]
    seeds = seed_list(a.seeds)
    # one pool, seed-major: seed s's jobs all start before seed s + 1's (an interrupted grid has whole
    # seeds but for the jobs in flight), and no worker idles while a seed's last job ends
    run_jobs([Job(a.dataset, a.data_dir, f"{name}_s{s}", method, (*a.overrides, *extra, f"seed={s}"), k, str(out),
                  a.preset) for s in seeds for name, method, extra in runs for k in folds], a.workers, a.reuse)
    names = [name for name, _, _ in runs]
    per_seed = collect_all(dataset, out, [f"{n}_s{s}" for n in names for s in seeds], folds, a.data_dir)
    results = pool_seeds(per_seed, names, seeds)
    speed = {}
    if a.batch:                                           # the first seed's fold model
        for name, method, _ in runs:
            if method == "ctf" and name in results:
                speed[name] = speedup(out / f"{name}_s{results[name]['seeds'][0]}", folds[0], a.batch, a.data_dir)
    command = "python -m experiments.sbu_ctf " + " ".join(argv)
    header = (f"# CTF and its ablations on {a.dataset.upper()} ({len(folds)} folds, seeds {a.seeds}; mean ± std "
              f"over seeds × folds)\n\nCommand: `{command}`  \n{machine_line(per_seed)}\n\n")
    table, rows = tables(results, rates, speed)
    write_tables(out, header + table, rows)
    plot(results, rates, out / "ctf_vs_rate.png")


if __name__ == "__main__":
    main()
