"""`minillm eval`: metrics against independent computations and hand examples, every benchmark loader (real
samples in ../shared/data when present, the project's own fixtures always), end-to-end runs on a tiny random
model, and the failure cases with their exit codes."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from helpers import BENCH_FIXTURES, SHARED_DATA
from rouge_score import rouge_scorer
from tiny_models import save_tiny_model

from minillm_distill.benchmark import BenchmarkDataError, EvalExample
from minillm_distill.errors import ExitCode, ResourceError
from minillm_distill.eval import metrics
from minillm_distill.eval.prompts import encode_prompt, left_pad, prompt_budget
from minillm_distill.eval.runner import EvalSettings, example_seed
from minillm_distill.generation import GenerationParams, NgramBlocker, decode
from minillm_distill.plugins import load_plugins

FIXTURES = BENCH_FIXTURES
BENCHMARKS = ("dolly", "self_inst", "vicuna", "sni", "unni")


def benchmark(name: str):
    return load_plugins().benchmarks.get(name)()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random gpt2 (byte tokenizer) whose context holds an Alpaca prompt plus a short response."""
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-gpt2", "gpt2", max_positions=512)


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "other", "llama", max_positions=512, seed=3)


def _loaded(path: Path):
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    return load_model(ModelSpec(path=str(path)))


# -- metrics ----------------------------------------------------------------------------------------------

PAIRS = [
    ("The cat sat on the mat.", ["The cat lay on the mat."]),
    ("Running dogs were barking loudly", ["the dog runs and barks", "dogs were running"]),
    ("", ["an empty prediction scores zero"]),
    ("Paris is the capital of France", ["The capital of France is Paris.", "Paris"]),
    ("1, 2, 3 and 4", ["one two three", "1 2 3 4"]),
]


@pytest.mark.parametrize(("prediction", "references"), PAIRS)
def test_rouge_l_agrees_with_rouge_score(prediction, references):
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = max(scorer.score(ref, prediction)["rougeL"].fmeasure for ref in references) * 100
    assert metrics.rouge_l(prediction, references) == pytest.approx(expected)


def test_rouge_l_hand_computed_lcs():
    # tokens: the cat sat on the mat / the cat lay on the mat -> LCS "the cat on the mat" = 5 of 6 each side
    assert metrics.rouge_l("The cat sat on the mat.", ["The cat lay on the mat."]) == pytest.approx(100 * 5 / 6)
    # P = 2/2, R = 2/4 -> F = 2PR / (P + R) = 2/3
    assert metrics.rouge_l("red apple", ["a red ripe apple"]) == pytest.approx(100 * 2 / 3)
    # stemming: running/run, dogs/dog
    assert metrics.rouge_l("running dogs", ["run dog"]) == pytest.approx(100.0)
    # max over references
    assert metrics.rouge_l("blue", ["red", "blue"]) == pytest.approx(100.0)


def test_exact_match_normalisation():
    assert metrics.exact_match("The Answer is: 42!", ["answer is 42"]) == 100.0
    assert metrics.exact_match("  an   apple ", ["Apple."]) == 100.0
    assert metrics.exact_match("apples", ["apple"]) == 0.0
    assert metrics.exact_match("mouses", ["mice", "mouses"]) == 100.0
    assert metrics.normalize_answer("The  Quick, brown fox!") == "quick brown fox"


def test_ece_hand_examples():
    # bin (0.9, 1.0]: 0.95, 0.91 both right: |1 - 0.93| * 2/5 = 0.028
    # bin (0.5, 0.6]: 0.55, 0.52, 0.58, 2 of 3 right: |2/3 - 0.55| * 3/5 = 0.07
    ece = metrics.expected_calibration_error([0.95, 0.91, 0.55, 0.52, 0.58], [True, True, False, True, True])
    assert ece == pytest.approx(0.028 + 0.07)
    # one per bin: (|1-0.9| + |0-0.8| + |0-0.3| + |1-0.6|) / 4
    assert metrics.expected_calibration_error([0.9, 0.8, 0.3, 0.6], [1, 0, 0, 1]) == pytest.approx(0.4)
    # perfectly calibrated and boundaries: 1.0 goes in the last bin, 0.0 in the first
    assert metrics.expected_calibration_error([1.0, 1.0, 0.0], [True, True, False]) == pytest.approx(0.0)
    assert metrics.expected_calibration_error([0.5, 0.5], [True, False], n_bins=1) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        metrics.expected_calibration_error([1.2], [True])


