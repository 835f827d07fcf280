"""The registry of pruning methods: every method is a name, one builder and the settings it reads.

    register(name, build, settings=(...), trained_rates=..., serves_any_rate=False)
    build(params, prunable, prune: PruneConfig, total_steps: int, blocks) -> pruner   (methods/base.py)

``blocks`` is what the model says of its structure (block partitions of its leaves, as
``jaxprune.masks.ctf`` reads them; () for none): a method may use it (CTF's block factor) and
never reads parameter names itself.

``make_pruner`` builds the pruner of a registered method for a fresh run, ``restore_pruner`` for a
saved one (its arrays restored with ``flax.serialization``: ``pruner_arrays`` names them). A method
reads only its own ``settings`` among ``PruneConfig``'s fields: ``check_settings`` refuses any other
that was changed from its default, naming it. A user's own method registered here trains,
evaluates and saves through the same ``jaxprune.runner`` paths as the built-in ones.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.serialization
import jax
import numpy as np

from jaxprune.evaluate import leaf_name
from jaxprune.methods import baselines, ctf, dense, mrmp
from jaxprune.methods.config import PruneConfig

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered method. ``build(params, prunable, prune, total_steps, blocks) -> pruner``; ``settings``:
    the ``PruneConfig`` fields it reads; ``trained_rates(prune)``: the rates it trains at;
    ``serves_any_rate``: evaluated at ``prune.eval_rates`` too (any rate, without retraining)."""

    build: Callable
    settings: tuple[str, ...]
    trained_rates: Callable[[PruneConfig], tuple[float, ...]]
    serves_any_rate: bool = False


REGISTRY: dict[str, Method] = {}


