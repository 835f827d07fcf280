"""Would private per-rate biases and classifier help MRMP? A probe on saved MRMP models.

    python -m experiments.private_dense_probe --run RUN --data-dir ../shared/data/sbu --out DIR

RUN is a finished MRMP run folder with its models: a ``jaxprune train --method mrmp`` folder, or a
grid's run folder (e.g. ``experiments/results/width_pruning/mrmp_s2`` where the grid trained, after
``--report`` wrote its results.json; the repository keeps the grids' rows, not their models).

Issue 16 lists "private per-rate biases or classifier heads" as a lever. Built into training it
needs parameters owned by the pruner and trained with the weights (a protocol change: the loop
would differentiate the pruner's state too, and serving, export and checkpoints would carry
them). Before building that, this probe measures what such parameters could give at most where it
is cheap to: it takes each fold's finished MRMP model, keeps every prunable weight at its hard
mask for a trained rate, and fine-tunes only the dense leaves (every bias, the attention's logit
biases, the classifier; ``gcn.prunable`` False) on the fold's training part, with the task's
loss as the run set it (``jaxprune.task.loss.skeleton_loss``: augmentation, label smoothing,
mixup; runs trained with in-place distillation or a split batch are refused) and AdamW (``--lr``, cosine to 0 over ``--epochs``
full-batch steps, the run's weight decay), in two arms of equal steps:

- ``private``: one copy of the dense leaves per trained rate, each tuned on its rate's network;
- ``shared``: one copy for every rate, tuned on the mean loss over the rates (the control: it
  gets the same extra training, so ``private − shared`` is what privacy adds).

Writes ``probe.json`` (every fold and rate: served, shared, private test accuracy %) and
``probe.md`` (means over folds, and paired differences by fold with a 95 % t-interval, and against
SRMP at that rate where ``--srmp`` names its run folders). The models of ``--run`` were scored on
their test folds before, so this is a measurement of a lever's room, never a choice of a setting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

from experiments.stats import paired_cell  # noqa: E402


def dense_leaves(params, prunable):
    """The params with None at prunable leaves: what the probe tunes."""
    import jax
    return jax.tree.map(lambda p, k: None if k else p, params, prunable)


def with_dense(params, masks, dense):
    """The network the task sees: W ⊙ M at prunable leaves (``masks`` None elsewhere), ``dense``'s
    leaf at every other leaf (``dense`` None at the prunable ones)."""
    import jax

    from jaxprune.masks.bandstop import apply_masks
    return apply_masks(jax.tree.map(lambda p, d: p if d is None else d, params, dense,
                                    is_leaf=lambda x: x is None), masks)


def smoothed_entropy(label_smoothing: float, classes: int) -> float:
    """The least cross-entropy (nats) against label-smoothed one-hot targets: their entropy."""
    t = np.array([1 - label_smoothing + label_smoothing / classes] + [label_smoothing / classes] * (classes - 1))
    return float(-np.sum(t * np.log(np.where(t > 0, t, 1.0))))


def tune_fold(saved, epochs: int, lr: float, seed: int = 0) -> dict:
    """{rate: {arm: test accuracy %, arm_train_loss: the run's loss on the training part (nats),
    train_loss_floor: the least that loss can be, the entropy of the label-smoothed targets}} for
    the arms served / shared / private of one saved MRMP fold (module docstring)."""
    import jax
    import jax.numpy as jnp
    import optax

    from jaxprune.models import gcn
    from jaxprune.task.loss import skeleton_loss

    params, pruner, data, config = saved.params, saved.pruner, saved.data, saved.config
    if config.prune.distill_weight or config.prune.split_batch:
        raise SystemExit(f"fold {saved.fold}: trained with prune.distill_weight={config.prune.distill_weight:g}, "
                         f"split_batch={config.prune.split_batch}; the probe tunes with the task's plain loss")
    rates = np.asarray(pruner.trained_rates, np.float32)
    masks = pruner.hard_masks(params, rates)                                    # (R, ...) at prunable leaves
    prunable = gcn.prunable(params)
    start = dense_leaves(params, prunable)
    count = len(rates)
    task = skeleton_loss(saved.forward, config.train.label_smoothing, config.train.mixup)
    batch = {"chunks": jnp.asarray(data.train_chunks), "labels": jnp.asarray(data.train_labels)}
    opt = optax.adamw(optax.cosine_decay_schedule(lr, max(epochs, 1)), weight_decay=config.train.weight_decay)

    def at(dense, m, key):
        return task(with_dense(params, m, dense), batch, key)[0]

    def private_loss(dense, key):            # (R, ...) copies: rate i's loss reaches copy i only
        return jnp.sum(jax.vmap(at, in_axes=(0, 0, None))(dense, masks, key))

    def shared_loss(dense, key):
        return jnp.mean(jax.vmap(at, in_axes=(None, 0, None))(dense, masks, key))

    def fit(loss, dense):
        def step(carry, key):
            dense, state = carry
            grads = jax.grad(loss)(dense, key)
            updates, state = opt.update(grads, state, dense)
            return (optax.apply_updates(dense, updates), state), None
        keys = jax.random.split(jax.random.key(seed), epochs)
        return jax.lax.scan(step, (dense, opt.init(dense)), keys)[0][0]

    stacked = jax.tree.map(lambda d: jnp.broadcast_to(d, (count,) + d.shape), start)
    private = jax.jit(lambda d: fit(private_loss, d))(stacked)
    shared = jax.jit(lambda d: fit(shared_loss, d))(start)

    chunks, labels = jnp.asarray(data.eval_chunks), jnp.asarray(data.test_labels)

    def accuracy(dense, dense_axis):        # (R,) %: rate i with dense leaves dense[i] (axis 0) or dense
        def one(d, m):
            logits = saved.forward(with_dense(params, m, d), chunks, None, False)
            return 100.0 * jnp.mean(jnp.argmax(logits, -1) == labels)
        return jax.jit(jax.vmap(one, in_axes=(dense_axis, 0)))(dense, masks)

    def train_loss(dense, dense_axis):      # (R,) nats: the run's loss on the training part, one draw
        return jax.jit(jax.vmap(at, in_axes=(dense_axis, 0, None)))(dense, masks, jax.random.key(seed + 1))

    arms = {"served": (start, None), "shared": (shared, None), "private": (private, 0)}
    acc = {name: np.asarray(accuracy(*arm)) for name, arm in arms.items()}
    loss = {name: np.asarray(train_loss(*arm)) for name, arm in arms.items()}
    floor = smoothed_entropy(config.train.label_smoothing, saved.model.num_classes)   # without mixup: loss ≥ it
    return {r: {**{name: float(acc[name][i]) for name in arms}, "train_loss_floor": floor,
                **{f"{name}_train_loss": float(loss[name][i]) for name in arms}}
            for i, r in enumerate(pruner.trained_rates)}


def srmp_accuracies(folder: str, rate: float, seed: int) -> dict:
    """{(seed, fold): accuracy %} of an SRMP run folder's ``fold*/rows.json`` at ``rate``."""
    found = {}
    for path in sorted(Path(folder).glob("fold*/rows.json")):
        record = json.loads(path.read_text())
        row = next((x for x in record["rates"] if abs(x["target_rate"] - rate) < 1e-6), None)
        if row is not None:
            found[(seed, record["fold"])] = row["accuracy"]
    return found


