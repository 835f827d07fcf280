"""Cost of multi-rate training: one jitted MRMP train step with K rates against one SRMP step.

    python -m benchmarks.mrmp_step --out benchmarks/results

The step is the real one (``jaxprune.train.make_epoch`` over a training set of exactly one batch,
so one call = one optimizer step: augmentation, K soft-masked forward/backward passes in one
vmap, KL alignment, AdamW update). Data: random SBU-shaped inputs (30 joints, 4 chunks; features
and model of ``--preset``: ``wide``, the default network, C = 64, or ``c8``, the papers' C = 8),
batch ``--batch``. Every row's step is compiled first, then the rows are timed in ``--rounds``
interleaved rounds (``timing.interleaved_medians``: a slow spell of the shared machine falls on
every row alike). Reports the median step and the ratio to SRMP (K = 1) and to dense; K = 6 is
the default MRMP. Rows "m of K" train m of the K rates
per step (``prune.rates_per_step``); "batch split among rates" gives each of the 8 rates its own
1/8 of the batch (``prune.split_batch``); the last row adds the quantile-matching term
(``prune.quantile_weight``, one sort per layer), computed at every step. The rows "KL kernel at
each weight" compute the KL's soft histogram as before linear binning (``prune.kl_resolution=0``).
Writes
``mrmp_step.json`` and ``mrmp_step.md`` into ``--out`` (``mrmp_step_c8.*`` for ``--preset c8``).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import device_line, interleaved_medians, write_report
from jaxprune.config import override
from jaxprune.data.synthetic import make_synthetic
from jaxprune.presets import preset_settings
from jaxprune.methods import make_pruner
from jaxprune.models import gcn
from jaxprune.optim import make_optimizer
from jaxprune.run_config import RunConfig
from jaxprune.task.forward import gcn_config, make_forward
from jaxprune.train import init_state, make_epoch
from jaxprune.task.loss import run_loss, score_loss

RATE_SETS = {1: (0.9,), 2: (0.5, 0.9), 4: (0.5, 0.7, 0.9, 0.99), 6: (0.5, 0.7, 0.9, 0.95, 0.98, 0.99), 8: (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)}


def train_step(method: str, rates, batch: int, preset: str = "wide", seed: int = 0, per_step: int = 0,
               extra: tuple[str, ...] = ()):
    """(jitted train step ``epoch(state, data)``, ``make_state()``, data) of ``method`` on the
    ``preset`` network: the loss of ``jaxprune train`` for those settings (``run_loss``), and the
    method's own state and per-step update (a baseline's masks, as the runner builds them), over a
    random SBU-shaped training set of exactly one batch. ``per_step``: ``prune.rates_per_step``;
    ``extra``: more settings, NAME=VALUE. The step donates its state."""
    dataset = make_synthetic(seed=seed)                       # SBU skeleton: 30 joints, 2 persons
    own = {"mrmp": [f"prune.rates={','.join(map(str, rates))}", f"prune.rates_per_step={per_step}"],
           "srmp": [f"prune.rate={rates[0]}"], "ste": [f"prune.rate={rates[0]}"]}   # only the settings it reads
    sets = [*preset_settings("sbu", preset), *own.get(method, []), *extra]
    config = override(RunConfig(method=method), sets)
    model = gcn_config(dataset, config)
    forward = make_forward(model, config.features, config.augment)
    params = gcn.init(jax.random.key(seed), model)
    optimizer = make_optimizer(1e-3, "constant", 1000, 0.01)
    pruner = make_pruner(method, params, gcn.prunable(params), config.prune, 1000)
    epoch = make_epoch(run_loss(pruner, forward, config), optimizer, batch, batch, update_fn=pruner.update_fn)
    rng = np.random.default_rng(seed)
    data = {"chunks": jnp.asarray(rng.normal(size=(batch, dataset.num_joints, config.features.chunks, 3)), jnp.float32),
            "labels": jnp.asarray(rng.integers(0, dataset.num_classes, batch), jnp.int32)}
    prune_state = pruner.init(params, jax.random.key(seed + 2), data, score_loss(forward))   # as the runner does
    return epoch, lambda: init_state(params, optimizer, jax.random.key(seed + 1), prune_state), data


def step_call(method: str, rates, batch: int, preset: str = "wide", **kw):
    """A warmed-up ``train_step`` as ``(call, ())``: each ``call()`` runs one step on the state
    the last one left, for ``timing.interleaved_medians``."""
    epoch, make_state, data = train_step(method, rates, batch, preset, **kw)
    state = [make_state()]

    def call():
        state[0], _ = epoch(state[0], data)
        return state[0].params
    for _ in range(3):                                        # compile and warm up
        jax.block_until_ready(call())
    return call, ()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=50, help="timed steps of each row (default 50)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds the steps are split into (default 5)")
    p.add_argument("--preset", default="wide", help="the network: wide (default, C = 64) or c8 (the papers' C = 8)")
    a = p.parse_args(argv)
    b, pre = a.batch, a.preset
    plan = {("dense", 0): step_call("dense", (0.0,), b, pre), ("srmp", 1): step_call("srmp", RATE_SETS[1], b, pre)}
    for k in (2, 4, 6, 8):
        plan[("mrmp", k)] = step_call("mrmp", RATE_SETS[k], b, pre)
    for m in (1, 2):
        plan[("mrmp", f"{m} of 8")] = step_call("mrmp", RATE_SETS[8], b, pre, per_step=m)
    plan[("mrmp, batch split among rates", 8)] = step_call("mrmp", RATE_SETS[8], b, pre,
                                                           extra=("prune.split_batch=true",))
    plan[("mrmp + quantile term", 8)] = step_call("mrmp", RATE_SETS[8], b, pre, extra=("prune.quantile_weight=100",))
    exact = ("prune.kl_resolution=0",)            # the KL's kernel at each weight, as before linear binning
    plan[("srmp, KL kernel at each weight", 1)] = step_call("srmp", RATE_SETS[1], b, pre, extra=exact)
    plan[("mrmp, KL kernel at each weight", 6)] = step_call("mrmp", RATE_SETS[6], b, pre, extra=exact)
    seconds = interleaved_medians(plan, rounds=a.rounds, repeats=max(1, a.repeats // a.rounds))
    srmp, dense = seconds[("srmp", 1)], seconds[("dense", 0)]
    rows = [{"method": m, "rates": k, "seconds": t, "vs_srmp": t / srmp, "vs_dense": t / dense}
            for (m, k), t in seconds.items()]
    device = device_line()
    record = {"benchmark": "mrmp_step", "batch": b, "preset": pre, "repeats": a.repeats, "rounds": a.rounds,
              "device": device, "jax": jax.__version__, "rows": rows}
    lines = [f"# One train step, SBU-shaped GCN (preset {pre}), batch {b} ({device})", "",
             f"Median of {a.rounds} interleaved rounds (``timing.interleaved_medians``), each the median of "
             f"{max(1, a.repeats // a.rounds)} steps.", "",
             "| method | rates K | median step (ms) | vs SRMP | vs dense |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['rates']} | {1e3 * r['seconds']:.2f} | {r['vs_srmp']:.2f}x | "
              f"{r['vs_dense']:.2f}x |" for r in rows]
    write_report(a.out, "mrmp_step" if pre == "wide" else f"mrmp_step_{pre}", record, lines)


if __name__ == "__main__":
    main()
