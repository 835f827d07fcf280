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
