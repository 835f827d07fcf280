"""Any rate without retraining: a tiny MRMP run on synthetic data, then ``jaxprune eval`` at rates
it never trained, through the library and the command line; saved models and their errors."""

import json

import jax
import numpy as np
import pytest

from jaxprune.cli import main
from jaxprune.model_io import load_model, save_model
from jaxprune.models import gcn
from jaxprune.serving import evaluate_run, parse_rates



@pytest.fixture(scope="module")
def mrmp_run(tiny_mrmp_run):
    return tiny_mrmp_run, json.loads((tiny_mrmp_run / "results.json").read_text())


def test_train_writes_every_serve_rate_and_the_model(mrmp_run):
    out, results = mrmp_run
    rows = results["runs"][0]["rates"]
    targets = [r["target_rate"] for r in rows]
    assert {0.5, 0.9, 0.93, 0.99, 0.1} <= set(targets)
    assert [r["target_rate"] for r in rows if r["trained"]] == [0.5, 0.9]
    assert (out / "fold1" / "model.npz").exists()
    for r in rows:
        assert r["kept_params"] == round((1 - r["achieved_rate"]) * r["total_params"])
        assert set(r["layer_rates"]) == {"block0/attention/query", "block0/attention/key", "block0/conv/kernel",
                                         "block1/attention/query", "block1/attention/key", "block1/conv/kernel",
                                         "block2/attention/query", "block2/attention/key", "block2/conv/kernel",
                                         "fc/kernel"}
    kept = [r["kept_params"] for r in rows]
    assert kept == sorted(kept, reverse=True)                  # nested: fewer weights at higher rates
    flops = [r["flops"] for r in rows]
    assert flops == sorted(flops, reverse=True)


def test_eval_at_unseen_rates_matches_training_rows(mrmp_run, tmp_path):
    out, results = mrmp_run
    again = evaluate_run(out, [0.5, 0.93, 0.615], out_dir=tmp_path / "ev")
    rows = {r["target_rate"]: r for r in again["runs"][0]["rates"]}
    trained_rows = {r["target_rate"]: r for r in results["runs"][0]["rates"]}
    for rate in (0.5, 0.93):                                   # same model, same data: same figures
        for key in ("achieved_rate", "accuracy", "kept_params", "flops"):
            assert rows[rate][key] == pytest.approx(trained_rows[rate][key])
    assert 0.615 in rows and not rows[0.615]["trained"]
    on_disk = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert on_disk["summary"][0]["target_rate"] == 0.5
    with pytest.raises(FileExistsError):
        evaluate_run(out, [0.5], out_dir=tmp_path / "ev")


def test_eval_command_and_its_errors(mrmp_run, tmp_path, capsys):
    out, _ = mrmp_run
    assert main(["eval", "--run", str(out), "--rates", "0.6,0.97"]) == 0
    printed = capsys.readouterr().out
    assert "0.600" in printed and "0.970" in printed
    for bad, what in (("1.0", r"\[0, 1\)"), ("", "empty"), ("0.5,abc", "'abc' is not a number"),
                      ("-0.2", r"\[0, 1\)")):
        assert main(["eval", "--run", str(out), "--rates", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("jaxprune: error: ") and len(err.strip().splitlines()) == 1
        assert __import__("re").search(what, err), err
    assert main(["eval", "--run", str(tmp_path / "nothing"), "--rates", "0.5"]) == 2
    assert "results.json" in capsys.readouterr().err


@pytest.mark.parametrize("argv,what", [
    (["--method", "mrmp", "--rates", "0.5,1.2"], r"\[0, 1\)"),
    (["--method", "mrmp", "--rates", ","], "empty"),
    (["--method", "mrmp", "--rates", "half"], "not a number"),
    (["--method", "srmp", "--rate", "0.5,0.9"], "one rate"),
    (["--method", "srmp", "--rates", "0.5,0.9"], "--rate R"),
    (["--method", "mrmp", "--rate", "0.5"], "--rates"),
    (["--method", "dense", "--rate", "0.5"], "no rate"),
])
def test_bad_rates_are_refused_before_any_work(argv, what, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["train", "--dataset", "synthetic", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(what, err), err
    assert not out.exists()


def test_parse_rates():
    assert parse_rates("0.9, 0.5,0.5") == (0.5, 0.9)


def test_model_file_roundtrip_and_mismatch(tmp_path):
    cfg = gcn.GCNConfig(num_nodes=4, num_features=3, num_classes=2, edges=((0, 1),), channels=2,
                        num_blocks=1, hidden=4)
    params = gcn.init(jax.random.key(0), cfg)
    save_model(tmp_path / "m.npz", params, {"priors/fc/kernel/scale": np.float32(0.3)})
    loaded, extra = load_model(tmp_path / "m.npz", params)
    jax.tree.map(np.testing.assert_array_equal, loaded, params)
    assert set(extra) == {"priors/fc/kernel/scale"} and float(extra["priors/fc/kernel/scale"]) == pytest.approx(0.3)
    with np.load(tmp_path / "m.npz") as f:                   # jaxprune 0.1's file: no format, old names
        old = {k: f[k] for k in f.files if k.startswith("params/")}
    np.savez(tmp_path / "old.npz", **old, **{"prior_scale['fc']['kernel']": np.float32(0.3)})
    with pytest.raises(ValueError, match=r"old\.npz: saved by jaxprune 0\.1 \(model format 1"):
        load_model(tmp_path / "old.npz", params)
    bigger = gcn.init(jax.random.key(0), cfg.__class__(**{**cfg.__dict__, "hidden": 5}))
    with pytest.raises(ValueError, match=r"m\.npz.*/kernel. has shape"):
        load_model(tmp_path / "m.npz", bigger)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        load_model(tmp_path / "bad.npz", params)
    with pytest.raises(ValueError, match="no saved model"):
        load_model(tmp_path / "missing.npz", params)


def test_a_hundred_rates_in_one_vmapped_call(mrmp_run, monkeypatch):
    import jaxprune.evaluate as ev
    out, _ = mrmp_run
    calls = []
    original = ev._batch
    monkeypatch.setattr(ev, "_batch", lambda *a: calls.append(1) or original(*a))
    rates = np.round(np.linspace(0.0, 0.99, 100), 6)
    results = evaluate_run(out, rates)
    assert len(calls) == 1                                  # one batch of test samples, all 100 rates
    rows = results["runs"][0]["rates"]
    assert len(rows) == 100
    kept = [r["kept_params"] for r in rows]
    assert kept == sorted(kept, reverse=True) and kept[0] == rows[0]["total_params"]
