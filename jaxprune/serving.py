"""Serving a saved run: any rate without retraining (``evaluate_run``), and export of a fold's
compacted network (``export_run``).

``evaluate_run`` reads ``run_dir/results.json`` (method, dataset, settings) and each fold's ``model.npz``, rebuilds
the model and the method's pruner, and evaluates every fold's hard-masked network at all
``rates`` in one vmapped call. Returns (and with ``out_dir`` writes) a ``results.json`` object.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.models.compact import compact, compact_apply, compact_flops, compact_size, to_bcoo
from jaxprune.data.features import node_features
from jaxprune.models.export import load_compact, save_compact
from jaxprune.masks.bandstop import apply_masks
from jaxprune.models.flops import count_params, gcn_flops
from jaxprune.datasets import load_dataset, recorded_loader
from jaxprune.methods import restore_pruner
from jaxprune.methods.config import check_rates
from jaxprune.model_io import load_model
from jaxprune.models import gcn
from jaxprune.results import check_writable_file, check_writable_folder, results_record, write_json_atomic
from jaxprune.run_files import read_results
from jaxprune.run_config import RunConfig, load_run_config
from jaxprune.run_folder import RunExistsError
from jaxprune.task.folds import fold_data
from jaxprune.task.forward import gcn_config, make_forward
from jaxprune.task.rows import fold_rows


def parse_rates(text: str, option: str = "--rates") -> tuple[float, ...]:
    """'0.5,0.9' -> (0.5, 0.9); a ValueError naming ``option`` and the bad item for anything not
    in [0, 1)."""
    items = [t.strip() for t in str(text).split(",")]
    if not text or not any(items):
        raise ValueError(f"{option} is empty: give rates in [0, 1), e.g. {option} 0.5,0.9,0.97")
    values = []
    for t in items:
        try:
            values.append(float(t))
        except ValueError:
            raise ValueError(f"{option}: {t!r} is not a number (give rates in [0, 1), e.g. 0.5,0.9)") from None
    bad = [v for v in values if not 0.0 <= v < 1.0]        # also NaN
    if bad:
        raise ValueError(f"{option}: every rate must lie in [0, 1), got {bad}")
    return check_rates("rates", values)


def read_run(run_dir) -> tuple[dict, RunConfig]:
    """(the results.json object, its RunConfig) of a finished run; ValueError naming the file
    (``jaxprune.run_files.read_results`` checks every field that is read back)."""
    path = Path(run_dir) / "results.json"
    trained = read_results(run_dir)
    return trained, load_run_config(trained, path)


@dataclasses.dataclass(frozen=True)
class SavedFold:
    """One fold of a saved run, ready to serve: its params, pruner, model and test data."""

    fold: int
    config: RunConfig
    model: gcn.GCNConfig
    forward: object
    params: dict
    pruner: object
    data: object          # jaxprune.task.folds.FoldData


def open_folds(run_dir, data_dir=None):
    """(results.json object, dataset, iterator of SavedFold) for every fold of a saved run."""
    run_dir = Path(run_dir)
    trained, config = read_run(run_dir)
    dataset = load_dataset(recorded_loader(trained), data_dir or trained.get("data_dir"), seed=config.seed)
    model = gcn_config(dataset, config)
    forward = make_forward(model, config.features, config.augment)
    template = gcn.init(jax.random.key(0), model)
    unknown = [r["fold"] for r in trained["runs"] if r["fold"] not in dataset.test_folds]
    if unknown:
        raise ValueError(f"{run_dir / 'results.json'}: fold(s) {unknown} are not test folds of the {dataset.name} "
                         f"data now loaded (folds {list(dataset.test_folds)})")

    def folds():
        for run in trained["runs"]:
            fold = run["fold"]
            path = run_dir / f"fold{fold}" / "model.npz"
            params, arrays = load_model(path, template)
            pruner = restore_pruner(config.method, params, gcn.prunable(params), config.prune, arrays, str(path),
                                    gcn.ctf_blocks(params))
            yield SavedFold(fold, config, model, forward, params, pruner,
                            fold_data(dataset, fold, config.features, config.augment, config.seed))
    return trained, dataset, folds()


def evaluate_run(run_dir, rates, *, data_dir=None, out_dir=None, overwrite: bool = False) -> dict:
    """Evaluates the saved run in ``run_dir`` at ``rates`` (sequence in [0, 1)) on its test folds.

    ``data_dir`` overrides the data location recorded in the run. With ``out_dir``, writes
    ``out_dir/results.json`` (refusing an existing one unless ``overwrite``).
    """
    run_dir = Path(run_dir)
    rates = check_rates("rates", rates)
    if out_dir is not None:
        out = Path(out_dir) / "results.json"
        if out.exists() and not overwrite:
            raise RunExistsError(f"{out} exists. Choose another --out, or pass --overwrite to replace it.")
        if out.is_dir():
            raise ValueError(f"--out {out_dir}: its results.json is a folder; choose another --out")
    trained, dataset, folds = open_folds(run_dir, data_dir)
    if out_dir is not None:
        check_writable_folder(out_dir, "--out")
    start = time.perf_counter()
    runs = []
    config = None
    for saved in folds:
        config = saved.config
        if not saved.pruner.serves_any_rate and not np.allclose(rates, saved.pruner.trained_rates):
            raise ValueError(f"a {config.method} run serves its trained rate {list(saved.pruner.trained_rates)} "
                             f"only; it cannot be evaluated at {list(rates)}")
        rows = fold_rows(saved.pruner, saved.forward, saved.model, saved.params, saved.data.eval_chunks,
                         saved.data.test_labels, rates)
        runs.append({"fold": saved.fold, "rates": rows})
    results = results_record(dataset, config, runs, trained.get("train_seconds", 0.0), data_dir
                             or trained.get("data_dir"), recorded_loader(trained))
    results.update({"evaluated_from": str(run_dir.resolve()), "eval_seconds": time.perf_counter() - start})
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(out_dir) / "results.json", results)
    return results


def export_run(run_dir, out_path, *, fold: int | None = None, rate: float | None = None, bcoo: bool = False,
               data_dir=None, overwrite: bool = False, attention_forward: str | None = None) -> dict:
    """Compacts one fold of a saved run at ``rate`` and writes it with ``jaxprune.models.export.save_compact``.

    ``fold``: default the run's first; ``rate``: default the run's trained rate (required for a run
    trained at several); ``attention_forward``: the blocks' form in the file ("dense" or "edges",
    ``jaxprune.models.compact``; default the run's model setting). The file is read back and
    checked on the fold's test set against the masked network. Returns a report: sizes, FLOPs, accuracy and the largest logit difference.
    """
    out_path = Path(out_path)
    if out_path.exists() and not out_path.is_dir() and not overwrite:
        raise RunExistsError(f"{out_path} exists. Choose another --out, or pass --overwrite to replace it.")
    trained, dataset, folds = open_folds(run_dir, data_dir)
    check_writable_file(out_path, "--out")
    folds_there = [r["fold"] for r in trained["runs"]]
    fold = folds_there[0] if fold is None else fold
    if fold not in folds_there:
        raise ValueError(f"--fold {fold}: the run in {run_dir} has folds {folds_there}")
    saved = next(s for s in folds if s.fold == fold)
    if rate is None:
        if len(saved.pruner.trained_rates) != 1:
            raise ValueError(f"this {saved.config.method} run trained rates {list(saved.pruner.trained_rates)}: "
                             "choose one with --rate")
        rate = saved.pruner.trained_rates[0]
    rate = check_rates("rate", [rate])[0]
    if not saved.pruner.serves_any_rate and not np.isclose(rate, saved.pruner.trained_rates[0]):
        raise ValueError(f"a {saved.config.method} run serves its trained rate {saved.pruner.trained_rates[0]:g} "
                         f"only, not --rate {rate:g}")
    masks = jax.tree.map(lambda m: m[0], saved.pruner.hard_masks(saved.params, np.asarray([rate], np.float32)))
    net = compact(saved.params, masks, saved.model)
    if attention_forward is not None:
        net = net.replace(attention_forward=attention_forward)
    if bcoo:
        net = to_bcoo(net)
    info = {"method": saved.config.method, "rate": rate, "fold": fold, "dataset": trained["dataset"],
            "class_names": list(dataset.class_names), "features": dataclasses.asdict(saved.config.features),
            "scale": float(saved.data.scale), "run": str(Path(run_dir).resolve()),
            "input": "node features (B, J, F) = jaxprune.node_features(chunk_positions(x) / scale, features)"}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_compact(out_path, net, info)
    loaded, _ = load_compact(out_path)
    features = node_features(jnp.asarray(saved.data.test_chunks), saved.config.features)
    masked = gcn.apply(apply_masks(saved.params, masks), features, saved.model)
    logits = jax.jit(compact_apply)(loaded, features)
    nonzero, total = count_params(apply_masks(saved.params, masks))
    return {"path": str(out_path), "fold": fold, "rate": rate, "format": "bcoo" if bcoo else "dense",
            "achieved_rate": 1 - nonzero / total, "kept_params": nonzero, "total_params": total,
            "compact_params": compact_size(net), "dense_flops": gcn_flops(saved.params, saved.model),
            "masked_flops": gcn_flops(apply_masks(saved.params, masks), saved.model),
            "compact_flops": compact_flops(net, nonzero=bcoo),
            "accuracy": 100.0 * float(jnp.mean(jnp.argmax(logits, -1) == saved.data.test_labels)),
            "max_logit_difference": float(jnp.max(jnp.abs(logits - masked))) if len(features) else 0.0}
