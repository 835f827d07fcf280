"""Ensemble distillation: K dense teachers trained side by side, then one student that matches them.

On SBU a dense GCN's accuracy depends on its initialisation by several points per fold, and the
average of a few networks' predictions beats each of them (README "Measured"). Distillation
(Hinton et al. 2015) puts that average into one network of the papers' shape: the student's
loss is

    w · T² · CE(mean_k softmax(teacher_k / T), softmax(student / T)) + (1 − w) · CE(labels, student)

where every teacher scores the very augmented view the student sees ("consistent" distillation,
Beyer et al. 2022): ``forward`` draws its augmentation from the step's key alone, so calling it
with the same key gives the same view.

Teachers are one stacked params pytree (leading axis K) trained in one run: their losses are
summed, so each teacher's gradient is its own loss's, and Adam(W) acts elementwise, so the K
trainings are independent (each with its own augmentation draws).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jaxprune.losses import accuracy, cross_entropy
from jaxprune.parallel import replicate
from jaxprune.train import fit, init_state, make_epoch


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Ensemble distillation of a dense run (``method=dense`` only).

    Attributes:
      teachers: K, the dense teachers trained (side by side) before the student; 0 = off.
      channels: C of the teachers' graph convolutions; 0 = the student's ``model.channels``.
        Every other setting of the teachers is the student's.
      weight: w in [0, 1], the share of the distillation term (1 = teachers' targets only).
      temperature: T > 0 of the softened teacher and student distributions.
    """

    teachers: int = 0
    channels: int = 0
    weight: float = 1.0
    temperature: float = 1.0

    def __post_init__(self):
        if self.teachers < 0:
            raise ValueError(f"distill setting teachers must be >= 0 (0: off), got {self.teachers}")
        if self.channels < 0:
            raise ValueError(f"distill setting channels must be >= 0 (0: the student's), got {self.channels}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"distill setting weight must be in [0, 1], got {self.weight}")
        if not self.temperature > 0:
            raise ValueError(f"distill setting temperature must be > 0, got {self.temperature}")


def stacked_init(init, key: jax.Array, count: int):
    """``count`` independent initialisations ``init(key)`` stacked along a leading axis (K, ...)."""
    return jax.vmap(init)(jax.random.split(key, count))


def ensemble_loss(loss_fn, count: int):
    """The loss of ``count`` independent models with stacked params (K, ...): the sum of each
    model's ``loss_fn(params, batch, key, step, prune_state)`` under its own key. Metrics are
    the mean over the models."""

    def loss(stacked, batch, key, step, prune_state=None):
        keys = jax.random.split(key, count)
        losses, metrics = jax.vmap(lambda p, k: loss_fn(p, batch, k, step, prune_state))(stacked, keys)
        return losses.sum(), jax.tree.map(jnp.mean, metrics)

    return loss


def ensemble_probabilities(forward, stacked, chunks: jax.Array, key: jax.Array, train: bool,
                           temperature: float = 1.0) -> jax.Array:
    """Mean over the K stacked models of softmax(logits / temperature): (B, classes).

    ``forward(params, chunks, key, train)`` is the models' forward; with ``train`` each model sees
    the augmentation that ``key`` draws (the same for all)."""
    logits = jax.vmap(lambda p: forward(p, chunks, key, train))(stacked)
    return jax.nn.softmax(logits / temperature, axis=-1).mean(0)


def distill_loss(forward, teacher_forward, teachers, weight: float, temperature: float,
                 label_smoothing: float = 0.0):
    """``loss(params, batch, key, step) -> (loss, metrics)`` of a student distilled from the stacked
    ``teachers`` (see the module docstring). ``teacher_forward`` is the teachers' forward without
    dropout; both forwards must draw their augmentation from the key alone."""
    teachers = jax.lax.stop_gradient(teachers)

    def loss(params, batch, key, step, prune_state=None):
        del step, prune_state
        chunks, labels = batch["chunks"], batch["labels"]
        logits = forward(params, chunks, key, True)
        target = ensemble_probabilities(teacher_forward, teachers, chunks, key, True, temperature)
        soft = optax.softmax_cross_entropy(logits / temperature, target).mean() * temperature ** 2
        hard = cross_entropy(logits, labels, label_smoothing)
        total = weight * soft + (1.0 - weight) * hard
        return total, {"loss": total, "distill": soft, "accuracy": accuracy(logits, labels)}

    return loss


def train_teachers(init, loss_fn, optimizer, arrays: dict, count: int, epochs: int, batch_size: int,
                   key: jax.Array, *, mesh=None, label: str = "", progress: bool = True):
    """Trains ``count`` models side by side; returns their stacked params (K, ...).

    ``init(key) -> params`` makes one model, ``loss_fn`` is one model's loss (``jaxprune.train``'s
    LossFn), ``arrays`` the training set as ``make_epoch`` takes it.
    """
    init_key, train_key = jax.random.split(key)
    stacked = stacked_init(init, init_key, count)
    num_samples = len(jax.tree.leaves(arrays)[0])
    epoch_fn = make_epoch(ensemble_loss(loss_fn, count), optimizer, num_samples, batch_size, mesh)
    state = replicate(init_state(stacked, optimizer, train_key), mesh)
    state, _ = fit(state, epoch_fn, arrays, epochs, label=label, progress=progress)
    return state.params


def teacher_report(forward, stacked, chunks: jax.Array, labels: jax.Array) -> dict:
    """Test accuracy (fraction) of each teacher and of their averaged probabilities (no augmentation)."""
    logits = jax.vmap(lambda p: forward(p, chunks, jax.random.key(0), False))(stacked)
    each = jnp.mean(jnp.argmax(logits, -1) == labels, axis=-1)
    mean = jax.nn.softmax(logits, -1).mean(0)
    return {"accuracy": [float(a) for a in each], "ensemble_accuracy": float(accuracy(mean, labels))}
