"""From a dataset and a RunConfig to trained models and ``results.json``, fold by fold."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import checkpoint, hosts
from jaxprune.compact import compact, compact_flops, compact_size
from jaxprune.data.augment import AugmentConfig, augment, swap_groups
from jaxprune.data.dataset import SkeletonDataset
from jaxprune.data.features import FeatureConfig, chunk_positions, crop_bank, fit_scale, fixed_crops, node_features
from jaxprune.evaluate import evaluate_masks, rate_rows
from jaxprune.methods import REGISTRY, check_settings, make_pruner, pruner_arrays, serve_rates
from jaxprune.methods.config import PruneConfig
from jaxprune.methods.wrap import split_among
from jaxprune.model_io import save_model
from jaxprune.nn import gcn
from jaxprune.nn.flops import gcn_flops
from jaxprune.optim import make_optimizer
from jaxprune.parallel import mesh_for_batch, replicate, shard_rows, to_local
from jaxprune.results import check_writable_folder, summarise, write_json_atomic
from jaxprune.run_files import STAGING, read_fold_rows, read_run_info
from jaxprune.skeleton_loss import score_loss, task_loss
from jaxprune.train import TrainConfig, fit, init_state, make_epoch, steps_per_epoch


class RunExistsError(FileExistsError):
    """The output folder holds a finished run (its results.json) and overwriting was not asked."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting that changes a run's result."""

    method: str = "dense"
    seed: int = 0
    features: FeatureConfig = FeatureConfig()
    model: gcn.ModelConfig = gcn.ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()
    prune: PruneConfig = PruneConfig()

    def __post_init__(self):
        if self.method not in REGISTRY:
            raise ValueError(f"method must be one of {tuple(REGISTRY)}, got {self.method!r}")
        check_settings(self.method, self.prune)
        if not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"setting seed must be in [0, 2**32), got {self.seed}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FoldData:
    """One split's arrays: chunk positions (N, J, M, 3) float32 and labels (N,) int32.

    ``test_views`` (N, 7, J, M, 3) are the test sequences and their fixed crops when
    ``augment.test_crops`` is on (None otherwise); ``eval_chunks`` is what evaluation scores.
    """

    train_chunks: np.ndarray
    train_labels: np.ndarray
    test_chunks: np.ndarray
    test_labels: np.ndarray
    scale: float
    test_views: np.ndarray | None = None

    @property
    def eval_chunks(self) -> np.ndarray:
        return self.test_chunks if self.test_views is None else self.test_views


def fold_data(dataset: SkeletonDataset, test_fold: int, features: FeatureConfig,
              aug: AugmentConfig | None = None, seed: int = 0) -> FoldData:
    """Chunk positions of a split, scaled by a factor fitted on its training part only.

    With ``aug.crops`` > 0 the training chunks are (N, 1 + crops, J, M, 3): each sequence and its
    random temporal crops (drawn from ``seed`` and the fold), picked from at random in the step.
    """
    train, test = dataset.split(test_fold)
    chunks = chunk_positions(dataset.x, dataset.lengths, features)
    scale = fit_scale(chunks[train]) if features.scale == "dataset" else 1.0
    chunks = chunks / np.float32(scale)
    train_chunks = chunks[train]
    if aug is not None and aug.crops:
        rng = np.random.default_rng([seed, test_fold])
        train_chunks = crop_bank(dataset.x[train], dataset.lengths[train], features, aug.crops,
                                 aug.crop_min, rng) / np.float32(scale)
    test_views = None
    if aug is not None and aug.test_crops:
        test_views = fixed_crops(dataset.x[test], dataset.lengths[test], features, aug.crop_min) / np.float32(scale)
    return FoldData(train_chunks, dataset.labels[train], chunks[test], dataset.labels[test], scale, test_views)


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


def gcn_config(dataset: SkeletonDataset, config: RunConfig) -> gcn.GCNConfig:
    return gcn.GCNConfig(**dataclasses.asdict(config.model), num_nodes=dataset.num_joints,
                         num_features=config.features.num_features(),
                         num_classes=dataset.num_classes, edges=dataset.edges)


