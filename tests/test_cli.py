"""The ``jaxprune`` command: a tiny real run, every user error as exit status 2 with a clear
one-line message, the settings listing and the help text."""

import json
import os

import pytest

from conftest import CHEAP_COMPILE
from jaxprune.cli import main


def train_args(out, *extra):
    return ["train", "--dataset", "synthetic", "--out", str(out), "--quiet",
            "--set", "train.epochs=5", *CHEAP_COMPILE, *extra]


def error_of(capsys, argv):
    """Runs main(argv), expects status 2, returns stderr (checked to be one clear error line)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxprune: error: ")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    return err


def test_tiny_run_then_refused_rerun(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(out, "--set", "model.channels=4", "--set", "model.hidden=16")) == 0
    captured = capsys.readouterr()
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 5 and results["dataset"] == "synthetic" and results["method"] == "dense"
    assert results["config"]["model"]["channels"] == 4
    assert results["xla_flags"] == os.environ.get("XLA_FLAGS", "")   # the thread flags that shaped the floats
    assert [r["fold"] for r in results["runs"]] == [1]
    assert len((out / "fold1" / "metrics.jsonl").read_text().splitlines()) == 5
    assert "accuracy" in captured.out and str(out / "results.json") in captured.out
    assert captured.err == ""  # --quiet: no progress output

    # the finished run is refused, and its results.json left untouched
    before = (out / "results.json").read_bytes()
    err = error_of(capsys, train_args(out))
    assert "results.json" in err and "--overwrite" in err
    assert (out / "results.json").read_bytes() == before


def test_unknown_setting(tmp_path, capsys):
    err = error_of(capsys, train_args(tmp_path / "o", "--set", "train.epoch=3"))
    assert "train.epoch" in err and "does not exist" in err


def test_bad_setting_value(tmp_path, capsys):
    err = error_of(capsys, train_args(tmp_path / "o", "--set", "model.channels=many"))
    assert "model.channels" in err


@pytest.mark.parametrize("extra", [["--epochs", "-1"], ["--set", "train.epochs=-3"]])
def test_negative_epochs(tmp_path, capsys, extra):
    err = error_of(capsys, train_args(tmp_path / "o", *extra))
    assert "epochs" in err and ">= 0" in err
    assert not (tmp_path / "o").exists()


def test_sbu_without_data_dir(tmp_path, capsys):
    err = error_of(capsys, ["train", "--dataset", "sbu", "--out", str(tmp_path / "o")])
    assert "--data-dir" in err and "sbu" in err


def test_missing_data_dir(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "dir"
    err = error_of(capsys, ["train", "--dataset", "sbu", "--data-dir", str(missing),
                            "--out", str(tmp_path / "o")])
    assert str(missing) in err and "not found" in err


def test_unknown_fold(tmp_path, capsys):
    err = error_of(capsys, train_args(tmp_path / "o", "--fold", "7"))
    assert "fold 7" in err and "[1]" in err
    assert not (tmp_path / "o").exists()


def test_malformed_fold_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(train_args(tmp_path / "o", "--fold", "first"))
    assert exc.value.code == 2
    assert "--fold" in capsys.readouterr().err


def test_settings_listing(capsys):
    assert main(["settings", "--preset", "none"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "train.epochs = 2000" in lines
    assert "features.chunks = 4" in lines
    assert "method = dense" in lines
    assert lines[0] == "# dataset synthetic, preset none"
    assert all(" = " in line for line in lines[1:])
    assert "prune.ctf_weight = 100.0    # read by ctf" in lines                 # each method's settings
    assert "prune.kl_weight = 10.0    # read by srmp, mrmp" in lines
    # the synthetic data's default preset, and where each value comes from
    assert main(["settings", "--dataset", "synthetic"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# dataset synthetic, preset demo" and "train.epochs = 1000    # preset demo" in lines


def test_settings_show_the_preset_layers(capsys):
    assert main(["settings", "--dataset", "sbu", "--set", "model.hidden=256"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# dataset sbu, preset wide"                          # the default for real data
    assert "model.channels = 64    # preset wide" in lines
    assert "features.align_from = 2    # preset wide, for sbu" in lines     # the data-dependent layer
    assert "model.hidden = 256    # --set" in lines                          # the user's own wins
    assert "features.chunks = 4" in lines                                    # a dataclass default
    assert main(["settings", "--dataset", "sbu", "--preset", "paper"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "model.channels = 8" in lines and "train.batch_size = 200    # preset paper, for sbu" in lines
    assert "augment.rotate_deg = 0.0" in lines and "features.align_from = -1" in lines
    assert main(["settings", "--dataset", "fpha", "--preset", "paper"]) == 0
    assert "model.channels = 16    # preset paper, for fpha" in capsys.readouterr().out.splitlines()
    assert main(["settings", "--dataset", "npz", "--preset", "c8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "model.channels = 8" in lines and "features.velocities = True    # preset c8" in lines
    # a method's own recipe on the preset's network: MRMP's validated on the wide one
    assert main(["settings", "--dataset", "sbu", "--method", "mrmp", "--set", "train.epochs=7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("prune.split_batch = True    # preset wide, for mrmp;") for line in lines)
    assert "train.epochs = 7    # --set" in lines
    assert main(["settings", "--dataset", "sbu", "--method", "mrmp", "--preset", "c8"]) == 0
    assert "prune.split_batch = False    # read by srmp, mrmp" in capsys.readouterr().out.splitlines()


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: jaxprune") and "train" in out and "settings" in out
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    assert "--overwrite" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_npz_run_can_be_evaluated_exported_and_resumed(tmp_path, capsys):
    """A bring-your-own .npz run records the npz loader (not just the file's stem, which no loader
    rebuilds), so eval, export and --resume find its data again."""
    import numpy as np
    rng = np.random.default_rng(0)
    data = tmp_path / "my_moves.npz"
    np.savez(data, x=rng.normal(size=(16, 6, 5, 3)), y=np.arange(16) % 2, folds=(np.arange(16) >= 12).astype(int))
    out = tmp_path / "run"
    argv = ["train", "--dataset", "npz", "--data-dir", str(data), "--method", "srmp", "--rate", "0.5",
            "--out", str(out), "--quiet", "--set", "train.epochs=2", "--set", "model.channels=4",
            "--set", "model.hidden=8"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "my_moves" and results["loader"] == "npz"
    assert json.loads((out / "run.json").read_text())["loader"] == "npz"

    assert main(["eval", "--run", str(out), "--rates", "0.3,0.6", "--out", str(tmp_path / "ev")]) == 0
    evaluated = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert evaluated["loader"] == "npz" and [r["target_rate"] for r in evaluated["summary"]] == [0.3, 0.6]
    assert main(["export", "--run", str(out), "--out", str(tmp_path / "net.npz")]) == 0
    assert (tmp_path / "net.npz").exists()

    # a run stopped after its fold: --resume reloads the .npz and writes the same results
    (out / "results.json").unlink()
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["summary"] == results["summary"] and resumed["loader"] == "npz"
