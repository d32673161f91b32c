"""End-to-end `minillm distill` on tiny from-scratch models (CPU, DeepSpeed with gloo)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import BENCH_FIXTURES, ROOT, run_minillm

pytestmark = pytest.mark.slow

TIMING_KEYS = {"tokens_per_s", "step_time_s"}


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def distill(*args: str, env: dict[str, str] | None = None):
    res = run_minillm("distill", *args, env={"OMP_NUM_THREADS": "1", **(env or {})})
    return res


@pytest.mark.slow
def test_tiny_kd_trains_and_writes_outputs(tmp_path):
    out = tmp_path / "run"
    res = distill("recipes/tiny/kd.yaml", "--output-dir", out, "--set", "train.total_steps=12")
    assert res.code == 0, res.output
    rows = metrics(out)
    assert [r["step"] for r in rows] == list(range(1, 13))
    for key in ("loss", "lr", "tokens_per_s"):
        assert all(isinstance(r[key], float) for r in rows), key
    first, last = sum(r["loss"] for r in rows[:3]) / 3, sum(r["loss"] for r in rows[-3:]) / 3
    assert last < 0.8 * first, (first, last)
    # warmup 2 steps then cosine to 0 over 12 steps
    assert rows[0]["lr"] == pytest.approx(5e-4) and rows[1]["lr"] == pytest.approx(1e-3)
    assert rows[-1]["lr"] < 1e-4
    resolved = (out / "recipe.yaml").read_text()
    assert "temperature: 1.0" in resolved and "total_steps: 12" in resolved
    assert (out / "checkpoints" / "step-12" / "state.json").exists()
    final = out / "final"
    assert (final / "model.safetensors").exists() and (final / "tokenizer.json").exists()

    # the final folder loads with transformers alone
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    ids = torch.tensor([tok("hello")["input_ids"]])
    assert torch.isfinite(model(ids).logits).all()


@pytest.mark.slow
def test_max_steps_then_resume_equals_unbroken_run(tmp_path):
    common = ("recipes/tiny/kd.yaml", "--set", "train.total_steps=6", "--set", "train.save_every=2")
    a, b = tmp_path / "a", tmp_path / "b"
    assert distill(*common, "--output-dir", a).code == 0
    res = distill(*common, "--output-dir", b, "--max-steps", "3")
    assert res.code == 0, res.output
    assert len(metrics(b)) == 3 and not (b / "final").exists()
    # the LR schedule follows total_steps, not --max-steps
    assert metrics(b)[2]["lr"] == pytest.approx(metrics(a)[2]["lr"])
    res = distill(*common, "--output-dir", b, "--resume")
    assert res.code == 0, res.output
    assert without_timing(metrics(b)) == without_timing(metrics(a))
    # a finished run extends with --resume --max-steps beyond... no: total reached, final written
    assert (b / "final" / "model.safetensors").exists()


@pytest.mark.slow
def test_sigkill_then_resume_is_exact(tmp_path):
    common = ("recipes/tiny/kd.yaml", "--set", "train.total_steps=8", "--set", "train.save_every=2")
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert distill(*common, "--output-dir", ref).code == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "minillm_distill", "distill", *common, "--output-dir", str(run)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        if (run / "metrics.jsonl").exists() and len(metrics(run)) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(metrics(run)) < 8, "the run finished before it could be killed"
    res = distill(*common, "--output-dir", run, "--resume")
    assert res.code == 0, res.output
    assert without_timing(metrics(run)) == without_timing(metrics(ref))


@pytest.mark.slow
def test_refuses_existing_run_without_resume_and_resume_without_checkpoint(tmp_path):
    out = tmp_path / "r"
    assert distill("recipes/tiny/sft.yaml", "--output-dir", out, "--set", "train.total_steps=2").code == 0
    res = distill("recipes/tiny/sft.yaml", "--output-dir", out, "--set", "train.total_steps=2")
    assert res.code == 2 and "--resume" in res.output and "Traceback" not in res.output
    res = distill("recipes/tiny/sft.yaml", "--output-dir", tmp_path / "empty", "--resume")
    assert res.code == 5 and "no complete checkpoint" in res.output


@pytest.mark.slow
def test_non_finite_loss_is_skipped_then_aborts(tmp_path):
    out = tmp_path / "nan"
    res = distill(
        "recipes/tiny/sft.yaml",
        "--output-dir",
        out,
        "--set",
        "train.lr=1e30",
        "--set",
        "train.clip_grad=0",
        "--set",
        "train.warmup_steps=0",
        "--set",
        "train.schedule=constant",
        "--set",
        "train.max_bad_steps=2",
        "--set",
        "train.total_steps=20",
    )
    assert res.code == 1, res.output
    assert "not finite" in res.output and "Traceback" not in res.output
    rows = metrics(out)
    assert rows[-1]["skipped"] and rows[-2]["skipped"] and rows[-1]["loss"] is None
    assert len(rows) < 20


@pytest.mark.parametrize("stage", [2, 3])
@pytest.mark.slow
def test_two_processes_zero(tmp_path, stage):
    out = tmp_path / f"z{stage}"
    res = distill(
        "recipes/tiny/kd.yaml",
        "--nproc",
        "2",
        "--output-dir",
        out,
        "--set",
        f"engine.zero_stage={stage}",
        "--set",
        "train.total_steps=10",
        "--set",
        "train.micro_batch_size=2",
    )
    assert res.code == 0, res.output
    rows = metrics(out)
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert rows[0]["response_tokens"] > 0
    assert sum(r["loss"] for r in rows[-3:]) < sum(r["loss"] for r in rows[:3])
    assert (out / "final" / "model.safetensors").exists()


@pytest.mark.slow
def test_vocabulary_mismatch_is_caught_before_training(tmp_path):
    from tiny_models import save_word_level_tokenizer

    tok_dir = tmp_path / "tok"
    save_word_level_tokenizer(tok_dir, ["a", "b", "c", "hello", "world"])
    out = tmp_path / "vm"
    res = distill("recipes/tiny/kd.yaml", "--output-dir", out, "--set", f"teacher.tokenizer={tok_dir}")
    assert res.code == 3, res.output
    assert "different tokenizers" in res.output
    assert not (out / "metrics.jsonl").exists() or not metrics(out)


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "recipes" / "tiny").glob("*.yaml")))
@pytest.mark.slow
def test_each_tiny_recipe_runs(tmp_path, name):
    out = tmp_path / name
    res = distill(f"recipes/tiny/{name}.yaml", "--output-dir", out, "--set", "train.total_steps=3")
    assert res.code == 0, res.output
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["loss"] is not None and r["loss"] >= 0 for r in rows)
    assert (out / "final" / "model.safetensors").exists()


@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_and_exits_130(tmp_path):
    out = tmp_path / "int"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"}  # the advice on one line, unfolded
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "minillm_distill",
            "distill",
            "recipes/tiny/kd.yaml",
            "--output-dir",
            str(out),
            "--set",
            "train.total_steps=10000",
            "--set",
            "train.save_every=10000",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not ((out / "metrics.jsonl").exists() and len(metrics(out)) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    done = len(metrics(out))
    assert (out / "checkpoints" / f"step-{done}" / "state.json").exists()
    # the advice is a command that works: the one given, with --resume (it once lacked the recipe)
    flat = " ".join(err.replace("│", " ").split())
    advised = shlex.split(flat.split("continue with: ", 1)[1].split(" (run with")[0])
    assert advised[:3] == ["minillm", "distill", "recipes/tiny/kd.yaml"] and "--resume" in advised, advised
    res = run_minillm(*advised[1:], "--max-steps", str(done + 1), env={"OMP_NUM_THREADS": "1"})
    assert res.code == 0, res.output
    assert len(metrics(out)) == done + 1


@pytest.mark.slow
def test_lora_student_trains_adapters_only_and_final_is_merged(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from minillm_distill.models import load_model
    from minillm_distill.recipe import load_recipe

    out = tmp_path / "lora"
    sets = (
        "--set",
        "train.total_steps=4",
        "--set",
        "student.lora.r=4",
        "--set",
        "student.lora.target_modules=[c_attn]",
    )
    res = distill("recipes/tiny/kd.yaml", "--output-dir", out, *sets)
    assert res.code == 0, res.output
    final = AutoModelForCausalLM.from_pretrained(out / "final")  # plain folder: no adapter files, no peft needed
    assert not (out / "final" / "adapter_config.json").exists()
    recipe = load_recipe(ROOT / "recipes/tiny/kd.yaml")
    initial = load_model(recipe.student, seed=recipe.seed).model.state_dict()
    trained = final.state_dict()
    assert torch.equal(trained["transformer.h.0.mlp.c_fc.weight"], initial["transformer.h.0.mlp.c_fc.weight"])
    assert not torch.allclose(
        trained["transformer.h.0.attn.c_attn.weight"], initial["transformer.h.0.attn.c_attn.weight"]
    )


@pytest.mark.slow
def test_lora_rejected_for_teacher_and_zero3(tmp_path):
    res = run_minillm(
        "recipes",
        "validate",
        "recipes/tiny/kd.yaml",
        "--set",
        "teacher.lora.r=4",
        "--set",
        "student.lora.r=4",
        "--set",
        "engine.zero_stage=3",
    )
    assert res.code == 3
    assert "teacher.lora" in res.output and "student.lora" in res.output


@pytest.mark.slow
def test_tiny_minillm_reverse_kl_goes_down(tmp_path):
    out = tmp_path / "mini"
    res = distill("recipes/tiny/minillm.yaml", "--output-dir", out)
    assert res.code == 0, res.output
    rows = metrics(out)
    by_phase: dict[int, float] = {}
    for r in rows:
        by_phase[r["phase"]] = r["rollout/rev_kl"]
    phases = sorted(by_phase)
    assert len(phases) >= 5
    first = sum(by_phase[p] for p in phases[:2]) / 2
    last = sum(by_phase[p] for p in phases[-2:]) / 2
    assert last < 0.9 * first, (first, last)
    for key in (
        "pg_loss",
        "single_step_loss",
        "pt_loss",
        "clip_fraction",
        "rollout/reward",
        "rollout/iw_mean",
        "rollout/iw_min",
        "rollout/iw_max",
        "rollout/rev_kl",
        "rollout/rollout_length",
        "response_length",
    ):
        assert all(r[key] is not None for r in rows), key
    # the student-length probe (a second student decode) is off by default
    assert all("rollout/student_length" not in r for r in rows)


@pytest.mark.slow
def test_minillm_resume_mid_phase_is_exact(tmp_path):
    common = ("recipes/tiny/minillm.yaml", "--set", "train.total_steps=6", "--set", "train.save_every=100")
    a, b = tmp_path / "a", tmp_path / "b"
    assert distill(*common, "--output-dir", a).code == 0
    assert distill(*common, "--output-dir", b, "--max-steps", "3").code == 0  # 4 steps per phase: stops mid-phase
    res = distill(*common, "--output-dir", b, "--resume")
    assert res.code == 0, res.output
    assert without_timing(metrics(b)) == without_timing(metrics(a))


@pytest.mark.slow
def test_minillm_two_process_zero3(tmp_path):
    out = tmp_path / "z3"
    res = distill(
        "recipes/tiny/minillm.yaml",
        "--nproc",
        "2",
        "--output-dir",
        out,
        "--set",
        "engine.zero_stage=3",
        "--set",
        "train.total_steps=4",
    )
    assert res.code == 0, res.output
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["rollout/rollout_sequences"] == 8  # rollouts_per_phase across both ranks
    assert (out / "final" / "model.safetensors").exists()


@pytest.mark.slow
def test_periodic_evaluation_during_training(tmp_path):
    out = tmp_path / "pe"
    bench = BENCH_FIXTURES / "dolly.jsonl"
    res = distill(
        "recipes/tiny/kd.yaml",
        "--output-dir",
        out,
        "--set",
        "train.total_steps=3",
        "--set",
        "eval.every=2",
        "--set",
        "eval.benchmarks=[dolly]",
        "--set",
        f"eval.data.dolly={bench}",
        "--set",
        "eval.max_new_tokens=8",
        "--set",
        "eval.limit=3",
    )
    assert res.code == 0, res.output
    rows = metrics(out)
    evaluated = [r["step"] for r in rows if "eval/dolly/rougeL" in r]
    assert evaluated == [2, 3]  # every 2 steps and at the end
    scores = json.loads((out / "eval" / "step-2" / "dolly" / "scores.json").read_text())
    assert scores["n"] == 3 and scores["rougeL"] == rows[1]["eval/dolly/rougeL"]
    assert len((out / "eval" / "step-3" / "dolly" / "predictions.jsonl").read_text().splitlines()) == 3


@pytest.mark.slow
def test_gradient_accumulation_matches_one_big_micro_batch(tmp_path):
    """micro 2 x grad_accum 2 sees the same 4 examples per step as micro 4 x 1, and the loss is normalised by
    the step's global token count, so the runs agree step for step."""
    common = (
        "recipes/tiny/kd.yaml",
        "--set",
        "train.total_steps=3",
        "--set",
        "train.clip_grad=0",
        "--set",
        "student.scratch.dropout=0",
    )  # dropout would draw differently per micro-batch layout
    a, b = tmp_path / "a", tmp_path / "b"
    assert distill(*common, "--output-dir", a, "--set", "train.micro_batch_size=4").code == 0
    res = distill(*common, "--output-dir", b, "--set", "train.micro_batch_size=2", "--set", "train.grad_accum=2")
    assert res.code == 0, res.output
    for ra, rb in zip(metrics(a), metrics(b), strict=True):
        assert ra["response_tokens"] == rb["response_tokens"]
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5)