def markdown(records: list[dict], srmp: dict, command: str, epochs: int, lr: float, seconds: float) -> str:
    """Means over (seed, fold) per rate and the paired differences (``experiments.stats.paired``)."""
    rates = sorted({r["rate"] for r in records})
    lines = ["# Private per-rate dense leaves for MRMP: a probe on saved models", "",
             f"Command: `{command}`  ",
             f"Fine-tuning: the dense leaves only, {epochs} full-batch AdamW steps, lr {lr:g} cosine to 0; "
             f"{seconds / 60:.1f} min for this invocation. Test accuracy %, mean over (seed, fold); "
             "differences in points with the paired 95 % t-interval and verdict.", "",
             "| rate | pairs | train loss (nats): served / shared / private (its floor) | MRMP served | shared tuned | "
             "private tuned | private − shared | private − served | SRMP | private − SRMP | served − SRMP |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    cell = paired_cell

    for rate in rates:
        mine = [r for r in records if r["rate"] == rate]
        arm = {name: {(r["seed"], r["fold"]): r[name] for r in mine} for name in ("served", "shared", "private")}
        ref = srmp.get(rate, {})
        ref = {k: v for k, v in ref.items() if k in arm["served"]}
        losses = " / ".join(f"{np.mean([r[name + '_train_loss'] for r in mine]):.3f}"
                            for name in ("served", "shared", "private")) + \
            f" ({np.mean([r['train_loss_floor'] for r in mine]):.3f})"
        lines.append(f"| {rate:g} | {len(mine)} | {losses} | {np.mean(list(arm['served'].values())):.2f} | "
                     f"{np.mean(list(arm['shared'].values())):.2f} | {np.mean(list(arm['private'].values())):.2f} | "
                     f"{cell(arm['private'], arm['shared'])} | {cell(arm['private'], arm['served'])} | "
                     + (f"{np.mean(list(ref.values())):.2f} | {cell(arm['private'], ref)} | "
                        f"{cell(arm['served'], ref)} |" if ref else "- | - | - |"))
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True,
                   help="a finished MRMP run folder (results.json, fold*/model.npz); repeat for more seeds")
    p.add_argument("--srmp", default="",
                   help="SRMP run folders to compare with, a pattern with {rate} and {seed}, e.g. "
                        "experiments/results/width_pruning/srmp_r{rate}_s{seed}")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: the one the run recorded)")
    p.add_argument("--out", required=True, help="folder for probe.json and probe.md")
    p.add_argument("--epochs", type=int, default=200, help="full-batch fine-tuning steps per arm (default 200)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW's peak learning rate (default 1e-3)")
    a = p.parse_args(argv)
    if a.epochs < 1 or not a.lr > 0:
        raise SystemExit(f"--epochs must be ≥ 1 and --lr > 0, got {a.epochs} and {a.lr}")
    from jaxprune.serving import open_folds

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    done_path = out / "probe.json"
    records = json.loads(done_path.read_text()) if done_path.exists() else []
    settings = {"epochs": a.epochs, "lr": a.lr}
    other = {(r["epochs"], r["lr"]) for r in records} - {(a.epochs, a.lr)}
    if other:
        raise SystemExit(f"{done_path} holds folds tuned with (epochs, lr) {sorted(other)}, not ({a.epochs}, "
                         f"{a.lr:g}): give these settings another --out")
    done = {(r["run"], r["fold"]) for r in records}
    start = time.perf_counter()
    for run in a.run:
        trained, _, folds = open_folds(run, a.data_dir)
        if trained["method"] != "mrmp":
            raise SystemExit(f"--run {run}: a {trained['method']} run; the probe tunes MRMP models")
        for saved in folds:
            if (run, saved.fold) in done:
                continue
            t0 = time.perf_counter()
            for rate, arms in tune_fold(saved, a.epochs, a.lr).items():
                records.append({"run": run, "seed": saved.config.seed, "fold": saved.fold, "rate": rate,
                                **settings, **arms})
            done_path.write_text(json.dumps(records, indent=1))          # resumable fold by fold
            print(f"{run} fold {saved.fold}: {time.perf_counter() - t0:.0f} s", flush=True)
    srmp = {}
    if a.srmp:
        for rate in sorted({r["rate"] for r in records}):
            for seed in sorted({r["seed"] for r in records}):
                folder = a.srmp.format(rate=f"{rate:g}", seed=seed)
                srmp.setdefault(rate, {}).update(srmp_accuracies(folder, rate, seed))
    text = markdown(records, srmp, "python -m experiments.private_dense_probe " + " ".join(argv), a.epochs, a.lr,
                    time.perf_counter() - start)
    (out / "probe.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
