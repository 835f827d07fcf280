"""The ``jaxprune`` command: train and evaluate pruned skeleton GCNs.

    jaxprune train --dataset synthetic --out runs/demo
    jaxprune train --dataset sbu --data-dir ../shared/data/sbu --fold all --out runs/sbu
    jaxprune settings            # every setting, its default, and each dataset's preset
"""

from __future__ import annotations

import argparse
import sys

from jaxprune.config import SettingError, override, settings
from jaxprune.data.errors import DataError
from jaxprune.datasets import DATASETS, PRESETS, load_dataset
from jaxprune.runner import METHODS, RunConfig, RunExistsError, run


def _fold(text: str):
    if text == "all":
        return "all"
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fold must be a fold number or 'all', got {text!r}") from None
    return k


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxprune", description="Learn very sparse graph convolutional networks for skeleton-based "
        "action recognition (JAX). Run 'jaxprune COMMAND --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train (and evaluate) a GCN on one or all folds; writes OUT/results.json",
                       description="Train a GCN with a pruning method and evaluate it on the test fold(s). "
                       "Writes OUT/results.json (schema in the README) and OUT/fold<K>/metrics.jsonl.")
    t.add_argument("--dataset", choices=DATASETS, default="synthetic",
                   help="synthetic (embedded, no download), sbu, fpha, or npz (your own file); default synthetic")
    t.add_argument("--data-dir", help="dataset root for sbu / fpha, or the .npz file for npz")
    t.add_argument("--fold", type=_fold, default="all",
                   help="test fold number, or 'all' for every fold (SBU: 5-fold cross-validation); default all")
    t.add_argument("--method", choices=METHODS, default="dense", help="pruning method; default dense")
    t.add_argument("--epochs", type=int, help="training epochs (default: the dataset preset's)")
    t.add_argument("--seed", type=int, default=0, help="random seed (data order, init, augmentation); default 0")
    t.add_argument("--out", required=True, help="output folder for results.json and per-fold metrics")
    t.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="any setting, e.g. --set features.chunks=8 --set train.learning_rate=3e-3 "
                   "(see 'jaxprune settings')")
    t.add_argument("--eval-every", type=int, default=0,
                   help="also log test accuracy every N epochs in metrics.jsonl (monitoring only)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("settings", help="list every setting with its default and the dataset presets")
    s.add_argument("--dataset", choices=DATASETS, help="show the settings in force for this dataset")
    return parser


def _config(args) -> RunConfig:
    config = RunConfig(method=getattr(args, "method", "dense"), seed=getattr(args, "seed", 0))
    if getattr(args, "dataset", None):
        config = override(config, PRESETS[args.dataset])
    config = override(config, getattr(args, "overrides", []))
    if getattr(args, "epochs", None) is not None:
        config = override(config, [f"train.epochs={args.epochs}"])
    return config


def _print_summary(results: dict) -> None:
    print(f"\n{results['method']} on {results['dataset']} ({results['protocol']}), "
          f"{results['train_seconds']:.1f} s")
    for run_ in results["runs"]:
        for row in run_["rates"]:
            print(f"  fold {run_['fold']}: accuracy {row['accuracy']:6.2f} %  rate {row['achieved_rate']:.3f}  "
                  f"kept {row['kept_params']}  flops {row['flops']}")
    for row in results["summary"]:
        print(f"  mean over {row['folds']} fold(s): accuracy {row['accuracy_mean']:.2f} ± "
              f"{row['accuracy_std']:.2f} %  at target rate {row['target_rate']:.2f} "
              f"(achieved {row['achieved_rate']:.3f})")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = _config(args)
        if args.command == "settings":
            for name, value in settings(config).items():
                print(f"{name} = {value}")
            return 0
        if args.epochs is not None and args.epochs < 0:
            raise SettingError(f"--epochs must be >= 0, got {args.epochs}")
        dataset = load_dataset(args.dataset, args.data_dir, seed=args.seed)
        folds = None if args.fold == "all" else [args.fold]
        results = run(dataset, config, folds, out_dir=args.out, overwrite=args.overwrite,
                      progress=not args.quiet, eval_every=args.eval_every)
    except (DataError, SettingError, RunExistsError, ValueError) as e:
        print(f"jaxprune: error: {e}", file=sys.stderr)
        return 2
    _print_summary(results)
    print(f"  results: {args.out}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