@pytest.mark.slow
def test_runs_under_an_outer_torchrun_launcher(tmp_path):
    from minillm_distill.train.distributed import free_port

    out = tmp_path / "tr"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            "-m",
            "minillm_distill",
            "distill",
            "recipes/tiny/sft.yaml",
            "--output-dir",
            str(out),
            "--set",
            "train.total_steps=2",
            "--set",
            "train.micro_batch_size=2",
        ],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["response_tokens"] > 0 and (out / "final" / "model.safetensors").exists()


@pytest.mark.slow
def test_runs_under_the_deepspeed_launcher(tmp_path):
    """The deepspeed launcher passes --local_rank=N before the command; minillm takes it from LOCAL_RANK."""
    from minillm_distill.train.distributed import free_port

    out = tmp_path / "ds"
    launcher = str(Path(sys.executable).with_name("deepspeed"))
    proc = subprocess.run(
        [
            launcher,
            "--num_gpus",
            "2",
            "--master_port",
            str(free_port()),
            "--module",
            "minillm_distill",
            "distill",
            "recipes/tiny/sft.yaml",
            "--output-dir",
            str(out),
            "--set",
            "train.total_steps=2",
            "--set",
            "train.micro_batch_size=2",
        ],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert [r["step"] for r in metrics(out)] == [1, 2]
