"""How one jitted train step grows: step time and peak memory against batch size, number of joints,
width, number of MRMP rates and training-set size.

    python -m benchmarks.scaling --out benchmarks/results

Each row changes one size from the base (batch 256, 50 joints as in NTU's 25 joints × 2 persons,
8 channels / 128 hidden, SRMP = one rate, a training set of one batch) and times the real step
(``jaxprune.train.make_epoch``; the training-set-size rows hold the whole set on the device and
report the time per step of an epoch over it). Peak memory is XLA's own figure for the
compiled step from its buffer assignment (``compiled.memory_analysis()``: arguments + outputs −
donated + temporaries, an upper bound on what is live at once), the same on every run. Writes ``scaling.json`` and ``scaling.md`` into ``--out``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import device_line, median_seconds, write_report
from jaxprune.data.augment import AugmentConfig
from jaxprune.data.features import FeatureConfig
from jaxprune.methods import make_pruner
from jaxprune.methods.config import PruneConfig
from jaxprune.models import gcn
from jaxprune.optim import make_optimizer
from jaxprune.task.forward import make_forward
from jaxprune.train import init_state, make_epoch
from jaxprune.task.loss import task_loss

BASE = {"batch": 256, "joints": 50, "channels": 8, "hidden": 128, "rates": 1, "sequences": 256}
RATES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


def step_cost(batch: int, joints: int, channels: int, hidden: int, rates: int, sequences: int,
              repeats: int) -> dict:
    """Median seconds and XLA peak bytes of one train step (one epoch when sequences > batch)."""
    features = FeatureConfig()
    edges = tuple((j, j + 1) for j in range(joints - 1))               # a chain: the graph's size is what matters
    model = gcn.GCNConfig(num_nodes=joints, num_features=features.num_features(), num_classes=60,
                          channels=channels, hidden=hidden, edges=edges)
    forward = make_forward(model, features, AugmentConfig())
    params = gcn.init(jax.random.key(0), model)
    method = "srmp" if rates == 1 else "mrmp"
    prune = PruneConfig(rate=0.9, rates=RATES[:rates] if rates > 1 else (0.9,))
    pruner = make_pruner(method, params, gcn.prunable(params), prune, 1000)
    optimizer = make_optimizer(1e-3, "constant", 1000, 0.0)
    epoch = make_epoch(task_loss(pruner, forward), optimizer, sequences, batch)
    rng = np.random.default_rng(0)
    data = {"chunks": jnp.asarray(rng.normal(size=(sequences, joints, features.chunks, 3)), jnp.float32),
            "labels": jnp.asarray(rng.integers(0, 60, sequences), jnp.int32)}
    state = init_state(params, optimizer, jax.random.key(1))
    m = epoch.lower(state, data).compile().memory_analysis()
    peak = m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
    holder = {"state": state}

    def one_epoch():
        holder["state"], metrics = epoch(holder["state"], data)
        return holder["state"].params
    seconds = median_seconds(one_epoch, repeats=repeats)
    steps = -(-sequences // batch)
    return {"seconds_per_step": seconds / steps, "peak_bytes": int(peak)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="two values per size (a smoke run)")
    a = p.parse_args(argv)
    sweeps = {"batch": [64, 256, 1024, 4096], "joints": [25, 50, 100, 200], "channels": [8, 16, 32, 64],
              "hidden": [64, 128, 512, 2048], "rates": [1, 2, 4, 8], "sequences": [256, 2048, 16384, 65536]}
    if a.quick:
        sweeps = {k: v[:2] for k, v in sweeps.items()}
    rows = []
    for name, values in sweeps.items():
        for v in values:
            sizes = {**BASE, name: v}
            if name == "batch":                    # a training set of one batch, as at the base
                sizes["sequences"] = v
            cost = step_cost(**sizes, repeats=a.repeats)
            rows.append({"varied": name, **sizes, **cost})
            print(f"{name}={v}: {1e3 * cost['seconds_per_step']:.2f} ms/step, "
                  f"peak {cost['peak_bytes'] / 2 ** 20:.1f} MiB", flush=True)
    record = {"benchmark": "scaling", "device": device_line(), "jax": jax.__version__, "base": BASE, "rows": rows}
    lines = [f"# Train-step scaling ({record['device']})", "",
             "One size varied at a time from the base (batch 256, 50 joints, 8 channels, 128 hidden, SRMP, "
             "256 sequences). Time: median ms per optimizer step. Peak: XLA's peak memory of the compiled "
             "step (MiB), which includes the training set when it is held on the device.", "",
             "| varied | value | ms / step | peak MiB |", "|---|---|---|---|"]
    lines += [f"| {r['varied']} | {r[r['varied']]} | {1e3 * r['seconds_per_step']:.2f} | "
              f"{r['peak_bytes'] / 2 ** 20:.2f} |" for r in rows]
    write_report(a.out, "scaling", record, lines)


if __name__ == "__main__":
    main()
