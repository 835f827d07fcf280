"""Wall-clock timing of jitted calls: compile first, then the median of repeated calls."""

from __future__ import annotations

import json
import os
import platform
import time

from pathlib import Path

import jax
import numpy as np


def median_seconds(fn, *args, repeats: int = 20, min_seconds: float = 0.0) -> float:
    """Median seconds of ``fn(*args)`` (already jitted) over ``repeats`` calls after one warm-up
    call; keeps repeating until ``min_seconds`` of timed calls have run."""
    jax.block_until_ready(fn(*args))
    times, total = [], 0.0
    while len(times) < repeats or total < min_seconds:
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
        total += times[-1]
    return float(np.median(times))


def interleaved_medians(calls: dict, rounds: int = 5, repeats: int = 6, min_seconds: float = 0.05) -> dict:
    """{name: median seconds} of several jitted calls ``{name: (fn, args)}`` timed in ``rounds``
    rounds, each round timing every call in turn (``median_seconds`` with ``repeats``): a slow
    spell of a shared machine then falls on every call alike, not on whichever ran during it.
    The figure is the median of a call's per-round medians."""
    per_round = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (fn, args) in calls.items():
            per_round[name].append(median_seconds(fn, *args, repeats=repeats, min_seconds=min_seconds))
    return {name: float(np.median(times)) for name, times in per_round.items()}


def machine() -> str:
    """The host: CPU model (from /proc/cpuinfo where there is one), architecture, core count."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {platform.machine()}, {os.cpu_count()} cores"


def device_line() -> str:
    """The jax backend and device kind, and the host."""
    return f"{jax.default_backend()} ({jax.devices()[0].device_kind}), {machine()}"


def write_report(out: str | os.PathLike, name: str, record: dict, lines: list[str]) -> None:
    """Writes ``out/<name>.json`` (the record) and ``out/<name>.md`` (the lines), and prints the latter."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    text = "\n".join(lines) + "\n"
    (out / f"{name}.md").write_text(text)
    print(text)
