"""Dotted overrides of nested frozen dataclasses: ``override(cfg, ["train.epochs=100"])``.

Values are parsed by the field's declared type (int, float, bool, str, or a comma-separated
``tuple[float, ...]``), so a typo or a bad value is an error that names the setting. No float
setting takes NaN or an infinity (each section's own checks cover the allowed ranges).
"""

from __future__ import annotations

import dataclasses
import math
import typing


class SettingError(ValueError):
    """A setting that does not exist or whose value does not parse; the message names it."""


def _parse(name: str, text: str, kind):
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        # "a,b", "(a, b)" or "('a', 'b')" (a tuple as str() writes it, as ``settings`` lists it)
        parts = [t.strip().strip("'\"").strip() for t in text.strip().strip("()[]").split(",")]
        parts = [t for t in parts if t]
        return tuple(_parse(name, t, item) for t in parts)
    try:
        if kind is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        value = kind(text)
    except ValueError:
        raise SettingError(f"setting {name}: cannot read {clip(text)!r} as {kind.__name__}") from None
    _check_finite(name, value)
    return value


def clip(text: str, limit: int = 60) -> str:
    """``text`` typed by the user, cut to ``limit`` characters with its length said, so that an
    error line stays one readable line whatever was typed."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _check_finite(name: str, value) -> None:
    """SettingError for a NaN or infinite float (alone or in a tuple)."""
    for v in value if isinstance(value, tuple) else (value,):
        if isinstance(v, float) and not math.isfinite(v):
            raise SettingError(f"setting {name}: {v} is not a usable value (NaN and infinities are "
                               "never valid settings)")


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """Flat {dotted name: value} of a nested dict (e.g. ``RunConfig.to_dict()`` or its JSON)."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def saved_differences(saved: dict, config: dict) -> str:
    """'' when the settings ``saved`` (a run's JSON 'config') agree with ``config`` (a
    ``RunConfig.to_dict()``), else 'NAME=A there, B here' for up to three of those that differ.
    A setting absent from ``saved`` (added to jaxprune since) is not a difference."""
    import json
    there, here = flatten(saved), flatten(json.loads(json.dumps(config)))
    differ = sorted(k for k in there if there.get(k) != here.get(k))
    shown = ", ".join(f"{k}={there.get(k)!r} there, {here.get(k)!r} here" for k in differ[:3])
    return shown + (f" (and {len(differ) - 3} more)" if len(differ) > 3 else "")


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
                raise SettingError(f"setting {clip(a)!r}: expected NAME=VALUE, e.g. train.epochs=100")
            k, v = a.split("=", 1)
            items.append((k.strip(), v.strip()))
    tree: dict = {}
    for name, value in items:
        node = tree
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingError(f"setting {clip(name)!r}: a value was already given for a parent of it")
        node[leaf] = value
    return _apply(config, tree, "")


def _apply(config, changes: dict, prefix: str):
    """Replaces every changed field of ``config`` in one ``dataclasses.replace`` (so settings that
    are checked together, like align_from/align_to, are validated together)."""
    if not dataclasses.is_dataclass(config):
        raise SettingError(f"setting {clip(_first_name(changes, prefix))!r} does not exist: "
                           f"{prefix.rstrip('.')!r} is a single setting, not a group")
    fields = {f.name for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    new = {}
    for head, value in changes.items():
        full = _first_name(value, prefix + head + ".") if isinstance(value, dict) else prefix + head
        if head not in fields:
            raise SettingError(f"setting {clip(full)!r} does not exist; known here: {sorted(fields)}")
        current = getattr(config, head)
        if isinstance(value, dict):
            new[head] = _apply(current, value, prefix + head + ".")
        elif dataclasses.is_dataclass(current):
            raise SettingError(f"setting {clip(full)!r} is a group; set one of its fields")
        else:
            kind = hints.get(head, type(current))
            new[head] = _parse(full, value, kind) if isinstance(value, str) and kind is not str else value
            _check_finite(full, new[head])
    try:
        return dataclasses.replace(config, **new)
    except (ValueError, TypeError) as e:
        given = ", ".join(f"{prefix}{k}={clip(v if isinstance(v, str) else repr(v))}"
                          for k, v in changes.items() if not isinstance(v, dict))
        raise SettingError(f"setting {given}: {clip(str(e), 300)}" if given else clip(str(e), 300)) from None


def _first_name(changes, prefix: str) -> str:
    """The full dotted name of the first setting in a nested dict of changes."""
    while isinstance(changes, dict) and changes:
        head, changes = next(iter(changes.items()))
        prefix += head + "."
    return prefix.rstrip(".")
