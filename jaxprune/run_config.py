"""Every setting that changes a run's result (``RunConfig``), and reading one back from a run's files."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

from jaxprune.config import SettingError, flatten, override
from jaxprune.data.augment import AugmentConfig
from jaxprune.data.features import FeatureConfig
from jaxprune.methods import REGISTRY, check_settings, method as registered
from jaxprune.methods.config import PruneConfig
from jaxprune.models import gcn
from jaxprune.train import TrainConfig


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


# Prune settings added to jaxprune with a default that changes what a run computes, and the value
# every run saved before the setting existed was trained with. Elsewhere a setting absent from a
# saved config is taken at today's default: the others were added switched off, or (kl_resolution,
# attention_backward) compute the same to float rounding.
SAVED_BEFORE = {"ctf_floor": 0.0, "kl_shift": False}


def read_settings(method: str, config: dict) -> dict:
    """``config`` (a saved or ``RunConfig.to_dict()`` config) without the prune settings that
    ``method`` never reads: a run of one method is the same run whatever another method's
    settings were (e.g. an MRMP run saved before ``prune.ctf_floor``'s default changed). Every
    read setting the config lacks gets the value runs had before it existed: ``SAVED_BEFORE``'s,
    else today's default (such settings were added switched off). So an old run is not taken for
    one of today's that sets it otherwise (an MRMP run saved before ``rate_weights`` is not a run
    with weights). Keys that are no setting of this jaxprune are kept, so that reading them back
    fails by name."""
    reads, known = registered(method).settings, {f.name for f in dataclasses.fields(PruneConfig)}
    saved = config.get("prune", {})
    if not isinstance(saved, dict):
        raise TypeError(f"its 'prune' settings are not a mapping: {saved!r}")
    prune = {k: v for k, v in saved.items() if k in reads or k not in known}   # unknown: refused later
    prune.update({k: v for k, v in SAVED_BEFORE.items() if k in reads and k not in saved})
    out = {**config, "prune": prune}
    for section, defaults in _defaults(method).items():   # the rest of what it lacks: as runs were then
        if isinstance(defaults, dict) and isinstance(out.get(section, {}), dict):
            absent = {k: v for k, v in defaults.items()
                      if k not in out.get(section, {}) and (section != "prune" or k in reads)}
            out[section] = {**out.get(section, {}), **absent}
    return out


@functools.cache
def _defaults(method: str) -> dict:
    """Today's default settings of a ``method`` run as its saved JSON holds them (lists, not tuples)."""
    return json.loads(json.dumps(RunConfig(method=method).to_dict()))


def load_run_config(results: dict, path: Path) -> RunConfig:
    """The RunConfig recorded in a results.json (or run.json) object (a ValueError naming ``path`` if
    unusable). Prune settings its method does not read are left at today's defaults
    (``read_settings``), so a run stays readable when such a default changes."""
    try:
        cfg = dict(results["config"])
        method, seed = cfg.pop("method"), cfg.pop("seed")
        cfg = read_settings(method, cfg)
        flat = {k: tuple(v) if isinstance(v, list) else v for k, v in flatten(cfg).items()}
        return override(RunConfig(method=method, seed=seed), flat)
    except (KeyError, TypeError, ValueError, SettingError) as e:
        raise ValueError(f"{path}: its 'config' does not describe a run of this jaxprune ({e})") from None
