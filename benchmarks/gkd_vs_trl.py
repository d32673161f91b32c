"""On-policy GKD step: minillm (sampler ``mixed`` lambda 1 x divergence ``jsd`` beta 0.5, through
``minillm distill``'s own code) against TRL's ``GKDTrainer`` (lmbda 1, beta 0.5), at equal work.

Same models (a random GPT-2 student 2 x 64 and teacher 4 x 256, GPT-2's tokenizer, vocab 50,257, loaded from
the same folders), same 8 prompts (the ids minillm encodes, handed to TRL), batch 8, exactly 64 new tokens per
row on both (minillm ``min_new_tokens = max_new_tokens = 64``; TRL's generation config min/max new tokens 64),
temperature 1, no top-k/top-p, AdamW with the same LR (constant), weight decay 0, gradient clipping 1.0.

The work of one step, read from TRL 1.16's ``experimental/gkd/gkd_trainer.py`` (``training_step`` with
``lmbda = 1`` then ``compute_loss``): one ``generate`` of the student (KV cache) on the prompts, one student
forward with grad and one teacher forward without grad over prompt + completion, the generalized JSD over the
full vocabulary at the completion positions, backward, and the Trainer's clip + optimizer step. minillm's step
does the same passes (one student decode, one student forward with grad, one teacher forward, JSD, backward,
step); neither evaluates or logs anything extra in the timed steps.

Each round runs each system in a fresh one-thread process (A B A B ...): ``--warmup`` steps, then ``--steps``
timed steps; the round's figure is the median step time. Start-up (imports, model loading, DeepSpeed/Trainer
initialisation) is outside the timing. Run::

    OMP_NUM_THREADS=1 python benchmarks/gkd_vs_trl.py --rounds 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import tiny_models  # noqa: E402

BATCH = 8
NEW_TOKENS = 64
BETA = 0.5
LR = 1e-4
SEED = 1


def recipe_text(paths: dict[str, Path], steps: int) -> str:
    return f"""\
name: bench-gkd
seed: {SEED}
teacher: {{path: {paths["teacher"]}, family: gpt2}}
student: {{path: {paths["student"]}, family: gpt2}}
data:
  train: {paths["prompts"]}
  max_prompt_length: 320
  max_response_length: {NEW_TOKENS}
sampler:
  name: mixed
  lambda: 1.0
  max_new_tokens: {NEW_TOKENS}
  min_new_tokens: {NEW_TOKENS}
divergence:
  name: jsd
  beta: {BETA}
train:
  total_steps: {steps}
  lr: {LR}
  schedule: constant
  warmup_steps: 0
  weight_decay: 0.0
  micro_batch_size: {BATCH}
  grad_accum: 1
  clip_grad: 1.0
  save_every: {steps + 1}
