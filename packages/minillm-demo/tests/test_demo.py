"""``minillm demo`` and the synthetic task's plugins: the ``synthetic`` model family and benchmark (fast), the
demo's pieces (recipes, evaluation, report, figure; fast) and the whole ``--quick`` chain (slow)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from minillm_demo.synthetic import (
    Checker,
    SyntheticBenchmark,
    SyntheticFamily,
    make_world,
    save_tokenizer,
    save_world,
    write_splits,
)
from minillm_distill.benchmark import BenchmarkDataError
from minillm_distill.errors import ResourceError, UsageError

# A guard against a hang, not a speed claim (those come from benchmarks/, and the demo reports its own wall
# times): the quick demo fails when nothing in its output folder changed for this long, however long it runs in
# all (129 s on a quiet 2-core machine at 533b980, 378-451 s while the rest of the test suite ran beside it; a
# stage writes a metrics row every step, every few seconds at most).
STALL_S = 600
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def world():
    return make_world(5)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, world):
    """A demo-style data folder: splits, world.json, and the tokenizer next to it."""
    root = tmp_path_factory.mktemp("synthetic")
    write_splits(world, root / "data", {"train": 200, "valid": 40, "test": 40})
    save_world(world, root / "data")
    save_tokenizer(world, root / "tokenizer")
    return root / "data"


# -- the model family -------------------------------------------------------------------------------------
def test_family_uses_the_bare_instruction_and_is_never_detected():
    from minillm_distill.model_family import ScratchParams
    from minillm_distill.models import family_for_model_type
    from minillm_distill.plugins import get_plugins

    family = SyntheticFamily()
    assert family.format_prompt("map g1 : x01 x02 x03 _ _") == "map g1 : x01 x02 x03 _ _"
    assert family.format_prompt("map g1 : x01", "extra") == "map g1 : x01 extra"
    assert get_plugins().model_families.get("synthetic") is SyntheticFamily
    assert type(family_for_model_type("gpt2")).__name__ == "GPT2Family"  # a saved model stays gpt2
    config = family.build_config(
        ScratchParams(layers=1, hidden=16, heads=2, max_positions=32),
        vocab_size=50,
        bos_token_id=2,
        eos_token_id=2,
        pad_token_id=0,
    )
    assert config.model_type == "gpt2" and config.n_embd == 16 and config.vocab_size == 50


def test_family_prompts_are_what_the_trainer_encodes(data_dir, world):
    from transformers import AutoTokenizer

    from minillm_distill.data.encode import encode_records
    from minillm_distill.data.records import load_records

    tok = AutoTokenizer.from_pretrained(str(data_dir.parent / "tokenizer"))
    records = load_records(str(data_dir / "train.jsonl"))[:5]
    encoded = encode_records(records, tok, SyntheticFamily(), max_prompt_length=16, max_response_length=12)
    assert len(encoded) == 5
    assert all(len(p) == 2 + 1 + world.config.max_items for p in encoded.prompts)  # map gN : + slots


# -- the benchmark ----------------------------------------------------------------------------------------
def test_benchmark_references_come_from_the_true_distribution(data_dir, world):
    from minillm_distill.plugins import get_plugins

    assert get_plugins().benchmarks.get("synthetic") is SyntheticBenchmark
    bench = SyntheticBenchmark(n_references=5)
    examples = bench.load_examples(str(data_dir / "test.jsonl"))
    assert len(examples) == 40 and bench.world == world
    checker = Checker(world)
    for example in examples:
        assert len(example.references) == 5
        assert all(checker.is_valid(example.instruction, ref, eos=True) for ref in example.references)
        assert example.metadata["items"] == len(world.parse_prompt(example.instruction).symbols)
    again = SyntheticBenchmark(n_references=5).load_examples(str(data_dir))  # the folder: its test.jsonl
    assert [e.references for e in again] == [e.references for e in examples]
    assert bench.format_prompt(examples[0], SyntheticFamily()) == examples[0].instruction


def test_benchmark_data_errors(tmp_path, data_dir):
    bench = SyntheticBenchmark()
    lonely = tmp_path / "test.jsonl"
    lonely.write_text((data_dir / "test.jsonl").read_text())
    with pytest.raises(ResourceError, match="world.json"):
        bench.load_examples(str(lonely))
    save_world(make_world(5), tmp_path)
    lonely.write_text(json.dumps({"instruction": "not a prompt", "response": "m1"}) + "\n")
    with pytest.raises(BenchmarkDataError, match="line 1"):
        bench.load_examples(str(lonely))
    lonely.write_text(json.dumps({"instruction": "map g1 : x01 x02 x03 _ _", "references": ["m1 y01"]}) + "\n")
    (example,) = bench.load_examples(str(lonely))
    assert example.references == ("m1 y01",)
    with pytest.raises(BenchmarkDataError, match="no hub source"):
        bench.load_examples(None)


def _prediction(example, text, seed, length=None):
    return SimpleNamespace(
        example=example, prediction=text, seed=seed, length=len(text.split()) if length is None else length
    )


def test_benchmark_extra_scores_use_the_checker(data_dir, world):
    bench = SyntheticBenchmark(n_references=2, max_new_tokens=12)
    examples = bench.load_examples(str(data_dir / "test.jsonl"))[:10]
    good = [_prediction(e, e.references[0], seed=1) for e in examples]
    # seed 2: half the responses are cut by the token limit (no EOS), the rest are the gold ones
    cut = [_prediction(e, e.references[0], seed=2, length=12 if i % 2 else None) for i, e in enumerate(examples)]
    scores = bench.extra_scores(good + cut)["synthetic"]
    assert scores["per_seed"]["1"]["validity"] == 1.0
    assert scores["per_seed"]["2"]["validity"] == 0.5
    assert scores["per_seed"]["2"]["error_no_eos"] == 0.5
    assert scores["validity"] == pytest.approx(0.75) and scores["validity_std"] > 0
    assert 0 < scores["coverage"] <= 1
    direct = bench.task_metrics([e.instruction for e in examples], [e.references[0] for e in examples], [True] * 10)
    assert direct["validity"] == 1.0 and direct["finished"] == 1.0


# -- the demo's pieces --------------------------------------------------------------------------------------
def test_recipes_validate_and_share_the_distillation_budget(tmp_path):
    from minillm_demo.config import DISTILLED, default_settings, quick_settings
    from minillm_demo.recipes import build_recipes, stage
    from minillm_distill.recipe.loader import validate_recipe_dict

    (tmp_path / "train.jsonl").write_text('{"instruction": "a", "response": "b"}\n')
    for settings in (default_settings(), quick_settings(3)):
        recipes = build_recipes(settings, tmp_path, tmp_path / "tok", tmp_path / "runs")
        runs = range(settings.train_runs)
        assert set(recipes) == {"teacher", *(stage(n, r) for r in runs for n in ("sft", *DISTILLED))}
        parsed = {name: validate_recipe_dict(r) for name, r in recipes.items()}
        for run in runs:
            for name in DISTILLED:
                r = parsed[stage(name, run)]
                assert r.student.path == str(tmp_path / "runs" / f"run{run + 1}" / "sft" / "final")
                assert r.student.family == "synthetic"
                assert r.teacher.path == str(tmp_path / "runs" / "teacher" / "final")
                assert (r.train.total_steps, r.train.micro_batch_size, r.train.lr) == (
                    settings.distill.steps,
                    settings.distill.batch,
                    settings.distill.lr,
                )
            p = {name: parsed[stage(name, run)] for name in DISTILLED}
            assert (p["kd"].sampler.name, p["kd"].divergence.name) == ("dataset", "fkl")
            assert p["kd"].train.kd_ratio == settings.kd_ratio
            assert (p["seqkd"].sampler.name, p["seqkd"].divergence.name) == ("teacher", "sft")
            assert (p["gkd"].sampler.name, p["gkd"].divergence.name) == ("mixed", "jsd")
            assert (p["minillm"].sampler.name, p["minillm"].divergence.name) == ("teacher_mixed", "minillm")
            assert p["minillm"].data.pretrain is None and p["minillm"].divergence.options["lm_coef"] == 0.0
        # every stage of every run has its own seed; run 1 keeps the seeds of a one-run demo
        assert len({r.seed for r in parsed.values()}) == 1 + 5 * settings.train_runs
        assert parsed[stage("kd", 0)].seed == settings.seed * 1000 + 3
    assert default_settings().train_runs == 3 and default_settings().run_seeds(1) == (20,)
    assert quick_settings().run_seeds(1) == (30, 40)


def test_recipes_with_a_pretraining_corpus_and_a_subset_of_methods(tmp_path):
    from dataclasses import replace

    from minillm_demo.config import default_settings
    from minillm_demo.recipes import build_recipes, write_pretraining_corpus
    from minillm_distill.recipe.loader import validate_recipe_dict

    rows = [{"instruction": "map g1 : x01 _", "response": "m2 y03"}, {"instruction": "map g2 : x02", "response": "m1"}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = write_pretraining_corpus(tmp_path)
    assert corpus.read_text() == "map g1 : x01 _ m2 y03\n\nmap g2 : x02 m1\n\n"
    settings = replace(default_settings(), methods=("minillm",), train_runs=1, minillm_lm_coef=0.5)
    settings = replace(settings, eval=replace(settings.eval, seeds=(5,)))
    recipes = build_recipes(settings, tmp_path, tmp_path / "tok", tmp_path / "runs")
    assert set(recipes) == {"teacher", "run1/sft", "run1/minillm"}
    r = validate_recipe_dict(recipes["run1/minillm"])
    assert r.data.pretrain.path == str(corpus) and r.divergence.options["lm_coef"] == 0.5
    assert r.divergence.options["kd_ratio"] == settings.minillm_lm_kd_ratio


def test_demo_settings_overrides():
    from minillm_demo.config import default_settings
    from minillm_demo.overrides import apply_overrides

    s = apply_overrides(
        default_settings(),
        [
            "distill.steps=3000",
            "train_runs=2",
            "eval.seeds=[1, 2, 3, 4]",
            "methods=[kd, minillm]",
            "world.shared_weight=0",
            "minillm_alpha=1",
            "distill.lr=1e-3",
        ],
    )
    assert s.distill.steps == 3000 and s.distill.lr == 1e-3 and s.distill.batch == 64
    assert s.train_runs == 2 and s.run_seeds(1) == (3, 4) and s.methods == ("kd", "minillm")
    assert s.world == {"shared_weight": 0.0} and s.minillm_alpha == 1.0 and isinstance(s.minillm_alpha, float)
    assert default_settings().distill.steps == 1000  # the defaults are untouched
    bad = {
        "distil.steps=3": "did you mean 'distill'",
        "distill.steps=abc": "expected an integer",
        "distill.steps=2.5": "expected an integer",
        "train_runs=2": "split evenly",
        "methods=[kd, foo]": "methods must be distinct names",
        "world.shared_weight=1.5": "shared_weight must be in",
        "choice_question=genre": "choice_question must be one of response, fact",
        "world.sharedweight=0": "did you mean world.shared_weight",
        "eval=3": "group of settings",
        "mode=quick": "unknown demo setting 'mode'",
        "steps": "expected KEY=VALUE",
        "kd_ratio=[1": "cannot read the value",
    }
    for text, message in bad.items():
        with pytest.raises(UsageError, match=re.escape(message)):
            apply_overrides(default_settings(), [text])


def test_parameter_counts_match_the_built_models():
    from minillm_demo.config import default_settings
    from minillm_distill.model_family import ScratchParams

    s = default_settings()
    for size in (s.teacher, s.student):
        scratch = ScratchParams(**size.scratch())
        config = SyntheticFamily().build_config(scratch, vocab_size=127, bos_token_id=2, eos_token_id=2, pad_token_id=0)
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_config(config)
        assert size.parameters(127) == sum(p.numel() for p in model.parameters())
    assert s.teacher.parameters(127) / s.student.parameters(127) > 30


def test_output_dir_is_refused_unless_empty_or_an_earlier_demo(tmp_path):
    from minillm_demo.pipeline import MARKER, prepare_output_dir

    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(UsageError, match="not empty"):
        prepare_output_dir(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep"
    earlier = tmp_path / "earlier"
    (earlier / "runs" / "kd").mkdir(parents=True)
    (earlier / MARKER).write_text("{}")
    (earlier / "notes.txt").write_text("not the demo's")
    prepare_output_dir(earlier)
    assert not (earlier / "runs").exists() and not (earlier / MARKER).exists()
    assert (earlier / "notes.txt").exists()


def test_summarise():
    from minillm_demo.pipeline import summarise

    out = summarise([1.0, 2.0, 3.0])
    assert out == {"mean": 2.0, "std": 1.0, "seeds": [1.0, 2.0, 3.0]}
    assert summarise([None, None])["mean"] is None
    assert summarise([0.5])["std"] == 0.0
    assert summarise([1.0, float("nan")]) == {"mean": None, "std": None, "seeds": [1.0, None]}


def _tiny_model(tmp_path, data_dir, name, seed):
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    spec = ModelSpec(
        family="synthetic",
        scratch={"layers": 1, "hidden": 16, "heads": 2, "max_positions": 32},
        tokenizer=str(data_dir.parent / "tokenizer"),
    )
    loaded = load_model(spec, seed=seed)
    out = tmp_path / name
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out


@pytest.mark.slow
def test_evaluate_model_measures_every_metric_per_seed(tmp_path, data_dir):
    from minillm_demo.config import EvalConfig
    from minillm_demo.evaluate import METRICS, evaluate_model, true_distribution

    model = _tiny_model(tmp_path, data_dir, "student", 1)
    teacher = _tiny_model(tmp_path, data_dir, "teacher", 2)
    cfg = EvalConfig(seeds=(1, 2), prompts=12, batch_size=5, references=3, exposure_prompts=4, calibration_prompts=6)
    ticks = []
    values = evaluate_model(model, data_dir, cfg, teacher_dir=teacher, tick=ticks.append)
    assert set(METRICS) <= set(values) and len(ticks) == 6
    # by length: the default world's buckets (3, 4, 5 outputs) and ExAccErr at every length up to 12 tokens
    assert {f"{k}@{b}" for k in ("share", "validity", "rouge_l") for b in ("3-3", "4-4", "5-5")} | {
        f"exaccerr@{n}" for n in range(1, 13)
    } == set(values) - set(METRICS)
    assert [sum(values[f"share@{b}"][i] for b in ("3-3", "4-4", "5-5")) for i in (0, 1)] == pytest.approx([1, 1])
    for metric, per_seed in values.items():
        assert len(per_seed) == 2, metric
    for metric in ("validity", "coverage", "ece", "finished", "pair_accuracy", "pair_ece"):
        assert all(0.0 <= v <= 1.0 for v in values[metric]), metric
    assert values["pair_accuracy"][0] in {k / 6 for k in range(7)}  # one pair choice per calibration prompt
    assert all(v is None or math.isfinite(v) for v in values["exposure_bias"])
    assert all(0.0 <= v <= 12 for v in values["mean_length"])
    again = evaluate_model(model, data_dir, cfg, teacher_dir=teacher)
    assert again["validity"] == values["validity"] and again["rouge_l"] == values["rouge_l"]  # seeded
    alone = evaluate_model(teacher, data_dir, cfg)
    assert alone["exposure_bias"] == [None, None]
    truth = true_distribution(data_dir, cfg)
    assert truth["validity"] == [1.0, 1.0] and truth["ece"] == [None, None] and truth["pair_ece"] == [None, None]


def _fake_results():
    from minillm_demo.config import METHODS, default_settings
    from minillm_demo.evaluate import METRICS
    from minillm_demo.pipeline import summarise

    results = {}
    for i, name in enumerate(METHODS):
        results[name] = {m: summarise([0.1 * i, 0.1 * i + 0.05, 0.1 * i + 0.02]) for m in METRICS}
    results["teacher"]["exposure_bias"] = summarise([None, None, None])
    results["settings"] = {**default_settings().as_dict(), "teacher_parameters": 615424, "student_parameters": 18312}
    results["wall_times"] = {"data": 1.0, "total": 10.0}
    return results


@pytest.mark.slow
def test_report_table_and_figure(tmp_path):
    from rich.console import Console

    from minillm_demo.figure import draw_figure
    from minillm_demo.report import print_table

    results = _fake_results()
    run = tmp_path / "runs" / "run2" / "kd"  # any run's curve is drawn
    run.mkdir(parents=True)
    run.joinpath("metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in range(1, 30))
    )
    console = Console(record=True, width=200)
    print_table(results, console)
    text = console.export_text()
    for word in ("Teacher", "SFT", "KD", "SeqKD", "GKD", "MiniLLM", "True dist.", "Valid %", "n/a", "\u00b1"):
        assert word in text
    out = draw_figure(results, tmp_path / "runs", tmp_path / "demo.png")
    assert out.read_bytes().startswith(PNG_MAGIC)


# -- the whole chain ----------------------------------------------------------------------------------------
def _newest_change(folder: Path) -> float:
    times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return max(times, default=0.0)


def _run_unless_stalled(argv: list[str], watched: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``argv`` to its end; fail (stopping it and its stages) if nothing under ``watched`` changed for
    :data:`STALL_S` seconds: a hang, told apart from a slow machine by progress, not by total time."""
    out, err = cwd / "demo.stdout", cwd / "demo.stderr"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e, text=True, cwd=cwd, env={**os.environ, "COLUMNS": "200"})
        last, seen = time.monotonic(), 0.0
        while proc.poll() is None:
            time.sleep(2)
            newest = _newest_change(watched)
            if newest != seen:
                last, seen = time.monotonic(), newest
            elif time.monotonic() - last > STALL_S:
                proc.terminate()  # the demo stops its stages on SIGTERM
                proc.wait(timeout=60)
                pytest.fail(f"the quick demo made no progress for {STALL_S} s:\n{err.read_text()[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out.read_text(), err.read_text())


@pytest.mark.slow
def test_quick_demo_runs_the_whole_chain(tmp_path):
    from minillm_demo.config import METHODS
    from minillm_demo.evaluate import METRICS

    out = tmp_path / "demo"
    script = Path(sys.executable).with_name("minillm")
    start = time.perf_counter()
    proc = _run_unless_stalled([str(script), "demo", "--quick", "--output-dir", str(out)], out, tmp_path)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr

    results = json.loads((out / "results.json").read_text())
    n_seeds = len(results["settings"]["eval"]["seeds"])
    n_runs = results["settings"]["train_runs"]
    assert n_seeds >= 3 and n_runs >= 2 and results["settings"]["mode"] == "quick"
    assert results["settings"]["student_runs"]["sampling_seeds"] == {"run1": [10, 20], "run2": [30, 40]}
    for name in METHODS:
        for metric in METRICS:
            entry = results[name][metric]
            assert set(entry) == {"mean", "std", "seeds"} and len(entry["seeds"]) == n_seeds, (name, metric)
            if name == "teacher" and metric == "exposure_bias":
                assert entry["mean"] is None  # the teacher is ExAccErr's reference
                continue
            if metric in ("label_accuracy", "label_ece"):
                assert entry["mean"] is None  # no choice prompts by default (choice_share 0)
                continue
            if metric == "true_nll" and 0.0 in results[name]["validity"]["seeds"]:
                continue  # the NLL of the valid responses is undefined when there are none
            assert entry["mean"] is not None and entry["std"] >= 0, (name, metric)
        for metric in ("validity", "coverage", "mode_coverage", "ece", "finished", "error_hybrid"):
            assert all(0.0 <= v <= 1.0 for v in results[name][metric]["seeds"]), (name, metric)
        assert 0.0 <= results[name]["rouge_l"]["mean"] <= 100.0
        assert 0.0 <= results[name]["mean_length"]["mean"] <= 12.0
    # sanity that even quick mode guarantees: the teacher passed its check, and beats the barely-trained student
    assert results["teacher"]["validity"]["mean"] > results["sft"]["validity"]["mean"]
    assert results["teacher"]["validity"]["mean"] >= results["settings"]["min_teacher_validity"]
    assert results["wall_times"]["total"] <= wall + 1  # the demo's own clock is inside this process's run
    stages = ["teacher", *(f"run{r}/{name}" for r in (1, 2) for name in METHODS[1:])]
    assert {*stages, "data", "total"} <= set(results["wall_times"])
    assert (out / "demo.png").read_bytes().startswith(PNG_MAGIC)
    assert (out / "calibration.png").read_bytes().startswith(PNG_MAGIC) and "label_calibration" not in results
    pooled = results["pair_calibration"]["minillm"]
    assert pooled["seeds"] == n_seeds and sum(b["count"] for b in pooled["bins"]) == n_seeds * 200  # 200 prompts
    assert "Pair ECE" in proc.stdout
    for sid in stages:
        assert (out / "runs" / sid / "final").is_dir() and (out / "runs" / sid / "metrics.jsonl").is_file()
        assert (out / "recipes" / f"{sid}.yaml").is_file()
    # a student's per-seed values are its runs' evaluations, in run order
    for r, name in ((1, "kd"), (2, "minillm")):
        evaluated = json.loads((out / "eval" / f"run{r}" / f"{name}.json").read_text())["per_seed"]["validity"]
        assert results[name]["validity"]["seeds"][2 * (r - 1) : 2 * r] == evaluated
    # the runs differ (their own seeds): the SFT students' training curves are not the same
    curves = [(out / "runs" / f"run{r}" / "sft" / "metrics.jsonl").read_text().splitlines()[5] for r in (1, 2)]
    assert json.loads(curves[0])["loss"] != json.loads(curves[1])["loss"]
    assert "MiniLLM" in proc.stdout and "Valid %" in proc.stdout
    assert "teacher validity" in proc.stderr  # the progress log

    # a variant of a stage, trained from the same recipe (same SFT student, same seed) with an override
    variants = [
        sys.executable,
        "-m",
        "minillm_distill",
        "demo",
        "variants",
        str(out),
        "kd-short=kd:train.total_steps=5",
    ]
    proc = subprocess.run(variants, capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = json.loads((out / "variants" / "results.json").read_text())["kd-short"]
    assert table["variant"] == {"stage": "kd", "overrides": ["train.total_steps=5"]}
    assert len(table["validity"]["seeds"]) == n_seeds and "kd-short" in proc.stdout
    for r in (1, 2):
        lines = (out / "variants" / "kd-short" / f"run{r}" / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 5  # the override took
        # step 1 is the demo's own KD step 1: same recipe, same SFT student, same seed
        demo_first = json.loads((out / "runs" / f"run{r}" / "kd" / "metrics.jsonl").read_text().splitlines()[0])
        assert json.loads(lines[0])["loss"] == pytest.approx(demo_first["loss"], rel=1e-6)
    mtime = (out / "variants" / "kd-short" / "run1" / "eval.json").stat().st_mtime
    proc = subprocess.run(variants, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and (out / "variants" / "kd-short" / "run1" / "eval.json").stat().st_mtime == mtime

    # the student chain at another size under the same teacher (short, for the test: the claim runs the demo's)
    scale = [
        sys.executable, "-m", "minillm_distill", "demo", "scale", str(out), "2x16x2", "--methods", "kd",
        "--set", "student_sft.steps=6", "--set", "student_sft.warmup=0",
        "--set", "distill.steps=3", "--set", "distill.warmup=0", "--set", "eval.prompts=20",
        "--set", "eval.exposure_prompts=5", "--set", "eval.calibration_prompts=20",
    ]  # fmt: skip
    proc = subprocess.run(scale, capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scaled = json.loads((out / "scale" / "results.json").read_text())
    assert [row["name"] for row in scaled["sizes"]] == ["2x16x2", "2x24x2"]  # smallest first, the demo's own
    small, own = scaled["sizes"]
    assert own["source"] == "demo" and own["models"]["kd"] == results["kd"]
    assert set(small["models"]) == {"sft", "kd"} and len(small["models"]["kd"]["validity"]["seeds"]) == n_seeds
    from safetensors import safe_open

    with safe_open(str(out / "scale/2x16x2/runs/run1/sft/final/model.safetensors"), "pt") as f:
        counted = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (not a dict)
    assert small["parameters"] == counted  # the size trained is the size reported
    kd_recipe = (out / "scale/2x16x2/recipes/run1/kd.yaml").read_text()
    assert str(out / "runs" / "teacher" / "final") in kd_recipe and "scale/2x16x2/runs/run1/sft/final" in kd_recipe
    assert len((out / "scale/2x16x2/runs/run2/kd/metrics.jsonl").read_text().splitlines()) == 3
    assert (out / "scale.png").read_bytes().startswith(PNG_MAGIC)
    assert json.loads((out / "results.json").read_text())["scale"]["sizes"][0]["name"] == "2x16x2"
    mtime = (out / "scale/2x16x2/eval/run1/kd.json").stat().st_mtime
    proc = subprocess.run(scale, capture_output=True, text=True, timeout=120)  # finished sizes are kept
    assert proc.returncode == 0 and (out / "scale/2x16x2/eval/run1/kd.json").stat().st_mtime == mtime


@pytest.mark.slow
def test_demo_stops_when_the_teacher_has_not_learned_the_task(tmp_path):
    from rich.console import Console

    from minillm_demo.config import DemoSettings, EvalConfig, TrainStage
    from minillm_demo.pipeline import run_demo
    from minillm_distill.errors import ExitCode, RuntimeFailure

    barely = TrainStage(steps=3, lr=1e-3, batch=8)
    settings = DemoSettings(
        mode="quick",
        train_prompts=300,
        valid_prompts=50,
        test_prompts=50,
        teacher_sft=barely,
        student_sft=barely,
        distill=barely,
        gate_prompts=50,
        min_teacher_validity=0.6,
        eval=EvalConfig(prompts=50, exposure_prompts=10, calibration_prompts=10),
    )
    console = Console(record=True, width=200)
    with pytest.raises(RuntimeFailure, match="teacher is valid on only") as info:
        run_demo(settings, tmp_path / "demo", threads=2, console=console)
    assert info.value.exit_code == ExitCode.RUNTIME
    runs = tmp_path / "demo" / "runs"
    assert (runs / "teacher" / "final").is_dir()
    assert not any((runs / name).exists() for name in ("kd", "seqkd", "gkd", "minillm"))  # never started
    assert not (tmp_path / "demo" / "results.json").exists()


def test_variant_specs_and_errors(tmp_path, cli):
    from minillm_demo.variants import Variant, parse_variant

    assert parse_variant("kd-3k=kd:train.total_steps=3000,train.lr=1e-3") == Variant(
        "kd-3k", "kd", ("train.total_steps=3000", "train.lr=1e-3")
    )
    assert parse_variant("plain=minillm") == Variant("plain", "minillm", ())
    for bad in ("kd", "x=teacher", "=kd", "a/b=kd", "x=sft:train.lr=1"):
        with pytest.raises(UsageError, match="bad variant"):
            parse_variant(bad)
    result = cli("demo", "variants", tmp_path, "x=kd")  # not a demo folder: a usage error, no traceback
    assert result.code == 2 and "Traceback" not in result.output
    assert cli("demo", "variants").code == 2


def test_demo_set_errors_exit_2_before_anything_runs(cli, tmp_path):
    out = tmp_path / "demo"
    result = cli("demo", "--output-dir", out, "--set", "distil.steps=3")
    assert result.code == 2 and "did you mean 'distill'" in result.output
    result = cli("demo", "--output-dir", out, "--set", "train_runs=2")
    assert result.code == 2 and "split evenly" in result.output
    assert not out.exists()  # nothing was written
