"""Jitted inference of a CTF-pruned GCN: dense vs masked vs compact vs BCOO, at several rates and batches.

    python -m benchmarks.ctf_inference --out benchmarks/results
    python -m benchmarks.ctf_inference --models runs/sbu_ctf      # fold-1 models of experiments.sbu_ctf

The six forms of one network: dense (the unpruned latent weights, the reference cost, in the
GCN's default form), masked (the same shapes with the pruned weights set to zero), compact
(``jaxprune.models.compact``: the smaller dense network), compact_edges (the same network with its
blocks over the graph's pairs, ``model.attention_forward=edges``), padded (the compact network with every width zero-padded to a multiple of
``--pad-multiple``, ``benchmarks.compact_pad``; its FLOP ratio is the compact network's, the
padding's zeros not counted) and BCOO (the compact network with its kernels as
``jax.experimental.sparse.BCOO``).
Models come from ``--models`` (an ``experiments.sbu_ctf`` output: ``ctf_r<rate>/`` runs, fold 1)
or, by default, are trained here on the embedded synthetic data with the SBU recipe of
``--preset`` (default ``wide``, the default network: C = 64; ``c8`` for the papers' width) for
``--epochs``. Reports the median latency after compilation (``--repeats`` calls of each form,
in ``--rounds`` rounds that time every form in turn: ``timing.interleaved_medians``), the ratio
to dense, the FLOP ratio (compact FLOPs / dense FLOPs: the limit compaction can approach) and
the share of it the compact network attains (speed-up ÷ (dense FLOPs / compact FLOPs)). Then,
for dense and compact, where the time goes (``benchmarks.op_profile``: ms per call in each of the
network's named scopes). The dense forward pass is one fused op (a YNN fusion holding every
scope), so the profile cannot split it; the stage table can: each block and the head (FC +
classifier) of both networks jitted and timed alone on its real input (``stage_rows``), with
its share of the network's time and FLOPs, which names the stage that holds compaction back.
Writes ``ctf_inference.json`` and ``ctf_inference.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.compact_pad import pad_widths
from benchmarks.timing import device_line, interleaved_medians, write_report
from jaxprune.models.compact import (compact, compact_apply, compact_block, compact_flops, compact_head,
                                     compact_stage_flops, to_bcoo)
from jaxprune.data.features import node_features
from jaxprune.masks.bandstop import apply_masks
from jaxprune.models import gcn
from jaxprune.models.flops import count_params, gcn_flops, gcn_stage_flops


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


def stage_programs(form: str, p, model, features: jax.Array) -> list[tuple[str, object, jax.Array]]:
    """[(stage, jitted stage(p, h), its input h)] of the dense (``gcn``) or compact network ``p``:
    blocks 0..L-1, then the head (FC + classifier), each fed the previous stage's real output."""
    if form == "dense":
        mask = gcn.attention_mask(model)
        stages = [jax.jit(lambda p, h, b=b: gcn.apply_block(p[f"block{b}"], h, mask)) for b in range(model.num_blocks)]
        stages.append(jax.jit(lambda p, h: gcn.apply_head(p, h, model)))
    else:
        width = features.shape[-1]
        stages = [jax.jit(lambda p, h, b=b: compact_block(p, b, h, width)) for b in range(p.num_blocks)]
        stages.append(jax.jit(compact_head))
    out, h = [], features
    for b, fn in enumerate(stages):
        out.append((f"block {b}" if b < len(stages) - 1 else "FC + classifier", fn, h))
        h = fn(p, h)
    return out


def stage_rows(rate: float, batch: int, params, net, model, features, rounds: int, repeats: int) -> list[dict]:
    """Each stage of the dense and the compact network timed alone (``stage_programs``), with its
    FLOPs per sample: which stage keeps the compact network from its FLOP ratio."""
    programs = {"dense": stage_programs("dense", params, model, features),
                "compact": stage_programs("compact", net, model, features)}
    calls = {(form, name): (fn, (p, h)) for form, p in (("dense", params), ("compact", net))
             for name, fn, h in programs[form]}
    seconds = interleaved_medians(calls, rounds=rounds, repeats=repeats)
    flops = {"dense": gcn_stage_flops(params, model), "compact": compact_stage_flops(net)}
    totals = {form: sum(seconds[(form, name)] for name, _, _ in programs[form]) for form in programs}
    rows = []
    for i, (name, _, _) in enumerate(programs["dense"]):
        dense_s, compact_s = seconds[("dense", name)], seconds[("compact", name)]
        rows.append({"rate": rate, "batch": batch, "stage": name, "dense_ms": 1e3 * dense_s,
                     "dense_time_share": dense_s / totals["dense"],
                     "dense_flop_share": flops["dense"][i] / sum(flops["dense"]),
                     "compact_ms": 1e3 * compact_s, "compact_time_share": compact_s / totals["compact"],
                     "flop_ratio": flops["compact"][i] / flops["dense"][i], "time_ratio": compact_s / dense_s})
    return rows


