"""The README's three-seed table of every method, rendered from the committed comparison grid.

    python -m experiments.readme_table --data-dir ../shared/data/sbu            # check the README
    python -m experiments.readme_table --data-dir ../shared/data/sbu --write    # rewrite its table

Reads ``experiments/results/sbu_compare_seeds`` (``--out``; nothing is written there): one row per
method of ``experiments.sbu_compare.METHODS``, test accuracy % mean ± std over seeds × folds at each
rate (the cells of that folder's ``summary.csv``), the MRMP recipe before the rate weights
(``mrmp_split_long_s*``, kept beside the grid), then paired rows (mean ± 95 % half-width over the
(seed, fold) pairs; bold a loss, italic a win, ``experiments.stats.paired``). The README's table is
the block that starts with ``| method | seeds | 0.5 |``, and the dense accuracy is the sentence
"Dense X ± Y %. Paired rows" after it. Without ``--write`` it exits 1, naming the first line that
differs, when the README is not what the grid gives.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRID = REPO / "experiments" / "results" / "sbu_compare_seeds"
SEEDS = (0, 1, 2)
FOLDS = (1, 2, 3, 4, 5)
START = "| method | seeds | 0.5 |"
LABELS = {"MRMP": "**MRMP** (weighted recipe, the default; one model per fold)", "SRMP": "SRMP (one model per rate)"}
SPLIT = "mrmp_split_long"
PAIRS = [("MRMP", "SRMP", "**MRMP − SRMP**, paired (points)"), ("split_long", "SRMP", "split_long − SRMP, paired"),
         ("MRMP", "split_long", "MRMP − split_long, paired"), ("MRMP", "dense", "MRMP − dense, paired"),
         ("SRMP", "dense", "SRMP − dense, paired"), ("CTF", "dense", "CTF − dense, paired")]


def _seeds(counts) -> str:
    return f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"


def render(grid: Path, data_dir: str) -> tuple[str, str]:
    """(the table's markdown, the dense network's 'mean ± std') from the grid's rows."""
    from experiments import sbu_compare as sc
    from experiments.jobs import collect, pairs_at, pool_seeds
    from experiments.stats import paired
    from jaxprune.datasets import load_dataset

    dataset = load_dataset("sbu", data_dir)
    rates = sc.RATES
    names = [sc.run_name("dense", None, s) for s in SEEDS] + [f"{SPLIT}_s{s}" for s in SEEDS]
    for label, method, _ in sc.METHODS:
        for s in SEEDS:
            names += ([sc.run_name(label, None, s)] if method == "mrmp"
                      else [sc.run_name(label, r, s) for r in rates])
    results = {n: r for n in names if (r := collect(dataset, grid, n, list(FOLDS), data_dir)) is not None}
    by = {(r["label"], r["target_rate"]): r for r in sc.summary_rows(results, rates, list(SEEDS))}
    split = pool_seeds(results, [SPLIT], list(SEEDS)).get(SPLIT)
    lines = ["| method | seeds | " + " | ".join(f"{r:g}" for r in rates) + " |", "|---" * (len(rates) + 2) + "|"]
    for label, _, _ in sc.METHODS:
        cells = [by.get((label, r)) for r in rates]
        if not any(cells):
            continue
        text = ["-" if c is None else f"{c['accuracy_mean']:.2f} ± {c['accuracy_std']:.2f}" for c in cells]
        lines.append(f"| {LABELS.get(label, label)} | {_seeds([c['seeds'] for c in cells if c])} | "
                     + " | ".join(text) + " |")
        if label == "MRMP" and split is not None:
            rows = [next(x for x in split["summary"] if abs(x["target_rate"] - r) < 1e-9) for r in rates]
            lines.append(f"| MRMP, split_long (the recipe before the weights) | {len(split['seeds'])} | "
                         + " | ".join(f"{x['accuracy_mean']:.2f} ± {x['accuracy_std']:.2f}" for x in rows) + " |")

    def accuracies(label, rate):
        if label == "split_long":
            return pairs_at(split, rate)
        if label == "dense":
            return sc.pair_accuracies(results, "dense", 0.0, list(SEEDS))
        return sc.pair_accuracies(results, label, rate, list(SEEDS))

    for a, b, name in PAIRS:
        cells, counts = [], []
        for r in rates:
            d, half, verdict, n = paired(accuracies(a, r), accuracies(b, r))
            t = f"{d:+.2f} ± {half:.2f}".replace("-", "−")
            cells.append(f"**{t}**" if verdict == "loss" else f"*{t}*" if verdict == "win" else t)
            counts.append(n)
        lines.append(f"| {name} | {_seeds([n // len(FOLDS) for n in counts])} | " + " | ".join(cells) + " |")
    dense = by[("dense", 0.0)]
    return "\n".join(lines), f"{dense['accuracy_mean']:.2f} ± {dense['accuracy_std']:.2f}"


def with_table(readme: str, table: str, dense: str, path: Path) -> str:
    """``readme`` with its table and dense sentence replaced (ValueError naming ``path`` if absent)."""
    if START not in readme:
        raise ValueError(f"{path}: no table starting with {START!r}")
    start = readme.index(START)
    end = readme.index("\n\n", start)
    readme = readme[:start] + table + readme[end:]
    sentence = re.compile(r"Dense \d+\.\d+ ± \d+\.\d+ %\. Paired rows")
    if not sentence.search(readme, start):
        raise ValueError(f"{path}: no sentence 'Dense X ± Y %. Paired rows' after the table")
    return readme[:start] + sentence.sub(f"Dense {dense} %. Paired rows", readme[start:], count=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.readme_table", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="the SBU data directory (e.g. ../shared/data/sbu)")
    p.add_argument("--out", default=str(GRID), help="the comparison grid's folder")
    p.add_argument("--readme", default=str(REPO / "README.md"))
    p.add_argument("--write", action="store_true", help="rewrite the README's table instead of checking it")
    a = p.parse_args(argv)
    path = Path(a.readme)
    readme = path.read_text()
    table, dense = render(Path(a.out), a.data_dir)
    new = with_table(readme, table, dense, path)
    if a.write:
        path.write_text(new)
        print(f"{path}: table rewritten from {a.out}")
        return 0
    if new == readme:
        print(f"{path}: the table is what {a.out} gives")
        return 0
    first = next(i for i, (x, y) in enumerate(zip(readme.splitlines() + [""], new.splitlines() + [""])) if x != y)
    print(f"{path}:{first + 1}: differs from what {a.out} gives (run with --write to rewrite it)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
