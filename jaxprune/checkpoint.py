"""Training checkpoints with orbax: a TrainState, its epoch and what it belongs to, saved atomically.

A checkpoint directory (``DIR/fold<K>/checkpoints``) holds one orbax step per saved epoch (the
last ``keep``), each with two items: ``state`` (params, optimizer state, step, PRNG key data) and
``meta`` (JSON: epoch, method, the run's config dict, every leaf's name/shape/dtype, seconds of
training so far). Orbax writes a step into ``<epoch>.orbax-checkpoint-tmp*`` and renames it when
complete, so a process killed while saving leaves the previous step as the latest usable one.

``restore`` refuses (ValueError naming the step directory) a checkpoint of another method, other
settings or other leaf shapes, and one that cannot be read; it deletes nothing.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxprune.config import saved_differences
from jaxprune.hosts import first_line
from jaxprune.train import TrainState

ITEMS = ("state", "meta")
FORMAT = 1


def _tree(state: TrainState) -> dict:
    """The savable pytree of a state: the typed PRNG key as its raw key data (uint32); a method's
    state ({} when it has none)."""
    return {"params": state.params, "opt_state": state.opt_state, "step": state.step,
            "key": jax.random.key_data(state.key),
            "prune_state": {} if state.prune_state is None else state.prune_state}


def leaf_specs(state: TrainState) -> dict[str, list]:
    """{leaf name: [shape, dtype]} of every array in the savable tree of ``state``, params first."""
    tree = _tree(state)
    flat = [leaf for part in ("params", "opt_state", "step", "key", "prune_state")
            for leaf in jax.tree_util.tree_flatten_with_path({part: tree[part]})[0]]
    return {jax.tree_util.keystr(p): [list(np.shape(x)), str(x.dtype)] for p, x in flat}


def _manager(directory: Path, keep: int = 2, create: bool = True) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, enable_async_checkpointing=False)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options, item_names=ITEMS)


def latest_epoch(directory) -> int | None:
    """The newest complete checkpoint's epoch in ``directory`` (None when there is none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    with _manager(directory, create=False) as manager:
        return manager.latest_step()


def save(directory, epoch: int, state: TrainState, *, method: str, config: dict, seconds: float = 0.0,
         keep: int = 2) -> None:
    """Saves ``state`` after ``epoch`` epochs (synchronously, atomically); keeps the newest ``keep``.

    ``config``: the run's settings (``RunConfig.to_dict()``); ``seconds``: training time so far.
    """
    meta = {"format": FORMAT, "epoch": int(epoch), "method": method, "config": _plain(config),
            "leaves": leaf_specs(state), "seconds": float(seconds)}
    with _quiet() as failed:
        try:
            with _manager(Path(directory), keep) as manager:
                manager.save(int(epoch), args=ocp.args.Composite(state=ocp.args.StandardSave(_tree(state)),
                                                                 meta=ocp.args.JsonSave(meta)), force=True)
                manager.wait_until_finished()
        except Exception as e:
            failed.append(e)
    if failed:
        where = Path(directory).absolute()
        # futures of the failed write that are collected later log "exception was never retrieved"
        logging.getLogger("asyncio").addFilter(lambda record: str(where) not in record.getMessage())
        for partial in where.glob(f"{int(epoch)}.orbax-checkpoint-tmp*"):
            shutil.rmtree(partial, ignore_errors=True)       # frees what the failed write took
        kept = " (the previous one is kept)" if where.is_dir() and any(p.name.isdigit() for p in where.iterdir()) else ""
        raise OSError(f"checkpoint {where / str(int(epoch))} could not be saved{kept}: "
                      f"{_os_cause(failed[0]) or _short(failed[0])}") from failed[0]


def restore(directory, template: TrainState, *, method: str, config: dict,
            sharding: jax.sharding.Sharding | None = None) -> tuple[TrainState, dict]:
    """(the latest checkpoint's state, its meta) for a run of ``method`` under ``config`` whose
    fresh state is ``template``; ValueError naming the step directory on any mismatch or damage.

    ``sharding``: where every leaf is restored (e.g. replicated over a mesh that spans processes:
    each process reads straight onto its own devices); default: this process's first device.
    """
    directory = Path(directory)
    epoch = latest_epoch(directory)
    if epoch is None:
        raise ValueError(f"{directory}: no complete checkpoint here")
    where = directory / str(epoch)
    with _manager(directory, create=False) as manager:
        older = [s for s in manager.all_steps() if s != epoch]
        hint = f"; to resume from the older checkpoint {max(older)}, move {where} elsewhere" if older else ""
        meta, error = _read(manager, epoch, meta=ocp.args.JsonRestore())
        if error:
            raise ValueError(f"checkpoint {where} is damaged: its metadata cannot be read ({error}){hint}")
        check(meta, where, template, method=method, config=config)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct if sharding is None else
                                lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding),
                                _tree(template))
        tree, error = _read(manager, epoch, state=ocp.args.StandardRestore(abstract))
        if not error:
            try:
                tree = jax.tree.map(lambda want, got: got, abstract, tree)  # the template's structure
            except ValueError as e:
                error = _short(e)
        if error:
            raise ValueError(f"checkpoint {where} is damaged: its arrays cannot be read ({error}){hint}")
    for (p, want), got in zip(jax.tree_util.tree_flatten_with_path(abstract)[0], jax.tree.leaves(tree)):
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ValueError(f"checkpoint {where} is damaged: {jax.tree_util.keystr(p)} restored as "
                             f"{got.shape} {got.dtype}, expected {want.shape} {want.dtype}")
    key = jax.random.wrap_key_data(tree["key"], impl=jax.random.key_impl(template.key))
    prune_state = None if template.prune_state is None else tree["prune_state"]
    return TrainState(tree["params"], tree["opt_state"], tree["step"], key, prune_state), meta


