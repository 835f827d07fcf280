"""Dense GCN on SBU, 5-fold cross-validation: the reference accuracy (paper: 98.4 %).

    python -m experiments.sbu_dense --data-dir ../shared/data/sbu --out runs/sbu_dense
    python -m experiments.sbu_dense --data-dir ../shared/data/sbu --out runs/sbu_nested \
        --select-from runs/tune/validation.jsonl

By default every fold uses SBU's default preset (``jaxprune.presets``: ``wide``; ``--preset`` picks
another, e.g. ``paper`` or ``c8``). With
``--select-from``, each outer fold k instead uses the candidate of ``experiments.tune_dense`` with
the best validation accuracy among the runs made for fold k (which neither trained nor
validated on fold k): a strictly nested choice. Extra ``--set NAME=VALUE`` apply on top.
Writes ``results.json``, ``table.md`` and ``curves.png`` (training loss per fold) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from experiments.plotting import pyplot, save

from jaxprune.config import override
from jaxprune.datasets import load_dataset
from jaxprune.presets import PRESETS, preset_name, preset_settings
from jaxprune.results import write_json_atomic
from jaxprune.results import results_record
from jaxprune.run_config import RunConfig
from jaxprune.run_folder import RunExistsError
from jaxprune.runner import train_fold


def select_per_fold(validation_log: Path) -> dict[int, tuple[str, list[str]]]:
    """For each outer fold k: (candidate name, overrides) with the best mean validation accuracy
    over the tuning runs made for k. Ties go to the candidate listed first. A candidate tuned
    under a preset is named "name [preset]"; its overrides include the preset's settings."""
    rows = [json.loads(line) for line in validation_log.read_text().splitlines() if line.strip()]
    chosen = {}
    for k in sorted({r["outer"] for r in rows}):
        scores = {}
        for r in rows:
            if r["outer"] == k:
                name = r["candidate"] + (f" [{r['preset']}]" if r.get("preset", "none") != "none" else "")
                scores.setdefault(name, (r["overrides"], []))[1].append(r["val_accuracy"])
        name = max(scores, key=lambda n: np.mean(scores[n][1]))
        chosen[k] = (name, scores[name][0])
    return chosen


def markdown(results: dict, command: str) -> str:
    rows = ["| fold | settings | accuracy (%) | train time (s) |", "|---|---|---|---|"]
    for r in results["runs"]:
        rows.append(f"| {r['fold']} | {r['candidate']} | {r['rates'][0]['accuracy']:.2f} | {r['train_seconds']:.1f} |")
    s = results["summary"][0]
    rows.append(f"| **mean ± std** | | **{s['accuracy_mean']:.2f} ± {s['accuracy_std']:.2f}** | "
                f"{results['train_seconds']:.1f} (total) |")
    return (f"# Dense GCN, SBU 5-fold\n\nCommand: `{command}`  \nMachine: {platform.machine()}, "
            f"{results['backend']} ({', '.join(results['devices'])})\n\n" + "\n".join(rows) + "\n")


def plot_curves(histories: dict[int, list[dict]], path: Path) -> bool:
    """Training loss and accuracy per epoch, one line per fold; False if matplotlib is missing."""
    plt = pyplot()
    if plt is None:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for fold, hist in histories.items():
        epochs = [h["epoch"] for h in hist]
        ax1.semilogy(epochs, [h["loss"] for h in hist], label=f"fold {fold}")
        ax2.plot(epochs, [100 * h["accuracy"] for h in hist], label=f"fold {fold}")
    ax1.set(xlabel="epoch", ylabel="training loss (nats)", title="Dense GCN on SBU: training loss")
    ax2.set(xlabel="epoch", ylabel="training accuracy (%)", title="training accuracy (augmented)")
    ax1.legend()
    return save(fig, path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="SBU root")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--select-from", type=Path, help="validation.jsonl of experiments.tune_dense")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--preset", choices=tuple(PRESETS), help="the settings of every fold (default: SBU's, wide)")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    out = Path(a.out)
    if (out / "results.json").exists() and not a.overwrite:
        raise RunExistsError(f"{out / 'results.json'} exists; pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset("sbu", a.data_dir)
    chosen = select_per_fold(a.select_from) if a.select_from else {}
    start = time.perf_counter()
    runs, config_of, histories = [], {}, {}
    for k in dataset.test_folds:
        name, overrides = chosen.get(k, (f"preset {preset_name('sbu', a.preset)}", preset_settings("sbu", a.preset)))
        name += " + --set" if a.overrides else ""
        config = override(RunConfig(seed=a.seed), [*overrides, *a.overrides])
        result = train_fold(dataset, k, config, out_dir=out)
        runs.append({"fold": k, "candidate": name, "rates": result["rates"],
                     "train_seconds": result["train_seconds"]})
        config_of[k] = config
        histories[k] = result["history"]
    results = results_record(dataset, config_of[1], runs, time.perf_counter() - start, a.data_dir)
    results["config_per_fold"] = {k: c.to_dict() for k, c in config_of.items()}
    results["selection"] = "nested, per fold" if chosen else f"preset {preset_name('sbu', a.preset)}"
    results["overrides"] = a.overrides
    write_json_atomic(out / "results.json", results)
    text = markdown(results, "python -m experiments.sbu_dense " + " ".join(argv))
    (out / "table.md").write_text(text)
    plot_curves(histories, out / "curves.png")
    print(text)


if __name__ == "__main__":
    main()