engine: {{zero_stage: 0, dtype: fp32}}
"""


def child_minillm(work: Path, warmup: int, steps: int) -> dict:
    harness.as_minillm_does()
    harness.one_thread()
    from minillm_distill.recipe.loader import load_recipe
    from minillm_distill.train.loop import RunOptions, run_distill

    paths = tiny_models.build(work)
    with tempfile.TemporaryDirectory() as tmp:
        recipe_path = Path(tmp) / "recipe.yaml"
        recipe_path.write_text(recipe_text(paths, warmup + steps))
        run_distill(load_recipe(recipe_path), RunOptions(output_dir=Path(tmp) / "run"))
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    timed = rows[warmup:]
    return {
        "s_per_step": statistics.median(r["step_time_s"] for r in timed),
        "tokens_per_step": statistics.median(r["response_tokens"] for r in timed),
    }


def child_trl(work: Path, warmup: int, steps: int) -> dict:
    harness.one_thread()
    import minillm_adapter
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    paths = tiny_models.build(work)
    prompts = minillm_adapter.prompt_ids(paths["student"], paths["prompts"])
    assert len(prompts) >= BATCH
    tokenizer = AutoTokenizer.from_pretrained(paths["student"])
    tokenizer.pad_token, tokenizer.padding_side = tokenizer.eos_token, "left"
    pad = tokenizer.pad_token_id

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["prompt_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["prompt_ids"])
            ids[i, width - n :] = torch.tensor(r["prompt_ids"])
            mask[i, width - n :] = 1
        # on-policy steps replace input_ids/labels with the generated ones; these labels only set the Trainer's
        # num_items_in_batch (the loss normaliser), counted over labels[..., 1:]: NEW_TOKENS per row, as generated
        labels = torch.zeros((len(rows), NEW_TOKENS + 1), dtype=torch.long)
        labels[:, 0] = -100
        return {
            "prompts": ids,
            "prompt_attention_mask": mask,
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
        }

    stamps: list[float] = []
    tokens: list[int] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    class CountingGKD(GKDTrainer):
        @staticmethod
        def generate_on_policy_outputs(model, inputs, generation_config):
            out = GKDTrainer.generate_on_policy_outputs(model, inputs, generation_config)
            tokens.append(int((out[2] != -100).sum()))
            return out

    student = AutoModelForCausalLM.from_pretrained(paths["student"])
    teacher = AutoModelForCausalLM.from_pretrained(paths["teacher"])
    with tempfile.TemporaryDirectory() as tmp:
        config = GKDConfig(
            output_dir=tmp,
            per_device_train_batch_size=BATCH,
            gradient_accumulation_steps=1,
            max_steps=warmup + steps + 1,
            learning_rate=LR,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            lmbda=1.0,
            beta=BETA,
            temperature=1.0,
            max_new_tokens=NEW_TOKENS,
            seq_kd=False,
            report_to="none",
            save_strategy="no",
            eval_strategy="no",
            logging_steps=10**6,
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
            seed=SEED,
        )
        dataset = Dataset.from_dict({"prompt_ids": prompts})
        trainer = CountingGKD(
            model=student,
            teacher_model=teacher,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            data_collator=collate,
            callbacks=[Stamp()],
        )
        trainer.generation_config.min_new_tokens = NEW_TOKENS  # equal work: 64 tokens per row, as minillm
        trainer.generation_kwargs["min_new_tokens"] = NEW_TOKENS
        trainer.train()
    # stamps[k] - stamps[k-1] is step k's whole time (batch fetch, generate, forward, backward, optimizer)
    times = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :], strict=False)]
    return {"s_per_step": statistics.median(times), "tokens_per_step": statistics.median(tokens[warmup + 1 :])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (A B per round)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each round")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "minillm-bench-models")
    parser.add_argument("--child", choices=["minillm", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fn = child_minillm if args.child == "minillm" else child_trl
        harness.emit(fn(args.work_dir, args.warmup, args.steps))
        return

    harness.one_thread()
    tiny_models.build(args.work_dir)
    common = [
        str(Path(__file__).resolve()),
        "--work-dir",
        args.work_dir,
        "--warmup",
        args.warmup,
        "--steps",
        args.steps,
    ]
    systems = {name: (lambda r, n=name: harness.run_child([*common, "--child", n])) for name in ("minillm", "trl")}
    print(
        f"GKD step (lambda 1, JSD beta {BETA}), batch {BATCH} x {NEW_TOKENS} new tokens, vocab 50257, "
        f"student 2x64, teacher 4x256; {args.rounds} rounds x {args.steps} timed steps"
    )
    print("machine:", harness.machine_line())
    res = harness.alternate(systems, args.rounds)
    for name in systems:
        s = harness.summary([r["s_per_step"] for r in res[name]])
        tps = harness.summary([r["tokens_per_step"] / r["s_per_step"] for r in res[name]])
        tokens = {r["tokens_per_step"] for r in res[name]}
        print(f"{name:8s} s/step {s}  generated tokens/s {tps.median:.1f}  tokens/step {sorted(tokens)}")
    ratio = harness.ratio_summary([r["s_per_step"] for r in res["minillm"]], [r["s_per_step"] for r in res["trl"]])
    print(f"time ratio minillm/TRL per pair: {ratio}")
    print(f"throughput minillm/TRL: {1 / ratio.median:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
