"""MRMP and SRMP on SBU (or FPHA), accuracy vs pruning rate, with the dense figure beside them.

    python -m experiments.sbu_mrmp --data-dir ../shared/data/sbu --out runs/sbu_mrmp
    python -m experiments.sbu_mrmp --dataset fpha --data-dir PATH/TO/FPHA --out runs/fpha_mrmp

One MRMP model per fold trains all ``--rates`` at once and is then served at every rate of the
grid (trained and unseen); SRMP trains one model per fold and rate. Every model uses the
dataset's preset (``jaxprune settings --dataset sbu``) plus ``--set`` overrides, at each seed of
``--seeds`` (default 0, 1, 2; seed-major in one pool). Jobs run in ``--workers`` processes and are
resumable: a finished (method, rate, seed, fold) is not trained again.

Writes into ``--out``: ``<run>_s<seed>/results.json`` per run (dense, mrmp, srmp_r<rate>),
``table.md`` (accuracy mean ± std per rate and method; MRMP against SRMP and against dense,
paired by (seed, fold)), ``fidelity.md`` (achieved vs target rate of the MRMP models, overall
and per layer), ``accuracy_vs_rate.png`` and ``weights_vs_prior.png`` (each layer's latent
weights of the fold-1 MRMP model against its prior).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

from experiments.jobs import (Job, collect_all, experiment_parser, fold_list, machine_line, pairs_at,  # noqa: E402
                             pool_seeds, run_jobs, seed_list)
from experiments.plotting import pyplot, save  # noqa: E402
from experiments.stats import PAIRED_NOTE, paired_cell  # noqa: E402

RATES = (0.5, 0.7, 0.9, 0.95, 0.98, 0.99)


def run_name(method: str, rate: float | None) -> str:
    return method if rate is None else f"{method}_r{rate:g}"


def accuracy_table(results: dict, rates) -> tuple[str, dict]:
    """Markdown: one row per rate; dense, MRMP (trained or served) and SRMP (its own rate), and
    MRMP against SRMP and against dense paired by (seed, fold) (``results``: ``pool_seeds``'s)."""
    def cell(summary_row):
        return "-" if summary_row is None else \
            f"{summary_row['accuracy_mean']:.2f} ± {summary_row['accuracy_std']:.2f} ({summary_row['achieved_rate']:.3f})"

    def at(res, r):
        if res is None:
            return None
        return next((s for s in res["summary"] if abs(s["target_rate"] - r) < 1e-9), None)

    dense = at(results.get("dense"), 0.0)
    dense_pairs = pairs_at(results.get("dense"), 0.0)
    mrmp = results.get("mrmp")
    trained = set(mrmp["config"]["prune"]["rates"]) if mrmp else set()
    grid = sorted({s["target_rate"] for s in (mrmp or {"summary": []})["summary"]} | set(rates))
    lines = ["| rate | trained by MRMP | MRMP accuracy % (achieved rate) | SRMP accuracy % (achieved rate) | "
             "MRMP − SRMP, paired | MRMP − dense, paired |", "|---|---|---|---|---|---|"]
    for r in grid:
        srmp = results.get(run_name("srmp", r))
        mine = pairs_at(mrmp, r)
        lines.append(f"| {r:g} | {'yes' if r in trained else 'no'} | {cell(at(mrmp, r))} | {cell(at(srmp, r))} | "
                     f"{paired_cell(mine, pairs_at(srmp, r))} | {paired_cell(mine, dense_pairs)} |")
    head = f"Dense: {cell(dense)}\n\n" if dense else ""
    return head + "\n".join(lines) + f"\n\n{PAIRED_NOTE}\n", {"dense": dense}


def fidelity_table(mrmp: dict) -> tuple[str, dict]:
    """Markdown of |achieved − target| for the MRMP models: overall, and per layer against the
    tolerance max(0.5 points, one weight of the layer). Worst case over folds."""
    per_rate, worst = {}, {"overall": 0.0, "layer_excess": -1.0}
    layers = None
    for run in mrmp["runs"]:
        for row in run["rates"]:
            r = row["target_rate"]
            entry = per_rate.setdefault(r, {"overall": 0.0, "layers": {}})
            entry["overall"] = max(entry["overall"], abs(row["achieved_rate"] - r))
            for name, achieved in row["layer_rates"].items():
                target = row.get("layer_target_rates", {}).get(name, r)
                entry["layers"][name] = max(entry["layers"].get(name, 0.0), abs(achieved - target))
            layers = list(row["layer_rates"])
    sizes = mrmp.get("layer_sizes", {})
    lines = ["| target rate | worst overall error (points) | " + " | ".join(layers) + " |",
             "|---" * (len(layers) + 2) + "|"]
    for r in sorted(per_rate):
        e = per_rate[r]
        worst["overall"] = max(worst["overall"], e["overall"])
        cells = []
        for name in layers:
            err = e["layers"][name]
            tol = max(0.005, 1.0 / sizes[name]) if name in sizes else 0.005
            worst["layer_excess"] = max(worst["layer_excess"], err - tol)
            cells.append(f"{100 * err:.2f}{'' if err <= tol + 1e-9 else ' ✗'}")
        lines.append(f"| {r:g} | {100 * e['overall']:.2f}{'' if e['overall'] <= 0.005 else ' ✗'} | "
                     + " | ".join(cells) + " |")
    note = ("Errors in points (percent of the layer's or network's prunable weights), worst fold. "
            "✗: above the tolerance (overall 0.5 points; per layer max(0.5 points, one weight)). "
            "Per-layer targets are the ERK layer rates r_ℓ(r) when allocation = erk.\n\n")
    return note + "\n".join(lines) + "\n", worst


def plot_accuracy(results: dict, path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    mrmp = results.get("mrmp")
    if mrmp:
        s = mrmp["summary"]
        trained = set(mrmp["config"]["prune"]["rates"])
        x = np.array([r["achieved_rate"] for r in s])
        y = np.array([r["accuracy_mean"] for r in s])
        e = np.array([r["accuracy_std"] for r in s])
        ax.errorbar(x, y, e, marker="", capsize=2, label="MRMP (one model per fold)", color="C0")
        t = np.array([r["target_rate"] in trained for r in s])
        ax.scatter(x[t], y[t], color="C0", marker="o", zorder=3, label="MRMP, trained rate")
        ax.scatter(x[~t], y[~t], color="white", edgecolor="C0", marker="o", zorder=3, label="MRMP, unseen rate")
    srmp = sorted((next(s for s in v["summary"] if abs(s["target_rate"] - v["config"]["prune"]["rate"]) < 1e-9)
                   for k, v in results.items() if k.startswith("srmp")), key=lambda s: s["target_rate"])
    if srmp:
        ax.errorbar([s["achieved_rate"] for s in srmp], [s["accuracy_mean"] for s in srmp],
                    [s["accuracy_std"] for s in srmp], marker="s", capsize=2, color="C1",
                    label="SRMP (one model per rate and fold)")
    dense = results.get("dense")
    if dense:
        ax.axhline(dense["summary"][0]["accuracy_mean"], color="gray", ls="--", label="dense")
    ticks = [0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.98, 0.99]
    for a in (ax, ax2):
        a.set_xscale("logit")
        a.set_xticks(ticks, [f"{t:g}" for t in ticks])
        a.minorticks_off()
    ax.set(xlabel="achieved pruning rate (logit scale)", ylabel="test accuracy (%), mean ± std over folds",
           title=f"{(mrmp or dense or {}).get('dataset', '')}: accuracy vs pruning rate")
    ax.legend(fontsize=8)
    if mrmp:
        for run in mrmp["runs"]:
            t = np.array([r["target_rate"] for r in run["rates"]])
            ax2.plot(t, 100 * (np.array([r["achieved_rate"] for r in run["rates"]]) - t), marker=".",
                     label=f"fold {run['fold']}")
        ax2.axhspan(-0.5, 0.5, color="green", alpha=0.1, label="±0.5 points")
        ax2.axhline(0, color="gray", lw=0.8)
        ax2.set(xlabel="target rate (logit scale)", ylabel="achieved − target (points)",
                title="MRMP rate fidelity (whole network)")
        ax2.legend(fontsize=7)
    return save(fig, path)


def plot_weights(model_path: Path, config, dataset, path: Path) -> bool:
    """Histogram of each prunable layer's latent weights against its prior's density."""
    plt = pyplot()
    if plt is None:
        return False
    import jax
    from jaxprune.evaluate import leaf_name
    from jaxprune.methods import restore_pruner
    from jaxprune.model_io import load_model
    from jaxprune.models import gcn
    from jaxprune.priors import is_prior
    from jaxprune.task.forward import gcn_config
    template = gcn.init(jax.random.key(0), gcn_config(dataset, config))
    params, arrays = load_model(model_path, template)
    prunable = gcn.prunable(params)
    pruner = restore_pruner(config.method, params, prunable, config.prune, arrays, str(model_path))
    flat_w, _ = jax.tree_util.tree_flatten_with_path(params)
    layers = [(leaf_name(p), np.asarray(w).ravel()) for (p, w), k in zip(flat_w, jax.tree.leaves(prunable)) if k]
    priors = [q for q in jax.tree.leaves(pruner.priors, is_leaf=is_prior) if is_prior(q)]
    cols = 5
    rows = -(-len(layers) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows))
    for ax, (name, w), q in zip(np.ravel(axes), layers, priors):
        s = float(np.asarray(q.std()))
        grid = np.linspace(-4 * s, 4 * s, 400)
        ax.hist(w, bins=min(80, max(10, w.size // 20)), range=(-4 * s, 4 * s), density=True, color="C0", alpha=0.6)
        ax.plot(grid, np.exp(np.asarray(q.log_density(grid))), color="C3", lw=1)
        ax.set_title(f"{name} (n={w.size})", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in np.ravel(axes)[len(layers):]:
        ax.axis("off")
    fig.suptitle("MRMP latent weights (fold 1) against each layer's prior (red)", fontsize=10)
    return save(fig, path, dpi=110)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = experiment_parser(__doc__, RATES, "rates MRMP trains together and SRMP trains one by one")
    p.add_argument("--methods", default="dense,mrmp,srmp")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2), trained seed-major")
    a = p.parse_args(argv)
    from jaxprune.datasets import load_dataset
    from jaxprune.serving import parse_rates
    rates = parse_rates(a.rates)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(a.dataset, a.data_dir)
    folds = fold_list(dataset, a.folds)
    methods = [m.strip() for m in a.methods.split(",")]
    mrmp_set = [f"prune.rates={','.join(f'{r:g}' for r in rates)}"]
    runs = []
    for m in methods:
        if m == "srmp":
            runs += [("srmp", r) for r in rates]
        elif m in ("dense", "mrmp"):
            runs.append((m, None))
        else:
            raise SystemExit(f"--methods: unknown method {m!r}; choose from dense, mrmp, srmp")
    seeds = seed_list(a.seeds)
    jobs = []
    # one pool, seed-major: seed s's jobs all start before seed s + 1's (an interrupted grid has whole
    # seeds but for the jobs in flight), and no worker idles while a seed's last job ends; within a
    # seed the longest (MRMP) first
    for s in seeds:
        seed_jobs = []
        for method, rate in runs:
            extra = mrmp_set if method == "mrmp" else [] if rate is None else [f"prune.rate={rate}"]
            seed_jobs += [Job(a.dataset, a.data_dir, f"{run_name(method, rate)}_s{s}", method,
                              (*a.overrides, *extra, f"seed={s}"), k, str(out), a.preset) for k in folds]
        jobs += sorted(seed_jobs, key=lambda j: j.method != "mrmp")
    run_jobs(jobs, a.workers, a.reuse)
    names = [run_name(m, r) for m, r in runs]
    per_seed = collect_all(dataset, out, [f"{n}_s{s}" for n in names for s in seeds], folds, a.data_dir)
    results = pool_seeds(per_seed, names, seeds)
    command = "python -m experiments.sbu_mrmp " + " ".join(argv)
    header = (f"# MRMP and SRMP on {a.dataset.upper()} ({len(folds)} folds, seeds {a.seeds}; mean ± std over "
              f"seeds × folds)\n\nCommand: `{command}`  \n{machine_line(per_seed)}\n\n")
    table, _ = accuracy_table(results, rates)
    (out / "table.md").write_text(header + table)
    print(header + table)
    if "mrmp" in results:
        import jax
        from jaxprune.models import gcn
        from jaxprune.task.forward import gcn_config
        from jaxprune.run_config import load_run_config
        first = f"mrmp_s{results['mrmp']['seeds'][0]}"
        config = load_run_config(results["mrmp"], out / first / "results.json")
        template = gcn.init(jax.random.key(0), gcn_config(dataset, config))
        flat, _ = jax.tree_util.tree_flatten_with_path(template)
        from jaxprune.evaluate import leaf_name
        results["mrmp"]["layer_sizes"] = {leaf_name(p): int(np.size(w)) for p, w in flat}
        fid, worst = fidelity_table(results["mrmp"])
        (out / "fidelity.md").write_text(f"# Rate fidelity of MRMP on {a.dataset.upper()}\n\n" + fid
                                         + f"\nWorst overall error: {100 * worst['overall']:.2f} points; worst "
                                         f"per-layer excess over tolerance: {100 * worst['layer_excess']:.2f} points.\n")
        print(fid)
        plot_weights(out / first / f"fold{folds[0]}" / "model.npz", config, dataset, out / "weights_vs_prior.png")
    plot_accuracy(results, out / "accuracy_vs_rate.png")


if __name__ == "__main__":
    main()
