"""Dotted overrides of nested frozen dataclasses: ``override(cfg, ["train.epochs=100"])``.

Values are parsed by the field's declared type (int, float, bool, str), so a typo or a bad value
is an error that names the setting.
"""

from __future__ import annotations

import dataclasses
import typing


class SettingError(ValueError):
    """A setting that does not exist or whose value does not parse; the message names it."""


def _parse(name: str, text: str, kind):
    try:
        if kind is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return kind(text)
    except ValueError:
        raise SettingError(f"setting {name}: cannot read {text!r} as {kind.__name__}") from None


def settings(config, prefix: str = "") -> dict[str, object]:
    """Flat {dotted name: value} of every scalar setting in a nested dataclass."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(settings(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = value
    return out


def override(config, assignments):
    """A copy of ``config`` with each "dotted.name=value" (or a {name: value} dict) applied."""
    if isinstance(assignments, dict):
        items = [(k, v) for k, v in assignments.items()]
    else:
        items = []
        for a in assignments:
            if "=" not in a:
                raise SettingError(f"setting {a!r}: expected NAME=VALUE, e.g. train.epochs=100")
            k, v = a.split("=", 1)
            items.append((k.strip(), v.strip()))
    for name, value in items:
        config = _set(config, name.split("."), value, name)
    return config


def _set(config, path, value, full):
    if not dataclasses.is_dataclass(config):
        raise SettingError(f"setting {full!r} does not exist")
    fields = {f.name: f for f in dataclasses.fields(config)}
    head = path[0]
    if head not in fields:
        raise SettingError(f"setting {full!r} does not exist; known here: {sorted(fields)}")
    current = getattr(config, head)
    if len(path) > 1:
        new = _set(current, path[1:], value, full)
    else:
        if dataclasses.is_dataclass(current):
            raise SettingError(f"setting {full!r} is a group; set one of its fields")
        hints = typing.get_type_hints(type(config))
        kind = hints.get(head, type(current))
        new = _parse(full, value, kind) if isinstance(value, str) and kind is not str else value
    try:
        return dataclasses.replace(config, **{head: new})
    except (ValueError, TypeError) as e:
        raise SettingError(f"setting {full}={value!r}: {e}") from None