def test_exposure_bias_curve_hand_example():
    # model's own responses: per-step KL [1, 1, 1] and [1, 1]; teacher's responses: [1, 0.5, 0.5]
    curve = metrics.exposure_bias_curve([[1.0, 1.0, 1.0], [1.0, 1.0]], [[1.0, 0.5, 0.5]])
    assert curve.lengths == [1, 2, 3]
    assert curve.accumulated_error == pytest.approx([1.0, 2.0, 3.0])  # R(l)
    assert curve.per_step_error == pytest.approx([1.0, 0.75, 2 / 3])  # eps(l)
    # ExAccErr(l) = (R(l) - l eps(l)) / (l eps(l)) * 100
    assert curve.exaccerr == pytest.approx([0.0, (2 - 1.5) / 1.5 * 100, (3 - 2) / 2 * 100])
    assert curve.model_samples == [2, 2, 1] and curve.teacher_samples == [1, 1, 1]
    assert metrics.exposure_bias_curve([[1.0, 1.0, 1.0]], [[1.0, 1.0, 1.0]], max_length=2).lengths == [1, 2]
    assert metrics.exposure_bias_curve([[0.0]], [[0.0]]).lengths == []  # no excess defined when l eps(l) = 0


def test_reference_length_buckets():
    assert [metrics.bucket_of(n) for n in (0, 5, 6, 10, 11, 300)] == ["0-5", "0-5", "6-10", "6-10", "11+", "11+"]
    assert metrics.reference_length(["one two three", "x"]) == 3


# -- benchmarks -------------------------------------------------------------------------------------------

FIXTURE_CASES = [
    ("dolly", "dolly.jsonl", 3),
    ("self_inst", "self_inst.jsonl", 3),
    ("vicuna", "vicuna", 3),
    ("vicuna", "vicuna/question.jsonl", 3),
    ("sni", "sni/sni.jsonl", 3),
    ("sni", "sni", 5),  # tasks 901 + 902 (test_tasks.txt), not 903
    ("sni", "sni/tasks/task902_fixture_plurals.json", 2),
    ("unni", "unni/core_data.jsonl", 3),
]


@pytest.mark.parametrize(("name", "relpath", "count"), FIXTURE_CASES)
def test_benchmarks_load_project_fixtures(name, relpath, count):
    examples = benchmark(name).load_examples(str(FIXTURES / relpath))
    assert len(examples) == count
    for ex in examples:
        assert isinstance(ex, EvalExample) and ex.instruction and ex.references
        assert all(isinstance(r, str) and r for r in ex.references)
    assert len({ex.id for ex in examples}) == count


def test_benchmark_fields_map_to_prompts_and_references():
    dolly = benchmark("dolly").load_examples(str(FIXTURES / "dolly.jsonl"))
    assert dolly[0].input == "" and dolly[1].input.startswith("The heron")
    assert dolly[1].references == ("A heron has two legs.",) and dolly[1].metadata == {"category": "closed_qa"}
    vicuna = benchmark("vicuna").load_examples(str(FIXTURES / "vicuna"))
    assert vicuna[1].instruction == "Why is the sky blue?" and vicuna[1].references[0].startswith("Air molecules")
    sni = benchmark("sni").load_examples(str(FIXTURES / "sni"))
    plural = next(ex for ex in sni if ex.input == "mouse")
    assert plural.references == ("mice", "mouses") and plural.instruction == "Write the plural of the given noun."
    assert {ex.metadata["task"] for ex in sni} == {"task901_fixture_opposites", "task902_fixture_plurals"}
    unni = benchmark("unni").load_examples(str(FIXTURES / "unni" / "core_data.jsonl"))
    assert unni[0].instruction.endswith("The output should be 'Yes' or 'No'.") and unni[0].input == "Is it raining?"
    assert unni[2].instruction == "Count the vowels in the word." and unni[2].references == ("3",)
    self_inst = benchmark("self_inst").load_examples(str(FIXTURES / "self_inst.jsonl"))
    assert self_inst[1].input == "" and self_inst[0].id == "fixture_task_0"
    # the prompt is the family's Alpaca template
    from minillm_distill.builtins.model_families.gpt2 import GPT2Family

    prompt = benchmark("dolly").format_prompt(dolly[1], GPT2Family())
    assert "### Instruction:\nHow many legs" in prompt and "### Input:\nThe heron" in prompt
    assert prompt.endswith("### Response:\n")


