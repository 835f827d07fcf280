"""The ``jaxprune`` command: train and evaluate pruned skeleton GCNs.

    jaxprune train --dataset synthetic --out runs/demo
    jaxprune train --dataset sbu --data-dir ../shared/data/sbu --fold all --out runs/sbu
    jaxprune train --method mrmp --rates 0.5,0.9,0.99 --out runs/mrmp
    jaxprune train --resume runs/mrmp                       # continue a stopped run
    jaxprune eval --run runs/mrmp --rates 0.6,0.93,0.97     # any rate, no retraining
    jaxprune train --method ctf --rate 0.9 --out runs/ctf
    jaxprune export --run runs/ctf --out ctf.compact.npz    # the compacted network
    jaxprune settings --dataset sbu   # every setting in force, and where each value comes from
"""

from __future__ import annotations

import argparse
import os
import sys

import jax

from jaxprune.config import SettingError, override, settings
from jaxprune.data.errors import DataError
from jaxprune.data.traits import data_notes
from jaxprune.datasets import DATASETS, load_dataset
from jaxprune.presets import PRESETS, preset_layers, preset_name
from jaxprune.methods import REGISTRY, load_plugins
from jaxprune.models.gcn import ATTENTION_FORWARDS
from jaxprune import host_guard, hosts
from jaxprune.run_files import STAGING
from jaxprune.run_config import RunConfig
from jaxprune.run_folder import RunExistsError
from jaxprune.runner import resume, run
from jaxprune.serving import evaluate_run, export_run, parse_rates


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
                       "Writes OUT/results.json (schema in the README), OUT/fold<K>/metrics.jsonl and checkpoints "
                       "(OUT/fold<K>/checkpoints, see train.checkpoint_every); --resume OUT continues a stopped run.")
    t.add_argument("--dataset", choices=DATASETS, default="synthetic",
                   help="synthetic (embedded, no download), sbu, fpha, or npz (your own file); default synthetic")
    t.add_argument("--data-dir", help="dataset root for sbu / fpha, or the .npz file for npz")
    t.add_argument("--preset", choices=tuple(PRESETS), help=PRESET_HELP)
    t.add_argument("--fold", type=_fold, default="all",
                   help="test fold number, or 'all' for every fold (SBU: 5-fold cross-validation); default all")
    t.add_argument("--method", choices=tuple(REGISTRY), default="dense",
                   help="dense, srmp (one rate), mrmp (several rates on shared weights), ctf "
                   "(coarse-to-fine, one rate) or a baseline (one rate): magnitude, gradual, random, "
                   "structured, lottery, snip, l1, group_lasso, ste, set, rigl; or an installed plugin's; "
                   "default dense")
    t.add_argument("--rate", help="every method but dense and mrmp: the pruning rate in [0, 1) (default 0.9)")
    t.add_argument("--rates", help="mrmp: comma-separated rates in [0, 1) trained together "
                   "(default 0.5,0.7,0.9,0.95,0.98,0.99)")
    t.add_argument("--epochs", type=int, help="training epochs (default: the preset's)")
    t.add_argument("--seed", type=int, default=0, help="random seed (data order, init, augmentation); default 0")
    t.add_argument("--out", help="output folder for results.json, per-fold metrics and checkpoints")
    t.add_argument("--resume", metavar="DIR", help="continue the stopped run in DIR (the --out of a 'jaxprune "
                   "train' that did not finish) from its latest checkpoints, with its own settings")
    t.add_argument("--overwrite", action="store_true", help="replace a finished (or stopped) run in --out")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="any setting, e.g. --set features.chunks=8 --set train.learning_rate=3e-3 "
                   "(see 'jaxprune settings')")
    t.add_argument("--eval-every", type=int, default=0,
                   help="also log test accuracy every N epochs in metrics.jsonl (monitoring only)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--devices", type=int, help="data parallelism over N devices (the batch split, parameters "
                   "replicated); default: every device whose count divides the batch (= train.devices)")
    m = t.add_argument_group("multi-host (every host runs the same command; see the README)")
    m.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0, for jax.distributed")
    m.add_argument("--num-processes", type=int, help="how many processes (hosts) take part")
    m.add_argument("--process-id", type=int, help="this process's rank, 0 .. num-processes − 1")

    e = sub.add_parser("eval", help="evaluate a trained srmp/mrmp run at any rates, without retraining",
                       description="Evaluate the hard-masked networks of a finished run at any pruning "
                       "rates (trained or not), all rates in one vmapped call per fold. Reports target and "
                       "achieved rate, accuracy, kept parameters and FLOPs per rate and per fold.")
    e.add_argument("--run", required=True, help="the --out folder of a finished 'jaxprune train'")
    e.add_argument("--rates", required=True, help="comma-separated rates in [0, 1), e.g. 0.5,0.93,0.97")
    e.add_argument("--data-dir", help="where the data is now, if not where the run read it")
    e.add_argument("--out", help="write OUT/results.json (default: print only)")
    e.add_argument("--overwrite", action="store_true", help="replace OUT/results.json")

    x = sub.add_parser("export", help="compact one fold's pruned network and write it for inference",
                       description="Remove every zero row, column, channel and block of one fold's pruned "
                       "network (jaxprune.models.compact), write the smaller network as plain arrays plus metadata "
                       "(.npz, loaded by jaxprune.load_compact), read it back and check it on the fold's test "
                       "set against the masked network.")
    x.add_argument("--run", required=True, help="the --out folder of a finished 'jaxprune train'")
    x.add_argument("--out", required=True, help="the file to write, e.g. model.compact.npz")
    x.add_argument("--fold", type=int, help="which fold's model (default: the run's first)")
    x.add_argument("--rate", help="the rate to serve (default: the run's trained rate; mrmp: required)")
    x.add_argument("--bcoo", action="store_true",
                   help="store the kernels' remaining zeros sparsely (jax.experimental.sparse BCOO)")
    x.add_argument("--attention-forward", choices=ATTENTION_FORWARDS,
                   help="the compact blocks' form (bones attention): dense (B, J, J) products, or edges, over "
                   "the graph's pairs, faster from batch 256 on a CPU (default: the run's model.attention_forward)")
    x.add_argument("--data-dir", help="where the data is now, if not where the run read it")
    x.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    s = sub.add_parser("settings", help="list every setting in force, and where each value comes from",
                       description="Print every setting as NAME = VALUE, with '# preset ...' or '# --set' "
                       "beside each value that is not the dataclass default, and for prune settings the "
                       "methods that read them.")
    s.add_argument("--dataset", choices=DATASETS, default="synthetic",
                   help="show the settings in force for this dataset (default synthetic)")
    s.add_argument("--preset", choices=tuple(PRESETS), help=PRESET_HELP)
    s.add_argument("--method", choices=tuple(REGISTRY), default="dense", help="the method (default dense)")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting of your own, as for 'jaxprune train'")
    s.add_argument("--data-dir", help="with --dataset npz: the file, to add what its data says about the "
                   "data-dependent settings (two persons, vertical axis) as '# note:' lines")
    return parser


