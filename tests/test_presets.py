"""Named presets (jaxprune.presets), what the data says about its own settings (data.traits),
and experiments that refuse to mix networks trained under two presets."""

import json

import numpy as np
import pytest

from experiments.jobs import Job, job_config, run_jobs
from conftest import CHEAP_COMPILE
from jaxprune.cli import main
from jaxprune.config import SettingError, override
from jaxprune.data.traits import data_notes, persons, tallest_axis
from jaxprune.data.synthetic import make_synthetic
from jaxprune.datasets import load_dataset
from jaxprune.graphs import FPHA_BONES, SBU_BONES
from jaxprune.presets import preset_settings
from jaxprune.run_config import RunConfig, load_run_config

# The SBU preset every pruning table committed before presets had names was trained with.
FORMER_SBU = ["features.velocities=true", "model.hidden=128", "augment.rotate_deg=20", "augment.scale=0.1",
              "train.label_smoothing=0.1", "train.weight_decay=0.01", "features.align_from=2",
              "features.align_to=17", "augment.swap_groups=2"]
# README "Measured": the best validated dense recipe is that preset plus these four settings.
WIDE_EXTRA = ["model.channels=64", "augment.crops=8", "augment.crop_min=0.6", "augment.test_crops=true"]


def test_presets_are_the_validated_recipes():
    assert sorted(preset_settings("sbu", "c8")) == sorted(FORMER_SBU)
    assert sorted(preset_settings("sbu")) == sorted(FORMER_SBU + WIDE_EXTRA)      # the default
    # the data-independent part carries to new data; the SBU-only part (view, person swap) does not
    assert sorted(preset_settings("npz")) == sorted(FORMER_SBU[:6] + WIDE_EXTRA)
    assert preset_settings("synthetic") == ["train.epochs=1000"]                   # the quick start's
    paper = preset_settings("sbu", "paper")
    assert "train.lr_rule=loss_trend" in paper and "train.batch_size=200" in paper
    assert not any(s.startswith(("augment.", "features.")) for s in paper)        # no augmentation, no view
    with pytest.raises(SettingError, match="unknown preset 'huge'.*wide"):
        preset_settings("sbu", "huge")


def test_mrmp_on_the_wide_network_gets_its_validated_recipe():
    """experiments/results/tune_mrmp_wide chose the split batch with 6000 epochs and the rate
    weights 4, 2 for MRMP on the wide network; it applies after the dataset's layers, to MRMP under
    that preset only, and its weights fit any list of rates."""
    recipe = ["prune.split_batch=true", "train.epochs=6000", "prune.rate_weights=4,2"]
    assert preset_settings("sbu", method="mrmp") == preset_settings("sbu") + recipe
    assert preset_settings("fpha", "wide", "mrmp")[-3:] == recipe
    for dataset, preset, method in (("sbu", None, "srmp"), ("sbu", None, "dense"), ("sbu", "c8", "mrmp"),
                                    ("synthetic", None, "mrmp")):
        assert preset_settings(dataset, preset, method) == preset_settings(dataset, preset)
    config = job_config(Job("sbu", "d", "mrmp_s0", "mrmp", ("train.epochs=50",), 1, "out"))
    assert config.prune.split_batch and config.train.epochs == 50           # an experiment's --set still wins
    assert config.prune.loss_weights() == (4.0, 2.0, 1.0, 1.0, 1.0, 1.0)
    two = job_config(Job("sbu", "d", "mrmp_s0", "mrmp", ("prune.rates=0.5,0.9",), 1, "out"))
    assert two.prune.loss_weights() == (4.0, 2.0)
    assert job_config(Job("sbu", "d", "srmp_s0", "srmp", (), 1, "out")).train.epochs == 2000
    # distillation needs whole batches: the refusal says where the split came from and how to undo it
    with pytest.raises(SettingError, match=r"wide preset turns split_batch on for mrmp: --set prune.split_batch=false"):
        job_config(Job("sbu", "d", "mrmp_s0", "mrmp", ("prune.distill_weight=1",), 1, "out"))
    assert job_config(Job("sbu", "d", "mrmp_s0", "mrmp", ("prune.distill_weight=1", "prune.split_batch=false"), 1,
                          "out")).prune.distill_weight == 1


def test_two_persons_are_read_from_the_bones():
    assert persons(SBU_BONES, 30) == 2
    assert persons(FPHA_BONES, 21) == 1
    assert persons(SBU_BONES[:14], 15) == 1                                  # one SBU person
    assert persons(SBU_BONES + ((2, 17),), 30) == 1                          # a bone between them
    assert persons(SBU_BONES[:14] + SBU_BONES[15:], 30) == 1                 # halves of other shapes
    assert persons((), 30) == 1


