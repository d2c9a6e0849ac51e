"""No pickle and no repository code on any path that loads weights: run, train, lint, discovery, engines.

Each test plants a pickle whose unpickling would create a marker file (what torch.load(weights_only=False) of a
hostile `pytorch_model.bin` does) and checks that the marker never appears and that a refusal is one line, exit 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from run_fixtures import full_checkpoint, if_suite, invoke, pickle_only_model, plant_pickle

from sfteval.core.errors import UserError
from sfteval.core.variants import Variant
from sfteval.engines.config import EngineConfig

ROWS = [
    {"instruction": f"say {word}", "output": f"{word} {word}"} for word in "red green blue cat dog".split()
]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "UNPICKLED"
    yield path
    assert not path.exists(), "a planted pickle was unpickled"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def refused(arguments: list[str], monkeypatch, capsys) -> str:
    """The one error line of a command that must exit 2."""
    code, _, stderr = invoke(arguments, monkeypatch, capsys)
    assert code == 2, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    return stderr


def test_the_plant_works(tmp_path: Path, marker: Path) -> None:
    """The planted file really is hostile: torch's unrestricted loader would run it (here: plain pickle.load)."""
    import pickle

    pickle.loads(plant_pickle(tmp_path / "p.bin", marker).read_bytes())
    assert marker.exists()
    marker.unlink()


def test_discovery_refuses_pickle_only_checkpoints_and_never_reads_training_args(
    tiny_model_dir: Path, tmp_path: Path, marker: Path, monkeypatch, capsys
) -> None:
    pickled = pickle_only_model(tiny_model_dir, tmp_path / "sft" / "checkpoint-5", marker)
    assert "only pickle weights" in refused(["inspect", str(pickled.parent)], monkeypatch, capsys)
    sound = full_checkpoint(tiny_model_dir, tmp_path / "sound")
    plant_pickle(sound / "checkpoint-5" / "training_args.bin", marker)
    assert invoke(["inspect", str(sound)], monkeypatch, capsys)[0] == 0


def test_run_refuses_a_pickle_only_checkpoint_base_or_adapter(
    tiny_model_dir: Path, tmp_path: Path, marker: Path, monkeypatch, capsys
) -> None:
    suite = str(if_suite(tmp_path, 2, 4))
    common = ["--suite", suite, "--engine", "hf", "--device", "cpu", "--out", str(tmp_path / "run")]
    pickled = pickle_only_model(tiny_model_dir, tmp_path / "sft" / "checkpoint-5", marker)
    assert "only pickle weights" in refused(
        ["run", "--ckpt", str(pickled.parent), *common], monkeypatch, capsys
    )
    sound = full_checkpoint(tiny_model_dir, tmp_path / "sound")
    base = pickle_only_model(tiny_model_dir, tmp_path / "pickled-base", marker)
    error = refused(["run", "--ckpt", str(sound), "--base", str(base), *common], monkeypatch, capsys)
    assert f"{base}: only pickle weights" in error
    adapter = tmp_path / "adapters" / "checkpoint-5"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model_dir)}))
    plant_pickle(adapter / "adapter_model.bin", marker)
    assert "only pickle weights" in refused(
        ["run", "--ckpt", str(adapter.parent), *common], monkeypatch, capsys
    )


def test_train_and_lint_refuse_a_pickle_only_model(
    tiny_model_dir: Path, tmp_path: Path, marker: Path, data: Path, monkeypatch, capsys
) -> None:
    model = pickle_only_model(tiny_model_dir, tmp_path / "model", marker)
    train = ["train", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "out")]
    assert f"{model}: only pickle weights" in refused(train, monkeypatch, capsys)
    lint = ["lint", "--model", str(model), "--data", str(data)]
    assert f"{model}: only pickle weights" in refused(lint, monkeypatch, capsys)
    assert not (tmp_path / "out").exists()