PRESET_HELP = ("the settings to start from: wide (C = 64, the validated recipe; default for sbu, fpha, npz), "
               "c8 (the same recipe at the papers' width C = 8), paper (the papers' configuration), "
               "demo (default for synthetic: plain defaults, 1000 epochs) or none (plain defaults); "
               "see jaxprune/presets.py")


def _layers(args) -> list[tuple[str, list[str]]]:
    """[(source, settings)] in the order they apply: the preset's layers, then the user's --set."""
    layers = [(source, list(layer)) for source, layer in preset_layers(args.dataset, getattr(args, "preset", None),
                                                                         getattr(args, "method", "dense"))]
    return layers + [("--set", list(getattr(args, "overrides", [])))]


def _config(args) -> RunConfig:
    config = RunConfig(method=getattr(args, "method", "dense"), seed=getattr(args, "seed", 0))
    for _, layer in _layers(args):
        config = override(config, layer)
    if getattr(args, "epochs", None) is not None:
        config = override(config, [f"train.epochs={args.epochs}"])
    if getattr(args, "devices", None) is not None:
        config = override(config, [f"train.devices={args.devices}"])
    rate, rates = getattr(args, "rate", None), getattr(args, "rates", None)
    if rate is not None:
        if config.method in ("dense", "mrmp"):
            raise SettingError(f"--rate is the single rate of a one-rate method; for --method {config.method} "
                               + ("use --rates R1,R2,..." if config.method == "mrmp" else "there is no rate"))
        values = parse_rates(rate, "--rate")
        if len(values) != 1 or "," in rate:
            raise SettingError(f"--rate takes one rate ({config.method} trains one), got {rate!r}; "
                               "mrmp trains several")
        config = override(config, {"prune.rate": values[0]})
    if rates is not None:
        if config.method != "mrmp":
            raise SettingError(f"--rates sets the rates mrmp trains together; for --method {config.method} "
                               + ("there is no rate" if config.method == "dense" else "use --rate R"))
        config = override(config, {"prune.rates": parse_rates(rates)})
    return config


