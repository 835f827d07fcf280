"""Jitted inference of a CTF-pruned GCN: dense vs masked vs compact vs BCOO, at several rates and batches.

    python -m benchmarks.ctf_inference --out benchmarks/results
    python -m benchmarks.ctf_inference --models runs/sbu_ctf      # fold-1 models of experiments.sbu_ctf

The four forms of one network: dense (the unpruned latent weights, the reference cost), masked
(the same shapes with the pruned weights set to zero), compact (``jaxprune.models.compact``: the smaller
dense network) and BCOO (the compact network with its kernels as ``jax.experimental.sparse.BCOO``).
Models come from ``--models`` (an ``experiments.sbu_ctf`` output: ``ctf_r<rate>/`` runs, fold 1)
or, by default, are trained here on the embedded synthetic data with the SBU recipe of
``--preset`` (default ``wide``, the default network: C = 64; ``c8`` for the papers' width) for
``--epochs``. Reports the median latency after compilation (``--repeats`` calls of each form,
in ``--rounds`` rounds that time every form in turn: ``timing.interleaved_medians``), the ratio
to dense, the FLOP ratio (compact FLOPs / dense FLOPs: the limit compaction can approach) and
the share of it the compact network attains (speed-up ÷ (dense FLOPs / compact FLOPs)). Then,
for dense and compact, where the time goes (``benchmarks.op_profile``: ms per call in each of the
network's named scopes), which names the operation that holds compaction back.
Writes ``ctf_inference.json`` and ``ctf_inference.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import device_line, interleaved_medians, write_report
from jaxprune.models.compact import compact, compact_apply, compact_flops, to_bcoo
from jaxprune.data.features import node_features
from jaxprune.masks.bandstop import apply_masks
from jaxprune.models import gcn
from jaxprune.models.flops import count_params, gcn_flops


def trained_model(rate: float, models: str | None, epochs: int, preset: str = "wide"):
    """(params, masks, GCNConfig, node features (N, J, F)) of a CTF model at ``rate``."""
    if models:
        from jaxprune.serving import open_folds
        _, _, folds = open_folds(Path(models) / f"ctf_r{rate:g}")
        saved = next(iter(folds))
        params, pruner, model, chunks, features = (saved.params, saved.pruner, saved.model,
                                                   saved.data.test_chunks, saved.config.features)
    else:
        from jaxprune.config import override
        from jaxprune.data.synthetic import make_synthetic
        from jaxprune.presets import preset_settings
        from jaxprune.run_config import RunConfig
        from jaxprune.runner import train_fold
        from jaxprune.task.folds import fold_data
        from jaxprune.task.forward import gcn_config
        dataset = make_synthetic(seed=0)
        config = override(RunConfig(method="ctf"),
                          [*preset_settings("sbu", preset), f"train.epochs={epochs}", f"prune.rate={rate}"])
        result = train_fold(dataset, 1, config, progress=False)
        params, pruner, model = result["params"], result["pruner"], gcn_config(dataset, config)
        chunks, features = fold_data(dataset, 1, config.features).test_chunks, config.features
    masks = jax.tree.map(lambda m: m[0], pruner.hard_masks(params, np.asarray([rate], np.float32)))
    return params, masks, model, np.asarray(node_features(jnp.asarray(chunks), features))


def scope_times(fn, p, x, calls: int = 10) -> dict[str, float]:
    """{named scope (or join of scopes): ms per call} of ``fn(p, x)`` (``benchmarks.op_profile``)."""
    from benchmarks.op_profile import profile
    by_scope, _ = profile(jax.jit(fn).lower(p, x).compile(), lambda: (p, x), calls)
    return by_scope


def measure(rate: float, params, masks, model, features, batches, repeats: int, rounds: int = 5) -> list[dict]:
    masked = apply_masks(params, masks)
    net = compact(params, masks, model)
    forms = {"dense": (jax.jit(lambda p, x: gcn.apply(p, x, model)), params),
             "masked": (jax.jit(lambda p, x: gcn.apply(p, x, model)), masked),
             "compact": (jax.jit(compact_apply), net),
             "bcoo": (jax.jit(compact_apply), to_bcoo(net))}
    dense_flops = gcn_flops(params, model)
    flops = {"dense": dense_flops, "masked": gcn_flops(masked, model), "compact": compact_flops(net),
             "bcoo": compact_flops(to_bcoo(net), nonzero=True)}
    kept, total = count_params(masked)
    rows = []
    for batch in batches:
        x = jnp.asarray(np.resize(features, (batch,) + features.shape[1:]))
        ref = forms["dense"][0](*(forms["masked"][1], x))
        for name, (fn, p) in forms.items():
            if name != "dense":
                assert float(jnp.max(jnp.abs(fn(p, x) - ref))) <= 1e-4, f"{name} differs from the masked network"
        seconds = interleaved_medians({name: (fn, (p, x)) for name, (fn, p) in forms.items()},
                                      rounds=rounds, repeats=max(1, repeats // rounds))
        scopes = {name: scope_times(forms[name][0], forms[name][1], x) for name in ("dense", "compact")}
        for name in forms:
            rows.append({"rate": rate, "achieved_rate": 1 - kept / total, "batch": batch, "form": name,
                         "median_ms": 1e3 * seconds[name], "vs_dense": seconds[name] / seconds["dense"],
                         "flops": flops[name], "flop_ratio": flops[name] / dense_flops,
                         "flop_share_attained": (seconds["dense"] / seconds[name]) / (dense_flops / flops[name]),
                         **({"scope_ms": scopes[name]} if name in scopes else {})})
        print(f"rate {rate:g} batch {batch}: " + ", ".join(f"{k} {1e3 * v:.3f} ms" for k, v in seconds.items()),
              flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--models", help="an experiments.sbu_ctf output folder (default: train on synthetic data)")
    p.add_argument("--rates", default="0.9,0.98")
    p.add_argument("--batches", default="1,256,4096")
    p.add_argument("--epochs", type=int, default=1000, help="training epochs when no --models is given")
    p.add_argument("--repeats", type=int, default=30, help="timed calls of each form (default 30)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds the calls are split into (default 5)")
    p.add_argument("--preset", default="wide", help="the network trained when no --models is given (default wide)")
    a = p.parse_args(argv)
    rates = [float(r) for r in a.rates.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    rows = []
    for rate in rates:
        rows += measure(rate, *trained_model(rate, a.models, a.epochs, a.preset), batches, a.repeats, a.rounds)
    source = (f"fold-1 models of {a.models}" if a.models else
              f"CTF trained {a.epochs} epochs on synthetic data, preset {a.preset}")
    record = {"benchmark": "ctf_inference", "device": device_line(), "jax": jax.__version__, "models": source,
              "repeats": a.repeats, "rounds": a.rounds, "rows": rows}
    lines = [f"# Jitted inference, dense vs masked vs compact vs BCOO ({record['device']})", "",
             f"Models: {source}. Median latency per call (ms), ratio to dense; FLOP ratio = the form's "
             "FLOPs / dense FLOPs (masked: non-zero weights; compact: its smaller dense matrices; "
             "BCOO: its non-zeros).", "",
             "| rate (achieved) | batch | form | median ms | time vs dense | FLOP ratio | speed-up ÷ FLOP ratio |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['rate']:g} ({r['achieved_rate']:.4f}) | {r['batch']} | {r['form']} | {r['median_ms']:.3f} | "
              f"{r['vs_dense']:.2f} | {r['flop_ratio']:.3f} | {100 * r['flop_share_attained']:.0f} % |" for r in rows]
    shown = ("attention", "graph_conv", "fc", "classifier")
    lines += ["", "Where the time goes, dense and compact (summed op ms per call of all threads, by named scope; "
              "'joined': fused ops holding several scopes):", "",
              "| rate | batch | form | " + " | ".join(shown) + " | joined | other |", "|---|---|---|" + "---|" * 6]
    for r in rows:
        if "scope_ms" in r:
            ms = r["scope_ms"]
            joined = sum(v for k, v in ms.items() if "+" in k)
            lines.append(f"| {r['rate']:g} | {r['batch']} | {r['form']} | " + " | ".join(
                f"{ms.get(k, 0.0):.2f}" for k in shown) + f" | {joined:.2f} | {ms.get('other', 0.0):.2f} |")
    write_report(a.out, "ctf_inference", record, lines)


if __name__ == "__main__":
    main()
