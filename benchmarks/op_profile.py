"""Where the time of a jitted call goes, by part of the network: a profile read from jax's profiler.

    python -m benchmarks.op_profile --out benchmarks/results

Each row is one jitted program (the GCN's forward pass at a batch, or a real train step of a
method: ``jaxprune.train.make_epoch`` over exactly one batch), run ``--calls`` times under
``jax.profiler``. Every op the profile records is matched to its instruction in the compiled
program and named by the scopes the code opens (``jax.named_scope``): ``attention``,
``graph_conv``, ``fc``, ``classifier`` (``jaxprune.models``), ``masks``, ``penalty``
(``jaxprune.methods.wrap``) and ``optimizer`` (``jaxprune.train``), or ``other`` (augmentation,
the loss, data gathers). A fused op that holds several scopes is counted under their join
(e.g. ``attention+graph_conv``). Shares are of the summed op time of all threads; the table also
names the most expensive single ops. Networks: the SBU recipe at C = 8 (preset ``c8``) and C = 64
(``wide``), SBU shape (30 joints). Writes ``op_profile.json`` and ``op_profile.md``.
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import tempfile

import jax

from benchmarks.timing import device_line, write_report

SCOPES = ("attention", "graph_conv", "fc", "classifier", "masks", "penalty", "optimizer")
_SCOPE = re.compile(r"\b(" + "|".join(SCOPES) + r")\b")


def instruction_scopes(hlo_text: str) -> dict[str, str]:
    """{instruction name: scope label} of a compiled HLO module: for a fusion, the join of the
    scopes of the instructions it fuses; for any other instruction, its own op_name's scope."""
    computations, current = {}, None
    for line in hlo_text.splitlines():
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if head and not line.startswith(" "):
            current = computations.setdefault(head.group(1), [])
            continue
        if current is not None and line.startswith("  "):
            current.append(line)

    def scope_of(line: str) -> set[str]:
        m = re.search(r'op_name="([^"]+)"', line)
        return set(_SCOPE.findall(m.group(1))[-1:]) if m else set()

    labels = {}
    for lines in computations.values():
        for line in lines:
            m = re.match(r"\s+(?:ROOT )?%([\w.\-]+) = ", line)
            if not m:
                continue
            found = scope_of(line)
            called = re.search(r"calls=%([\w.\-]+)", line)
            if called:
                for inner in computations.get(called.group(1), []):
                    found |= scope_of(inner)
            labels[m.group(1)] = "+".join(s for s in SCOPES if s in found) or "other"
    return labels


def profile(compiled, args, calls: int) -> tuple[dict[str, float], list[tuple[str, str, float]]]:
    """({scope label: ms per call}, [(op, label, ms per call)] of the 8 dearest ops) of ``calls``
    calls of ``compiled(*args())`` (a ``jax.stages.Compiled``; ``args`` makes fresh arguments, as
    a train step donates its state)."""
    from jax.profiler import ProfileData
    labels = instruction_scopes(compiled.as_text())
    made = [args() for _ in range(calls + 1)]           # made before the trace: only the program runs there
    jax.block_until_ready(compiled(*made.pop()))
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder):
            for _ in range(calls):
                jax.block_until_ready(compiled(*made.pop()))
        data = ProfileData.from_file(glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)[0])
        per_op = collections.Counter()
        for plane in data.planes:
            for line in plane.lines:
                for event in line.events:
                    if event.name in labels:
                        per_op[event.name] += event.duration_ns
    by_scope = collections.Counter()
    for op, ns in per_op.items():
        by_scope[labels[op]] += ns / calls / 1e6
    top = [(op, labels[op], ns / calls / 1e6) for op, ns in per_op.most_common(8)]
    return dict(by_scope), top


def forward_program(preset: str, batch: int, extra: tuple[str, ...] = ()):
    """(compiled forward pass of the SBU-shaped GCN of ``preset`` with the settings ``extra``, its arguments)."""
    from jaxprune.config import override
    from jaxprune.data.synthetic import make_synthetic
    from jaxprune.models import gcn
    from jaxprune.presets import preset_settings
    from jaxprune.run_config import RunConfig
    from jaxprune.task.forward import gcn_config
    config = override(RunConfig(), [*preset_settings("sbu", preset), *extra])
    model = gcn_config(make_synthetic(seed=0), config)
    params = gcn.init(jax.random.key(0), model)
    x = jax.random.normal(jax.random.key(1), (batch, model.num_nodes, model.num_features))
    compiled = jax.jit(lambda p, x: gcn.apply(p, x, model)).lower(params, x).compile()
    return compiled, lambda: (params, x)


def step_program(preset: str, method: str, batch: int):
    """(compiled train step of ``method`` on the ``preset`` network, a maker of its arguments):
    ``benchmarks.mrmp_step.train_step`` (MRMP at its six default rates)."""
    from benchmarks.mrmp_step import RATE_SETS, train_step
    epoch, make_state, data = train_step(method, RATE_SETS[6] if method == "mrmp" else (0.9,), batch, preset)
    compiled = epoch.lower(make_state(), data).compile()
    return compiled, lambda: (make_state(), data)   # the step donates its state


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--presets", default="c8,wide")
    a = p.parse_args(argv)
    programs = []
    for preset in a.presets.split(","):
        programs += [(preset, f"forward, batch {b}", lambda pr=preset, b=b: forward_program(pr, b)) for b in (256, 4096)]
        programs += [(preset, f"{m} train step, batch 256", lambda pr=preset, m=m: step_program(pr, m, 256))
                     for m in ("dense", "srmp", "mrmp")]
    rows = []
    for preset, what, build in programs:
        compiled, args = build()
        by_scope, top = profile(compiled, args, a.calls)
        total = sum(by_scope.values())
        rows.append({"preset": preset, "program": what, "op_ms": total,
                     "share": {k: v / total for k, v in sorted(by_scope.items(), key=lambda kv: -kv[1])},
                     "top_ops": [{"op": op, "scope": s, "ms": ms} for op, s, ms in top]})
        print(f"{preset} {what}: {total:.2f} ms of ops; " + ", ".join(
            f"{k} {100 * v:.0f} %" for k, v in rows[-1]["share"].items()), flush=True)
    record = {"benchmark": "op_profile", "device": device_line(), "jax": jax.__version__, "calls": a.calls, "rows": rows}
    shown = ("attention", "graph_conv", "fc", "masks", "penalty", "optimizer")
    lines = [f"# Where a call's time goes, by part of the network ({record['device']}, jax {jax.__version__})", "",
             "Summed op time of all threads per call (jax.profiler), shared out by the code's named scopes; a fused op "
             "holding several scopes counts under their join (columns 'joined'). SBU shape, 30 joints.", "",
             "| network | program | op ms per call | " + " | ".join(shown) + " | joined | other |",
             "|---|---|---|" + "---|" * (len(shown) + 2)]
    for r in rows:
        s = r["share"]
        joined = sum(v for k, v in s.items() if "+" in k)
        lines.append(f"| {r['preset']} | {r['program']} | {r['op_ms']:.2f} | " +
                     " | ".join(f"{100 * s.get(k, 0):.0f} %" for k in shown) +
                     f" | {100 * joined:.0f} % | {100 * s.get('other', 0):.0f} % |")
    lines += ["", "The dearest ops of each program (ms per call, scope):", ""]
    for r in rows:
        lines.append(f"- {r['preset']}, {r['program']}: " + "; ".join(
            f"{t['op']} {t['ms']:.2f} ({t['scope']})" for t in r["top_ops"][:5]))
    write_report(a.out, "op_profile", record, lines)


if __name__ == "__main__":
    main()
