"""The same figures before and after a change: default runs at two git revisions, compared row by row.

Each case is a ``jaxprune train`` command (the README's main command, one SBU fold of every method
at a shortened schedule, mixup and a split batch), run once with the code of ``--base`` (a git
worktree) and once with this checkout's, one after the other on this machine. Every field of every
``results.json`` row must be equal (``train_seconds`` aside); the table says which are.

    python -m experiments.same_results --base 0a7ab66 --data-dir ../shared/data/sbu \\
        --out experiments/results/same_results
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("dense", "srmp", "mrmp", "ctf", "magnitude", "gradual", "random", "structured", "lottery", "snip", "l1",
           "group_lasso")


def cases(data_dir: str, epochs: int) -> list[tuple[str, list[str]]]:
    """(name, ``jaxprune train`` arguments) of every compared run."""
    data_dir = str(Path(data_dir).resolve())
    out = [("main command (synthetic mrmp, default)", ["--dataset", "synthetic", "--method", "mrmp"])]
    out += [(f"sbu fold 1 {m}, {epochs} epochs", ["--dataset", "sbu", "--data-dir", data_dir, "--method", m,
                                                   "--fold", "1", "--epochs", str(epochs)]) for m in METHODS]
    out += [("synthetic dense + mixup 0.2, 20 epochs", ["--dataset", "synthetic", "--method", "dense", "--set",
                                                        "train.mixup=0.2", "--epochs", "20"]),
            ("synthetic mrmp + split_batch, 20 epochs", ["--dataset", "synthetic", "--method", "mrmp", "--set",
                                                         "prune.split_batch=true", "--epochs", "20"])]
    return out


def train(source: Path, args: list[str], out: Path) -> dict:
    """Runs ``jaxprune train`` with the package in ``source``; its results.json object."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    cmd = [sys.executable, "-m", "jaxprune.cli", "train", *args, "--out", str(out), "--overwrite", "--quiet"]
    done = subprocess.run(cmd, env=env, cwd=source, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} (in {source}) failed:\n{done.stderr[-2000:]}")
    return json.loads((out / "results.json").read_text())


def differences(a: dict, b: dict) -> list[str]:
    """Every (fold, rate, field) whose value differs between two results.json objects."""
    diffs = []
    for run_a, run_b in zip(a["runs"], b["runs"]):
        for row_a, row_b in zip(run_a["rates"], run_b["rates"]):
            for k in sorted(set(row_a) | set(row_b)):
                if row_a.get(k) != row_b.get(k):
                    diffs.append(f"fold {run_a['fold']} rate {row_a['target_rate']:g} {k}: "
                                 f"{row_a.get(k)!r} -> {row_b.get(k)!r}")
    if len(a["runs"]) != len(b["runs"]) or any(len(x["rates"]) != len(y["rates"]) for x, y in zip(a["runs"], b["runs"])):
        diffs.append("different numbers of folds or rates")
    return diffs


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="git revision to compare against (e.g. a commit before a change)")
    p.add_argument("--data-dir", required=True, help="the SBU dataset root")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=100, help="epochs of the SBU runs (default 100)")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "jaxprune"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip())
    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-f", str(base), a.base], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for i, (name, args) in enumerate(cases(a.data_dir, a.epochs), 1):
                before = train(base, args, Path(tmp) / f"before{i}")
                after = train(ROOT, args, Path(tmp) / f"after{i}")
                diffs = differences(before, after)
                rows.append({"case": name, "rows": sum(len(r["rates"]) for r in after["runs"]), "identical": not diffs,
                             "differences": diffs[:5]})
                print(f"[{i}] {time.perf_counter() - start:5.0f}s {name}: "
                      + ("identical" if not diffs else f"{len(diffs)} differences, e.g. {diffs[0]}"), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    same = sum(r["identical"] for r in rows)
    lines = [f"# The same results.json figures at {a.base} and {head}{' (+ uncommitted changes)' if dirty else ''}",
             "", f"Command: `python -m experiments.same_results --base {a.base} --data-dir {a.data_dir} --out {a.out}`  ",
             f"{same} of {len(rows)} cases identical in every field of every row (train_seconds aside); "
             f"{(time.perf_counter() - start) / 60:.1f} min on this machine.", "",
             "| case | rows | identical |", "|---|---|---|"]
    lines += [f"| {r['case']} | {r['rows']} | {'yes' if r['identical'] else 'NO: ' + '; '.join(r['differences'])} |"
              for r in rows]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "same_results.json").write_text(json.dumps({"base": a.base, "head": head, "dirty": dirty, "cases": rows},
                                                      indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
