"""Compaction (jaxprune.models.compact) and export (jaxprune.models.export): the compact network gives the masked
network's logits (≤ 1e-5) on random and real inputs, removals propagate across layers, constants
are folded, BCOO kernels keep only non-zeros, files round-trip and bad files are refused."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.compact_pad import pad_widths

from jaxprune.models.compact import compact, compact_apply, compact_flops, compact_size, to_bcoo
from jaxprune.models.export import load_compact, save_compact
from jaxprune.masks.bandstop import apply_masks
from jaxprune.models import gcn
from jaxprune.models.flops import gcn_flops

apply = jax.jit(gcn.apply, static_argnums=2)   # one compile per config, not one per operation
EDGES = ((0, 1), (1, 2), (2, 3), (3, 4), (1, 5))


def config(attention="bones", **kw):
    widths = {"channels": 4, "attention_dim": 3, "hidden": 8, **kw}
    return gcn.GCNConfig(num_nodes=6, num_features=5, num_classes=4, edges=EDGES, attention=attention, **widths)


def params_with_biases(cfg, seed=0):
    """Fresh params with every bias non-zero, so dead channels carry constants to fold."""
    p = gcn.init(jax.random.key(seed), cfg)
    return jax.tree_util.tree_map_with_path(
        lambda path, a: a + 0.3 if path[-1].key == "bias" and a.ndim == 1 else a, p)


def random_masks(params, seed, p_entry=0.3, p_line=0.3):
    """Random entry zeros plus whole random rows and columns, at every prunable leaf."""
    rng = np.random.default_rng(seed)

    def mask(w, keep):
        if not keep:
            return None
        m = (rng.random(w.shape) > p_entry).astype(np.float32)
        m[rng.random(w.shape[0]) < p_line] = 0
        m[:, rng.random(w.shape[1]) < p_line] = 0
        return jnp.asarray(m)
    return jax.tree.map(mask, params, gcn.prunable(params))


def max_diff(a, b):
    return float(jnp.max(jnp.abs(a - b)))


@pytest.mark.parametrize("attention", ["bones", "biased", "free"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_compact_equals_masked_on_random_masks(attention, seed):
    cfg = config(attention)
    params = params_with_biases(cfg, seed)
    masks = random_masks(params, seed)
    x = jax.random.normal(jax.random.key(seed + 10), (7, 6, 5))
    ref = apply(apply_masks(params, masks), x, cfg)
    net = compact(params, masks, cfg)
    assert max_diff(jax.jit(compact_apply)(net, x), ref) <= 1e-5
    if seed == 0:                                   # BCOO kernels: one mask per mode (each compiles anew)
        assert max_diff(jax.jit(compact_apply)(to_bcoo(net), x), ref) <= 1e-5
    assert compact_size(net) < sum(int(np.size(m)) for m in jax.tree.leaves(masks))


def test_dense_network_compacts_to_itself():
    cfg = config()
    params = params_with_biases(cfg)
    net = compact(params, None, cfg)
    for b in range(3):
        assert net.params[f"block{b}"]["conv"]["kernel"].shape == params[f"block{b}"]["conv"]["kernel"].shape
    assert net.params["fc"]["kernel"].shape == params["fc"]["kernel"].shape
    assert compact_flops(net) == gcn_flops(params, cfg)        # same count as the masked-network FLOPs
    x = jax.random.normal(jax.random.key(3), (2, 6, 5))
    assert max_diff(net(x), apply(params, x, cfg)) <= 1e-6


def test_removals_propagate_and_constants_fold():
    cfg = config()
    params = params_with_biases(cfg)
    masks = jax.tree.map(lambda w, k: jnp.ones_like(w) if k else None, params, gcn.prunable(params))
    masks["block1"]["conv"]["kernel"] = masks["block1"]["conv"]["kernel"].at[:, 2].set(0)  # channel 2 dead
    masks["block0"]["attention"]["key"] = masks["block0"]["attention"]["key"].at[:, 1].set(0)  # attn dim 1
    masks["fc"]["kernel"] = masks["fc"]["kernel"].at[np.arange(6) * 4 + 3].set(0)  # channel 3 of block 2 unread
    masks["fc"]["kernel"] = masks["fc"]["kernel"].at[:, 5].set(0)                # hidden unit 5 constant
    net = compact(params, masks, cfg)
    p = net.params
    assert p["block1"]["conv"]["kernel"].shape == (4, 3)            # dead column removed ...
    assert p["block2"]["attention"]["query"].shape[0] == 3          # ... with the next layer's row
    assert p["block2"]["conv"]["kernel"].shape == (3, 3)            # unread channel 3 removed
    assert p["block0"]["attention"]["key"].shape == (5, 2)          # zero key column: dim removed
    assert p["fc"]["kernel"].shape == (6 * 3, 7) and p["fc"]["index"].shape == (18,)
    assert p["classifier"]["kernel"].shape == (7, 4)
    # block 1's dead channel outputs relu(bias) = 0.3 everywhere: folded into block 2's biases
    assert float(jnp.abs(p["block2"]["attention"]["query_bias"]).sum()) > 0
    x = jax.random.normal(jax.random.key(4), (5, 6, 5))
    assert max_diff(net(x), apply(apply_masks(params, masks), x, cfg)) <= 1e-5


def test_everything_pruned_gives_the_constant_network():
    cfg = config()
    params = params_with_biases(cfg)
    masks = jax.tree.map(lambda w, k: jnp.zeros_like(w) if k else None, params, gcn.prunable(params))
    net = compact(params, masks, cfg)
    assert compact_size(net) == 0 and net.params["input_index"].shape == (0,)
    x = jax.random.normal(jax.random.key(5), (3, 6, 5))
    ref = apply(apply_masks(params, masks), x, cfg)
    assert max_diff(net(x), ref) <= 1e-5
    assert max_diff(ref[0], ref[1]) == 0                            # input-independent logits


def test_compact_on_real_sbu_inputs(sbu):
    from jaxprune.data.features import FeatureConfig
    from jaxprune.task.folds import fold_data
    features = FeatureConfig()
    data = fold_data(sbu, 1, features)
    from jaxprune.data.features import node_features
    x = node_features(jnp.asarray(data.test_chunks), features)
    cfg = gcn.GCNConfig(num_nodes=sbu.num_joints, num_features=features.num_features(),
                        num_classes=sbu.num_classes, edges=sbu.edges)
    params = params_with_biases(cfg, 7)
    masks = random_masks(params, 7, p_entry=0.8, p_line=0.4)
    ref = apply(apply_masks(params, masks), x, cfg)
    net = compact(params, masks, cfg)
    assert max_diff(jax.jit(compact_apply)(net, x), ref) <= 1e-5
    assert max_diff(jax.jit(compact_apply)(to_bcoo(net), x), ref) <= 1e-5


def test_mrmp_masks_compact_too():
    from jaxprune.methods import make_pruner
    from jaxprune.methods.config import PruneConfig
    cfg = config()
    params = params_with_biases(cfg)
    pruner = make_pruner("mrmp", params, gcn.prunable(params), PruneConfig(), 100)
    masks = jax.tree.map(lambda m: m[0], pruner.hard_masks(params, np.asarray([0.95], np.float32)))
    x = jax.random.normal(jax.random.key(6), (4, 6, 5))
    net = compact(params, masks, cfg)
    assert max_diff(net(x), apply(apply_masks(params, masks), x, cfg)) <= 1e-5


def test_bcoo_keeps_only_nonzeros():
    cfg = config()
    params = params_with_biases(cfg)
    net = compact(params, random_masks(params, 1), cfg)
    sparse_net = to_bcoo(net)
    kernel = net.params["fc"]["kernel"]
    assert sparse_net.params["fc"]["kernel"].nse == int(np.count_nonzero(np.asarray(kernel)))
    assert compact_size(sparse_net, nonzero=True) == compact_size(net, nonzero=True) < compact_size(net)
    assert compact_flops(sparse_net, nonzero=True) < compact_flops(net)


@pytest.mark.parametrize("seed", [0, 1])
def test_blocks_over_the_graphs_pairs_give_the_masked_logits(tmp_path, monkeypatch, seed):
    """model.attention_forward=edges: the compact network's blocks run over the bones' pairs
    (the (B, J, J) block is never called) and give the masked network's logits, with a block
    whose attention is a constant (seed 1), with BCOO kernels, and read back from a file."""
    import jaxprune.models.compact as compact_module
    cfg = config(attention_forward="edges")
    params = params_with_biases(cfg, seed)
    masks = random_masks(params, seed)
    if seed == 1:
        masks["block1"]["attention"]["key"] = jnp.zeros_like(params["block1"]["attention"]["key"])
    x = jax.random.normal(jax.random.key(seed + 20), (7, 6, 5))
    ref = apply(apply_masks(params, masks), x, config())
    net = compact(params, masks, cfg)
    assert net.attention_forward == "edges" and ("constant" in net.params["block1"]["attention"]) == (seed == 1)

    def dense_block(*_):
        raise AssertionError("the dense (B, J, J) block ran")
    monkeypatch.setattr(compact_module, "compact_block", dense_block)
    assert max_diff(jax.jit(compact_apply)(net, x), ref) <= 1e-5
    if seed == 0:
        assert max_diff(jax.jit(compact_apply)(to_bcoo(net), x), ref) <= 1e-5
    save_compact(tmp_path / "pairs.npz", net)
    loaded, _ = load_compact(tmp_path / "pairs.npz")
    assert loaded.attention_forward == "edges" and max_diff(loaded(x), ref) <= 1e-5


@pytest.mark.parametrize("bcoo", [False, True])
def test_export_round_trip(tmp_path, bcoo):
    cfg = config()
    params = params_with_biases(cfg)
    net = compact(params, random_masks(params, 2), cfg)
    net = to_bcoo(net) if bcoo else net
    path = tmp_path / "net.npz"
    save_compact(path, net, {"rate": 0.9})
    loaded, info = load_compact(path)
    assert info == {"rate": 0.9}
    assert loaded.graph == net.graph and loaded.attention_scale == net.attention_scale
    x = jax.random.normal(jax.random.key(8), (3, 6, 5))
    assert max_diff(loaded(x), net(x)) == 0.0


def test_bad_export_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_compact(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="garbage.npz"):
        load_compact(garbage)
    no_meta = tmp_path / "plain.npz"
    np.savez(no_meta, a=np.ones(3))
    with pytest.raises(ValueError, match="plain.npz.*no 'meta'"):
        load_compact(no_meta)
    cfg = config()
    net = compact(params_with_biases(cfg), None, cfg)
    path = tmp_path / "net.npz"
    save_compact(path, net)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if k != "params/fc/kernel"}
    broken = tmp_path / "broken.npz"
    np.savez(broken, **arrays)
    with pytest.raises(ValueError, match="broken.npz.*missing 'params/fc/kernel'"):
        load_compact(broken)
    arrays["params/fc/kernel"] = np.ones((3, 3), np.float32)
    np.savez(broken, **arrays)
    with pytest.raises(ValueError, match="broken.npz.*'params/fc/.*' has shape"):
        load_compact(broken)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "attention_forward": "pairs"}))
    np.savez(broken, **arrays)
    with pytest.raises(ValueError, match="broken.npz: field 'meta.attention_forward' must be one of"):
        load_compact(broken)


@pytest.mark.parametrize("attention", ["bones", "free"])
def test_attention_without_dimensions_becomes_a_constant(tmp_path, attention):
    cfg = config(attention)
    params = params_with_biases(cfg)
    masks = jax.tree.map(lambda w, k: jnp.ones_like(w) if k else None, params, gcn.prunable(params))
    masks["block1"]["attention"]["key"] = jnp.zeros_like(masks["block1"]["attention"]["key"])
    net = compact(params, masks, cfg)
    att = net.params["block1"]["attention"]
    assert set(att) == {"constant"} and att["constant"].shape == (6, 6)
    np.testing.assert_allclose(att["constant"].sum(-1), 1.0, rtol=1e-6)
    x = jax.random.normal(jax.random.key(9), (4, 6, 5))
    ref = apply(apply_masks(params, masks), x, cfg)
    assert max_diff(net(x), ref) <= 1e-5
    assert compact_flops(net) < gcn_flops(params, cfg)
    save_compact(tmp_path / "c.npz", net)
    loaded, _ = load_compact(tmp_path / "c.npz")
    assert max_diff(loaded(x), ref) <= 1e-5


@pytest.mark.parametrize("attention", ["bones", "free"])
@pytest.mark.parametrize("seed", [0, 1])
def test_padded_widths_give_the_same_logits(attention, seed):
    """benchmarks.compact_pad (a lever benchmarks.ctf_inference times): every channel, attention dimension and hidden width a multiple of 4 (odd widths
    from random masks), the FC's flatten index remapped, the logits those of the compact network."""
    cfg = config(attention, channels=7, attention_dim=5, hidden=9)
    params = params_with_biases(cfg, seed)
    net = compact(params, random_masks(params, seed), cfg)
    padded = pad_widths(net, 4)
    for b in range(3):
        conv = padded.params[f"block{b}"]["conv"]["kernel"]
        assert conv.shape[1] % 4 == 0 and (b == 0 or conv.shape[0] % 4 == 0)
        assert conv.shape[1] >= net.params[f"block{b}"]["conv"]["kernel"].shape[1]
        if "query" in padded.params[f"block{b}"]["attention"]:
            assert padded.params[f"block{b}"]["attention"]["query"].shape[1] % 4 == 0
    assert padded.params["fc"]["kernel"].shape[1] % 4 == 0
    assert any(padded.params[f"block{b}"]["conv"]["kernel"].shape != net.params[f"block{b}"]["conv"]["kernel"].shape
               for b in range(3))                                   # something was padded
    x = jax.random.normal(jax.random.key(seed + 20), (5, 6, 5))
    assert max_diff(jax.jit(compact_apply)(padded, x), jax.jit(compact_apply)(net, x)) <= 1e-5
    assert pad_widths(net, 1) is net
    with pytest.raises(ValueError, match="before to_bcoo"):
        pad_widths(to_bcoo(net), 4)

