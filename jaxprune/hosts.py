"""Several processes (hosts) as one run: start-up, who writes, agreed decisions, and dead peers.

jax's multi-controller model runs the same program in every process; ``jax.devices()`` then
lists every process's devices and one mesh spans them (``jaxprune.parallel``). What is not
jax's job is here:

- ``initialize_distributed`` starts ``jax.distributed`` from arguments or environment variables;
  a peer that stops sending heartbeats for ``JAXPRUNE_PEER_TIMEOUT`` seconds (default 30) or a
  coordinator that goes away ends every survivor (jax aborts them; ``jaxprune.host_guard`` turns
  that into one error line), and a collective that fails on a lost peer ends this one (``stop``).
- ``is_writer``: only process 0 writes run files and results (orbax saves on every process).
- ``agree`` makes process 0's decision (a refused start, say) every process's decision, before
  anyone writes; ``barrier`` waits for every process.

On one process every function is a no-op, so single-host code runs unchanged.
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np

MESSAGE_BYTES = 2048


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
    """Starts multi-host jax when asked: by arguments, or by ``JAXPRUNE_COORDINATOR`` /
    ``JAXPRUNE_NUM_PROCESSES`` / ``JAXPRUNE_PROCESS_ID``, or (``JAXPRUNE_DISTRIBUTED=auto``) by
    jax's own cluster detection (TPU pods, SLURM, Open MPI). Returns whether it started.

    ``JAXPRUNE_PEER_TIMEOUT`` (seconds, default 30) bounds how long a survivor runs on after a
    peer or the coordinator stopped; ``JAXPRUNE_START_TIMEOUT`` (default 300) how long processes
    wait for each other at the start. ValueError for incomplete or invalid settings, or a start
    that fails.
    """
    if not requested(coordinator, num_processes, process_id):
        return False
    env = os.environ
    coordinator = coordinator or env.get("JAXPRUNE_COORDINATOR")
    if num_processes is None and env.get("JAXPRUNE_NUM_PROCESSES"):
        num_processes = _env_int("JAXPRUNE_NUM_PROCESSES", 1)
    if process_id is None and env.get("JAXPRUNE_PROCESS_ID"):
        process_id = _env_int("JAXPRUNE_PROCESS_ID", 0)
    asked = coordinator or num_processes is not None or process_id is not None   # else: cluster detection
    if asked:
        missing = [n for n, v in (("coordinator address", coordinator), ("number of processes", num_processes),
                                  ("process id", process_id)) if v is None]
        if missing:
            raise ValueError(f"multi-host start needs the coordinator address, the number of processes and this "
                             f"process's id; missing: {', '.join(missing)}")
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ValueError(f"multi-host start: process id {process_id} is not in [0, {num_processes}) "
                             f"for {num_processes} process(es)")
    peer_timeout = _env_int("JAXPRUNE_PEER_TIMEOUT", 30, minimum=2)
    start_timeout = _env_int("JAXPRUNE_START_TIMEOUT", 300, minimum=1)
    where = f"coordinator {coordinator}" if asked else "the detected cluster"
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id, initialization_timeout=start_timeout,
                                   heartbeat_timeout_seconds=peer_timeout)
    except Exception as e:   # jax raises XlaRuntimeError (DEADLINE_EXCEEDED, UNAVAILABLE, ...) or RuntimeError
        raise ValueError(f"multi-host start with {where} failed within {start_timeout} s "
                         f"(JAXPRUNE_START_TIMEOUT): {first_line(e)}") from None
    return True


def requested(coordinator: str | None = None, num_processes: int | None = None,
              process_id: int | None = None) -> bool:
    """Whether these arguments or the environment ask ``initialize_distributed`` for several hosts."""
    env = os.environ
    return (coordinator is not None or num_processes is not None or process_id is not None
            or any(env.get(n) for n in ("JAXPRUNE_COORDINATOR", "JAXPRUNE_NUM_PROCESSES", "JAXPRUNE_PROCESS_ID"))
            or env.get("JAXPRUNE_DISTRIBUTED") == "auto")


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text[:60]!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"environment variable {name}={value} must be >= {minimum}")
    return value


def first_line(e: BaseException, limit: int = 300) -> str:
    """``Type: first line`` of the root cause of ``e`` (its ``__cause__`` chain), shortened."""
    while e.__cause__ is not None:
        e = e.__cause__
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:limit] if lines else ''}"


def process_count() -> int:
    return jax.process_count()


def process_index() -> int:
    return jax.process_index()


def is_writer() -> bool:
    """Whether this process writes run files and results: process 0 (and any single process)."""
    return jax.process_index() == 0


_barriers_passed = 0   # barrier ids must be unique; every process passes the same barriers in order


def barrier(name: str) -> None:
    """Waits until every process has reached the barrier ``name``, for up to ``JAXPRUNE_START_TIMEOUT``
    seconds (no-op on one process). The coordination service's barrier, not a collective: gloo's
    collectives give up after 30 s, so a peer minutes behind (compiling, restoring) must be waited
    for here, before the next collective. A peer that dies meanwhile ends this process as any lost
    peer does (``host_guard``); RuntimeError when the others do not come in time."""
    global _barriers_passed
    if jax.process_count() == 1:
        return
    from jax._src import distributed   # its client has no public handle; orbax and jax's own serialization use it
    timeout = _env_int("JAXPRUNE_START_TIMEOUT", 300, minimum=1)
    _barriers_passed += 1
    try:
        distributed.global_state.client.wait_at_barrier(f"jaxprune-{_barriers_passed}-{name}", timeout * 1000)
    except Exception as e:   # DEADLINE_EXCEEDED, or the service's report of a lost peer
        raise RuntimeError(f"process {jax.process_index()} waited {timeout} s (JAXPRUNE_START_TIMEOUT) at "
                           f"'{name}' for the other processes: {first_line(e)}") from None


def agree(decide, error_types: tuple = (ValueError,)):
    """Runs ``decide()`` on process 0 and makes its outcome every process's: its return value
    (None, True or False), or the error it raised: process 0 re-raises it, the others raise an
    error of the same type (the first of ``error_types`` it is an instance of, else RuntimeError)
    with the same message. On one process: ``decide()``.
    """
    if jax.process_count() == 1:
        return decide()
    barrier("agree")   # the broadcast below is a collective: no process may be more than 30 s late to it
    from jax.experimental import multihost_utils
    code, text, error = 0, b"", None
    if jax.process_index() == 0:
        try:
            code = {None: 1, True: 2, False: 3}[decide()]
        except Exception as e:
            error = e
            kinds = [i for i, kind in enumerate(error_types) if isinstance(e, kind)]
            code, text = 4 + (kinds[0] if kinds else len(error_types)), str(e).encode()
    buf = np.asarray(multihost_utils.broadcast_one_to_all(np.concatenate([np.int32([code]), _encode(text)])))
    if error is not None:
        raise error
    code = int(buf[0])
    if code < 4:
        return {1: None, 2: True, 3: False}[code]
    message = _decode(buf[1:])
    kind = error_types[code - 4] if code - 4 < len(error_types) else RuntimeError
    raise kind(message)


def check_same(value: str, what: str) -> None:
    """ValueError on every process unless ``value`` (e.g. a digest of the data each one read) is
    the same on all of them (no-op on one process)."""
    if jax.process_count() == 1:
        return
    barrier("check same")   # as in agree: the gather below is a collective
    from jax.experimental import multihost_utils
    every = np.asarray(multihost_utils.process_allgather(_encode(value.encode())))   # (processes, bytes)
    differ = [p for p in range(len(every)) if not np.array_equal(every[p], every[0])]
    if differ:
        raise ValueError(f"the processes do not agree on {what}: process(es) {differ} differ from process 0 "
                         "(every host must read the same data and settings)")


def _encode(text: bytes) -> np.ndarray:
    """``text`` as a fixed-size (MESSAGE_BYTES,) int32 array (cut, zero-padded) for a collective."""
    buf = np.zeros(MESSAGE_BYTES, np.int32)
    chars = np.frombuffer(text[:MESSAGE_BYTES], np.uint8)
    buf[:len(chars)] = chars
    return buf


def _decode(buf: np.ndarray) -> str:
    return bytes(np.asarray(buf).astype(np.uint8)).rstrip(b"\0").decode(errors="replace")


def stop(message: str) -> None:
    """Ends this process at once with one ``jaxprune: error: process I: ...`` line on stderr and
    status 2 (jax's shutdown at exit would wait for a lost peer)."""
    sys.stdout.flush()
    sys.stderr.write(f"jaxprune: error: process {jax.process_index()}: {message}\n")
    sys.stderr.flush()
    os._exit(2)