def _read(manager: ocp.CheckpointManager, epoch: int, **item):
    """(the one item restored, None) or (None, a one-line error): orbax, tensorstore and JSON
    errors all mean the checkpoint cannot be read (their tracebacks are held back, ``_quiet``)."""
    (name, args), = item.items()
    with _quiet() as failed:
        try:
            return manager.restore(epoch, args=ocp.args.Composite(**{name: args}))[name], None
        except Exception as e:
            failed.append(e)
            return None, _short(e)


@contextlib.contextmanager
def _quiet():
    """Holds back what orbax's threads print while a save or read fails: a failed write or read
    leaves writes or reads in flight and asyncio tasks behind that print tracebacks (and absl
    errors) when they end, after the error itself is already known. Yields a list: append the
    error to it on failure; the tracebacks are then let end here, silently (local files:
    milliseconds). Without a failure, whatever was printed is passed on unchanged."""
    hook, stderr = sys.unraisablehook, sys.stderr
    logs = [logging.getLogger(n) for n in ("asyncio", "absl")]
    levels = [log.level for log in logs]
    held, failed = io.StringIO(), []
    sys.unraisablehook, sys.stderr = (lambda unraisable: None), held
    for log in logs:
        log.setLevel(logging.CRITICAL)
    try:
        yield failed
    finally:
        if failed:
            time.sleep(0.5)   # the other writes or reads of the failed call finish
            gc.collect()
        sys.unraisablehook, sys.stderr = hook, stderr
        for log, level in zip(logs, levels):
            log.setLevel(level)
        if not failed and held.getvalue():
            stderr.write(held.getvalue())


def check(meta, where: Path, template: TrainState, *, method: str, config: dict) -> None:
    """Raises ValueError (naming ``where``) unless ``meta`` belongs to this method, config and shapes."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {where} is not a jaxprune checkpoint of this version")
    if meta.get("method") != method:
        raise ValueError(f"checkpoint {where} was saved by method {meta.get('method')}, this run is {method}")
    # a setting this version added (absent there) is not a difference: the run's run.json, which
    # resuming reads, could not have changed it
    differ = saved_differences(meta.get("config", {}), config)
    if differ:
        raise ValueError(f"checkpoint {where} was saved with other settings: {differ}")
    saved, expected = meta.get("leaves", {}), leaf_specs(template)
    for name in [*expected, *(k for k in saved if k not in expected)]:
        if name not in saved or name not in expected:
            raise ValueError(f"checkpoint {where}: leaf {name} is {'missing' if name not in saved else 'unexpected'} "
                             "(saved by another model or optimizer)")
        if saved[name] != expected[name]:
            (s, sd), (e, ed) = saved[name], expected[name]
            raise ValueError(f"checkpoint {where}: leaf {name} has shape {tuple(s)} {sd} there, "
                             f"this run expects {tuple(e)} {ed}")


def clear(directory) -> None:
    """Removes a checkpoint directory (a fresh start of the same fold replaces its checkpoints)."""
    directory = Path(directory)
    if directory.is_dir():
        shutil.rmtree(directory)


def _plain(obj):
    """``obj`` as JSON would give it back (tuples -> lists), for comparisons with saved metadata."""
    return json.loads(json.dumps(obj))


def _os_cause(e: BaseException) -> str | None:
    """The operating system's reason inside a tensorstore error ("... [os_error_code='28']"), e.g.
    "No space left on device (errno 28)"; None when there is none."""
    while e is not None:
        code = e.errno if isinstance(e, OSError) and e.errno else None
        found = re.search(r"os_error_code='?(\d+)", str(e))
        code = code or (int(found.group(1)) if found else None)
        if code:
            return f"{os.strerror(code)} (errno {code})"
        e = e.__cause__ or e.__context__
    return None


def _short(e: BaseException) -> str:
    """The first line of the root cause of ``e``, shortened."""
    return first_line(e, limit=200)
