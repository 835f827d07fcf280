"""Named presets: the settings a command starts from, so that it trains a known network.

Settings are applied in layers, each winning over the one before:

1. the dataclass defaults (``jaxprune settings`` with ``--preset none``);
2. the preset's settings for every dataset;
3. the preset's settings for this dataset (the parts that depend on the data: which joints
   span the view, whether the two persons may swap);
4. the preset's settings for this method (``METHOD_RECIPES``: a method's recipe chosen by nested
   validation on the preset's network);
5. the user's ``--set`` (and ``--epochs``, ``--rate``, ...).

Presets (``--preset NAME``; ``DEFAULT_PRESET`` says which one each dataset gets):

- ``wide`` (the default for every real dataset, ``npz`` included): the best validated dense
  recipe, C = 64 with temporal crops and test-time crops on top of ``RECIPE``. Chosen by nested
  validation on SBU training folds (README "Measured"); 95.8 % on SBU over four seeds.
- ``c8``: ``RECIPE`` at the papers' width C = 8 (the former SBU preset; every pruning table
  committed before the presets were named prunes this network).
- ``paper``: the papers' configuration as ``METHOD.md`` §5 states it (the network and its training;
  CTF's layer floor is a prune default under every preset): C = 8 (16 on FPHA),
  4 chunk means, Adam with the loss-trend learning-rate rule, 2700 epochs, batch 200 (SBU) /
  600 (FPHA), no augmentation, no view alignment, no velocities.
- ``demo``: the dataclass defaults for 1000 epochs (the default of the embedded synthetic data,
  so that the README's first command stays a few minutes' job).
- ``none``: the dataclass defaults alone.
"""

from __future__ import annotations

# The data-independent part of the validated recipe: features, head, augmentation, regularisation.
RECIPE = ("features.velocities=true", "model.hidden=128", "augment.rotate_deg=20", "augment.scale=0.1",
          "train.label_smoothing=0.1", "train.weight_decay=0.01")
WIDE = ("model.channels=64", "augment.crops=8", "augment.crop_min=0.6", "augment.test_crops=true")
# SBU's data-dependent part: torso of person A (joint 2) -> torso of person B (17) along +x, and
# the two persons swapped at random (an SBU interaction keeps its label when the roles swap).
SBU_VIEW_AND_SWAP = ("features.align_from=2", "features.align_to=17", "augment.swap_groups=2")
PAPER = ("train.epochs=2700", "train.lr_rule=loss_trend")

PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "wide": {"all": RECIPE + WIDE, "sbu": SBU_VIEW_AND_SWAP},
    "c8": {"all": RECIPE, "sbu": SBU_VIEW_AND_SWAP},
    "paper": {"all": PAPER, "sbu": ("train.batch_size=200",),
              "fpha": ("model.channels=16", "train.batch_size=600")},
    "demo": {"all": ("train.epochs=1000",)},
    "none": {"all": ()},
}
DEFAULT_PRESET = {"synthetic": "demo", "sbu": "wide", "fpha": "wide", "npz": "wide"}
# MRMP on the wide network: each step's batch split among the K rates, three times the epochs
# (about three quarters of the time of an MRMP run on whole batches), and the two least sparse
# rates' losses weighted 4 and 2 (the others 1). Chosen by nested validation on SBU training
# folds, 3 seeds x 5 splits (experiments/results/tune_mrmp_wide): of five recipes the only one
# with no mean loss to SRMP at any of the six rates (on the test folds of the comparison grid it
# trails SRMP by 1.2-1.8 points from 0.5 to 0.95, tying the recipe before it). Before 2026-12-07
# (afternoon) the recipe had no weights; before 2026-12-07 it was whole batches for 2000 epochs:
# ``--set prune.rate_weights=`` and ``--set prune.split_batch=false --set train.epochs=2000`` give them.
METHOD_RECIPES: dict[str, dict[str, tuple[str, ...]]] = {
    "wide": {"mrmp": ("prune.split_batch=true", "train.epochs=6000", "prune.rate_weights=4,2")},
}


def preset_name(dataset: str, preset: str | None = None) -> str:
    """``preset``, checked, or the default preset of ``dataset``."""
    if preset is None:
        return DEFAULT_PRESET.get(dataset, "wide")
    if preset not in PRESETS:
        from jaxprune.config import SettingError
        raise SettingError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return preset


def preset_layers(dataset: str, preset: str | None = None,
                  method: str | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """[(source, settings)] of the preset for ``dataset`` and ``method``, in the order they apply:
    the preset's settings for every dataset, then those for this dataset, then for this method."""
    name = preset_name(dataset, preset)
    layers = [(f"preset {name}", PRESETS[name]["all"])]
    if PRESETS[name].get(dataset):
        layers.append((f"preset {name}, for {dataset}", PRESETS[name][dataset]))
    if METHOD_RECIPES.get(name, {}).get(method):
        layers.append((f"preset {name}, for {method}", METHOD_RECIPES[name][method]))
    return layers


def preset_settings(dataset: str, preset: str | None = None, method: str | None = None) -> list[str]:
    """The NAME=VALUE settings of ``preset`` (default: the dataset's) for ``dataset`` and, where
    the preset has a recipe of its own for it, ``method``, in order."""
    return [s for _, layer in preset_layers(dataset, preset, method) for s in layer]
