"""JAX's persistent compilation cache for experiment grids: each program compiled once per machine.

A grid trains hundreds of jobs whose programs are identical (same shapes, other seeds and folds),
and every job compiled them again: about 10 s of a 2000-epoch SNIP job's 80 s on the 2-core CPU,
most of it small eager ops of initialisation, scoring and evaluation. With the cache a job reads
the executables the first one wrote: a 60-epoch SBU fold of the wide network took 16.7 -> 5.5 s
(SNIP) and 14.4 -> 5.7 s (SRMP) on the 2-core AMD EPYC, with the same parameters bit for bit and
the same accuracies (a cached executable is the program a fresh compile makes).

The folder is ``$JAX_COMPILATION_CACHE_DIR`` when set, else
``$XDG_CACHE_HOME/jaxprune/xla-<jax version>-<CPU fingerprint>`` (default ``~/.cache``): XLA:CPU
refuses executables built for another CPU anyway, so machines that share a home folder keep their
own. ``JAXPRUNE_COMPILE_CACHE=0`` turns JAX's cache off for the grid, whatever folder is set.

The folder has no size limit (jax's needs the ``filelock`` package): a width-grid seed of the wide
network wrote about 1000 entries, 65 MB. Delete the folder to clear it; an entry cut short by a
killed worker is only warned about and compiled again, every time, until the folder is cleared.
When jax already set up its cache with another folder in this process, that folder stays.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path


def cpu_fingerprint() -> str:
    """12 hex digits naming this machine's architecture and CPU feature flags."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line.split(":", 1)[1].strip()
                break
    except OSError:
        flags = platform.processor()
    return hashlib.sha1(f"{platform.machine()} {flags}".encode()).hexdigest()[:12]


def cache_folder() -> Path:
    """Where the cache goes when ``JAX_COMPILATION_CACHE_DIR`` is not set (module docstring)."""
    from importlib.metadata import version
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "jaxprune" / f"xla-{version('jax')}-{cpu_fingerprint()}"


def use_compile_cache() -> str | None:
    """Turns the persistent cache on for this process and the workers it spawns (they inherit the
    environment); every compiled program is kept, however quick its compile. Returns the folder,
    or None when ``JAXPRUNE_COMPILE_CACHE=0`` (which also turns off a folder the user set)."""
    if os.environ.get("JAXPRUNE_COMPILE_CACHE", "1").strip() == "0":
        os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
        if "jax" in sys.modules:
            import jax
            jax.config.update("jax_enable_compilation_cache", False)
        return None
    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(cache_folder())
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    if "jax" in sys.modules:                  # imported already: its settings were read at import
        import jax
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs",
                          float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
    return folder
