"""Choose dense-training settings on SBU by nested validation: test folds are never looked at.

For each candidate (a list of setting overrides) and each outer test fold k, every other fold j
is held out in turn as validation, training on the remaining three folds (4 runs per outer fold,
20 per candidate; ``--inner next`` keeps only j = k mod 5 + 1, 5 runs per candidate). A
candidate's score for outer fold k is its mean validation accuracy over those j != k, so the
choice for fold k never sees fold k.

    python -m experiments.tune_dense --data-dir ../shared/data/sbu --out runs/tune \
        --candidate base= --candidate chunks8=features.chunks=8 --workers 2 --seeds 1,2

Every candidate starts from ``--preset`` (default: SBU's, ``wide``; ``none`` for the dataclass
defaults alone, as the rounds before presets ran), its own overrides on top. A row's ``overrides``
are every setting its run applied to the defaults, preset included (what
``experiments.sbu_dense --select-from`` trains), and its ``preset`` names the preset (rows from
before this option read as ``none``); a candidate under another preset is another candidate.

A single run's accuracy moves by several points with the seed (initialisation and augmentation
draws; README "Measured"), so ``--seeds`` trains every candidate once per seed (the setting
``seed``, applied after the candidate's own overrides) and the table gives the mean over all its
runs and the mean of each seed.

Writes ``out/validation.jsonl`` (one row per run, appended, resumable) and
``out/validation.md`` (candidate x outer fold table, each candidate against the first paired
by split).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from jaxprune.presets import PRESETS

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


def inner_dataset(dataset, outer: int, inner: int):
    """Drops fold ``outer``; fold ``inner`` becomes the test fold 1, every other fold training (0)."""
    from experiments.jobs import validation_split
    return validation_split(dataset, outer, inner)


def _job(args):
    data_dir, name, overrides, seed, outer, inner, epochs, preset = args
    from jaxprune.config import override
    from jaxprune.data.sbu import load_sbu
    from jaxprune.run_config import RunConfig
    from jaxprune.runner import run
    config = override(RunConfig(), [f"train.epochs={epochs}", *overrides, f"seed={seed}"])
    ds = inner_dataset(load_sbu(data_dir), outer, inner)
    result = run(ds, config, folds=[1], progress=False)
    return {"candidate": name, "preset": preset, "overrides": overrides, "seed": seed, "outer": outer, "inner": inner,
            "val_accuracy": result["summary"][0]["accuracy_mean"],
            "seconds": result["train_seconds"]}


def table(rows) -> str:
    """Markdown: per candidate, the mean validation accuracy for each outer fold (runs in
    brackets), over all its runs, and per seed (rows without a seed are seed 0), and its
    difference from the first candidate (the reference, e.g. ``base``) paired by (seed, outer,
    inner) split (``experiments.stats.paired_cell``). Where the rows hold several presets, a
    candidate is named with its preset: "name [preset]"."""
    import numpy as np
    from experiments.stats import paired_cell
    rows = [{**r, "preset": r.get("preset", "none")} for r in rows]
    several = len({r["preset"] for r in rows}) > 1
    rows = [{**r, "candidate": f"{r['candidate']} [{r['preset']}]" if several else r["candidate"]} for r in rows]
    names = list(dict.fromkeys(r["candidate"] for r in rows))

    def splits(name):
        return {(r.get("seed", 0), r["outer"], r["inner"]): r["val_accuracy"] for r in rows if r["candidate"] == name}
    reference = splits(names[0]) if names else {}
    lines = ["| candidate | " + " | ".join(f"outer {k}" for k in range(1, 6)) + " | mean | per seed | "
             f"− {names[0] if names else 'first'}, paired |", "|---" * 9 + "|"]
    for n in names:
        mine = [r for r in rows if r["candidate"] == n]
        cells = []
        for k in range(1, 6):
            v = [r["val_accuracy"] for r in mine if r["outer"] == k]
            cells.append(f"{np.mean(v):.1f} ({len(v)})" if v else "-")
        seeds = sorted({r.get("seed", 0) for r in mine})
        per_seed = ", ".join(f"s{s} {np.mean([r['val_accuracy'] for r in mine if r.get('seed', 0) == s]):.1f}"
                             for s in seeds)
        versus = "-" if n == names[0] else paired_cell(splits(n), reference)
        lines.append(f"| {n} | " + " | ".join(cells) +
                     f" | {np.mean([r['val_accuracy'] for r in mine]):.2f} | {per_seed} | {versus} |")
    return "\n".join(lines)


def plan(candidates: list[str], seeds: list[int], inner_mode: str, done: list[dict], data_dir, epochs: int,
         preset: str = "none"):
    """The runs still to make: (data_dir, name, overrides, seed, outer, inner, epochs, preset) for
    every candidate "NAME=o1;o2", seed and (outer, inner) pair that ``done`` (rows read back)
    lacks under ``preset``; ``overrides`` are the preset's settings, then the candidate's."""
    from jaxprune.presets import preset_settings
    seen = {(r["candidate"], r.get("seed", 0), r["outer"], r["inner"]) for r in done
            if r.get("preset", "none") == preset}
    jobs = []
    for spec in candidates:
        name, _, rest = spec.partition("=")
        overrides = [*preset_settings("sbu", preset), *(o for o in rest.split(";") if o)]
        for seed in seeds:
            for outer in range(1, 6):
                for inner in range(1, 6):
                    if inner == outer or (inner_mode == "next" and inner != outer % 5 + 1):
                        continue
                    if (name, seed, outer, inner) not in seen:
                        jobs.append((data_dir, name, overrides, seed, outer, inner, epochs, preset))
    return jobs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--inner", choices=("all", "next"), default="all",
                   help="validation folds per outer fold k: every j != k (4 runs), or only j = k mod 5 + 1")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2); each candidate is trained once per seed")
    p.add_argument("--preset", choices=tuple(PRESETS),
                   help="the settings every candidate starts from (default: SBU's, wide; none: the defaults alone)")
    p.add_argument("--candidate", action="append", default=[],
                   help="NAME=override1;override2 (e.g. 'aug=augment.rotate_deg=30;augment.swap_groups=2')")
    a = p.parse_args(argv)
    from experiments.jobs import seed_list
    from jaxprune.presets import preset_name
    seeds = seed_list(a.seeds)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "validation.jsonl"
    done = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    jobs = plan(a.candidate or ["base="], seeds, a.inner, done, a.data_dir, a.epochs, preset_name("sbu", a.preset))
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp
    with ProcessPoolExecutor(a.workers, mp_context=mp.get_context("spawn")) as pool:
        for i, row in enumerate(pool.map(_job, jobs), 1):
            done.append(row)
            with open(log, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"[{i}/{len(jobs)}] {row['candidate']} seed {row['seed']} outer {row['outer']} inner {row['inner']}: "
                  f"{row['val_accuracy']:.1f}% ({row['seconds']:.0f}s)", flush=True)
    (out / "validation.md").write_text(table(done) + "\n")
    print(table(done))


if __name__ == "__main__":
    main()
