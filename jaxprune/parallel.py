"""Data parallelism with ``jax.sharding``: a 1-D device mesh, the batch sharded, parameters replicated.

Training code marks each step's batch with ``shard_batch`` inside the jitted step and places the
train state with ``replicate``; XLA then runs every device on its slice of the batch and
all-reduces the gradients (GSPMD). On one device both are no-ops, so the same code runs
everywhere.

Multi-host (a GPU cluster, a TPU pod slice): call ``initialize_distributed`` before anything
else touches jax, on every host; ``jax.devices()`` then lists the devices of all hosts and the
mesh spans them.
"""

from __future__ import annotations

import os
from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (default all, on every host)."""
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if not 1 <= n <= len(devices):
        raise ValueError(f"setting train.devices={num_devices}: this machine has {len(devices)} device(s)")
    # Auto axes: XLA propagates the batch sharding through the step (GSPMD); jax's default for
    # make_mesh is Explicit axes, which would need every op's sharding spelled out.
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices[:n])


def mesh_for_batch(devices: int, batch: int) -> Mesh | None:
    """The data mesh for the ``train.devices`` setting and a step's ``batch``; None for one device.

    ``devices`` 0 takes the most devices (up to all) whose count divides the batch; a given count
    must divide it (a clear error otherwise).
    """
    available = len(jax.devices())
    if devices == 0:
        n = max(k for k in range(1, available + 1) if batch % k == 0)
    else:
        n = devices
        if n <= available and batch % n:
            raise ValueError(f"setting train.devices={n}: a batch of {batch} samples does not split over {n} "
                             f"devices; use a train.batch_size that is a multiple of {n}")
    return None if n == 1 else data_mesh(n)


def shard_batch(tree: Any, mesh: Mesh | None) -> Any:
    """Inside a jitted function: every array's leading (batch) axis split over the mesh."""
    if mesh is None or mesh.size == 1:
        return tree
    spec = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, spec), tree)


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """``tree`` placed on every device of the mesh (unchanged without a mesh or with one device)."""
    if mesh is None or mesh.size == 1:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
    """Starts multi-host jax when asked: by arguments, or by ``JAXPRUNE_COORDINATOR`` /
    ``JAXPRUNE_NUM_PROCESSES`` / ``JAXPRUNE_PROCESS_ID``, or (``JAXPRUNE_DISTRIBUTED=auto``) by
    jax's own cluster detection (TPU pods, SLURM, Open MPI). Returns whether it started."""
    env = os.environ
    coordinator = coordinator or env.get("JAXPRUNE_COORDINATOR")
    if num_processes is None and env.get("JAXPRUNE_NUM_PROCESSES"):
        num_processes = int(env["JAXPRUNE_NUM_PROCESSES"])
    if process_id is None and env.get("JAXPRUNE_PROCESS_ID"):
        process_id = int(env["JAXPRUNE_PROCESS_ID"])
    if coordinator or num_processes is not None or process_id is not None:
        missing = [n for n, v in (("coordinator address", coordinator), ("number of processes", num_processes),
                                  ("process id", process_id)) if v is None]
        if missing:
            raise ValueError(f"multi-host start needs the coordinator address, the number of processes and this "
                             f"process's id; missing: {', '.join(missing)}")
        jax.distributed.initialize(coordinator, num_processes, process_id)
        return True
    if env.get("JAXPRUNE_DISTRIBUTED") == "auto":
        jax.distributed.initialize()
        return True
    return False