SHARED_CASES = [
    ("dolly", "dolly/databricks-dolly-15k.sample.jsonl", 522),
    ("self_inst", "self_inst/user_oriented_instructions.jsonl", 252),
    ("vicuna", "vicuna", 80),
    ("vicuna", "vicuna/question.jsonl", 80),
    ("vicuna", "vicuna/llm_judge_vicuna_bench_question.jsonl", 80),
    ("sni", "sni/sni_test_sample.jsonl", 100),
    ("sni", "sni", 300),  # 3 task files listed in test_tasks.txt, at most 100 instances each
    ("sni", "sni/task1156_bard_analogical_reasoning_tools.json", 100),
    ("unni", "unni/core_data.jsonl", None),  # not shipped (a gap): skipped unless someone adds it
]


@pytest.mark.parametrize(("name", "relpath", "count"), SHARED_CASES)
def test_benchmarks_load_shared_real_samples(name, relpath, count):
    path = SHARED_DATA / relpath
    if not path.exists():
        pytest.skip(f"{path} is not present")
    examples = benchmark(name).load_examples(str(path))
    if count is not None:
        assert len(examples) == count
    assert all(ex.instruction and ex.references and all(ex.references) for ex in examples)
    if name == "sni":
        assert any(len(ex.references) > 1 for ex in examples)  # several acceptable answers kept


def test_sni_real_task_file_matches_flattened_sample():
    flat, task = (
        SHARED_DATA / "sni" / "sni_test_sample.jsonl",
        SHARED_DATA / "sni" / "task1152_bard_analogical_reasoning_causation.json",
    )
    if not (flat.exists() and task.exists()):
        pytest.skip("shared S-NI sample not present")
    from_flat = benchmark("sni").load_examples(str(flat))[:34]
    from_task = benchmark("sni").load_examples(str(task))[:34]
    assert [(e.instruction, e.input, e.references) for e in from_flat] == [
        (e.instruction, e.input, e.references) for e in from_task
    ]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_wrong_format_names_the_line_and_field(tmp_path):
    good = json.dumps({"instruction": "a", "context": "", "response": "b"})
    bad = json.dumps({"instruction": "a", "context": ""})
    path = _write(tmp_path / "data.jsonl", [good, "", bad])
    with pytest.raises(BenchmarkDataError) as err:
        benchmark("dolly").load_examples(str(path))
    assert "data.jsonl line 3" in str(err.value) and "'response'" in str(err.value)
    assert err.value.exit_code == ExitCode.USAGE

    path = _write(tmp_path / "broken.jsonl", [good, "{not json"])
    with pytest.raises(BenchmarkDataError, match=r"broken.jsonl line 2: not valid JSON"):
        benchmark("dolly").load_examples(str(path))

    path = _write(tmp_path / "sni.jsonl", [json.dumps({"definition": "d", "input": "i", "output": [1]})])
    with pytest.raises(BenchmarkDataError, match=r"sni.jsonl line 1: field 'output'"):
        benchmark("sni").load_examples(str(path))

    path = _write(tmp_path / "si.jsonl", [json.dumps({"instruction": "x", "instances": []})])
    with pytest.raises(BenchmarkDataError, match=r"si.jsonl line 1: field 'instances' is empty"):
        benchmark("self_inst").load_examples(str(path))

    folder = tmp_path / "vicuna"
    folder.mkdir()
    _write(
        folder / "question.jsonl",
        [json.dumps({"question_id": 1, "text": "q"}), json.dumps({"question_id": 2, "text": "r"})],
    )
    _write(folder / "answer_gpt35.jsonl", [json.dumps({"question_id": 1, "text": "a"})])
    with pytest.raises(BenchmarkDataError, match=r"question.jsonl line 2: no answer with question_id 2"):
        benchmark("vicuna").load_examples(str(folder))
    (folder / "answer_gpt35.jsonl").unlink()
    with pytest.raises(BenchmarkDataError, match=r"no reference answers"):
        benchmark("vicuna").load_examples(str(folder / "question.jsonl"))


