"""Dense GCN on SBU, 5-fold cross-validation: the reference accuracy (paper: 98.4 %).

    python -m experiments.sbu_dense --data-dir ../shared/data/sbu --out runs/sbu_dense

Uses the SBU preset (``jaxprune.datasets.PRESETS['sbu']``, chosen by nested validation with
``experiments.tune_dense``); extra ``--set NAME=VALUE`` overrides it. Writes ``results.json`` and
``table.md`` (accuracy per fold, mean ± std, wall time) into ``--out``.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from jaxprune.config import override
from jaxprune.datasets import PRESETS, load_dataset
from jaxprune.runner import RunConfig, run


def markdown(results: dict, command: str) -> str:
    rows = ["| fold | accuracy (%) | train time (s) |", "|---|---|---|"]
    for r in results["runs"]:
        rows.append(f"| {r['fold']} | {r['rates'][0]['accuracy']:.2f} | {r['train_seconds']:.1f} |")
    s = results["summary"][0]
    rows.append(f"| **mean ± std** | **{s['accuracy_mean']:.2f} ± {s['accuracy_std']:.2f}** | "
                f"{results['train_seconds']:.1f} (total) |")
    return (f"# Dense GCN, SBU 5-fold\n\nCommand: `{command}`  \nMachine: {platform.machine()}, "
            f"{results['backend']} ({', '.join(results['devices'])})\n\n" + "\n".join(rows) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="SBU root")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    config = override(RunConfig(seed=a.seed), PRESETS["sbu"] + a.overrides)
    results = run(load_dataset("sbu", a.data_dir), config, out_dir=a.out, overwrite=a.overwrite)
    command = "python -m experiments.sbu_dense " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    text = markdown(results, command)
    Path(a.out, "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
