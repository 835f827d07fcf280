"""Any rate from one trained run, without retraining: ``evaluate_run(run_dir, rates)``.

Reads ``run_dir/results.json`` (method, dataset, settings) and each fold's ``model.npz``, rebuilds
the model and the method's pruner, and evaluates every fold's hard-masked network at all
``rates`` in one vmapped call. Returns (and with ``out_dir`` writes) a ``results.json`` object.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax

from jaxprune.config import SettingError, override
from jaxprune.datasets import load_dataset
from jaxprune.methods import restore_pruner
from jaxprune.methods.config import check_rates
from jaxprune.model_io import load_model
from jaxprune.nn import gcn
from jaxprune.results import write_json_atomic
from jaxprune.runner import (RunConfig, RunExistsError, fold_data, fold_rows, gcn_config, make_forward,
                             results_record)


def parse_rates(text: str) -> tuple[float, ...]:
    """'0.5,0.9' -> (0.5, 0.9); a ValueError naming the bad item for anything not in [0, 1)."""
    items = [t.strip() for t in str(text).split(",")]
    if not text or not any(items):
        raise ValueError("--rates is empty: give rates in [0, 1), e.g. --rates 0.5,0.9,0.97")
    values = []
    for t in items:
        try:
            values.append(float(t))
        except ValueError:
            raise ValueError(f"--rates: {t!r} is not a number (give rates in [0, 1), e.g. 0.5,0.9)") from None
    return check_rates("rates", values)


def load_run_config(results: dict, path: Path) -> RunConfig:
    """The RunConfig recorded in a results.json object (a ValueError naming ``path`` if unusable)."""
    try:
        flat = {}

        def walk(d, prefix=""):
            for k, v in d.items():
                if isinstance(v, dict):
                    walk(v, f"{prefix}{k}.")
                else:
                    flat[prefix + k] = tuple(v) if isinstance(v, list) else v
        cfg = dict(results["config"])
        method, seed = cfg.pop("method"), cfg.pop("seed")
        walk(cfg)
        return override(RunConfig(method=method, seed=seed), flat)
    except (KeyError, TypeError, ValueError, SettingError) as e:
        raise ValueError(f"{path}: its 'config' does not describe a run of this jaxprune ({e})") from None


def evaluate_run(run_dir, rates, *, data_dir=None, out_dir=None, overwrite: bool = False) -> dict:
    """Evaluates the saved run in ``run_dir`` at ``rates`` (sequence in [0, 1)) on its test folds.

    ``data_dir`` overrides the data location recorded in the run. With ``out_dir``, writes
    ``out_dir/results.json`` (refusing an existing one unless ``overwrite``).
    """
    run_dir = Path(run_dir)
    rates = check_rates("rates", rates)
    path = run_dir / "results.json"
    if not path.exists():
        raise ValueError(f"{path}: not found; --run must be the --out folder of a finished 'jaxprune train'")
    try:
        trained = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None
    config = load_run_config(trained, path)
    if out_dir is not None:
        out = Path(out_dir) / "results.json"
        if out.exists() and not overwrite:
            raise RunExistsError(f"{out} exists. Choose another --out, or pass --overwrite to replace it.")
    dataset = load_dataset(trained["dataset"], data_dir or trained.get("data_dir"), seed=config.seed)
    model = gcn_config(dataset, config)
    forward = make_forward(model, config.features, config.augment)
    template = gcn.init(jax.random.key(0), model)
    start = time.perf_counter()
    runs = []
    for run in trained["runs"]:
        fold = run["fold"]
        params, artefacts = load_model(run_dir / f"fold{fold}" / "model.npz", template)
        prunable = gcn.prunable(params)
        pruner = restore_pruner(config.method, params, prunable, config.prune, artefacts)
        if not pruner.serves_any_rate and any(r != 0 for r in rates):
            raise ValueError(f"a {config.method} run serves rate 0 only; it cannot be evaluated at {list(rates)}")
        data = fold_data(dataset, fold, config.features)
        rows = fold_rows(pruner, forward, model, params, data.test_chunks, data.test_labels, rates)
        runs.append({"fold": fold, "rates": rows})
    results = results_record(dataset, config, runs, trained.get("train_seconds", 0.0), data_dir
                             or trained.get("data_dir"))
    results.update({"evaluated_from": str(run_dir.resolve()), "eval_seconds": time.perf_counter() - start})
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(out_dir) / "results.json", results)
    return results