def make_forward(model: gcn.GCNConfig, features: FeatureConfig, aug: AugmentConfig):
    """``forward(params, chunks (B, J, M, 3), key, train) -> logits (B, classes)``."""

    def forward(params, chunks, key, train: bool):
        if not train and aug.test_crops and chunks.ndim == 5:   # (B, V, J, M, 3) test views
            logits = jax.vmap(lambda c: forward(params, c, key, False), in_axes=1)(chunks)
            return jnp.log(jax.nn.softmax(logits, axis=-1).mean(0))   # log of the mean probability
        drop_key = None
        if train and model.dropout > 0:   # split only then, so runs without dropout keep their keys
            key, drop_key = jax.random.split(key)
        if train:                    # chunks (B, J, M, 3), or (B, V, J, M, 3) versions (crops)
            chunks = augment(key, chunks, aug)
        logits = gcn.apply(params, node_features(chunks, features), model, drop_key)
        if not train and aug.test_swap:
            swapped = swap_groups(chunks, aug.swap_groups)
            logits = 0.5 * (logits + gcn.apply(params, node_features(swapped, features), model))
        return logits

    return forward


def fold_rows(pruner, forward, model: gcn.GCNConfig, params, chunks, labels, rates) -> list[dict]:
    """``results.json`` rows of a trained model at ``rates``: all rates in one vmapped evaluation,
    each with what compaction makes of its mask (``structure_row``)."""
    masks = pruner.hard_masks(params, np.asarray(rates, np.float32))
    acc, counts = evaluate_masks(forward, params, masks, chunks, labels)
    layer_targets = pruner.layer_rates(params, np.asarray(rates, np.float32))
    rows = rate_rows(rates, acc, counts, params, gcn.prunable(params),
                     lambda nonzero: gcn_flops(params, model, nonzero), trained=pruner.trained_rates,
                     layer_targets=layer_targets)
    for i, row in enumerate(rows):
        row.update(structure_row(params, jax.tree.map(lambda m: m[i], masks), model, row))
    return rows


def structure_row(params, masks, model: gcn.GCNConfig, row: dict) -> dict:
    """How much of one rate's pruning is structured: the compact network's prunable weights and
    FLOPs (``jaxprune.compact``), and the fraction of the pruned weights that compaction removes."""
    net = compact(params, masks, model)
    size = compact_size(net)
    pruned = row["total_params"] - row["kept_params"]
    return {"compact_params": size, "compact_flops": compact_flops(net),
            "structured_fraction": (row["total_params"] - size) / pruned if pruned else 0.0}


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
    optimizer = make_optimizer(tc.learning_rate, tc.lr_rule, total_steps, tc.weight_decay)
    pruner = make_pruner(config.method, params, gcn.prunable(params), config.prune, total_steps,
                         gcn.ctf_blocks(params))
    mesh = mesh_for_batch(tc.devices, min(tc.batch_size, n))
    loss = task_loss(pruner, forward, tc.label_smoothing, tc.mixup, config.prune.split_batch)
    epoch_fn = make_epoch(loss, optimizer, n, tc.batch_size, mesh, pruner.update_fn)
    trained = np.asarray(pruner.trained_rates, np.float32)

    def evaluate(s):   # monitoring only: hard-masked accuracy at each trained rate
        params = to_local(s.params)
        masks = pruner.finish(to_local(s.prune_state)).hard_masks(params, trained)
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
    jax.block_until_ready(state.params)
    pruner = pruner.finish(state.prune_state)
    seconds = earlier + time.perf_counter() - start
    rows = fold_rows(pruner, forward, model, state.params, data.eval_chunks, data.test_labels,
                     serve_rates(config.method, config.prune))
    if fold_dir is not None and writer:
        save_model(fold_dir / "model.npz", state.params, pruner_arrays(pruner))
    return {"fold": test_fold, "params": state.params, "pruner": pruner, "rates": rows,
            "history": history, "train_seconds": seconds, "scale": data.scale, "earlier_seconds": earlier}


def protocol_name(dataset: SkeletonDataset) -> str:
    k = len(dataset.test_folds)
    return f"{k}-fold" if not (dataset.folds == 0).any() else "train/test split" if k == 1 else f"{k} splits"