def _print_summary(results: dict) -> None:
    folds = len(results["runs"])
    print(f"\n{results['method']} on {results['dataset']} ({results['protocol']}, {folds} fold(s)), "
          f"trained in {results['train_seconds']:.1f} s")
    trained = {r["target_rate"] for run_ in results["runs"] for r in run_["rates"] if r.get("trained")}
    acc_head = "accuracy % (mean ± std)" if folds > 1 else "accuracy %"
    print(f"  target rate | achieved | {acc_head} | kept params | MFLOPs | trained")
    for row in results["summary"]:
        acc = f"{row['accuracy_mean']:6.2f}" + (f" ± {row['accuracy_std']:5.2f}" if folds > 1 else "")
        print(f"  {row['target_rate']:11.3f} | {row['achieved_rate']:8.4f} | {acc:>{len(acc_head)}} | "
              f"{row['kept_params_mean']:11.0f} | {row['flops_mean'] / 1e6:6.3f} | "
              f"{'yes' if row['target_rate'] in trained else 'no'}")


def _print_export(r: dict) -> None:
    print(f"fold {r['fold']} at rate {r['rate']:g} (achieved {r['achieved_rate']:.4f}) -> {r['path']} ({r['format']})")
    print(f"  prunable weights: {r['total_params']} dense, {r['kept_params']} non-zero, "
          f"{r['compact_params']} in the compact kernels")
    print(f"  FLOPs per sample: dense {r['dense_flops']}, masked (non-zeros) {r['masked_flops']}, "
          f"compact {r['compact_flops']}")
    print(f"  read back: test accuracy {r['accuracy']:.2f} %, max |logit difference| to the masked "
          f"network {r['max_logit_difference']:.2e}")


