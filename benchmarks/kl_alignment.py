"""Cost of MRMP's KL alignment alone: value and gradient of Σ_ℓ D_KL over a network's prunable layers.

    python -m benchmarks.kl_alignment --out benchmarks/results

The term MRMP and SRMP add to every train step (``jaxprune.alignment.total_alignment`` with the
defaults of ``prune.*``: 64 bins, bandwidth one bin, a shifted grid), jitted with its gradient,
on the prunable layers of the SBU GCN of preset ``wide`` (C = 64, 258k weights) and ``c8``
(C = 8). Rows: the soft histogram by linear binning at ``prune.kl_resolution`` = 64 / 128 (the
default) / 256 points a bin, and with the kernel at each weight's own position (0, the form used
before linear binning). All rows are timed in interleaved rounds (``timing.interleaved_medians``).
Also reports how far each row's value and gradient are from the exact O(n·bins) estimator.
Writes ``kl_alignment.json`` and ``kl_alignment.md`` into ``--out``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import device_line, interleaved_medians, write_report
from jaxprune.alignment import total_alignment
from jaxprune.config import override
from jaxprune.data.synthetic import make_synthetic
from jaxprune.models import gcn
from jaxprune.presets import preset_settings
from jaxprune.priors import layer_priors
from jaxprune.run_config import RunConfig
from jaxprune.task.forward import gcn_config

RESOLUTIONS = (64, 128, 256, 0)


def network(preset: str):
    """(params, prunable, priors) of the SBU-shaped GCN of ``preset`` at initialisation."""
    config = override(RunConfig(method="srmp"), preset_settings("sbu", preset))
    params = gcn.init(jax.random.key(0), gcn_config(make_synthetic(seed=0), config))
    prunable = gcn.prunable(params)
    return params, prunable, layer_priors(params, prunable)


def kl_call(params, prunable, priors, resolution):
    """Jitted value and gradient of the KL at ``resolution`` (0: the kernel at each weight;
    None: the exact O(n·bins) form), on a grid shifted by 0.3 of a bin."""
    exact = dict(window=None, resolution=None) if resolution is None else dict(resolution=resolution or None)

    def kl(p):
        return total_alignment(p, prunable, priors, bins=64, bandwidth=1.0, shift=0.3, **exact)
    return jax.jit(jax.value_and_grad(kl))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=10)
    a = p.parse_args(argv)
    plan, errors, sizes = {}, {}, {}
    for preset in ("wide", "c8"):
        params, prunable, priors = network(preset)
        sizes[preset] = sum(int(np.size(w)) for w, k in zip(jax.tree.leaves(params), jax.tree.leaves(prunable)) if k)
        exact_value, exact_grad = kl_call(params, prunable, priors, None)(params)
        for r in RESOLUTIONS:
            fn = kl_call(params, prunable, priors, r)
            value, grad = jax.block_until_ready(fn(params))
            top = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(exact_grad))
            errors[(preset, r)] = (abs(float(value - exact_value)),
                                   max(float(jnp.abs(g - e).max()) for g, e in
                                       zip(jax.tree.leaves(grad), jax.tree.leaves(exact_grad))) / top)
            plan[(preset, r)] = (fn, (params,))
    seconds = interleaved_medians(plan, rounds=a.rounds, repeats=a.repeats)
    rows = [{"preset": pre, "weights": sizes[pre], "kl_resolution": r, "seconds": t,
             "vs_per_weight": t / seconds[(pre, 0)], "value_error_nats": errors[(pre, r)][0],
             "gradient_error": errors[(pre, r)][1]} for (pre, r), t in seconds.items()]
    device = device_line()
    record = {"benchmark": "kl_alignment", "device": device, "jax": jax.__version__, "rounds": a.rounds,
              "repeats": a.repeats, "rows": rows}
    lines = [f"# KL alignment, value and gradient, all prunable layers of the SBU GCN ({device})", "",
             f"Median of {a.rounds} interleaved rounds of {a.repeats} calls. Errors against the exact "
             "O(n·bins) estimator: the value in nats, the gradient's largest difference over its largest entry.", "",
             "| network | weights | kl_resolution | ms per call | vs kernel at each weight | value error (nats) | gradient error |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['preset']} | {r['weights']} | {r['kl_resolution'] or '0 (kernel at each weight)'} | "
              f"{1e3 * r['seconds']:.2f} | {r['vs_per_weight']:.2f}x | {r['value_error_nats']:.1e} | "
              f"{r['gradient_error']:.1e} |" for r in rows]
    write_report(a.out, "kl_alignment", record, lines)


if __name__ == "__main__":
    main()