def results_record(dataset: SkeletonDataset, config: RunConfig, runs: list[dict], seconds: float,
                   data_dir=None, loader: str | None = None) -> dict:
    """The ``results.json`` object (DESIGN.md schema) of per-fold ``runs`` trained under ``config``.

    ``loader``: the name in ``jaxprune.datasets.DATASETS`` that reads the data again (default: the
    dataset's name; an ``.npz`` dataset is named after its file but read by ``npz``).
    """
    return {
        "method": config.method, "dataset": dataset.name, "loader": loader or dataset.name,
        "protocol": protocol_name(dataset),
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
        "seed": config.seed, "epochs": config.train.epochs, "config": config.to_dict(),
        "runs": runs, "summary": summarise(runs), "train_seconds": seconds,
        "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
    }


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
        if hosts.agree(lambda: _start_folder(out_dir, folds, overwrite, run_info), (RunExistsError, ValueError)):
            out_dir, replaces = staging_folder(out_dir), out_dir.name
    return _run_folds(dataset, config, folds, out_dir, progress, eval_every, data_dir, loader or dataset.name,
                      resume=False, replaces=replaces)


def staging_folder(out_dir: Path) -> Path:
    """Where a run started with ``overwrite`` over ``out_dir`` trains until it has finished."""
    return out_dir.with_name(out_dir.name + STAGING)


def _holds_a_run(out_dir: Path) -> bool:
    return out_dir.is_dir() and ((out_dir / "results.json").exists() or (out_dir / "run.json").exists()
                                 or any(out_dir.glob("fold*/model.npz")) or any(out_dir.glob("fold*/rows.json"))
                                 or any(out_dir.glob("fold*/checkpoints")))


def _start_folder(out_dir: Path, folds: list[int], overwrite: bool, run_info: dict) -> bool:
    """Refuses a folder holding a finished or stopped run (unless ``overwrite``) and writes the new
    run's ``run.json``: in ``out_dir``, or (True is returned) in its staging folder when it
    replaces a run there. The start of a run, on its writing process."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: is a file, not a folder; choose a folder for the run's files")
    if (out_dir / "results.json").exists() and not overwrite:
        raise RunExistsError(f"{out_dir / 'results.json'} exists: this folder holds a finished run. "
                             "Choose another --out, or pass --overwrite to replace it.")
    stopped = [p for p in [out_dir / "run.json"] + [out_dir / f"fold{f}" / name for f in folds
                                                    for name in ("rows.json", "checkpoints")] if p.exists()]
    if stopped and not overwrite:
        raise RunExistsError(f"{stopped[0]} exists: {out_dir} holds a stopped run. Continue it with "
                             f"--resume {out_dir}, choose another --out, or pass --overwrite to start over.")
    staged = overwrite and _holds_a_run(out_dir)
    folder = staging_folder(out_dir) if staged else out_dir
    if staged and folder.exists():   # an earlier overwrite that did not finish: its partial run goes
        shutil.rmtree(folder)
    check_writable_folder(folder, "--out")
    write_json_atomic(folder / "run.json", {**run_info, "replaces": out_dir.name} if staged else run_info)
    return staged


def _replace_run(staged: Path, replaces: str) -> None:
    """Moves the finished run in ``staged`` over the run it replaces (``replaces``: the name of a
    sibling folder): the old folder is renamed aside, the new one renamed into place, the old one
    deleted."""
    final = staged.with_name(replaces)
    aside = final.with_name(final.name + ".replaced")
    if aside.exists():
        shutil.rmtree(aside)
    if final.exists():
        os.replace(final, aside)
    os.replace(staged, final)
    shutil.rmtree(aside, ignore_errors=True)


def resume(out_dir, *, dataset: SkeletonDataset | None = None, data_dir=None, progress: bool = True) -> dict:
    """Continues the stopped run in ``out_dir`` (its ``run.json``): finished folds (``rows.json``)
    are kept, an unfinished fold continues from its latest checkpoint (or from scratch if it has
    none), then ``results.json`` is written, with the same figures as an uninterrupted run.

    ``dataset``: the run's dataset when it is not one ``load_dataset`` can rebuild (else it is
    reloaded, from ``data_dir`` if the data has moved); it must be the one the run started with.
    RunExistsError for a finished run, ValueError for a folder without a usable run.json.
    """
    from jaxprune.datasets import load_dataset, recorded_loader
    from jaxprune.serving import load_run_config

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
            _replace_run(Path(out_dir), replaces)
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
