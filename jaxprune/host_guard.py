"""One clear line instead of a C++ stack trace when a multi-host run loses a peer.

When a process of a ``jax.distributed`` run dies, or the coordinator (process 0) goes away, jax
ends every survivor from inside its runtime: a fatal log line, a C++ stack trace and SIGABRT,
which Python cannot catch. ``run_guarded`` runs the command in a child process and watches it: the
child's stderr passes through line by line until jax's fatal report starts; that report (and the
runtime's log lines just before it) is replaced by one ``jaxprune: error:`` line, exit status 2.
The child dies with its guard (Linux), so stopping the guard stops the process it runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

GUARDED = "JAXPRUNE_GUARDED"   # set in the child: it runs the command itself
STARTED_FD = "JAXPRUNE_GUARD_FD"   # the child writes a byte here once jax.distributed has started
FATAL = "Terminating process because the JAX distributed service detected fatal errors"
RUNTIME_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")   # absl/glog lines of jax's runtime
CONTINUED = ("Additional GRPC", ":", " ", "\t", "\n")           # ... and the lines that continue them


def guarded() -> bool:
    """Whether this process is a guard's child (or guarding is off: ``JAXPRUNE_GUARDED=1``)."""
    return os.environ.get(GUARDED) == "1"


def started() -> None:
    """In a guarded child: tells the guard that the multi-host start succeeded."""
    fd = os.environ.pop(STARTED_FD, None)
    if fd is not None:
        try:
            os.write(int(fd), b"1")
            os.close(int(fd))
        except (OSError, ValueError):
            pass


def run_guarded(argv: list[str], process: str, coordinator: str) -> int:
    """Runs ``python -m jaxprune.cli *argv`` as a guarded child; returns its exit status, or 2
    after one error line naming ``process`` when jax's runtime ended it (at the start: naming the
    ``coordinator`` it could not start with)."""
    read_end, write_end = os.pipe()
    env = {**os.environ, GUARDED: "1", STARTED_FD: str(write_end)}
    child = subprocess.Popen([sys.executable, "-m", "jaxprune.cli", *argv], stderr=subprocess.PIPE, env=env,
                             pass_fds=(write_end,),
                             preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    os.close(write_end)
    forward = lambda signum, frame: child.send_signal(signum)   # noqa: E731 - a scheduler's stop
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the terminal's Ctrl-C reaches the child itself
    held, fatal = [], None
    for raw in child.stderr:
        line = raw.decode(errors="replace")
        if fatal is not None:
            continue
        if FATAL in line:
            fatal = line.split("absl::Status:", 1)[-1].strip().split(". ")[0] if "absl::Status:" in line else ""
            held = []
        elif RUNTIME_LOG.match(line) or (held and line.startswith(CONTINUED)):
            held.append(line)   # shown unless a fatal report follows
        else:
            sys.stderr.write("".join(held) + line)
            sys.stderr.flush()
            held = []
    status = child.wait()
    began = os.read(read_end, 1) == b"1"
    os.close(read_end)
    sys.stderr.write("".join(held))
    detail = f" (jax: {fatal[:200]})" if fatal else ""
    if (fatal is not None or status == -signal.SIGABRT) and not began:
        sys.stderr.write(f"jaxprune: error: process {process}: the multi-host start with coordinator {coordinator} "
                         f"failed: not every process joined within JAXPRUNE_START_TIMEOUT seconds, or the "
                         f"coordinator cannot be reached{detail}\n")
        return 2
    if fatal is not None or status == -signal.SIGABRT:
        sys.stderr.write(f"jaxprune: error: process {process}: the run lost a peer process or the coordinator "
                         f"and jax stopped this one{detail}. Resume with --resume once every process can "
                         "start again\n")
        return 2
    return status if status >= 0 else 128 - status


def _die_with_parent() -> None:
    """In the child before it starts: SIGKILL when the guard dies (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