def test_hub_loading_offline_is_a_resource_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing cached
    for name in ("dolly", "self_inst", "vicuna"):
        with pytest.raises(ResourceError) as err:
            benchmark(name).load_examples(None)
        assert "--data" in (err.value.hint or "") and err.value.exit_code == ExitCode.RESOURCE


def test_every_benchmark_is_registered_with_a_source():
    registry = load_plugins().benchmarks
    assert set(BENCHMARKS) <= set(registry.names())
    for name in BENCHMARKS:
        cls = registry.get(name)
        assert cls.hub_id or cls.source_url, name
        assert cls.data_format, name
    assert registry.get("dolly").hub_id == "databricks/databricks-dolly-15k"


# -- generation pieces --------------------------------------------------------------------------------------


def test_prompts_are_truncated_keeping_the_end(tiny_model_dir):
    loaded = _loaded(tiny_model_dir)
    text = "x" * 50 + "### Response:\n"
    ids = encode_prompt(loaded.tokenizer, text, 10)
    assert len(ids) == 10 and loaded.tokenizer.decode(ids).endswith("Response:\n")
    assert prompt_budget(loaded.model, 256, 300) == 212  # 512 positions - 300 new tokens
    padded, mask = left_pad([[5, 6, 7], [8]], pad_token_id=0)
    assert padded.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_ngram_blocker_bans_repeats():
    blocker = NgramBlocker(2, torch.tensor([[0, 1, 2, 1]]), torch.tensor([[0, 1, 1, 1]]))  # history 1 2 1
    assert blocker.banned(5, torch.device("cpu")).nonzero().tolist() == [[0, 2]]  # "1 2" seen: 2 after 1 banned
    blocker.append(torch.tensor([3]), torch.tensor([True]))  # history 1 2 1 3
    assert not blocker.banned(5, torch.device("cpu")).any()


def test_no_repeat_ngram_size_in_decode(tiny_model_dir):
    loaded = _loaded(tiny_model_dir)
    prompt = loaded.tokenizer(["abcabc", "hello there"], return_tensors="pt", padding=True)
    ids, mask = prompt["input_ids"], prompt["attention_mask"]

    def run(**kw):
        # near-greedy: a random model then loops, which repeats n-grams unless they are banned
        params = GenerationParams(max_new_tokens=40, temperature=0.01, **kw)
        gen = torch.Generator().manual_seed(0)
        return decode(ids, mask, student=loaded.model, params=params, generator=gen, eos_token_id=[], pad_token_id=0)

    def repeats(out, row: int) -> int:
        """Generated tokens that complete a bigram already present earlier (prompt included)."""
        prompt_len = int(mask[row].sum())
        seq = ids[row][mask[row].bool()].tolist() + out.response_ids[row].tolist()
        seen = {tuple(seq[j - 1 : j + 1]) for j in range(1, prompt_len)}
        count = 0
        for j in range(prompt_len, len(seq)):
            count += tuple(seq[j - 1 : j + 1]) in seen
            seen.add(tuple(seq[j - 1 : j + 1]))
        return count

    free, blocked = run(), run(no_repeat_ngram_size=2)
    assert any(repeats(free, row) for row in range(2))  # the check below is not vacuous
    assert all(repeats(blocked, row) == 0 for row in range(2))
    assert torch.equal(run(no_repeat_ngram_size=0).response_ids, free.response_ids)  # 0 changes nothing


def test_example_seeds_differ():
    seeds = {example_seed(s, i) for s in (10, 20, 30, 40, 50) for i in range(200)}
    assert len(seeds) == 1000 and all(0 <= s < 2**32 for s in seeds)


def test_label_word_calibration(tiny_model_dir):
    from minillm_distill.eval.analysis import label_word_calibration, label_word_probabilities

    loaded = _loaded(tiny_model_dir)
    probs = label_word_probabilities(loaded.model, loaded.tokenizer, "Is it? Answer:", ["yes", "no"], 64)
    assert sum(probs) == pytest.approx(1.0) and all(0 < p < 1 for p in probs)
    result = label_word_calibration(
        loaded.model, loaded.tokenizer, ["Good? ", "Bad? ", "Fine? "], [["yes", "no"]] * 3, ["yes", "no", "yes"]
    )
    assert 0.0 <= result.ece <= 1.0 and result.accuracy in (0.0, 100 / 3, 200 / 3, 100.0)
    assert result.ece == pytest.approx(metrics.expected_calibration_error(result.confidences, result.correct))


