"""One run, several layouts: the default synthetic MRMP run (``jaxprune train --dataset synthetic
--method mrmp``) on 1 device, 4 devices in one process, 2 processes x 2 devices and 4 processes x 1
device (local processes as hosts, gloo collectives), compared with each other.

For each layout: wall time of the whole command (start-up, compilation, training, evaluation),
the files the run wrote, the largest parameter difference to the one-process run of the same total
device count and to one device, and how many served masks' kept-weight counts and accuracies differ.

    python -m benchmarks.multihost [--epochs N] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.timing import machine, write_report

LAYOUTS = [(1, 1), (1, 4), (2, 2), (4, 1)]   # (processes, devices per process)


def _launch(run: Path, processes: int, devices: int, epochs: int | None) -> float:
    """Runs the command as ``processes`` local processes; returns the wall seconds until all end."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    args = [sys.executable, "-m", "jaxprune.cli", "train", "--dataset", "synthetic", "--method", "mrmp",
            "--out", str(run), "--quiet"] + ([] if epochs is None else ["--epochs", str(epochs)])
    if processes > 1:
        with socket.socket() as s:
            s.bind(("localhost", 0))
            port = s.getsockname()[1]
    start = time.perf_counter()
    procs = [subprocess.Popen(args + ([] if processes == 1 else ["--coordinator", f"localhost:{port}",
                                                                  "--num-processes", str(processes),
                                                                  "--process-id", str(i)]),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(processes)]
    outs = [p.communicate() for p in procs]
    seconds = time.perf_counter() - start
    for i, (p, (_, err)) in enumerate(zip(procs, outs)):
        if p.returncode:
            raise SystemExit(f"{processes} x {devices}: process {i} failed:\n{err[-2000:]}")
    return seconds


def _compare(a: Path, b: Path) -> dict:
    pa, pb = np.load(a / "fold1" / "model.npz"), np.load(b / "fold1" / "model.npz")
    ra, rb = (json.loads((r / "results.json").read_text())["runs"][0]["rates"] for r in (a, b))
    return {"max_param_difference": max(float(np.max(np.abs(pa[k].astype(np.float64) - pb[k]))) for k in pa.files),
            "rates_with_other_kept_counts": sum(x["kept_params"] != y["kept_params"] for x, y in zip(ra, rb)),
            "largest_kept_count_difference": max(abs(x["kept_params"] - y["kept_params"]) for x, y in zip(ra, rb)),
            "rates_with_other_accuracy": sum(x["accuracy"] != y["accuracy"] for x, y in zip(ra, rb)),
            "largest_accuracy_difference": max(abs(x["accuracy"] - y["accuracy"]) for x, y in zip(ra, rb)),
            "rates": len(ra)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=None, help="default: the run's own (the synthetic preset)")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    rows, runs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for processes, devices in LAYOUTS:
            run = Path(tmp) / f"{processes}x{devices}"
            seconds = _launch(run, processes, devices, args.epochs)
            runs[(processes, devices)] = run
            files = sorted(str(f.relative_to(run)) for f in run.rglob("*")
                           if f.is_file() and "checkpoints" not in f.parts)
            metrics = (run / "fold1" / "metrics.jsonl").read_text().splitlines()
            rates = json.loads((run / "results.json").read_text())["runs"][0]["rates"]
            row = {"processes": processes, "devices_per_process": devices, "wall_seconds": round(seconds, 1),
                   "accuracy": {f"{r['target_rate']:g}": round(r["accuracy"], 2) for r in rates},
                   "mean_accuracy": round(float(np.mean([r["accuracy"] for r in rates])), 2),
                   "files": files, "metrics_rows": len(metrics),
                   "vs_one_device": _compare(runs[(1, 1)], run)}
            if processes > 1:
                row["vs_one_process_same_devices"] = _compare(runs[(1, processes * devices)], run)
            rows.append(row)
            print(json.dumps(row), flush=True)
    record = {"machine": machine(), "command": "jaxprune train --dataset synthetic --method mrmp", "rows": rows}
    lines = ["# Multi-host: the default synthetic MRMP run in four layouts", "",
             f"Machine: {machine()}, CPU devices (`--xla_force_host_platform_device_count`), local processes as "
             "hosts (gloo). Written by `python -m benchmarks.multihost`.", "",
             "| processes x devices | wall s | files written | metrics rows | accuracy %, mean over served rates "
             "| vs 1 device: max param diff, rates with other kept counts (largest), largest accuracy diff "
             "| vs 1 process, same devices: max param diff, other kept counts, other accuracies |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        one = r["vs_one_device"]
        same = r.get("vs_one_process_same_devices")
        lines.append(f"| {r['processes']} x {r['devices_per_process']} | {r['wall_seconds']} | {len(r['files'])} "
                     f"| {r['metrics_rows']} | {r['mean_accuracy']:.2f} | {one['max_param_difference']:.2g}, "
                     f"{one['rates_with_other_kept_counts']} of {one['rates']} "
                     f"({one['largest_kept_count_difference']}), {one['largest_accuracy_difference']:.1f} | "
                     + ("-" if same is None else f"{same['max_param_difference']:.2g}, "
                        f"{same['rates_with_other_kept_counts']}, {same['rates_with_other_accuracy']}") + " |")
    lines += ["", "Per served rate, accuracy %:", "",
              "| layout | " + " | ".join(rows[0]["accuracy"]) + " |", "|---|" + "---|" * len(rows[0]["accuracy"])]
    lines += [f"| {r['processes']} x {r['devices_per_process']} | " + " | ".join(f"{a:.1f}" for a in r["accuracy"].values())
              + " |" for r in rows]
    write_report(args.out, "multihost", record, lines)


if __name__ == "__main__":
    main()
