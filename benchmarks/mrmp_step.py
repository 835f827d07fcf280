"""Cost of multi-rate training: one jitted MRMP train step with K rates against one SRMP step.

    python -m benchmarks.mrmp_step --out benchmarks/results

The step is the real one (``jaxprune.train.make_epoch`` over a training set of exactly one batch,
so one call = one optimizer step: augmentation, K soft-masked forward/backward passes in one
vmap, KL alignment, AdamW update). Data: random SBU-shaped inputs (30 joints, 4 chunks; features
and model of the SBU recipe at C = 8, preset ``c8``), batch ``--batch``. Reports the median over ``--repeats`` timed calls after
compilation, and the ratio to SRMP (K = 1) and to dense. Rows "m of K" train m of the K rates
per step (``prune.rates_per_step``); "batch split among rates" gives each of the 8 rates its own
1/8 of the batch (``prune.split_batch``); the last row adds the quantile-matching term
(``prune.quantile_weight``, one sort per layer), computed at every step. Writes
``mrmp_step.json`` and ``mrmp_step.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import device_line, write_report
from jaxprune.config import override
from jaxprune.data.synthetic import make_synthetic
from jaxprune.presets import preset_settings
from jaxprune.methods import make_pruner
from jaxprune.models import gcn
from jaxprune.optim import make_optimizer
from jaxprune.run_config import RunConfig
from jaxprune.task.forward import gcn_config, make_forward
from jaxprune.train import init_state, make_epoch
from jaxprune.task.loss import task_loss

RATE_SETS = {1: (0.9,), 2: (0.5, 0.9), 4: (0.5, 0.7, 0.9, 0.99), 8: (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)}


def step_time(method: str, rates, batch: int, repeats: int, seed: int = 0, per_step: int = 0,
              extra: tuple[str, ...] = ()) -> float:
    """Median seconds of one jitted train step (``per_step``: ``prune.rates_per_step``; ``extra``:
    more settings, NAME=VALUE)."""
    dataset = make_synthetic(seed=seed)                       # SBU skeleton: 30 joints, 2 persons
    own = {"mrmp": [f"prune.rates={','.join(map(str, rates))}", f"prune.rates_per_step={per_step}"],
           "srmp": [f"prune.rate={rates[0]}"]}          # each method is given only the settings it reads
    sets = [*preset_settings("sbu", "c8"), *own.get(method, []), *extra]
    config = override(RunConfig(method=method), sets)
    model = gcn_config(dataset, config)
    forward = make_forward(model, config.features, config.augment)
    params = gcn.init(jax.random.key(seed), model)
    optimizer = make_optimizer(1e-3, "constant", 1000, 0.01)
    pruner = make_pruner(method, params, gcn.prunable(params), config.prune, 1000)
    epoch = make_epoch(task_loss(pruner, forward, 0.1), optimizer, batch, batch)
    rng = np.random.default_rng(seed)
    data = {"chunks": jnp.asarray(rng.normal(size=(batch, dataset.num_joints, config.features.chunks, 3)), jnp.float32),
            "labels": jnp.asarray(rng.integers(0, dataset.num_classes, batch), jnp.int32)}
    state = init_state(params, optimizer, jax.random.key(seed + 1))
    for _ in range(3):                                        # compile and warm up
        state, _ = epoch(state, data)
    jax.block_until_ready(state.params)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        state, _ = epoch(state, data)
        jax.block_until_ready(state.params)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=50)
    a = p.parse_args(argv)
    rows = [{"method": "dense", "rates": 0, "seconds": step_time("dense", (0.0,), a.batch, a.repeats)}]
    rows.append({"method": "srmp", "rates": 1, "seconds": step_time("srmp", RATE_SETS[1], a.batch, a.repeats)})
    for k in (2, 4, 8):
        rows.append({"method": "mrmp", "rates": k, "seconds": step_time("mrmp", RATE_SETS[k], a.batch, a.repeats)})
    for m in (1, 2):
        rows.append({"method": "mrmp", "rates": f"{m} of 8", "seconds":
                     step_time("mrmp", RATE_SETS[8], a.batch, a.repeats, per_step=m)})
    rows.append({"method": "mrmp, batch split among rates", "rates": 8, "seconds":
                 step_time("mrmp", RATE_SETS[8], a.batch, a.repeats, extra=("prune.split_batch=true",))})
    rows.append({"method": "mrmp + quantile term", "rates": 8, "seconds":
                 step_time("mrmp", RATE_SETS[8], a.batch, a.repeats, extra=("prune.quantile_weight=100",))})
    srmp, dense = rows[1]["seconds"], rows[0]["seconds"]
    for r in rows:
        r["vs_srmp"] = r["seconds"] / srmp
        r["vs_dense"] = r["seconds"] / dense
    device = device_line()
    record = {"benchmark": "mrmp_step", "batch": a.batch, "repeats": a.repeats, "device": device,
              "jax": jax.__version__, "rows": rows}
    lines = [f"# One train step, SBU-shaped GCN, batch {a.batch} ({device})", "",
             "| method | rates K | median step (ms) | vs SRMP | vs dense |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['rates']} | {1e3 * r['seconds']:.2f} | {r['vs_srmp']:.2f}x | "
              f"{r['vs_dense']:.2f}x |" for r in rows]
    write_report(a.out, "mrmp_step", record, lines)


if __name__ == "__main__":
    main()
