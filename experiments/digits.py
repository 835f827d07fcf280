"""Pruning a model that is not ours, on real data of another kind: an MLP on scikit-learn's digits.

The 1797 handwritten digits (8×8 grey levels, 10 classes) ship inside scikit-learn, so nothing is
downloaded. A Flax linen MLP (64 → 128 → 10, ReLU) is trained with plain optax through jaxprune's
library API only (``make_pruner``, ``pruned_loss``, ``with_pruning``: the README's "Use it on your
own model"), in 5-fold cross-validation (stratified, one fixed split) for each seed: dense; MRMP
trained at 0.5 / 0.9 / 0.98 and served at every rate of the table (0.7, 0.8 and 0.95 never
trained); SRMP, CTF (then compacted with ``compact_mlp``) and magnitude pruning at each rate.
Accuracy is over each test fold; the table gives mean ± std over seeds × folds.

    pip install -e ".[examples]"      # scikit-learn, for its bundled digits
    python -m experiments.digits --out experiments/results/digits
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RATES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
MRMP_RATES = (0.5, 0.9, 0.98)


def load_digits_arrays():
    """(x (1797, 64) float32 in [0, 1], y (1797,) int32); ImportError naming the extra to install."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("experiments.digits needs scikit-learn (its digits ship inside it): "
                         "pip install -e \".[examples]\"") from None
    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int32)


def folds_of(y: np.ndarray, k: int = 5) -> np.ndarray:
    """A stratified fold id in 1..k per sample (a fixed shuffle, the same for every seed)."""
    rng = np.random.default_rng(1234)
    fold = np.zeros(len(y), np.int32)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = np.arange(len(idx)) % k + 1
    return fold


def train_and_score(method: str, prune, train: dict, test: dict, seed: int, steps: int, batch: int,
                    serve) -> list[dict]:
    """Trains one model with the library API; one row per served rate."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    import jaxprune as jp

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(10, name="out")(nn.relu(nn.Dense(128, name="hidden")(x)))

    model = MLP()
    params = model.init(jax.random.key(seed), train["x"][:1])["params"]

    def loss_fn(params, batch, key):
        logits = model.apply({"params": params}, batch["x"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    pruner = jp.make_pruner(method, params, prune=prune, total_steps=steps)
    init_key, run_key = jax.random.split(jax.random.key(seed + 1000))
    tx = jp.with_pruning(optax.adam(3e-3), pruner, pruner.init(params, init_key, train, loss_fn))
    loss = jp.pruned_loss(pruner, loss_fn)
    n = len(train["y"])

    @jax.jit
    def fit(params, train, key):
        def step(carry, key):
            p, opt_state = carry
            batch_key, loss_key = jax.random.split(key)
            idx = jax.random.randint(batch_key, (batch,), 0, n)
            grads, _ = jax.grad(loss, has_aux=True)(p, jax.tree.map(lambda a: a[idx], train), loss_key,
                                                    opt_state.count, opt_state.prune_state)
            updates, opt_state = tx.update(grads, opt_state, p)
            return (optax.apply_updates(p, updates), opt_state), None
        (p, opt_state), _ = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key, steps))
        return p, opt_state.prune_state

    p, prune_state = fit(params, train, run_key)
    pruner = pruner.finish(prune_state)
    rates = np.asarray(serve, np.float32)
    masks = pruner.hard_masks(p, rates) if method != "dense" else None
    dense_count = sum(int(np.size(w)) for w, k in zip(jax.tree.leaves(p), jax.tree.leaves(jp.kernels(p))) if k)
    rows = []
    for i, r in enumerate(serve):
        m = None if masks is None else jax.tree.map(lambda a: a[i], masks)
        logits = model.apply({"params": jp.apply_masks(p, m)}, test["x"])
        kept = dense_count if m is None else jp.sparsity(m)["kept_params"]      # masks: None at dense leaves
        row = {"method": method, "target_rate": float(r), "seed": seed,
               "accuracy": 100.0 * float(jnp.mean(logits.argmax(-1) == test["y"])),
               "achieved_rate": 1.0 - kept / dense_count, "kept_params": kept,
               "trained": method == "dense" or float(r) in [float(t) for t in pruner.trained_rates]}
        if method == "ctf":
            small = jp.compact_mlp([p[k]["kernel"] for k in ("hidden", "out")], [p[k]["bias"] for k in ("hidden", "out")],
                                   [m[k]["kernel"] for k in ("hidden", "out")])
            row["compact_params"] = jp.mlp_size(small)
        rows.append(row)
    return rows


def runs(rates) -> list[tuple[str, dict, tuple]]:
    """(method, PruneConfig kwargs, served rates) of every training of one (seed, fold)."""
    out = [("dense", {}, (0.0,)), ("mrmp", {"rates": MRMP_RATES}, tuple(rates))]
    for r in rates:
        out += [("srmp", {"rate": r}, (r,)), ("ctf", {"rate": r, "ctf_blocks": "none"}, (r,)),
                ("magnitude", {"rate": r}, (r,))]
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """One row per (method, target_rate): mean ± std over seeds × folds."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["method"], r["target_rate"]), []).append(r)
    out = []
    for (method, rate), g in sorted(groups.items(), key=lambda kv: (kv[0][0] != "dense", kv[0][0], kv[0][1])):
        acc = np.array([r["accuracy"] for r in g])
        s = {"method": method, "target_rate": rate, "runs": len(g), "trained": g[0]["trained"],
             "accuracy_mean": round(float(acc.mean()), 2), "accuracy_std": round(float(acc.std(ddof=1)), 2),
             "achieved_rate_mean": round(float(np.mean([r["achieved_rate"] for r in g])), 4),
             "kept_params_mean": round(float(np.mean([r["kept_params"] for r in g])), 1)}
        s["compact_params_mean"] = round(float(np.mean([r["compact_params"] for r in g])), 1) \
            if "compact_params" in g[0] else ""
        out.append(s)
    return out