def measure(rate: float, params, masks, model, features, batches, repeats: int, rounds: int = 5,
            pad_multiple: int = 16) -> list[dict]:
    masked = apply_masks(params, masks)
    net = compact(params, masks, model)
    forms = {"dense": (jax.jit(lambda p, x: gcn.apply(p, x, model)), params),
             "masked": (jax.jit(lambda p, x: gcn.apply(p, x, model)), masked),
             "compact": (jax.jit(compact_apply), net),
             "compact_edges": (jax.jit(compact_apply), net.replace(attention_forward="edges")),
             "padded": (jax.jit(compact_apply), pad_widths(net, pad_multiple)),
             "bcoo": (jax.jit(compact_apply), to_bcoo(net))}
    dense_flops = gcn_flops(params, model)
    flops = {"dense": dense_flops, "masked": gcn_flops(masked, model), "compact": compact_flops(net),
             "compact_edges": compact_flops(net),
             "padded": compact_flops(net), "bcoo": compact_flops(to_bcoo(net), nonzero=True)}
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
        stages = stage_rows(rate, batch, params, net, model, x, rounds, max(1, repeats // rounds)) if batch > 1 else []
        for name in forms:
            rows.append({"rate": rate, "achieved_rate": 1 - kept / total, "batch": batch, "form": name,
                         "median_ms": 1e3 * seconds[name], "vs_dense": seconds[name] / seconds["dense"],
                         "flops": flops[name], "flop_ratio": flops[name] / dense_flops,
                         "flop_share_attained": (seconds["dense"] / seconds[name]) / (dense_flops / flops[name]),
                         **({"scope_ms": scopes[name]} if name in scopes else {}),
                         **({"stages": stages} if name == "compact" and stages else {})})
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
    p.add_argument("--pad-multiple", type=int, default=16, help="the padded form's width multiple (default 16)")
    a = p.parse_args(argv)
    rates = [float(r) for r in a.rates.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    rows = []
    for rate in rates:
        rows += measure(rate, *trained_model(rate, a.models, a.epochs, a.preset), batches, a.repeats, a.rounds,
                        a.pad_multiple)
    source = (f"fold-1 models of {a.models}" if a.models else
              f"CTF trained {a.epochs} epochs on synthetic data, preset {a.preset}")
    record = {"benchmark": "ctf_inference", "device": device_line(), "jax": jax.__version__, "models": source,
              "pad_multiple": a.pad_multiple,
              "repeats": a.repeats, "rounds": a.rounds, "rows": rows}
    lines = [f"# Jitted inference, dense vs masked vs compact vs padded vs BCOO ({record['device']})", "",
             f"Models: {source}. Median latency per call (ms), ratio to dense; FLOP ratio = the form's "
             "FLOPs / dense FLOPs (masked: non-zero weights; compact: its smaller dense matrices; "
             "compact_edges: the same network, its blocks over the graph's pairs "
             "(`model.attention_forward=edges`); "
             f"padded: the compact network's widths zero-padded to multiples of {a.pad_multiple}, its "
             "FLOP ratio the compact network's; BCOO: its non-zeros).", "",
             "| rate (achieved) | batch | form | median ms | time vs dense | FLOP ratio | speed-up ÷ FLOP ratio |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['rate']:g} ({r['achieved_rate']:.4f}) | {r['batch']} | {r['form']} | {r['median_ms']:.3f} | "
              f"{r['vs_dense']:.2f} | {r['flop_ratio']:.3f} | {100 * r['flop_share_attained']:.0f} % |" for r in rows]
    lines += target_lines(rows)
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
    lines += stage_lines(rows)
    write_report(a.out, "ctf_inference", record, lines)


def target_lines(rows: list[dict], target: float = 0.6) -> list[str]:
    """Each (rate, batch): the share of its FLOP ratio each compact form attains, and whether the
    faster one reaches ``target`` (issue 14: at least 60 %)."""
    share = {(r["rate"], r["batch"], r["form"]): r["flop_share_attained"] for r in rows}
    lines = ["", f"Against the target (compact speed-up ≥ {100 * target:.0f} % of its FLOP ratio), per batch "
             "with the faster of the two compact forms:", "",
             "| rate | batch | compact | compact_edges | faster form | target met |", "|---|---|---|---|---|---|"]
    for rate, batch in dict.fromkeys((r["rate"], r["batch"]) for r in rows):
        dense, edges = share[(rate, batch, "compact")], share[(rate, batch, "compact_edges")]
        best = max(dense, edges)
        lines.append(f"| {rate:g} | {batch} | {100 * dense:.0f} % | {100 * edges:.0f} % | "
                     f"{'compact_edges' if edges > dense else 'compact'} | {'yes' if best >= target else 'no'} |")
    return lines


def stage_lines(rows: list[dict]) -> list[str]:
    """The stage-by-stage table (``stage_rows``) of every measured batch, and which stage holds
    the compact network back: the one that takes the largest share of its time."""
    lines = ["", "Stage by stage (each stage jitted and timed alone on its real input, median ms per call; "
             "shares are of the sum of a network's stages; the FLOP ratio is the compact stage's FLOPs ÷ the "
             "dense stage's):", "",
             "| rate | batch | stage | dense ms | dense: share of time | dense: share of FLOPs | compact ms | "
             "compact: share of time | FLOP ratio | time ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    held = []
    for r in rows:
        for st in r.get("stages", []):
            lines.append(f"| {st['rate']:g} | {st['batch']} | {st['stage']} | {st['dense_ms']:.3f} | "
                         f"{100 * st['dense_time_share']:.0f} % | {100 * st['dense_flop_share']:.0f} % | "
                         f"{st['compact_ms']:.3f} | {100 * st['compact_time_share']:.0f} % | "
                         f"{st['flop_ratio']:.2f} | {st['time_ratio']:.2f} |")
        if r.get("stages"):
            top = max(r["stages"], key=lambda st: st["compact_time_share"])
            held.append(f"- rate {top['rate']:g}, batch {top['batch']}: {top['stage']}, "
                        f"{100 * top['compact_time_share']:.0f} % of the compact network's time, "
                        f"keeping {100 * top['flop_ratio']:.0f} % of its dense FLOPs "
                        f"(time ratio {top['time_ratio']:.2f}).")
    return lines + (["", "What holds the compact network back (its dearest stage):", ""] + held if held else [])


if __name__ == "__main__":
    main()
