"""The lm-eval adapter: EngineLM agrees with lm-eval's own HFLM, maps every request type, loads local tasks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from sfteval.core.errors import UserError
from sfteval.core.requests import Generation, GenerationRequest, Score, ScoreRequest
from sfteval.engines.lmeval import EngineLM, evaluate_tasks
from sfteval.lmeval_tasks import find_local_task, generation_request, load_tasks, local_task_config

TASKS_DIR = Path(__file__).resolve().parent.parent / "suites" / "tasks"
LIMIT = 12


class ScriptedEngine:
    """Answers score requests with −(number of characters) and generations with a fixed text; logs requests."""

    name = "scripted"
    fingerprint = "scripted"

    def __init__(self) -> None:
        self.requests: list[object] = []

    def score(self, requests: Sequence[ScoreRequest], progress=None) -> list[Score]:
        self.requests.extend(requests)
        return [Score(-float(len(r.continuation)), (), len(r.continuation) < 3) for r in requests]

    def generate(self, requests: Sequence[GenerationRequest], progress=None) -> list[Generation]:
        self.requests.extend(requests)
        return [Generation(f"answer to {r.prompt}", 3, "stop") for r in requests]


def _instance(request_type: str, arguments: tuple) -> object:
    from lm_eval.api.instance import Instance

    return Instance(request_type=request_type, doc={}, arguments=arguments, idx=0)


@pytest.fixture(scope="module")
def hf_and_sfteval(tiny_model_dir: Path) -> tuple[dict, dict]:
    """The same local task evaluated by lm-eval's HFLM and by EngineLM over the hf engine, both with samples."""
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM

    from sfteval.core.variants import Variant
    from sfteval.engines.config import EngineConfig
    from sfteval.engines.hf.engine import HFEngineFactory

    reference = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=8)
    engine = HFEngineFactory(EngineConfig(device="cpu", batch_size=8)).engine(Variant("base", tiny_model_dir))
    outputs = []
    for model in (reference, EngineLM(engine)):
        task_dict = {"tasks": load_tasks(["world_facts"], [TASKS_DIR]), "groups": {}, "group_map": {}}
        outputs.append(
            evaluate(lm=model, task_dict=task_dict, limit=LIMIT, log_samples=True, bootstrap_iters=0)
        )
    return outputs[0], outputs[1]


def test_loglikelihoods_match_hflm_within_1e_4_and_accuracies_are_identical(hf_and_sfteval) -> None:
    reference, ours = hf_and_sfteval
    reference_samples = reference["samples"]["world_facts"]
    our_samples = ours["samples"]["world_facts"]
    assert (
        [s["doc_id"] for s in our_samples] == [s["doc_id"] for s in reference_samples] == list(range(LIMIT))
    )
    for expected, actual in zip(reference_samples, our_samples, strict=True):
        expected_ll = [response[0][0] for response in expected["resps"]]
        actual_ll = [response[0][0] for response in actual["resps"]]
        assert actual_ll == pytest.approx(expected_ll, abs=1e-4)
        assert (actual["acc"], actual["acc_norm"]) == (expected["acc"], expected["acc_norm"])
    for metric in ("acc,none", "acc_norm,none"):
        assert ours["results"]["world_facts"][metric] == reference["results"]["world_facts"][metric]


def test_evaluate_tasks_keeps_every_documents_metrics(tiny_model_dir: Path, hf_and_sfteval) -> None:
    from sfteval.core.variants import Variant
    from sfteval.engines.config import EngineConfig
    from sfteval.engines.hf.engine import HFEngineFactory

    engine = HFEngineFactory(EngineConfig(device="cpu", batch_size=8)).engine(Variant("base", tiny_model_dir))
    result = evaluate_tasks(engine, ["world_facts"], [TASKS_DIR], limit=LIMIT)["world_facts"]
    reference = {s["doc_id"]: s["acc"] for s in hf_and_sfteval[0]["samples"]["world_facts"]}
    assert {doc: metrics["acc"] for doc, metrics in result.documents.items()} == reference
    assert result.metrics["acc,none"] == pytest.approx(sum(reference.values()) / LIMIT)


def test_engine_lm_maps_each_request_type_to_one_engine_call() -> None:
    engine = ScriptedEngine()
    model = EngineLM(engine, max_gen_toks=7)
    assert model.loglikelihood([_instance("loglikelihood", ("Q:", " yes"))]) == [(-4.0, False)]
    assert model.loglikelihood_rolling([_instance("loglikelihood_rolling", ("some text",))]) == [-9.0]
    generated = model.generate_until(
        [_instance("generate_until", ("Say", {"until": ["\n"], "do_sample": False}))]
    )
    assert generated == ["answer to Say"]
    assert engine.requests == [
        ScoreRequest(context="Q:", continuation=" yes"),
        ScoreRequest(context="", continuation="some text"),
        GenerationRequest(prompt="Say", max_new_tokens=7, temperature=0.0, stop=("\n",)),
    ]


def test_generation_kwargs_follow_lm_eval_semantics() -> None:
    greedy = generation_request("p", {"until": "###", "max_gen_toks": 5, "temperature": 0.7}, 256)
    assert (greedy.stop, greedy.max_new_tokens, greedy.temperature) == (("###",), 5, 0.0)
    sampled = generation_request("p", {"do_sample": True, "temperature": 0.7, "top_p": 0.9}, 256)
    assert (sampled.stop, sampled.max_new_tokens, sampled.temperature, sampled.top_p) == ((), 256, 0.7, 0.9)


def test_local_task_data_files_resolve_against_the_yaml_folder(tmp_path: Path) -> None:
    config = local_task_config(TASKS_DIR / "units_science.yaml")
    assert config["dataset_kwargs"]["data_files"] == {"test": str(TASKS_DIR / "units_science.jsonl")}
    assert find_local_task("units_science", [tmp_path, TASKS_DIR]) == TASKS_DIR / "units_science.yaml"
    assert find_local_task("not_a_local_task", [TASKS_DIR]) is None


def test_local_yaml_includes_are_merged_and_their_data_files_resolved(tmp_path: Path) -> None:
    import shutil

    (tmp_path / "data").mkdir()
    shutil.copy(TASKS_DIR / "word_meaning.jsonl", tmp_path / "data" / "words.jsonl")
    base = (TASKS_DIR / "word_meaning.yaml").read_text(encoding="utf-8")
    (tmp_path / "_base.yaml").write_text(base.replace("test: word_meaning.jsonl", "test: data/words.jsonl"))
    (tmp_path / "my_words.yaml").write_text("include: _base.yaml\ntask: my_words\n", encoding="utf-8")
    task = load_tasks(["my_words"], [tmp_path])["my_words"]
    assert len(task.eval_docs) == len((TASKS_DIR / "word_meaning.jsonl").read_text().splitlines())


def test_bad_task_names_and_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="missing.yaml: task YAML not found"):
        find_local_task(str(tmp_path / "missing.yaml"), [])
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset_path: json\n", encoding="utf-8")
    with pytest.raises(UserError, match="broken.yaml: an lm-eval task YAML must be a mapping with a `task`"):
        local_task_config(broken)
    missing_data = tmp_path / "missing_data.yaml"
    missing_data.write_text(
        "task: missing_data\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: nowhere.jsonl\n"
        "output_type: multiple_choice\ntest_split: test\ndoc_to_text: q\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: answer\n",
        encoding="utf-8",
    )
    with pytest.raises(UserError, match="cannot load lm-eval task.*nowhere.jsonl"):
        load_tasks(["missing_data"], [tmp_path])
