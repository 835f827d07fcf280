"""How much a recipe's test accuracy moves with the seed: per-fold accuracy of runs that differ
only in their seed, one group of runs per recipe, as a table and a plot.

    python -m experiments.seed_spread --out runs/seeds \
        --group "C 8=runs/c8/dense_s0,runs/c8/dense_s1" --group "C 64=runs/w/dense_s0,runs/w/dense_s1"

A group's name may not contain "=" (it ends at the first one).

Each folder is one seed's ``dense_s<seed>`` folder of ``experiments.sbu_dense`` (or any run with a ``results.json``
whose rate-0 rows hold the accuracy). Writes ``seeds.md`` and ``seeds.png`` into ``--out``.
With ``--ensemble --data-dir D``, each group's table also gets the accuracy of the seeds'
averaged probabilities (needs every fold's ``model.npz``, which committed results leave out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from experiments.plotting import pyplot, save


def fold_accuracies(run_dir: Path) -> tuple[int, dict[int, float]]:
    """(seed, {fold: accuracy %}) of a finished run's results.json (rate-0 row of each fold)."""
    path = Path(run_dir) / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; each folder must hold a finished run")
    results = json.loads(path.read_text())
    return int(results["seed"]), {int(r["fold"]): float(r["rates"][0]["accuracy"]) for r in results["runs"]}


def _mean(acc: dict[int, float]) -> float:
    """The mean over folds of {fold: accuracy %}."""
    return float(np.mean(list(acc.values())))


def ensemble_accuracies(run_dirs: list[Path], data_dir) -> dict[int, float]:
    """{fold: accuracy %} of the mean softmax of dense runs ``run_dirs`` (same folds and data)."""
    import jax

    from jaxprune.serving import open_folds
    probs, labels = {}, {}
    for run_dir in run_dirs:
        for fold in open_folds(run_dir, data_dir)[2]:
            logits = fold.forward(fold.params, fold.data.eval_chunks, jax.random.key(0), False)
            probs.setdefault(fold.fold, []).append(np.asarray(jax.nn.softmax(logits, -1)))
            labels[fold.fold] = fold.data.test_labels
    return {k: 100.0 * float(np.mean(np.mean(p, 0).argmax(1) == labels[k])) for k, p in probs.items()}


def markdown(groups: dict[str, list[tuple[int, dict[int, float]]]], ensembles=None) -> str:
    folds = sorted({f for runs in groups.values() for _, acc in runs for f in acc})
    lines = ["| recipe | seed | " + " | ".join(f"fold {f}" for f in folds) + " | mean |",
             "|---|---" + "|---" * len(folds) + "|---|"]
    for name, runs in groups.items():
        for seed, acc in runs:
            lines.append(f"| {name} | {seed} | " + " | ".join(f"{acc[f]:.1f}" for f in folds)
                         + f" | {_mean(acc):.2f} |")
        means = [_mean(acc) for _, acc in runs]
        lines.append(f"| **{name}** | **all {len(runs)}** | " + " | ".join(
            f"{np.mean([acc[f] for _, acc in runs]):.1f}" for f in folds)
            + f" | **{np.mean(means):.2f}** (seed means {min(means):.1f}–{max(means):.1f}) |")
        if ensembles and name in ensembles:
            acc = ensembles[name]
            lines.append(f"| {name} | averaged probabilities | " + " | ".join(f"{acc[f]:.1f}" for f in folds)
                         + f" | {_mean(acc):.2f} |")
    return "\n".join(lines) + "\n"


def plot(groups: dict[str, list[tuple[int, dict[int, float]]]], path: Path) -> bool:
    """Per-fold accuracy, one marker per seed, one colour per recipe; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(len(groups), 1)
    for g, (name, runs) in enumerate(groups.items()):
        colour = f"C{g}"
        for seed, acc in runs:
            folds = sorted(acc)
            ax.scatter([f - 0.4 + (g + 0.5) * width for f in folds], [acc[f] for f in folds], color=colour,
                       alpha=0.6, s=18)
        mean = np.mean([_mean(acc) for _, acc in runs])
        ax.axhline(mean, color=colour, lw=1, ls="--", label=f"{name}: mean {mean:.1f} % ({len(runs)} seeds)")
    ax.set_xlabel("test fold")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Dense GCN on SBU: one dot per seed and fold")
    ax.legend(fontsize=8, loc="lower left")
    return save(fig, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--group", action="append", required=True, metavar="NAME=DIR,DIR,...",
                   help="a recipe's name (without '=') and the run folders of its seeds")
    p.add_argument("--out", required=True)
    p.add_argument("--ensemble", action="store_true", help="add each group's averaged-probability accuracy")
    p.add_argument("--data-dir", help="the dataset root, for --ensemble (default: the one each run recorded)")
    a = p.parse_args(argv)
    groups, folders = {}, {}
    for spec in a.group:
        name, sep, dirs = spec.partition("=")
        if not sep or not dirs:
            p.error(f"--group {spec!r}: expected NAME=DIR,DIR,...")
        folders[name] = [Path(d) for d in dirs.split(",") if d]
        groups[name] = [fold_accuracies(d) for d in folders[name]]
    ensembles = {n: ensemble_accuracies(d, a.data_dir) for n, d in folders.items()} if a.ensemble else None
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(groups, ensembles)
    (out / "seeds.md").write_text(text)
    plot(groups, out / "seeds.png")
    print(text)


if __name__ == "__main__":
    main()
