"""Method-agnostic training: one jitted epoch (a scan over mini-batches) and a loop around it.

A method supplies ``loss_fn(params, batch, key, step, prune_state) -> (loss, metrics)`` where
``batch`` is a dict of arrays with a leading batch axis and ``metrics`` a dict of scalars, and
optionally ``update_fn(params, prune_state, step, grads) -> (params, prune_state)``, run after every
optimizer step (e.g. a baseline that prunes at scheduled steps). Everything else here
(shuffling, batching, optimizer, progress, JSON-lines metrics) is shared by every method.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from jaxprune import hosts
from jaxprune.optim import LR_RULES
from jaxprune.parallel import gather_rows
from jaxprune.results import naming, write_atomic

LossFn = Callable[[Any, dict, jax.Array, jax.Array, Any], tuple[jax.Array, dict]]
UpdateFn = Callable[[Any, Any, jax.Array, Any], tuple[Any, Any]]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
      epochs: passes over the training set.
      batch_size: samples per step; capped at the training-set size (full batch on SBU).
      learning_rate: Adam's base step size.
      lr_rule: "constant", "cosine" (decay to 1 %) or "loss_trend" (the papers' x/÷ 0.99 rule).
      weight_decay: AdamW decoupled decay (0 = plain Adam).
      label_smoothing: cross-entropy label smoothing in [0, 1).
      mixup: α of mixup (``jaxprune.task.loss``), any method; 0 = off.
      ema: decay of an exponential moving average of the parameters, served and saved in place
        of the last step's (``jaxprune.weight_average``; horizon about 1 / (1 − ema) steps);
        0 = off, the last step's parameters.
      checkpoint_every: save a checkpoint every N epochs when the run has an output folder
        (``jaxprune.checkpoint``); 0 = only the final one. Does not change the result.
      devices: data parallelism over this many devices (``jaxprune.parallel``: the batch sharded,
        parameters replicated); 0 = every device whose count divides the batch. The result is the
        same as on one device within float tolerance.
    """

    epochs: int = 2000
    batch_size: int = 256
    learning_rate: float = 1e-3
    lr_rule: str = "constant"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    mixup: float = 0.0
    ema: float = 0.0
    checkpoint_every: int = 0
    devices: int = 0

    def __post_init__(self):
        if self.epochs < 0:
            raise ValueError(f"training setting epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"training setting batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"training setting label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not self.mixup >= 0:
            raise ValueError(f"training setting mixup must be >= 0 (0: off), got {self.mixup}")
        if not (self.ema == 0.0 or 0.0 < self.ema < 1.0):
            raise ValueError(f"training setting ema must be in (0, 1) (e.g. 0.999), or 0 for no average; "
                             f"got {self.ema}")
        if not self.learning_rate > 0:
            raise ValueError(f"training setting learning_rate must be > 0, got {self.learning_rate}")
        if self.lr_rule not in LR_RULES:
            raise ValueError(f"training setting lr_rule must be one of {LR_RULES}, got {self.lr_rule!r}")
        if self.weight_decay < 0:
            raise ValueError(f"training setting weight_decay must be >= 0, got {self.weight_decay}")
        if self.devices < 0:
            raise ValueError(f"training setting devices must be >= 0 (0 = all), got {self.devices}")
        if self.checkpoint_every < 0:
            raise ValueError(f"training setting checkpoint_every must be >= 0 (0 = final checkpoint only), "
                             f"got {self.checkpoint_every}")


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training (a pytree)."""

    params: Any
    opt_state: Any
    step: jax.Array   # int32 scalar, optimizer steps taken
    key: jax.Array    # typed PRNG key for shuffling and the method's randomness
    prune_state: Any = None   # a method's own state (e.g. a baseline's current masks), or None


def init_state(params, optimizer: optax.GradientTransformation, key: jax.Array, prune_state=None) -> TrainState:
    """A fresh TrainState at step 0. ``make_epoch``'s epochs donate their input state, so the state
    holds copies of ``params`` and ``prune_state``: the caller's arrays stay usable after ``fit``."""
    params, prune_state = jax.tree.map(jnp.copy, (params, prune_state))
    return TrainState(params=params, opt_state=optimizer.init(params), step=jnp.zeros((), jnp.int32), key=key,
                      prune_state=prune_state)


def steps_per_epoch(num_samples: int, batch_size: int) -> int:
    return math.ceil(num_samples / min(batch_size, num_samples))


def make_epoch(loss_fn: LossFn, optimizer: optax.GradientTransformationExtraArgs, num_samples: int,
               batch_size: int, mesh=None, update_fn: UpdateFn | None = None
               ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """A jitted ``epoch(state, data) -> (state, mean metrics)``; it donates ``state`` (its arrays
    are reused for the new state and deleted: keep the returned one; ``init_state`` copies the
    caller's params, so those stay intact).

    ``data`` holds the whole training set (leading axis ``num_samples``). Each epoch draws a fresh
    permutation; the last batch wraps around to the permutation's start so that every step sees
    exactly min(batch_size, num_samples) samples (one compiled shape). With a device ``mesh``
    (``jaxprune.parallel.data_mesh``) each step's batch is split over its devices, gathered from
    ``data`` as ``jaxprune.parallel.shard_rows`` places it (each device holds its share). ``update_fn``
    (if any) rewrites the params and the method's state after each step, given the steps taken and
    that step's gradient.
    """
    batch = min(batch_size, num_samples)
    steps = steps_per_epoch(num_samples, batch_size)

    def epoch(state: TrainState, data: dict):
        def step_fn(carry, batch_index):
            params, opt_state, step, key, prune_state = carry
            key, sub = jax.random.split(key)
            batch_data = gather_rows(data, batch_index, mesh)
            (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_data, sub, step,
                                                                               prune_state)
            with jax.named_scope("optimizer"):
                updates, opt_state = optimizer.update(grads, opt_state, params, value=loss)
                params = optax.apply_updates(params, updates)
            if update_fn is not None:
                params, prune_state = update_fn(params, prune_state, step + 1, grads)
            return (params, opt_state, step + 1, key, prune_state), metrics

        key, perm_key = jax.random.split(state.key)
        order = jnp.resize(jax.random.permutation(perm_key, num_samples), (steps * batch,)).reshape(steps, batch)
        (params, opt_state, step, key, prune_state), metrics = jax.lax.scan(
            step_fn, (state.params, state.opt_state, state.step, key, state.prune_state), order)
        return TrainState(params, opt_state, step, key, prune_state), jax.tree.map(jnp.mean, metrics)

    return jax.jit(epoch, donate_argnums=0)


class Progress:
    """A one-line progress report on stderr: a live bar on a terminal, every 10 % otherwise."""

    def __init__(self, total: int, label: str = "", stream=None, min_interval: float = 0.25):
        self.total, self.label = max(total, 1), label
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.start = time.perf_counter()
        self.last_time, self.last_decile, self.min_interval = 0.0, -1, min_interval

    def update(self, done: int, info: str = "") -> None:
        now = time.perf_counter()
        elapsed = now - self.start
        decile = 10 * done // self.total
        final = done >= self.total
        if self.tty and (final or now - self.last_time >= self.min_interval):
            width = 24
            filled = width * done // self.total
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} {info} {elapsed:5.1f}s\x1b[K")
            if final:
                self.stream.write("\n")
            self.stream.flush()
            self.last_time = now
        elif not self.tty and (decile > self.last_decile or final):
            if not (final and decile == self.last_decile):
                self.stream.write(f"{self.label} {done}/{self.total} {info} {elapsed:.1f}s\n")
                self.stream.flush()
            self.last_decile = decile


def fit(state: TrainState, epoch_fn, data: dict, epochs: int, *, start_epoch: int = 0, metrics_path=None,
        label: str = "", evaluate: Callable[[Any], dict] | None = None, eval_every: int = 0,
        progress: bool = True, on_epoch_end: Callable[[int, TrainState], None] | None = None
        ) -> tuple[TrainState, list[dict]]:
    """Runs epochs ``start_epoch + 1 .. epochs``; returns the final state and one metrics dict per epoch.

    ``state`` is the state after ``start_epoch`` epochs (0: fresh; more: a resumed run). Each
    epoch's metrics (plus ``evaluate(state)`` every ``eval_every`` epochs and at the end, for
    monitoring only) are written to ``metrics_path`` as JSON lines when given, one flushed line per
    epoch: the file first keeps only its rows of epochs <= ``start_epoch`` (those then open the
    returned history), so it ends holding epochs 1..``epochs`` once. ``on_epoch_end(epoch, state)``
    runs after each epoch's row is written (e.g. to save a checkpoint).
    """
    if not 0 <= start_epoch <= epochs:
        raise ValueError(f"start_epoch must be in [0, {epochs}], got {start_epoch}")
    history = _keep_rows(metrics_path, start_epoch) if metrics_path else []
    if hosts.process_count() > 1 and hasattr(epoch_fn, "lower") and start_epoch < epochs:
        # each process compiles on its own (tens of seconds for a train step); the epoch's collectives
        # give up on a peer more than 30 s late, so every process compiles first, then waits for the rest
        epoch_fn = epoch_fn.lower(state, data).compile()
        hosts.barrier("epoch compiled")
    bar = Progress(epochs, label) if progress else None
    sink = open(metrics_path, "a") if metrics_path else None
    try:
        for e in range(start_epoch + 1, epochs + 1):
            state, metrics = epoch_fn(state, data)
            row = {"epoch": e, **{k: float(v) for k, v in metrics.items()}}
            if evaluate is not None and eval_every and (e % eval_every == 0 or e == epochs):
                row.update({f"eval_{k}": v for k, v in evaluate(state).items()})
            history.append(row)
            if sink:
                try:
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
                except OSError as error:
                    raise naming(error, metrics_path)
            if bar:
                bar.update(e, f"loss {row['loss']:.4f} acc {100 * row.get('accuracy', 0.0):5.1f}%")
            if on_epoch_end is not None:
                on_epoch_end(e, state)
    finally:
        if sink:
            sink.close()
    return state, history


def _keep_rows(path, last_epoch: int) -> list[dict]:
    """Rewrites the JSON-lines file ``path`` (atomically) to its rows of epochs <= ``last_epoch``
    (an unreadable line, e.g. one cut by a kill, is dropped); returns those rows."""
    path = Path(path)
    rows = []
    if last_epoch and path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("epoch"), int) and row["epoch"] <= last_epoch:
                rows.append(row)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    write_atomic(path, lambda f: f.write(text))
    return rows