def markdown(summary: list[dict], rates, seeds, seconds: float, command: str) -> str:
    dense = next(s for s in summary if s["method"] == "dense")
    head = "| method | " + " | ".join(f"{r:g}" for r in rates) + " |"
    lines = [f"# Pruning a linen MLP on scikit-learn's digits (5-fold × {len(seeds)} seeds)", "",
             f"Command: `{command}`  ", f"Training time: {seconds / 60:.1f} min on this machine (every training, "
             "resumed sessions included).", "",
             f"Dense (rate 0): **{dense['accuracy_mean']:.2f} ± {dense['accuracy_std']:.2f} %** "
             f"({dense['kept_params_mean']:.0f} prunable weights).", "",
             "Test accuracy %, mean ± std over seeds × folds (achieved rate below); MRMP trained at "
             f"{', '.join(map(str, MRMP_RATES))} only, one model per (seed, fold) serving every column "
             "(*: a rate it never trained).", "", head, "|---" * (len(rates) + 1) + "|"]
    for method in ("mrmp", "srmp", "ctf", "magnitude"):
        cells, achieved = [], []
        for r in rates:
            s = next((x for x in summary if x["method"] == method and abs(x["target_rate"] - r) < 1e-9), None)
            cells.append("" if s is None else f"{s['accuracy_mean']:.2f} ± {s['accuracy_std']:.2f}"
                         + ("" if s["trained"] else " *"))
            achieved.append("" if s is None else f"{s['achieved_rate_mean']:.4f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("| (achieved) | " + " | ".join(achieved) + " |")
    ctf = [s for s in summary if s["method"] == "ctf"]
    if ctf:
        lines += ["", "CTF compact MLP (weights left after compaction, mean): "
                  + ", ".join(f"{s['target_rate']:g}: {s['compact_params_mean']:.0f}" for s in ctf) + "."]
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], rates, path: Path) -> bool:
    from experiments.plotting import pyplot, save
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    dense = next(s for s in summary if s["method"] == "dense")
    ax.axhline(dense["accuracy_mean"], color="k", ls="--", lw=1, label="dense")
    for method in ("mrmp", "srmp", "ctf", "magnitude"):
        pts = [s for s in summary if s["method"] == method]
        x = [-np.log10(1 - s["target_rate"]) for s in pts]
        ax.errorbar(x, [s["accuracy_mean"] for s in pts], yerr=[s["accuracy_std"] for s in pts], marker="o",
                    capsize=3, label=method)
    ax.set_xticks([-np.log10(1 - r) for r in rates], [f"{r:g}" for r in rates])
    ax.set_xlabel("pruning rate (log scale of kept fraction)")
    ax.set_ylabel("test accuracy % (mean ± std)")
    ax.set_title("linen MLP on digits, 5-fold × seeds")
    ax.legend()
    return save(fig, path)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES))
    a = p.parse_args(argv)
    from jaxprune.methods.config import PruneConfig
    seeds = [int(s) for s in a.seeds.split(",")]
    rates = tuple(float(r) for r in a.rates.split(","))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = load_digits_arrays()
    fold = folds_of(y)
    done_path = out / "rows.jsonl"            # resumable: one line per finished training
    done = [json.loads(line) for line in done_path.read_text().splitlines()] if done_path.exists() else []
    finished = {(r["method"], r["config"], r["seed"], r["fold"]) for r in done}
    todo = [(s, k, m, kw, serve) for s in seeds for k in range(1, 6) for m, kw, serve in runs(rates)]
    start = time.perf_counter()
    with open(done_path, "a") as sink:
        for i, (seed, k, method, kw, serve) in enumerate(todo, 1):
            key = (method, json.dumps(kw, sort_keys=True), seed, k)
            if key in finished:
                continue
            train = {"x": x[fold != k], "y": y[fold != k]}
            test = {"x": x[fold == k], "y": y[fold == k]}
            began = time.perf_counter()
            rows = train_and_score(method, PruneConfig(**kw), train, test, seed, a.steps, a.batch, serve)
            record = {"method": method, "config": key[1], "seed": seed, "fold": k, "rows": rows,
                      "seconds": round(time.perf_counter() - began, 1)}
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            done.append(record)
            print(f"[{i}/{len(todo)}] {time.perf_counter() - start:6.0f}s seed {seed} fold {k} {method} {kw}: "
                  + ", ".join(f"{r['target_rate']:g} {r['accuracy']:.1f}%" for r in rows), flush=True)
    rows = [{**r, "fold": d["fold"]} for d in done if d["seed"] in seeds for r in d["rows"]]
    summary = summarise(rows)
    seconds = sum(d.get("seconds", 0.0) for d in done if d["seed"] in seeds)   # every session's trainings
    command = "python -m experiments.digits " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    from experiments.jobs import write_tables
    write_tables(out, markdown(summary, rates, seeds, seconds, command), summary)
    plot(summary, rates, out / "accuracy.png")


if __name__ == "__main__":
    main()
