"""SftevalCallback in real training loops: TRL's SFTTrainer (full and LoRA) and a plain transformers.Trainer.

Each run is compared with `sfteval run` over the same output dir (same records, all cache hits; and from an empty
cache, so the live-model results are shown equal to the saved checkpoints') and with the same training without the
callback (bit-identical loss curve and end state: probing leaves training as it was).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from callback_fixtures import (
    base_with_dropout,
    comparable,
    read_records,
    sfteval_run,
    train_plain,
    train_trl,
    write_suite,
)
from train_tiny import single_thread

from sfteval.core.report import load_report
from sfteval.report.diff import diff_runs

METRIC = "sfteval/termination/non_terminated/native"


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    return base_with_dropout(tmp_path_factory.mktemp("base") / "model")


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory, base_model):
    """The same full fine-tune with TRL, with the callback and without it."""
    with single_thread():
        probed = train_trl(tmp_path_factory.mktemp("probed"), base_model, probe=True)
        unprobed = train_trl(tmp_path_factory.mktemp("unprobed"), base_model, probe=False)
    return probed, unprobed


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory, base_model):
    """The same LoRA fine-tune (adapter dropout 0.1) with TRL, with the callback and without it."""
    with single_thread():
        probed = train_trl(tmp_path_factory.mktemp("lora-probed"), base_model, probe=True, lora=True)
        unprobed = train_trl(tmp_path_factory.mktemp("lora-unprobed"), base_model, probe=False, lora=True)
    return probed, unprobed


def test_trl_probes_base_and_each_epoch_into_one_run_directory(full_runs) -> None:
    probed, _ = full_runs
    report = load_report(probed.run)
    assert [variant.name for variant in report.run.variants] == ["base", "epoch-1", "epoch-2"]
    assert report.run.complete and (probed.run / "report.html").stat().st_size > 1000
    assert {record.variant for record in probed.records} == {"base", "epoch-1", "epoch-2"}
    entries = probed.sfteval_entries()
    assert sorted(entries) == [0, 6, 12]
    termination = report.probe("termination")
    for step, variant in ((0, "base"), (6, "epoch-1"), (12, "epoch-2")):
        value = termination.cell(variant, "native").metric("non_terminated").value
        assert entries[step][METRIC] == value
    assert entries[6]["epoch"] == 1.0 and entries[12]["epoch"] == 2.0
    saved = json.loads((probed.out / "checkpoint-12" / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in saved if METRIC in entry] == [0, 6]  # saved before the step-12 probe
    assert "sfteval · base (before training)" in probed.printed
    assert "sfteval · epoch-1 (step 6)" in probed.printed and "sfteval · epoch-2 (step 12)" in probed.printed
    assert "3 probes took" in probed.printed


def test_a_later_sfteval_run_finds_every_result_in_the_cache(full_runs, base_model, tmp_path) -> None:
    probed, _ = full_runs
    run = shutil.copytree(probed.run, tmp_path / "run")
    result = sfteval_run(probed.out, base_model, probed.run.parent / "suite.yaml", run)
    assert result.report.run.cache_misses == 0 and result.report.run.cache_hits > 0
    assert read_records(run) == probed.records
    assert comparable(result.report) == comparable(load_report(probed.run))


def test_the_live_model_gives_the_saved_checkpoints_results(full_runs, base_model, tmp_path) -> None:
    probed, _ = full_runs
    with single_thread():
        result = sfteval_run(probed.out, base_model, probed.run.parent / "suite.yaml", tmp_path / "fresh")
    assert result.report.run.cache_misses > 0
    assert read_records(tmp_path / "fresh") == probed.records
    assert comparable(result.report) == comparable(load_report(probed.run))
    for variant in ("base", "epoch-1", "epoch-2"):
        diff = diff_runs(probed.run, tmp_path / "fresh", variant, variant)
        assert diff.rows and not diff.only_in_a and not diff.only_in_b
        assert all(row.value_a == row.value_b and row.delta in (0.0, None) for row in diff.rows)


def test_probing_leaves_the_loss_curve_and_training_state_unchanged(full_runs) -> None:
    probed, unprobed = full_runs
    assert len(probed.losses) == 12 and probed.losses == unprobed.losses
    assert probed.random_state == unprobed.random_state
    assert probed.model_state == unprobed.model_state == (True, True)


def test_a_lora_adapter_is_probed_on_the_live_model(lora_runs, base_model, tmp_path) -> None:
    probed, unprobed = lora_runs
    report = load_report(probed.run)
    assert [(v.name, v.kind) for v in report.run.variants] == [
        ("base", "full"),
        ("epoch-1", "adapter"),
        ("epoch-2", "adapter"),
    ]
    assert sorted(probed.sfteval_entries()) == [0, 6, 12]
    with single_thread():
        result = sfteval_run(probed.out, base_model, probed.run.parent / "suite.yaml", tmp_path / "fresh")
    assert result.report.run.cache_misses > 0 and read_records(tmp_path / "fresh") == probed.records
    assert probed.losses == unprobed.losses and probed.random_state == unprobed.random_state


def test_a_plain_trainer_saves_and_probes_each_epoch_with_every_epoch(base_model, tmp_path) -> None:
    with single_thread():
        run = train_plain(tmp_path / "plain", base_model, probe=True, every="epoch")
    assert sorted(path.name for path in run.out.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-6"]
    assert run.run is not None
    report = load_report(run.run)
    assert [variant.name for variant in report.run.variants] == ["base", "epoch-1", "epoch-2"]
    assert report.run.variants[0].path == str(base_model.resolve())  # found from the model's name_or_path
    assert sorted(run.sfteval_entries()) == [0, 6, 12]
    rerun = sfteval_run(run.out, base_model, write_suite(tmp_path), tmp_path / "plain" / "run")
    assert rerun.report.run.cache_misses == 0 and read_records(run.run) == run.records


def test_a_subprocess_probe_matches_the_in_process_one(full_runs, base_model, tmp_path) -> None:
    from sfteval.integrations.probing import ProbeSettings, run_in_subprocess
    from sfteval.suite import load_suite

    probed, _ = full_runs
    suite = load_suite(probed.run.parent / "suite.yaml")
    settings = ProbeSettings(suite=suite.path, out=tmp_path / "child", engine="hf")
    with single_thread():  # as the probing ran: the child takes this process's thread count
        report = run_in_subprocess(settings, suite, probed.out, base_model)
    assert report.run.cache_misses > 0 and read_records(tmp_path / "child") == probed.records