def test_exposure_bias_against_a_teacher(tiny_model_dir, other_model_dir):
    from minillm_distill.eval.analysis import forward_kl_per_step, measure_exposure_bias

    student, teacher = _loaded(tiny_model_dir), _loaded(other_model_dir)
    ids, mask = left_pad([[65, 66, 67], [68]], 0)
    response, response_mask = torch.tensor([[70, 71], [72, 0]]), torch.tensor([[1, 1], [1, 0]])
    same = forward_kl_per_step(student.model, student.model, ids, mask, response, response_mask)
    assert [len(s) for s in same] == [2, 1] and max(max(s) for s in same) < 1e-6
    different = forward_kl_per_step(teacher.model, student.model, ids, mask, response, response_mask)
    assert min(min(s) for s in different) > 0

    curve = measure_exposure_bias(
        student.model, teacher.model, student.tokenizer, ["Say hi:", "Count:"], samples_per_prompt=2, max_new_tokens=5
    )
    assert curve.lengths and curve.lengths[0] == 1 and all(math.isfinite(v) for v in curve.exaccerr)
    # step 1 conditions on the prompt alone, the same for both sides: no excess error yet
    assert curve.exaccerr[0] == pytest.approx(0.0, abs=1e-6)


# -- the command ------------------------------------------------------------------------------------------


def _eval_args(model: Path, out: Path) -> list:
    return ["eval", "--bench", "dolly", "--model", model, "--data", FIXTURES / "dolly.jsonl",
            "--max-new-tokens", "8", "--output-dir", out]  # fmt: skip


def _run_eval(cli, model: Path, out: Path, *extra: str):
    return cli(*_eval_args(model, out), *extra)


