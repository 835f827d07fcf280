"""Wall time of whole SBU trainings (5 folds) from the command line, for one checkout or two.

    python -m benchmarks.train_wall --data-dir ../shared/data/sbu --label after \
        --cli-args "--preset c8" --out benchmarks/results
    python -m benchmarks.train_wall --data-dir ../shared/data/sbu --label before \
        --source /path/to/old/checkout --cli-args "" --out benchmarks/results

Each method (``--methods``, default dense and mrmp) runs as ``jaxprune train --dataset sbu``
in a fresh process with the ``jaxprune`` package of ``--source`` (default: this checkout) first
on the path, as a user runs it (the command line's own XLA threading). ``--cli-args`` go to
every run (an older checkout may lack ``--preset``; its default SBU preset was then the C = 8
network). A row holds the process's wall seconds, the run's own training seconds
(``results.json``) and the per-fold accuracy at every served rate, so two checkouts' rows say
whether a change moved any accuracy. Rows are added to ``train_wall.json`` under ``--out``
(a row of the same label and method is replaced) and the markdown table is rewritten from all
rows. Run it on a quiet machine, one training at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.timing import machine, write_report

HERE = Path(__file__).resolve().parents[1]


def run_once(source: Path, data_dir: str, method: str, cli_args: list[str], out: Path) -> float:
    """Wall seconds of ``jaxprune train --dataset sbu --method <method>`` with ``source`` importable."""
    code = "import sys; from jaxprune.cli import main; sys.argv = ['jaxprune'] + sys.argv[1:]; main()"
    command = [sys.executable, "-c", code, "train", "--dataset", "sbu", "--data-dir", str(Path(data_dir).resolve()),
               "--method", method, "--out", str(out), *cli_args]
    env = dict(os.environ, PYTHONPATH=str(source))
    started = time.perf_counter()
    subprocess.run(command, cwd=source, env=env, check=True)
    return time.perf_counter() - started


def row_of(label: str, source: Path, method: str, cli_args: list[str], wall: float, results: dict) -> dict:
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    folds = {str(run["fold"]): {f"{r['target_rate']:g}": round(r["accuracy"], 2) for r in run["rates"]}
             for run in results["runs"]}
    return {"label": label, "commit": commit, "method": method, "cli_args": " ".join(cli_args),
            "wall_seconds": round(wall, 1), "train_seconds": round(results["train_seconds"], 1),
            "channels": results["config"].get("model", {}).get("channels"), "accuracy_by_fold": folds}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="SBU data folder (e.g. ../shared/data/sbu)")
    p.add_argument("--label", required=True, help="name of these rows, e.g. 'before' or 'after'")
    p.add_argument("--source", default=str(HERE), help="checkout whose jaxprune package runs (default: this one)")
    p.add_argument("--methods", default="dense,mrmp")
    p.add_argument("--cli-args", default="--preset c8", help="extra arguments of every run (default: %(default)s)")
    p.add_argument("--out", default="benchmarks/results")
    a = p.parse_args(argv)
    source, cli_args = Path(a.source).resolve(), shlex.split(a.cli_args)
    if not (source / "jaxprune" / "cli.py").is_file():
        raise SystemExit(f"--source {source}: no jaxprune/cli.py there")
    record_file = Path(a.out) / "train_wall.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() else {"benchmark": "train_wall", "rows": []}
    for method in a.methods.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            wall = run_once(source, a.data_dir, method, cli_args, Path(tmp) / "run")
            results = json.loads((Path(tmp) / "run" / "results.json").read_text())
        row = row_of(a.label, source, method, cli_args, wall, results)
        record["rows"] = [r for r in record["rows"] if (r["label"], r["method"]) != (a.label, method)] + [row]
        record["machine"] = machine()
        print(json.dumps(row), flush=True)
    write_report(a.out, "train_wall", record, table(record))


def table(record: dict) -> list[str]:
    lines = [f"# Whole SBU trainings from the command line, 5 folds ({record['machine']})", "",
             "Written by `python -m benchmarks.train_wall`. Wall s: the process, start to end (compilation, "
             "evaluation and files included); train s: the run's own training seconds (results.json). "
             "Accuracy: mean over folds of every served rate, %.", "",
             "| label | commit | method | arguments | C | wall s | train s | mean accuracy per served rate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        folds = list(r["accuracy_by_fold"].values())
        means = {rate: sum(f[rate] for f in folds) / len(folds) for rate in folds[0]}
        accuracy = ", ".join(f"{rate}: {acc:.2f}" for rate, acc in means.items())
        lines.append(f"| {r['label']} | {r['commit']} | {r['method']} | `{r['cli_args']}` | {r['channels']} | "
                     f"{r['wall_seconds']} | {r['train_seconds']} | {accuracy} |")
    pairs = {}
    for r in record["rows"]:
        pairs.setdefault(r["method"], {})[r["label"]] = r
    lines += ["", "Per-fold accuracies that differ between labels (same method):", ""]
    for method, by_label in pairs.items():
        labels = sorted(by_label)
        for i, x in enumerate(labels):
            for y in labels[i + 1:]:
                fx, fy = by_label[x]["accuracy_by_fold"], by_label[y]["accuracy_by_fold"]
                diff = [f"fold {f} rate {rate}: {fx[f][rate]} vs {fy[f].get(rate)}" for f in fx for rate in fx[f]
                        if fy.get(f, {}).get(rate) != fx[f][rate]]
                lines.append(f"- {method}, {x} vs {y}: " + ("; ".join(diff) if diff else "none"))
    return lines


if __name__ == "__main__":
    main()