def test_train_loads_safetensors_beside_a_planted_pickle(
    tiny_model_dir: Path, tmp_path: Path, marker: Path, data: Path, monkeypatch, capsys
) -> None:
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    plant_pickle(model / "pytorch_model.bin", marker)
    arguments = ["train", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "out"),
                 "--epochs", "1", "--batch-size", "5", "--precision", "fp32", "--no-lora"]  # fmt: skip
    code, _, stderr = invoke(arguments, monkeypatch, capsys)
    assert code == 0, stderr
    assert (tmp_path / "out" / "checkpoint-1" / "model.safetensors").exists()


def test_the_hf_engine_loads_safetensors_only(tiny_model_dir: Path, tmp_path: Path, marker: Path) -> None:
    from sfteval.core.requests import GenerationRequest
    from sfteval.engines.hf.engine import HFEngineFactory

    factory = HFEngineFactory(EngineConfig(device="cpu"))
    pickled = pickle_only_model(tiny_model_dir, tmp_path / "pickled", marker)
    with pytest.raises(UserError, match="only pickle weights|no \\*.safetensors"):
        factory.engine(Variant(name="base", path=pickled, kind="full")).generate([GenerationRequest("hi", 2)])
    both = Path(shutil.copytree(tiny_model_dir, tmp_path / "both"))
    plant_pickle(both / "pytorch_model.bin", marker)
    engine = factory.engine(Variant(name="base", path=both, kind="full"))
    assert engine.generate([GenerationRequest("hi", 2)])[0].num_tokens > 0
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    plant_pickle(adapter / "adapter_model.bin", marker)
    with pytest.raises(UserError, match="no adapter_model.safetensors"):
        factory.engine(Variant(name="a", path=adapter, kind="adapter", base_path=both))
    factory.close()


def test_vllm_loads_safetensors_only() -> None:
    from sfteval.engines.vllm.engine import llm_arguments

    arguments = llm_arguments(EngineConfig(), Path("/models/base"), dtype="float16", lora_rank=0, on_gpu=True)
    assert arguments["load_format"] == "safetensors" and arguments["trust_remote_code"] is False
    with pytest.raises(UserError, match="load_format=pt: sfteval loads safetensors only"):
        llm_arguments(EngineConfig(extra={"load_format": "pt"}), Path("/m"), dtype="float16", lora_rank=0,
                      on_gpu=True)  # fmt: skip


def with_auto_map(model_dir: Path, target: Path) -> Path:
    """A copy of the model whose config asks for the repository's own classes (a model type transformers lacks)."""
    shutil.copytree(model_dir, target)
    config = json.loads((target / "config.json").read_text())
    config |= {"model_type": "evil", "auto_map": {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}}
    (target / "config.json").write_text(json.dumps(config))
    (target / "modeling_evil.py").write_text(f"open({str(target / 'RAN')!r}, 'w')\n")
    return target


def test_a_config_with_auto_map_is_one_line_and_no_code_runs(
    tiny_model_dir: Path, tmp_path: Path, data: Path, monkeypatch, capsys
) -> None:
    model = with_auto_map(tiny_model_dir, tmp_path / "model")
    train = ["train", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "out")]
    words = f"{model / 'config.json'}: auto_map asks to run the model repository's own code"
    assert words in refused(train, monkeypatch, capsys)
    sft = tmp_path / "sft"
    sft.mkdir()
    shutil.copytree(model, sft / "checkpoint-5")
    run = ["run", "--ckpt", str(sft), "--base", str(tiny_model_dir), "--suite", str(if_suite(tmp_path, 2, 4)),
           "--engine", "hf", "--device", "cpu", "--out", str(tmp_path / "run")]  # fmt: skip
    assert "auto_map asks to run the model repository's own code" in refused(run, monkeypatch, capsys)
    assert not (model / "RAN").exists() and not (sft / "checkpoint-5" / "RAN").exists()