def test_eval_end_to_end_writes_predictions_and_scores(cli, tiny_model_dir, tmp_path):
    res = _run_eval(cli, tiny_model_dir, tmp_path / "a", "--seeds", "10,20", "--limit", "2", "--json")
    assert res.code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["benchmark"] == "dolly" and len(payload["models"]) == 1

    lines = [json.loads(x) for x in (tmp_path / "a" / "dolly" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 4  # 2 prompts x 2 seeds
    assert [(x["seed"], x["id"]) for x in lines] == [(10, "0"), (10, "1"), (20, "0"), (20, "1")]
    for x in lines:
        assert {"prompt", "prediction", "references", "seed"} <= set(x)
        assert x["prompt"].endswith("### Response:\n") and isinstance(x["references"], list)
        assert 0 <= x["length"] <= 8

    scores = json.loads((tmp_path / "a" / "dolly" / "scores.json").read_text())
    assert scores == payload["models"][0]
    assert scores["n"] == 2 and scores["seeds"] == [10, 20] and set(scores["per_seed"]) == {"10", "20"}
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for seed in ("10", "20"):
        mine = [x for x in lines if str(x["seed"]) == seed]
        independent = [
            100 * max(scorer.score(r, x["prediction"])["rougeL"].fmeasure for r in x["references"]) for x in mine
        ]
        assert scores["per_seed"][seed]["rougeL"] == pytest.approx(sum(independent) / len(independent))
        assert scores["per_seed"][seed]["mean_length"] == pytest.approx(sum(x["length"] for x in mine) / 2)
    per_seed = [scores["per_seed"][s]["rougeL"] for s in ("10", "20")]
    assert scores["rougeL"] == pytest.approx(sum(per_seed) / 2)
    assert scores["rougeL_std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / math.sqrt(2))
    assert {"exact_match", "exact_match_std", "mean_length", "rougeL_by_reference_length"} <= set(scores)
    assert sum(b["n"] for b in scores["rougeL_by_reference_length"].values()) == 2
    assert scores["settings"]["no_repeat_ngram_size"] == 6 and scores["settings"]["top_k"] == 0

    # a fixed seed gives the same predictions, whatever the batch size or the other seeds
    res = _run_eval(cli, tiny_model_dir, tmp_path / "b", "--seeds", "20", "--limit", "2", "--batch-size", "1")
    assert res.code == 0, res.output
    again = [json.loads(x) for x in (tmp_path / "b" / "dolly" / "predictions.jsonl").read_text().splitlines()]
    assert [x["prediction"] for x in again] == [x["prediction"] for x in lines if x["seed"] == 20]
    assert "tiny-gpt2" in res.stdout
    # every metric says its unit: Rouge-L and exact match are x100, calibration accuracy a percentage
    for label in ("Rouge-L (x100)", "Exact match (%)", "Mean length (tokens)", "Next-token accuracy (%)", "ECE (0-1)"):
        assert label in res.stdout, res.stdout


def test_eval_several_models_side_by_side(cli, tiny_model_dir, other_model_dir, tmp_path):
    res = cli(
        "eval", "--bench", "sni", "--model", tiny_model_dir, "--model", other_model_dir,
        "--data", FIXTURES / "sni" / "sni.jsonl", "--seeds", "10", "--max-new-tokens", "4", "--output-dir", tmp_path,
    )  # fmt: skip
    assert res.code == 0, res.output
    assert "tiny-gpt2" in res.stdout and "other" in res.stdout
    for label in ("tiny-gpt2", "other"):
        scores = json.loads((tmp_path / "sni" / label / "scores.json").read_text())
        assert scores["n"] == 3 and scores["label"] == label
        assert len((tmp_path / "sni" / label / "predictions.jsonl").read_text().splitlines()) == 3
    comparison = json.loads((tmp_path / "sni" / "comparison.json").read_text())
    assert [m["label"] for m in comparison["models"]] == ["tiny-gpt2", "other"]


def test_eval_with_a_teacher_reports_exposure_bias(cli, tiny_model_dir, other_model_dir, tmp_path):
    res = _run_eval(
        cli, tiny_model_dir, tmp_path, "--teacher", other_model_dir, "--exposure-samples", "2",
        "--limit", "1", "--seeds", "10", "--max-new-tokens", "4", "--json",
    )  # fmt: skip
    assert res.code == 0, res.output
    exposure = json.loads(res.stdout)["models"][0]["exposure_bias"]
    assert exposure["teacher"] == str(other_model_dir) and exposure["samples_per_prompt"] == 2
    assert exposure["lengths"][0] == 1 and len(exposure["exaccerr"]) == len(exposure["R"]) == len(exposure["epsilon"])


def _flat(text: str) -> str:
    """The error panel's text on one line (Rich wraps it inside a box)."""
    return re.sub(r"[\s│╭╮╰╯─]+", " ", text)


def test_eval_failure_cases(cli, tiny_model_dir, tmp_path):
    def run(*args):
        res = cli(*args)
        assert "Traceback" not in res.output
        return res.code, _flat(res.stderr)

    code, err = run(*_eval_args(tmp_path / "no-such-model", tmp_path))
    assert code == ExitCode.RESOURCE and "does not exist" in err

    code, err = run("eval", "--bench", "doly", "--model", tiny_model_dir)
    assert code == ExitCode.USAGE
    assert "unknown benchmark 'doly'; available: dolly, self_inst, sni," in err
    assert all(name in err for name in ("unni", "vicuna"))
    assert "Did you mean 'dolly'?" in err

    bad = _write(tmp_path / "bad.jsonl", [json.dumps({"instruction": "a", "context": "", "answer": "b"})])
    code, err = run("eval", "--bench", "dolly", "--model", tiny_model_dir, "--data", bad, "--output-dir", tmp_path)
    assert code == ExitCode.USAGE and "bad.jsonl line 1: missing field 'response'" in err

    code, err = run(*_eval_args(tiny_model_dir, tmp_path), "--limit", "0")
    assert code == ExitCode.USAGE and "has no example to evaluate after --limit 0" in err

    code, err = run(*_eval_args(tiny_model_dir, tmp_path), "--seeds", "10,x")
    assert code == ExitCode.USAGE and "--seeds" in err

    code, err = run("eval", "--bench", "dolly", "--model", tiny_model_dir, "--data", tmp_path / "missing.jsonl")
    assert code == ExitCode.RESOURCE and "does not exist" in err
    assert not (tmp_path / "dolly").exists()  # nothing written by a failed run


def test_default_settings_are_the_papers():
    assert EvalSettings().seeds == (10, 20, 30, 40, 50) and EvalSettings().max_new_tokens == 256
