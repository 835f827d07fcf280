"""Dotted overrides of the nested RunConfig: parsing by field type, errors that name the setting."""

import dataclasses

import pytest

from jaxprune.config import SettingError, override, settings
from jaxprune.run_config import RunConfig


@pytest.fixture
def cfg():
    return RunConfig()


def test_parses_by_field_type(cfg):
    new = override(cfg, ["train.epochs=100", "train.learning_rate=3e-3", "features.velocities=true",
                         "model.attention=free", "seed=7", "train.weight_decay=1"])
    assert new.train.epochs == 100 and type(new.train.epochs) is int
    assert new.train.learning_rate == 3e-3 and type(new.train.learning_rate) is float
    assert new.features.velocities is True
    assert new.model.attention == "free"
    assert new.seed == 7
    assert new.train.weight_decay == 1.0 and type(new.train.weight_decay) is float
    # untouched settings keep their values, and the original is unchanged (frozen copies)
    assert new.features.chunks == cfg.features.chunks and new.model.channels == cfg.model.channels
    assert cfg.train.epochs == RunConfig().train.epochs and cfg.seed == 0


@pytest.mark.parametrize("text, value", [("1", True), ("TRUE", True), ("yes", True), ("on", True),
                                         ("0", False), ("False", False), ("no", False),
                                         (" off ", False)])
def test_bool_spellings(cfg, text, value):
    assert override(cfg, [f"features.velocities={text}"]).features.velocities is value


def test_whitespace_and_later_assignment_wins(cfg):
    new = override(cfg, [" train.epochs = 12 ", "train.epochs=13"])
    assert new.train.epochs == 13
    # only the first '=' splits: the rest is the value
    with pytest.raises(SettingError, match="'1=2'"):
        override(cfg, ["train.epochs=1=2"])


@pytest.mark.parametrize("assignment, name", [
    ("train.epoch=5", "train.epoch"), ("bogus=1", "bogus"), ("trian.epochs=5", "trian.epochs"),
    ("train.epochs.x=1", "train.epochs.x"), ("train=5", "train"),
])
def test_unknown_names_raise(cfg, assignment, name):
    with pytest.raises(SettingError, match=name.replace(".", r"\.")):
        override(cfg, [assignment])


@pytest.mark.parametrize("assignment, name", [
    ("train.epochs=abc", "train.epochs"), ("train.epochs=3.5", "train.epochs"),
    ("train.learning_rate=fast", "train.learning_rate"), ("features.velocities=maybe", "features.velocities"),
    ("seed=", "seed"),
    # values that parse but that the dataclass itself rejects
    ("train.epochs=-1", "train.epochs"), ("model.channels=0", "model.channels"),
    ("features.pooling=max", "features.pooling"), ("model.attention=sparse", "model.attention"),
    ("train.label_smoothing=1.5", "train.label_smoothing"), ("method=magic", "method"),
])
def test_bad_values_raise_naming_the_setting(cfg, assignment, name):
    with pytest.raises(SettingError, match=name.replace(".", r"\.")):
        override(cfg, [assignment])


def test_missing_equals_sign(cfg):
    with pytest.raises(SettingError, match="NAME=VALUE"):
        override(cfg, ["train.epochs"])


def test_setting_error_is_a_value_error():
    assert issubclass(SettingError, ValueError)


def test_dict_form(cfg):
    new = override(cfg, {"train.epochs": 7, "model.channels": "16", "features.velocities": "no",
                         "train.learning_rate": 0.5})
    assert new.train.epochs == 7
    assert new.model.channels == 16 and type(new.model.channels) is int  # strings parsed
    assert new.features.velocities is False
    assert new.train.learning_rate == 0.5
    with pytest.raises(SettingError, match=r"train\.epochs"):
        override(cfg, {"train.epochs": -2})
    with pytest.raises(SettingError, match=r"model\.chanels"):
        override(cfg, {"model.chanels": 3})


def test_settings_flattens(cfg):
    flat = settings(cfg)
    assert flat["method"] == "dense" and flat["seed"] == 0
    assert flat["train.epochs"] == cfg.train.epochs
    assert flat["features.chunks"] == cfg.features.chunks
    assert flat["model.attention"] == cfg.model.attention
    assert flat["augment.rotate_deg"] == cfg.augment.rotate_deg
    expected = {"method", "seed"}
    for group in ("features", "model", "augment", "train", "prune"):
        expected |= {f"{group}.{f.name}" for f in dataclasses.fields(getattr(cfg, group))}
    assert set(flat) == expected
    assert not any(dataclasses.is_dataclass(v) for v in flat.values())
    # every flattened name can be set back through override, to the same value
    assert override(cfg, {k: str(v) for k, v in flat.items()}) == cfg
    changed = settings(override(cfg, ["train.epochs=3"]))
    assert {k for k in flat if flat[k] != changed[k]} == {"train.epochs"}
