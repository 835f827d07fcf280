"""Data parallelism (jaxprune.parallel): the mesh rules on one device, and on 4 simulated CPU devices
(``--xla_force_host_platform_device_count``, in a subprocess) the same training result as one device
within float tolerance; the multi-host start's argument checks."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest

from jaxprune.config import SettingError, override
from jaxprune.hosts import initialize_distributed
from jaxprune.parallel import data_mesh, mesh_for_batch
from jaxprune.run_config import RunConfig


def test_one_device_needs_no_mesh():
    if len(jax.devices()) != 1:
        pytest.skip(f"this process sees {len(jax.devices())} devices; the one-device rules need one")
    assert mesh_for_batch(0, 256) is None and mesh_for_batch(1, 7) is None
    with pytest.raises(ValueError, match="this machine has 1 device"):
        data_mesh(4)
    with pytest.raises(SettingError, match="devices must be >= 0"):
        override(RunConfig(), ["train.devices=-2"])


def test_multi_host_start_needs_all_three_settings(monkeypatch):
    for name in ("JAXPRUNE_COORDINATOR", "JAXPRUNE_NUM_PROCESSES", "JAXPRUNE_PROCESS_ID", "JAXPRUNE_DISTRIBUTED"):
        monkeypatch.delenv(name, raising=False)
    assert initialize_distributed() is False                     # nothing asked: single host
    with pytest.raises(ValueError, match="missing: number of processes, process id"):
        initialize_distributed("10.0.0.1:1234")
    monkeypatch.setenv("JAXPRUNE_NUM_PROCESSES", "2")
    with pytest.raises(ValueError, match="missing: coordinator address, process id"):
        initialize_distributed()


SCRIPT = textwrap.dedent("""
    import json, jax, numpy as np
    from jaxprune.config import override
    from jaxprune.data.synthetic import make_synthetic
    from jaxprune.parallel import mesh_for_batch
    from jaxprune.run_config import RunConfig
    from jaxprune.runner import train_fold
    data = make_synthetic(seed=0)
    out = {"devices": len(jax.devices()), "auto_mesh": mesh_for_batch(0, 64).size}
    params = {}
    for devices in (1, 4):
        for method in ("mrmp",):   # the stricter case; dense multi-process runs in test_multihost
            # one block: the per-pair backward (the default, kept here) compiles far less (test 96 -> 58 s)
            cfg = override(RunConfig(method=method), ["model.channels=4", "model.hidden=16", "model.num_blocks=1",
                           "train.epochs=15",
                           "train.batch_size=64", "prune.rates=0.5,0.9", "prune.eval_rates=",
                           f"train.devices={devices}"])
            r = train_fold(data, 1, cfg, progress=False)
            params[(devices, method)] = jax.tree.leaves(r["params"])
            out[f"accuracy_{method}_{devices}"] = [row["accuracy"] for row in r["rates"]]
    for method in ("mrmp",):
        out[f"max_diff_{method}"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                                        for a, b in zip(params[(1, method)], params[(4, method)]))
        out[f"max_abs_{method}"] = max(float(np.max(np.abs(np.asarray(a)))) for a in params[(1, method)])
    from jaxprune.parallel import data_mesh, gather_rows, shard_rows
    mesh, x = data_mesh(4), np.arange(30, dtype=np.float32).reshape(10, 3)
    placed = shard_rows({"x": x}, mesh)["x"]                  # 10 rows padded to 12: 3 per device
    out["rows_per_device"] = [s.data.shape[0] for s in placed.addressable_shards]
    index = np.array([9, 0, 4, 4, 7, 1, 2, 3])
    got = jax.jit(lambda d, i: gather_rows(d, i, mesh))({"x": placed}, index)["x"]
    out["gathered_exactly"] = bool(np.array_equal(np.asarray(got), x[index]))
    out["batch_split"] = [s.data.shape[0] for s in got.addressable_shards]
    print("RESULT " + json.dumps(out))
""")


def test_four_devices_train_like_one():
    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["devices"] == 4 and out["auto_mesh"] == 4
    # each device holds its share of the training set and receives its slice of every batch
    assert out["rows_per_device"] == [3, 3, 3, 3] and out["batch_split"] == [2, 2, 2, 2]
    assert out["gathered_exactly"]
    for method in ("mrmp",):   # 15 epochs of Adam: rounding of the sharded reductions only
        assert out[f"max_diff_{method}"] <= 1e-5 * max(1.0, out[f"max_abs_{method}"]), out
        assert out[f"accuracy_{method}_1"] == pytest.approx(out[f"accuracy_{method}_4"], abs=1.6), out