def register(name: str, build: Callable, *, settings=(), trained_rates=None, serves_any_rate: bool = False) -> None:
    """Adds (or replaces) the method ``name``; ``trained_rates`` defaults to (prune.rate,)."""
    fields = {f.name for f in dataclasses.fields(PruneConfig)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(f"method {name!r}: {unknown} are not PruneConfig settings (they are {sorted(fields)})")
    REGISTRY[name] = Method(build, tuple(settings), trained_rates or (lambda prune: (prune.rate,)),
                            serves_any_rate)


PLUGIN_GROUP = "jaxprune.methods"


def load_plugins() -> list[str]:
    """Imports every installed plugin module of the ``jaxprune.methods`` entry-point group (a
    package declares ``[project.entry-points."jaxprune.methods"] mine = "mypkg.pruner"``), whose
    import calls ``register``: the CLI does this first, so ``--method mine`` trains, evaluates and
    exports like a built-in method. Returns the names of the methods they added."""
    from importlib.metadata import entry_points
    before = set(REGISTRY)
    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()
        except Exception as e:   # a broken plugin names itself instead of a bare traceback
            raise ImportError(f"jaxprune method plugin {entry.name!r} ({entry.value}) failed to load: {e}") from e
    return sorted(set(REGISTRY) - before)


def method(name: str) -> Method:
    if name not in REGISTRY:
        raise ValueError(f"method must be one of {tuple(REGISTRY)}, got {name!r}")
    return REGISTRY[name]


def check_settings(name: str, prune: PruneConfig) -> None:
    """ValueError naming every prune setting changed from its default that method ``name`` does not read."""
    reads = method(name).settings
    default = PruneConfig()
    unread = [f.name for f in dataclasses.fields(PruneConfig)
              if f.name not in reads and getattr(prune, f.name) != getattr(default, f.name)]
    if unread:
        listed = ", ".join(f"prune.{s}" for s in unread)
        raise ValueError(f"method {name} does not read {listed}: leave it at its default"
                         + (f"; {name} reads {', '.join('prune.' + s for s in reads)}" if reads
                            else f"; {name} reads no prune setting"))


def trained_rates(name: str, prune: PruneConfig) -> tuple[float, ...]:
    """The rates a method trains at (dense 0; mrmp its ``rates``; a one-rate method its ``rate``)."""
    return tuple(method(name).trained_rates(prune))


def serve_rates(name: str, prune: PruneConfig) -> tuple[float, ...]:
    """The rates a finished run is evaluated at: the trained ones, plus ``eval_rates`` for methods
    that serve any rate."""
    rates = set(trained_rates(name, prune))
    if method(name).serves_any_rate:
        rates |= set(prune.eval_rates)
    return tuple(sorted(rates))


def kernels(params: PyTree) -> PyTree:
    """Bools like ``params``: True at every leaf of rank >= 2 (dense and conv kernels, embeddings),
    False at biases and scales: what is pruned unless told otherwise."""
    return jax.tree.map(lambda w: np.ndim(w) >= 2, params)


def make_pruner(name: str, params, prunable=None, prune: PruneConfig = PruneConfig(), total_steps: int = 1,
                blocks=()):
    """The pruner of method ``name`` for freshly initialised ``params`` (any pytree of arrays).

    ``prunable``: bools like ``params``, True where a leaf is pruned (None: ``kernels(params)``);
    ``prune``: the settings, of which the method reads its own (``check_settings``);
    ``total_steps``: the optimizer steps of the whole training, which the schedules span;
    ``blocks``: the model's block structure (module docstring), () when it declares none."""
    check_settings(name, prune)
    prunable = kernels(params) if prunable is None else prunable
    return method(name).build(params, prunable, prune, int(total_steps), tuple(blocks))


def pruner_arrays(pruner) -> dict[str, np.ndarray]:
    """The pruner's arrays (its pytree leaves: priors, scales, final masks), by name, e.g.
    'priors/fc/kernel/scale': what serving needs besides the params (``flax.serialization``)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(flax.serialization.to_state_dict(pruner))
    return {leaf_name(path): np.asarray(a) for path, a in flat}


def restore_pruner(name: str, params, prunable, prune: PruneConfig, arrays: dict, source: str = "saved model",
                   blocks=()):
    """The pruner of a saved run of method ``name``: a template built on ``params`` (and the model's
    ``blocks``) whose arrays are replaced by ``arrays`` (as ``pruner_arrays`` named them).
    ValueError naming ``source`` and a missing or misshapen array."""
    template = make_pruner(name, params, prunable, prune, 1, blocks).template(params)
    state = flax.serialization.to_state_dict(template)

    def fill(path, like):
        key = leaf_name(path)
        if key not in arrays:
            raise ValueError(f"{source} lacks the {name} pruner's array {key!r}: not a {name} model, "
                             "or saved by another version")
        if np.shape(arrays[key]) != np.shape(like):
            raise ValueError(f"{source}: the {name} pruner's array {key!r} has shape {np.shape(arrays[key])}, "
                             f"the configuration expects {np.shape(like)}")
        return jax.numpy.asarray(arrays[key])

    return flax.serialization.from_state_dict(template, jax.tree_util.tree_map_with_path(fill, state))


def _anneal(prune: PruneConfig, total_steps: int) -> int:
    return max(1, int(round(prune.anneal_fraction * total_steps)))


_SCHEDULE = ("sigma_start", "sigma_end", "anneal_fraction")
_MULTI_RATE = ("eval_rates", "prior", "weibull_shape", "kl_weight", "kl_ramp", "quantile_weight", *_SCHEDULE,
               "kl_bins", "kl_space", "kl_bandwidth", "kl_resolution", "kl_shift", "allocation", "split_batch")
_BASELINE_SETTINGS = {
    "magnitude": ("scope", "finetune_fraction"), "gradual": ("scope", "finetune_fraction", "gradual_updates"),
    "random": (), "structured": ("finetune_fraction",), "lottery": ("lottery_rounds", "rewind_fraction"),
    "snip": (), "l1": ("finetune_fraction", "reg_weight"), "group_lasso": ("finetune_fraction", "reg_weight"),
    "ste": ("scope", "finetune_fraction"), "set": ("regrow_every", "drop_fraction", "regrow_until"),
    "rigl": ("regrow_every", "drop_fraction", "regrow_until"),
}

register("dense", lambda params, prunable, prune, total, blocks: dense.Dense(), trained_rates=lambda prune: (0.0,))
register("srmp", lambda params, prunable, prune, total, blocks: mrmp.build(
    params, prunable, prune, (prune.rate,), _anneal(prune, total), total),
    settings=("rate", *_MULTI_RATE), serves_any_rate=True)
register("mrmp", lambda params, prunable, prune, total, blocks: mrmp.build(
    params, prunable, prune, prune.rates, _anneal(prune, total), total),
    settings=("rates", "rate_jitter", "rates_per_step", "sandwich", "rate_weights", "rate_curriculum",
              "distill_weight", "distill_temperature", *_MULTI_RATE), trained_rates=lambda prune: prune.rates,
    serves_any_rate=True)
register("ctf", lambda params, prunable, prune, total, blocks: ctf.build(
    params, prunable, prune, _anneal(prune, total), blocks),
    settings=("rate", "ctf_weight", "ctf_shift", "ctf_factors", "ctf_blocks", "ctf_floor", *_SCHEDULE))
for _name, _reads in _BASELINE_SETTINGS.items():
    register(_name, lambda params, prunable, prune, total, blocks, name=_name: baselines.build(
        name, prunable, prune, total), settings=("rate", *_reads))

METHODS = tuple(REGISTRY)   # the built-in methods, in the order the CLI lists them
