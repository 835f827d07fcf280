"""Pruning methods behind one interface (a "pruner", a small pytree):

    pruner.loss(forward, label_smoothing) -> loss(params, batch, key, step) -> (loss, metrics)
    pruner.hard_masks(params, rates (R,))  -> masks with a leading R axis (None: leaf not masked)
    pruner.layer_rates(params, rates)      -> per-layer target rates (R,) at masked leaves, or None
    pruner.trained_rates, pruner.serves_any_rate, pruner.artefacts() (what serving needs saved)
    pruner.init_prune_state / update_fn / finish: a state carried through training (methods/base.py)

``make_pruner`` builds one for a fresh run, ``restore_pruner`` for a saved one.
"""

from __future__ import annotations

from jaxprune.methods import baselines, ctf, dense, mrmp
from jaxprune.methods.config import PruneConfig

METHODS = ("dense", "srmp", "mrmp", "ctf", *baselines.BASELINES)


def trained_rates(method: str, prune: PruneConfig) -> tuple[float, ...]:
    """The rates a method trains at: dense 0; mrmp its ``rates``; every other method its one ``rate``."""
    return {"dense": (0.0,), "mrmp": prune.rates}.get(method, (prune.rate,))


def serve_rates(method: str, prune: PruneConfig) -> tuple[float, ...]:
    """The rates a finished run is evaluated at: the trained ones, plus ``eval_rates`` for methods
    that serve any rate."""
    rates = set(trained_rates(method, prune))
    if method in ("srmp", "mrmp"):
        rates |= set(prune.eval_rates)
    return tuple(sorted(rates))


def make_pruner(method: str, params, prunable, prune: PruneConfig, total_steps: int):
    """The pruner of ``method`` for freshly initialised ``params``."""
    anneal = max(1, int(round(prune.anneal_fraction * total_steps)))
    if method == "dense":
        return dense.Dense()
    if method in ("srmp", "mrmp"):
        return mrmp.build(params, prunable, prune, trained_rates(method, prune), anneal, total_steps)
    if method == "ctf":
        return ctf.build(params, prunable, prune, anneal)
    if method in baselines.BASELINES:
        return baselines.build(method, prunable, prune, total_steps)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def restore_pruner(method: str, params, prunable, prune: PruneConfig, artefacts: dict):
    """The pruner of a saved run of ``method`` (its ``artefacts`` as saved)."""
    if method == "dense":
        return dense.Dense()
    if method in ("srmp", "mrmp"):
        return mrmp.restore(params, prunable, prune, trained_rates(method, prune), artefacts)
    if method == "ctf":
        return ctf.restore(params, prunable, prune, artefacts)
    if method in baselines.BASELINES:
        return baselines.restore(method, params, prunable, prune, artefacts)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