def main(argv=None) -> int:
    try:
        load_plugins()   # installed method plugins register themselves before --method is parsed
    except ImportError as e:
        print(f"jaxprune: error: {e}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    notes = []
    try:
        resuming = getattr(args, "resume", None) is not None
        config = _config(args) if args.command not in ("eval", "export") and not resuming else None
        if args.command == "settings":
            _print_settings(args)
            return 0
        if args.command == "export":
            rate = None if args.rate is None else parse_rates(args.rate, "--rate")
            if rate is not None and len(rate) != 1:
                raise SettingError(f"--rate takes one rate, got {args.rate!r}")
            report = export_run(args.run, args.out, fold=args.fold, rate=None if rate is None else rate[0],
                                bcoo=args.bcoo, data_dir=args.data_dir, overwrite=args.overwrite,
                                attention_forward=args.attention_forward)
            _print_export(report)
            return 0
        if args.command == "eval":
            results = evaluate_run(args.run, parse_rates(args.rates), data_dir=args.data_dir,
                                   out_dir=args.out, overwrite=args.overwrite)
            _print_summary(results)
            if args.out:
                print(f"  results: {args.out}/results.json")
            return 0
        if hosts.requested(args.coordinator, args.num_processes, args.process_id) and not host_guard.guarded():
            env = os.environ
            return host_guard.run_guarded(sys.argv[1:] if argv is None else list(argv),
                                          str(args.process_id if args.process_id is not None else
                                              env.get("JAXPRUNE_PROCESS_ID", "?")),
                                          args.coordinator or env.get("JAXPRUNE_COORDINATOR", "(detected)"))
        if hosts.initialize_distributed(args.coordinator, args.num_processes, args.process_id):
            host_guard.started()
            _results_to_stdout_only()
        if resuming:
            _check_resume_args(args)
            out = args.resume
            results = resume(out, data_dir=args.data_dir, progress=not args.quiet)
        else:
            out = args.out
            if out is None:
                raise SettingError("train needs --out DIR (a new run) or --resume DIR (continue a stopped one)")
            if args.epochs is not None and args.epochs < 0:
                raise SettingError(f"--epochs must be >= 0, got {args.epochs}")
            if args.eval_every < 0:
                raise SettingError(f"--eval-every must be >= 0 (0 = never), got {args.eval_every}")
            dataset = load_dataset(args.dataset, args.data_dir, seed=config.seed)
            if args.dataset == "npz" and preset_name(args.dataset, args.preset) not in ("paper", "none"):
                notes = data_notes(dataset, config)   # your own data: what its preset cannot know
            folds = None if args.fold == "all" else [args.fold]
            results = run(dataset, config, folds, out_dir=out, overwrite=args.overwrite,
                          progress=not args.quiet, eval_every=args.eval_every, data_dir=args.data_dir,
                          loader=args.dataset)
    except (DataError, SettingError, RunExistsError, ValueError, OSError) as e:   # OSError: e.g. a full disk
        print(f"jaxprune: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:   # several processes: a collective with a peer that stopped fails here
        if hosts.process_count() == 1 or not isinstance(e, jax.errors.JaxRuntimeError):
            raise
        hosts.stop(f"a computation across processes failed (did a peer stop?): {hosts.first_line(e)}")
    if not hosts.is_writer():
        return 0   # process 0 reports the run
    _print_summary(results)
    for note in notes:        # after the run: an error stays the one line on stderr
        print(f"jaxprune: note: {note}", file=sys.stderr)
    if str(out).rstrip("/").endswith(STAGING) and not os.path.exists(out):   # a resumed overwrite moved in
        out = str(out).rstrip("/")[:-len(STAGING)]
    print(f"  results: {out}/results.json")
    return 0


def _print_settings(args) -> None:
    """Every setting in force for ``args`` (dataset, preset, method, --set), with where each value
    that is not the dataclass default comes from, and which methods read each prune setting."""
    readers = {}
    for method_name, spec in REGISTRY.items():
        for setting in spec.settings:
            readers.setdefault(f"prune.{setting}", []).append(method_name)
    config = RunConfig(method=args.method)
    source = {}
    for where, layer in _layers(args):
        before, config = settings(config), override(config, layer)
        source.update({k: where for k, v in settings(config).items() if v != before[k]})
    print(f"# dataset {args.dataset}, preset {preset_name(args.dataset, args.preset)}")
    for name, value in settings(config).items():
        notes = [source[name]] if name in source else []
        if name.startswith("prune."):
            notes.append("read by " + ", ".join(readers.get(name, ["no method"])))
        print(f"{name} = {value}" + (f"    # {'; '.join(notes)}" if notes else ""))
    if args.dataset == "npz" and args.data_dir:
        for note in data_notes(load_dataset("npz", args.data_dir), config):
            print(f"# note: {note}")


def _results_to_stdout_only() -> None:
    """Several processes: jax's collectives (gloo) print connection messages on file descriptor 1;
    they go to stderr with every other message, and stdout (a duplicate of the real one) keeps only
    the results that this command prints."""
    sys.stdout.flush()
    results = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = results


def _check_resume_args(args) -> None:
    """--resume continues a run with its own settings: refuse options that would change them."""
    defaults = vars(build_parser().parse_args(["train", "--resume", args.resume]))
    given = ["--set" if k == "overrides" else "--" + k.replace("_", "-") for k, v in vars(args).items()
             if k not in ("resume", "data_dir", "quiet", "coordinator", "num_processes", "process_id")
             and v != defaults[k]]
    if given:
        raise SettingError(f"--resume continues the run with the settings in its run.json; drop {', '.join(given)} "
                           "(only --data-dir and --quiet go with --resume)")


if __name__ == "__main__":
    sys.exit(main())
