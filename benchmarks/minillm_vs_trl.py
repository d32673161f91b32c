"""A MiniLLM phase at the real shape: minillm (sampler ``teacher_mixed`` with alpha 0 x divergence
``minillm``, through ``minillm distill``'s own code) against TRL's experimental ``MiniLLMTrainer`` (TRL 1.14.2,
the last release that has it; removed in 1.15.0), at equal work, alternating, one thread.

Same models: SmolLM2-135M-Instruct (the GGUF converted to float32 by minillm) as the teacher and its 11-block
cut (first 5 + last 6 blocks) as the student, each system loading them from the same folders. Same 8 Dolly
prompts, written with the teacher's chat template (minillm renders ``record.chat_messages()``; TRL receives the
same messages as conversational prompts and applies the same template; the script checks that the prompt
token counts agree). Equal work in a phase: 8 rollouts of exactly 64 new tokens each (minillm
``min_new_tokens = max_new_tokens = 64``; TRL ``max_completion_length`` 64 and ``generation_kwargs``
``min_new_tokens`` 64), sampled from the student alone at temperature 1 (no top-k/top-p), then ``--ppo-epochs``
passes over them (minillm ``ppo_epochs``, micro-batch 8; TRL ``num_iterations``, batch 8, one completion per
prompt): one optimizer step per pass, AdamW with the same constant learning rate, weight decay 0, clipping 1.0,
float32.

One pass is the default because TRL 1.14.2's trainer fails on a second pass over the same rollouts
(``num_iterations`` 2: "Trying to backward through the graph a second time"): its ``compute_loss`` writes the
reverse-KL advantage, computed from the student's log-probs with their graph attached, back into the buffered
inputs, so the next pass backpropagates through the previous step's freed graph. (The same attached graph means
its policy term also differentiates through the advantage, which the paper's estimator treats as a constant.)

What each does in a phase (read from TRL 1.14.2's ``experimental/minillm/minillm_trainer.py`` and
``trainer/grpo_trainer.py``, and minillm's ``minillm`` divergence):

* TRL: ``generate`` of the student (KV cache) and the (dummy) reward; then per optimizer step a student forward
  with grad and a teacher forward over prompt + completion (the single-step KL over the full vocabulary, the
  discounted reverse-KL advantage), and GRPO's own student forward with grad for the clipped policy term,
  backward, step.
* minillm: the student's decode with the teacher decoding beside it (both with a KV cache; alpha 0 draws every
  token from the student, the teacher's log-probs and logits of the drawn tokens are kept for the reward and
  the single-step term), so the teacher runs once over each rollout token and never again in the phase; per
  optimizer step one student forward with grad (the policy term and the single-step term in one chunked walk
  over the vocabulary), backward, step.

The paper's MiniLLM mixes the teacher into sampling (alpha 0.2); TRL's trainer does not, so both sample from the
student alone here (``teacher_mixed`` at alpha 0 draws exactly the ``student`` sampler's tokens). Discount 0.95
with length normalisation on both; other settings at each system's defaults (they change the arithmetic of a
few [8, 64] tensors, not the passes).

Each round runs each system in a fresh one-thread process (A B A B ...): ``--warmup`` phases, then ``--phases``
timed phases; a round's figure is its median phase time (every optimizer step of it, generation included). Start-up
(imports, loading, Trainer/DeepSpeed set-up) is outside the timing. TRL 1.14.2 is installed apart (``make
bench-trl-minillm`` puts it in ``build/trl-1.14.2`` with ``pip --target --no-deps``; its dependencies are
minillm's). Run::

    OMP_NUM_THREADS=1 python benchmarks/minillm_vs_trl.py --trl-path build/trl-1.14.2 \
        --data ../shared/data/dolly/databricks-dolly-15k.jsonl --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

ROLLOUTS = 8
NEW_TOKENS = 64
MAX_PROMPT = 128
LR = 5e-5
GAMMA = 0.95
SEED = 1


def recipe(teacher: str, student: str, data: Path, steps: int, epochs: int) -> dict:
    generation = {"max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS, "temperature": 1.0, "top_k": 0}
    return {
        "name": "bench-minillm-vs-trl",
        "seed": SEED,
        "teacher": {"path": teacher},
        "student": {"path": student},
        "data": {
            "train": str(data),
            "max_prompt_length": MAX_PROMPT,
            "max_response_length": NEW_TOKENS,
            "prompt_format": "chat",
        },
        "sampler": {"name": "teacher_mixed", "alpha": 0.0, **generation, "top_p": 1.0},
        "divergence": {
            "name": "minillm",
            "ppo_epochs": epochs,
            "rollouts_per_phase": ROLLOUTS,
            "gamma": GAMMA,
            "length_norm": True,
            "lm_coef": 0.0,
        },
        "train": {
            "total_steps": steps,
            "lr": LR,
            "schedule": "constant",
            "warmup_steps": 0,
            "weight_decay": 0.0,
            "clip_grad": 1.0,
            "micro_batch_size": ROLLOUTS,
            "grad_accum": 1,
            "save_every": steps + 1,
            "keep_last": 1,
        },
        "engine": {"zero_stage": 0, "dtype": "fp32"},
    }


def phases_of(step_times: list[float], epochs: int) -> list[float]:
    """Whole phases (``epochs`` consecutive optimizer steps) from a list of step times."""
    n = len(step_times) // epochs
    return [sum(step_times[i * epochs : (i + 1) * epochs]) for i in range(n)]


def child_minillm(job: dict) -> dict:
    harness.as_minillm_does()
    harness.one_thread()
    from minillm_distill.cli.main import main
    from minillm_distill.recipe.yaml_io import dump_yaml

    work = Path(job["work"])
    epochs = job["ppo_epochs"]
    steps = epochs * (job["warmup"] + job["phases"])
    recipe_path = work / "minillm.yaml"
    recipe_path.write_text(dump_yaml(recipe(job["teacher"], job["student"], Path(job["data"]), steps, epochs)))
    run = work / "run-minillm"
    shutil.rmtree(run, ignore_errors=True)
    try:
        main(["distill", str(recipe_path), "--output-dir", str(run)])
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    phases = phases_of([r["step_time_s"] for r in rows], epochs)[job["warmup"] :]
    tokens = [r["response_tokens"] for r in rows[::epochs]]  # a phase's first step trains on its rollouts
    return {"phase_s": statistics.median(phases), "rollout_tokens": sorted(set(tokens))}


def child_trl(job: dict) -> dict:
    harness.one_thread()
    sys.path.insert(0, job["trl_path"])
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl.experimental.minillm import MiniLLMConfig, MiniLLMTrainer

    torch.manual_seed(SEED)
    records = [json.loads(line) for line in Path(job["messages"]).read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(job["student"])
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    stamps: list[float] = []
    completion_tokens: list[int] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    class Counting(MiniLLMTrainer):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            completion_tokens.append(int(out["completion_mask"].sum()))
            return out

    student = AutoModelForCausalLM.from_pretrained(job["student"], dtype=torch.float32)
    teacher = AutoModelForCausalLM.from_pretrained(job["teacher"], dtype=torch.float32)
    epochs = job["ppo_epochs"]
    total_steps = epochs * (job["warmup"] + job["phases"])
    with tempfile.TemporaryDirectory() as tmp:
        config = MiniLLMConfig(
            output_dir=tmp,
            per_device_train_batch_size=ROLLOUTS,
            generation_batch_size=ROLLOUTS,
            num_generations=1,
            num_iterations=epochs,
            gradient_accumulation_steps=1,
            max_completion_length=NEW_TOKENS,
            generation_kwargs={"min_new_tokens": NEW_TOKENS},
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            gamma=GAMMA,
            length_normalization=True,
            max_steps=total_steps + 1,
            learning_rate=LR,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            bf16=False,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            eval_strategy="no",
            logging_steps=10**6,
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=SEED,
        )
        trainer = Counting(
            model=student,
            teacher_model=teacher,
            args=config,
            train_dataset=Dataset.from_dict({"prompt": [r["messages"] for r in records]}),
            processing_class=tokenizer,
            callbacks=[Stamp()],
        )
        trainer.train()
    # stamps[k] - stamps[k - 1] is step k's whole time; step 0's start is not stamped, so it stays untimed (warm-up)
    steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    phases = phases_of(steps[epochs - 1 :], epochs)[job["warmup"] - 1 :]
    return {"phase_s": statistics.median(phases), "rollout_tokens": sorted(set(completion_tokens))}


def prepare(work: Path, data_source: Path) -> dict:
    """The teacher, its cut, and the first ``ROLLOUTS`` Dolly records whose chat prompt fits ``MAX_PROMPT``."""
    import real_shape

    from minillm_distill.data.encode import prompt_token_ids
    from minillm_distill.data.prompt_format import PromptFormatter
    from minillm_distill.data.records import load_records
    from minillm_distill.gguf import converted_folder
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    gguf_file, student, _ = real_shape.prepare(work, data_source, 0)
    teacher = converted_folder(gguf_file)  # both systems load the same float32 folder
    tokenizer = load_model(ModelSpec(path=str(student))).tokenizer
    formatter = PromptFormatter("chat", None, tokenizer)
    lines = data_source.read_text(encoding="utf-8").splitlines()[:200]
    records = load_records(str(data_source), limit=len(lines))  # one record per line, in order
    kept, kept_lines, lengths = [], [], []
    for line, record in zip(lines, records, strict=True):
        ids = prompt_token_ids(tokenizer, [formatter.record_prompt(record)])[0]
        if len(ids) <= MAX_PROMPT:
            kept.append(record)
            kept_lines.append(line)
            lengths.append(len(ids))
        if len(kept) == ROLLOUTS:
            break
    data = work / "prompts-8.jsonl"
    data.write_text("\n".join(kept_lines) + "\n", encoding="utf-8")
    messages = work / "messages-8.jsonl"
    messages.write_text("".join(json.dumps({"messages": r.chat_messages()}) + "\n" for r in kept), encoding="utf-8")
    template = {"add_generation_prompt": True, "tokenize": True, "return_dict": True}
    trl_lengths = [len(tokenizer.apply_chat_template(r.chat_messages(), **template)["input_ids"]) for r in kept]
    if sorted(trl_lengths) != sorted(lengths):
        raise SystemExit(f"prompt token counts differ: minillm {lengths}, chat template {trl_lengths}")
    return {
        "teacher": str(teacher),
        "student": str(student),
        "data": str(data),
        "messages": str(messages),
        "prompt_tokens": sum(lengths),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (A B per round)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed phases at the start of each round (>= 1)")
    parser.add_argument("--phases", type=int, default=3, help="timed phases per round")
    parser.add_argument(
        "--ppo-epochs", type=int, default=1, help="passes over a phase's rollouts (TRL 1.14.2 fails above 1)"
    )
    parser.add_argument("--data", type=Path, help="Dolly-format JSONL (databricks-dolly-15k.jsonl)")
    parser.add_argument("--trl-path", type=Path, help="a folder holding TRL 1.14.2 (pip install --target)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "minillm-bench-real")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        job = json.loads(args.child.read_text())
        harness.emit((child_minillm if job["system"] == "minillm" else child_trl)(job))
        return
    if args.data is None or args.trl_path is None:
        parser.error("--data (a Dolly-format JSONL file) and --trl-path (TRL 1.14.2, `make bench-trl-minillm`)")
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (TRL's first step has no start stamp)")
    if not (args.trl_path / "trl" / "experimental" / "minillm").is_dir():
        parser.error(f"--trl-path {args.trl_path}: no trl/experimental/minillm there (make bench-trl-minillm)")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    shared = prepare(args.work_dir, args.data)

    def system(name: str):
        def one(r: int) -> dict:
            job = {
                **shared,
                "system": name,
                "work": str(args.work_dir),
                "warmup": args.warmup,
                "phases": args.phases,
                "ppo_epochs": args.ppo_epochs,
                "trl_path": str(args.trl_path.resolve()),
            }
            spec = args.work_dir / f"job-{name}-{r}.json"
            spec.write_text(json.dumps(job))
            return harness.run_child([__file__, "--child", spec], timeout=3600)

        return one

    print(
        f"MiniLLM phase: {ROLLOUTS} rollouts x {NEW_TOKENS} new tokens sampled from the student, {args.ppo_epochs} "
        f"optimizer steps of {ROLLOUTS}; teacher SmolLM2-135M-Instruct (30 blocks), student its cut (11 blocks), "
        f"vocab 49,152, float32; {shared['prompt_tokens']} prompt tokens; {args.rounds} rounds x {args.phases} "
        "timed phases"
    )
    print("machine:", harness.machine_line(), "(children: 1 thread)")
    res = harness.alternate({name: system(name) for name in ("minillm", "trl")}, args.rounds)
    for name in ("minillm", "trl"):
        phase = harness.summary([r["phase_s"] for r in res[name]])
        tokens = sorted({t for r in res[name] for t in r["rollout_tokens"]})
        rate = harness.summary([ROLLOUTS * NEW_TOKENS / r["phase_s"] for r in res[name]])
        print(f"{name:8s} s/phase {phase}  rollout tokens/s of phase time {rate}  rollout tokens per phase {tokens}")
    ratio = harness.ratio_summary([r["phase_s"] for r in res["minillm"]], [r["phase_s"] for r in res["trl"]])
    print(f"time ratio minillm/TRL per pair: {ratio}")
    print(f"speed minillm/TRL: {1 / ratio.median:.2f}x")


if __name__ == "__main__":
    main()