def test_the_vertical_axis_is_where_bodies_are_tallest():
    d = make_synthetic(seed=0)                                               # y up
    assert tallest_axis(d.x, d.lengths) == 1
    assert tallest_axis(d.x[..., [0, 2, 1]], d.lengths) == 2                 # z up


def _two_person_npz(path, z_up=False):
    d = make_synthetic(seed=0)
    x = d.x[:64, ..., [0, 2, 1]] if z_up else d.x[:64]
    np.savez(path, x=x, lengths=d.lengths[:64], y=d.labels[:64], folds=(np.arange(64) >= 48).astype(int),
             edges=np.array(SBU_BONES))


def test_own_data_gets_notes_on_the_settings_that_depend_on_it(tmp_path, capsys):
    data = tmp_path / "two_people.npz"
    _two_person_npz(data, z_up=True)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "npz", "--data-dir", str(data), "--out", str(out), "--quiet",
                 "--preset", "c8", "--epochs", "1", *CHEAP_COMPILE]) == 0
    err = capsys.readouterr().err
    assert "two persons detected (joints 0-14 and 15-29" in err and "augment.swap_groups=2" in err
    assert "--set augment.vertical_axis=2" in err                            # z up, rotations about y
    assert "no view alignment" in err
    run = json.loads((out / "run.json").read_text())["config"]
    assert run["augment"]["swap_groups"] == 0 and run["augment"]["vertical_axis"] == 1   # noted, not set
    # what the notes suggest silences them; settings --data-dir shows them too
    fixed = override(RunConfig(), ["augment.swap_groups=2", "augment.vertical_axis=2", "features.vertical_axis=2",
                              "features.align_from=2", "features.align_to=17", "augment.rotate_deg=20"])
    assert data_notes(load_dataset("npz", str(data)), fixed) == []
    assert main(["settings", "--dataset", "npz", "--data-dir", str(data)]) == 0
    assert "# note: two persons detected" in capsys.readouterr().out


def test_an_experiment_refuses_rows_trained_under_another_preset(tmp_path):
    job = Job("sbu", "unused", "dense", "dense", (), 1, str(tmp_path / "out"), "c8")
    job.rows_path().parent.mkdir(parents=True)
    job.rows_path().write_text(json.dumps({"config": job_config(job).to_dict()}))
    run_jobs([job], workers=0)                                   # done under the same settings: skipped
    wide = job._replace(preset=None)                             # the default preset is wide now
    with pytest.raises(ValueError, match=r"dense/fold1/rows.json was trained with other settings.*"
                                         r"augment.crop_min=0.8 there, 0.6 here"):
        run_jobs([wide], workers=0)
    assert json.loads(job.rows_path().read_text())["config"]["model"]["channels"] == 8    # left as it was


def test_done_rows_are_compared_on_the_settings_their_method_reads(tmp_path):
    """A dense run saved when prune.ctf_floor was 0 is still the same dense run (dense never reads
    it); a CTF run saved with another floor is refused (jaxprune.run_config.read_settings)."""
    def saved_as(job, floor):
        config = job_config(job).to_dict()
        config["prune"]["ctf_floor"] = floor
        job.rows_path().parent.mkdir(parents=True)
        job.rows_path().write_text(json.dumps({"config": config}))

    dense = Job("sbu", "unused", "dense", "dense", (), 1, str(tmp_path / "out"))
    ctf = Job("sbu", "unused", "ctf", "ctf", ("prune.rate=0.99",), 1, str(tmp_path / "out"))
    saved_as(dense, 0.0)
    saved_as(ctf, 0.0)
    run_jobs([dense], workers=0)                                 # skipped: nothing it reads differs
    with pytest.raises(ValueError, match=r"ctf/fold1/rows.json was trained with other settings.*"
                                         r"prune.ctf_floor=0.0 there, 0.005 here"):
        run_jobs([ctf], workers=0)
    # ... and the MRMP run saved under the old floor still reads back as a run of this jaxprune
    mrmp = job_config(Job("sbu", "unused", "mrmp", "mrmp", (), 1, str(tmp_path / "out"))).to_dict()
    mrmp["prune"]["ctf_floor"] = 0.0
    assert load_run_config({"config": mrmp}, tmp_path / "rows.json") == job_config(
        Job("sbu", "unused", "mrmp", "mrmp", (), 1, str(tmp_path / "out")))
    with pytest.raises(ValueError, match=r"does not describe.*no_such_setting"):    # an unknown key is refused
        load_run_config({"config": {**mrmp, "prune": {**mrmp["prune"], "no_such_setting": 1}}}, tmp_path / "r.json")
    mrmp["prune"]["rates"] = [0.5, 2.0]                          # a setting it reads is still checked
    with pytest.raises(ValueError, match=r"rows.json: its 'config' does not describe"):
        load_run_config({"config": mrmp}, tmp_path / "rows.json")
