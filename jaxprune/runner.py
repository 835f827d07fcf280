"""From a dataset and a RunConfig to trained models and ``results.json``, fold by fold: the thin
layer that joins the skeleton task (``jaxprune.task``), a method's pruner (``jaxprune.methods``),
the training loop (``jaxprune.train``), checkpoints and the run's folder (``jaxprune.run_folder``)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import checkpoint, hosts
from jaxprune.data.augment import augment, swap_groups
from jaxprune.data.dataset import SkeletonDataset
from jaxprune.data.features import chunk_positions, node_features
from jaxprune.evaluate import evaluate_masks
from jaxprune.methods import make_pruner, pruner_arrays, serve_rates
from jaxprune.methods.wrap import split_among
from jaxprune.model_io import save_model
from jaxprune.models import gcn
from jaxprune.optim import make_optimizer
from jaxprune.parallel import mesh_for_batch, replicate, shard_rows, to_local
from jaxprune.results import results_record, write_json_atomic
from jaxprune.run_config import RunConfig, load_run_config
from jaxprune.run_files import read_fold_rows, read_run_info
from jaxprune.run_folder import RunExistsError, replace_run, staging_folder, start_folder
from jaxprune.task.folds import fold_data
from jaxprune.task.forward import gcn_config, make_forward
from jaxprune.task.loss import run_loss, score_loss
from jaxprune.task.rows import fold_rows
from jaxprune.train import fit, init_state, make_epoch, steps_per_epoch
from jaxprune.weight_average import averaged_params

__all__ = ["RunConfig", "RunExistsError", "check_settings_on", "dataset_digest", "resume", "run", "train_fold"]


def check_settings_on(dataset: SkeletonDataset, config: RunConfig) -> None:
    """Raises the error of a setting that does not fit the data (e.g. ``augment.swap_groups`` that
    does not divide the joints) before any training: features and augmentation of two samples."""
    chunks = chunk_positions(dataset.x[:2], dataset.lengths[:2], config.features)
    node_features(jnp.asarray(chunks), config.features)
    augment(jax.random.key(0), jnp.asarray(chunks), config.augment)
    if config.augment.test_swap:
        swap_groups(jnp.asarray(chunks), config.augment.swap_groups)
    if config.method == "mrmp" and config.prune.split_batch:
        per_step = config.prune.rates_per_step or len(config.prune.rates)
        split_among(np.zeros(min(config.train.batch_size, len(dataset.labels))), per_step)
    if config.train.ema:   # the method's pruner on a fresh network: does it rewrite parameters?
        params = gcn.init(jax.random.key(0), gcn_config(dataset, config))
        check_average(config, make_pruner(config.method, params, gcn.prunable(params), config.prune, 1,
                                          gcn.ctf_blocks(params)))


def check_average(config: RunConfig, pruner) -> None:
    """ValueError naming train.ema when it is on for a method whose ``update_fn`` rewrites the
    parameters between steps (scheduled masks, rewinds, regrowth): the average would mix them."""
    if config.train.ema and pruner.update_fn is not None:
        raise ValueError(f"training setting ema is not available with method {config.method!r}: it rewrites the "
                         f"parameters between steps (masks, rewinds or regrowth), which the average would mix; "
                         f"leave train.ema at 0")


def train_fold(dataset: SkeletonDataset, test_fold: int, config: RunConfig, *, out_dir=None,
               progress: bool = True, eval_every: int = 0, resume: bool = False) -> dict:
    """Trains one split and evaluates it at the method's rates; saves ``out_dir/fold<K>/model.npz``.

    With ``out_dir``, checkpoints go to ``out_dir/fold<K>/checkpoints`` every
    ``train.checkpoint_every`` epochs and at the end (``jaxprune.checkpoint``); a fresh start
    replaces the fold's old checkpoints, ``resume`` continues from the latest one (ValueError if it
    belongs to another run) and ends with the same parameters as an uninterrupted run.

    Returns {"fold", "params", "pruner", "rates": [row], "history", "train_seconds", "scale",
    "earlier_seconds"} (``train_seconds`` includes the ``earlier_seconds`` of a resumed checkpoint).
    """
    data = fold_data(dataset, test_fold, config.features, config.augment, config.seed)
    model = gcn_config(dataset, config)
    forward = make_forward(model, config.features, config.augment)
    key = jax.random.fold_in(jax.random.key(config.seed), test_fold)
    init_key, train_key = jax.random.split(key)
    params = gcn.init(init_key, model)
    tc = config.train
    n = len(data.train_labels)
    total_steps = tc.epochs * steps_per_epoch(n, tc.batch_size)
    optimizer = make_optimizer(tc.learning_rate, tc.lr_rule, total_steps, tc.weight_decay, tc.ema)
    pruner = make_pruner(config.method, params, gcn.prunable(params), config.prune, total_steps,
                         gcn.ctf_blocks(params))
    check_average(config, pruner)
    mesh = mesh_for_batch(tc.devices, min(tc.batch_size, n))
    loss = run_loss(pruner, forward, config)
    epoch_fn = make_epoch(loss, optimizer, n, tc.batch_size, mesh, pruner.update_fn)
    trained = np.asarray(pruner.trained_rates, np.float32)

    def served(s):   # the parameters a run serves: the moving average with train.ema, else the last
        average = averaged_params(s.opt_state)
        return s.params if average is None else average

    def evaluate(s):   # monitoring only: hard-masked accuracy at each trained rate
        s = to_local(s)
        params = served(s)
        masks = pruner.finish(s.prune_state).hard_masks(params, trained)
        acc, _ = evaluate_masks(forward, params, masks, data.eval_chunks, data.test_labels)
        return {f"test_accuracy@{r:g}": float(a) for r, a in zip(pruner.trained_rates, acc)}

    train_arrays = {"chunks": jnp.asarray(data.train_chunks), "labels": jnp.asarray(data.train_labels)}
    prune_state = pruner.init(params, jax.random.fold_in(key, 1), train_arrays, score_loss(forward))
    state = replicate(init_state(params, optimizer, train_key, prune_state), mesh)
    start, start_epoch, earlier = time.perf_counter(), 0, 0.0
    fold_dir = metrics_path = on_epoch_end = None
    writer = hosts.is_writer()
    if resume and out_dir is None:
        raise ValueError("resuming a fold needs the run's output folder")
    if out_dir is not None:
        fold_dir = Path(out_dir) / f"fold{test_fold}"
        ckpt_dir = fold_dir / "checkpoints"
        if writer:
            fold_dir.mkdir(parents=True, exist_ok=True)
            metrics_path = fold_dir / "metrics.jsonl"
            if not resume:
                checkpoint.clear(ckpt_dir)
        hosts.barrier(f"fold {test_fold} folder ready")
        if resume and checkpoint.latest_epoch(ckpt_dir) is not None:
            sharding = None if mesh is None else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
            state, meta = checkpoint.restore(ckpt_dir, state, method=config.method, config=config.to_dict(),
                                             sharding=sharding)
            start_epoch, earlier = int(meta["epoch"]), float(meta["seconds"])
            if start_epoch > tc.epochs:
                raise ValueError(f"checkpoint {ckpt_dir / str(start_epoch)} is past this run's "
                                 f"{tc.epochs} epochs")

        def save_checkpoint(epoch, state):   # every process: orbax writes each one's part
            if epoch == tc.epochs or (tc.checkpoint_every and epoch % tc.checkpoint_every == 0):
                checkpoint.save(ckpt_dir, epoch, state, method=config.method, config=config.to_dict(),
                                seconds=earlier + time.perf_counter() - start)
        on_epoch_end = save_checkpoint
    train_arrays = shard_rows(train_arrays, mesh)
    state, history = fit(state, epoch_fn, train_arrays, tc.epochs, start_epoch=start_epoch,
                         metrics_path=metrics_path, label=f"{dataset.name} fold {test_fold}",
                         evaluate=evaluate, eval_every=eval_every, progress=progress and writer,
                         on_epoch_end=on_epoch_end)
    state = to_local(state)
    params = jax.block_until_ready(served(state))
    pruner = pruner.finish(state.prune_state)
    seconds = earlier + time.perf_counter() - start
    rows = fold_rows(pruner, forward, model, params, data.eval_chunks, data.test_labels,
                     serve_rates(config.method, config.prune))
    if fold_dir is not None and writer:
        save_model(fold_dir / "model.npz", params, pruner_arrays(pruner))
    return {"fold": test_fold, "params": params, "pruner": pruner, "rates": rows,
            "history": history, "train_seconds": seconds, "scale": data.scale, "earlier_seconds": earlier}


def run(dataset: SkeletonDataset, config: RunConfig, folds=None, *, out_dir=None, overwrite: bool = False,
        progress: bool = True, eval_every: int = 0, data_dir=None, loader: str | None = None) -> dict:
    """Trains and evaluates every requested fold (default: all); writes ``out_dir/results.json``.

    Refuses (RunExistsError) when ``out_dir`` already holds a results.json, or a stopped run (its
    run.json, a fold's checkpoints or rows.json), unless ``overwrite``; the check happens before
    any training. With ``overwrite`` the new run trains in ``<out_dir>.overwrite`` and replaces
    ``out_dir`` as a whole only once it has finished, so until then the old run stays intact and
    loadable (an interrupted overwrite is continued with ``resume("<out_dir>.overwrite")``).
    ``data_dir`` (where ``dataset`` was read from) and ``loader`` (the name that reads it, see
    ``results_record``) are recorded for ``jaxprune eval``, ``export`` and ``resume``. With
    ``out_dir``, writes ``run.json`` first and each finished fold's ``fold<K>/rows.json``:
    ``resume(out_dir)`` continues a stopped run.
    """
    folds = list(dataset.test_folds if folds is None else folds)
    for f in folds:
        dataset.split(f)  # validates the fold ids before any work
    check_settings_on(dataset, config)
    digest = dataset_digest(dataset)
    hosts.check_same(digest, f"the {dataset.name} dataset's SHA-256")
    replaces = None   # with overwrite over a run: the name of the folder the new run replaces
    if out_dir is not None:
        out_dir = Path(out_dir)
        run_info = {"config": config.to_dict(), "method": config.method, "dataset": dataset.name,
                    "loader": loader or dataset.name,
                    "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
                    "data_sha256": digest, "folds": folds, "eval_every": eval_every}
        # process 0 checks and prepares the folder; every process gets its verdict before any work
        if hosts.agree(lambda: start_folder(out_dir, folds, overwrite, run_info), (RunExistsError, ValueError)):
            out_dir, replaces = staging_folder(out_dir), out_dir.name
    return _run_folds(dataset, config, folds, out_dir, progress, eval_every, data_dir, loader or dataset.name,
                      resume=False, replaces=replaces)


def resume(out_dir, *, dataset: SkeletonDataset | None = None, data_dir=None, progress: bool = True) -> dict:
    """Continues the stopped run in ``out_dir`` (its ``run.json``): finished folds (``rows.json``)
    are kept, an unfinished fold continues from its latest checkpoint (or from scratch if it has
    none), then ``results.json`` is written, with the same figures as an uninterrupted run.

    ``dataset``: the run's dataset when it is not one ``load_dataset`` can rebuild (else it is
    reloaded, from ``data_dir`` if the data has moved); it must be the one the run started with.
    RunExistsError for a finished run, ValueError for a folder without a usable run.json.
    """
    from jaxprune.datasets import load_dataset, recorded_loader

    out_dir = Path(out_dir)
    if (out_dir / "results.json").exists():
        staged = staging_folder(out_dir)
        if (staged / "run.json").exists():
            raise RunExistsError(f"{out_dir / 'results.json'} exists: the run in {out_dir} is finished; the "
                                 f"--overwrite that was to replace it stopped before the end: continue that one "
                                 f"with --resume {staged}")
        raise RunExistsError(f"{out_dir / 'results.json'} exists: the run in {out_dir} is finished, "
                             "there is nothing to resume.")
    path = out_dir / "run.json"
    info = read_run_info(out_dir)
    config = load_run_config(info, path)
    folds, name, loader, digest = info["folds"], info["dataset"], recorded_loader(info), info["data_sha256"]
    data_dir = data_dir or info.get("data_dir")
    if dataset is None:
        dataset = load_dataset(loader, data_dir, seed=config.seed)
    if dataset.name != name or dataset_digest(dataset) != digest:
        raise ValueError(f"{path}: the run started on other data than the {dataset.name} dataset now "
                         f"loaded{f' from {data_dir}' if data_dir else ''}; resuming would not continue it")
    for f in folds:
        try:
            dataset.split(f)
        except ValueError as e:   # DataError included
            raise ValueError(f"{path}: field 'folds': {e}") from None
    return _run_folds(dataset, config, folds, out_dir, progress, info.get("eval_every", 0), data_dir,
                      loader, resume=True, replaces=info.get("replaces"))


def _run_folds(dataset, config, folds, out_dir, progress, eval_every, data_dir, loader, resume,
               replaces: str | None = None) -> dict:
    """Trains ``folds`` (on resume: skips finished ones, continues the others), writes results.json;
    a staged run (``replaces``: the name of the run folder it replaces) then takes that folder's place."""
    start = time.perf_counter()
    earlier = 0.0   # training time of earlier sessions of a resumed run
    runs = []
    for f in folds:
        rows_path = None if out_dir is None else Path(out_dir) / f"fold{f}" / "rows.json"
        if resume and rows_path.exists():
            done = read_fold_rows(rows_path, f)
            earlier += done["train_seconds"]
        else:
            result = train_fold(dataset, f, config, out_dir=out_dir, progress=progress, eval_every=eval_every,
                                resume=resume)
            earlier += result["earlier_seconds"]
            done = {"fold": f, "rates": result["rates"], "train_seconds": result["train_seconds"]}
            if rows_path is not None and hosts.is_writer():
                write_json_atomic(rows_path, done)
        runs.append(done)
    results = results_record(dataset, config, runs, earlier + time.perf_counter() - start, data_dir, loader)
    if out_dir is not None and hosts.is_writer():
        write_json_atomic(Path(out_dir) / "results.json", results)
        if replaces:
            replace_run(Path(out_dir), replaces)
    hosts.barrier("results written")
    return results


def dataset_digest(dataset: SkeletonDataset) -> str:
    """SHA-256 of a dataset's arrays (sequences, lengths, labels, folds): the data a run trained on."""
    h = hashlib.sha256()
    for a in (dataset.x, dataset.lengths, dataset.labels, dataset.folds):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
