"""A MiniLLM phase (sampler ``teacher_mixed`` x divergence ``minillm``), part by part, against the sum of its
unavoidable passes timed alone, and optionally against another checkout of minillm, alternating.

Same models as ``gkd_vs_trl.py`` (random GPT-2 student 2 x 64, teacher 4 x 256, GPT-2's tokenizer, vocab
50,257), batch 8, 64 new tokens, ``rollouts_per_phase`` 8 and ``ppo_epochs`` 2 by default (one micro-batch per
phase, so a phase is ``ppo_epochs`` optimizer steps); no pretraining corpus. The phase runs through
``run_distill`` (the code ``minillm distill`` runs) and its time is the sum of the ``step_time_s`` minillm
records for the phase's steps. Parts come from timers around stable entry points (see ``minillm_adapter.py``):
rollout (all of the sampler's ``sample``), its mixed decode, the student-length probe (when on), the
divergence's ``prepare``, and per step the GPT-2 trunk forwards (student with grad, teacher without), the
divergence's ``loss``, DeepSpeed's backward and optimizer step, and the rest.

The unavoidable passes, timed alone in the same process on fresh copies of the same models: one teacher-mixed
decode of the phase's prompts (student and teacher stepping together), and per PPO epoch one student forward
with grad over each rollout micro-batch (logits at the response positions, their log-softmax at the chosen
tokens) with its backward, and the optimizer steps (AdamW, clip 1.0).

Each round runs each checkout in a fresh one-thread process: ``--warmup`` phases, then ``--phases`` timed ones.
Run::

    OMP_NUM_THREADS=1 python benchmarks/minillm_phase.py --rounds 4
    git worktree add /tmp/old-main 533b980
    OMP_NUM_THREADS=1 python benchmarks/minillm_phase.py --rounds 4 --other-checkout /tmp/old-main
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
ALPHA = 0.2
LR = 1e-4
SEED = 1
PARTS = ("decode", "probe", "prepare", "student_forward", "teacher_forward_nograd", "loss", "backward", "optimizer")


def recipe_text(paths: dict[str, Path], steps: int, rollouts: int, epochs: int, probe: str) -> str:
    probe_line = "" if probe == "default" else f"  probe_student_length: {'true' if probe == 'on' else 'false'}\n"
    return f"""\
name: bench-minillm
seed: {SEED}
teacher: {{path: {paths["teacher"]}, family: gpt2}}
student: {{path: {paths["student"]}, family: gpt2}}
data:
  train: {paths["prompts"]}
  max_prompt_length: 320
  max_response_length: {NEW_TOKENS}
sampler:
  name: teacher_mixed
  alpha: {ALPHA}
  max_new_tokens: {NEW_TOKENS}
{probe_line}divergence:
  name: minillm
  ppo_epochs: {epochs}
  rollouts_per_phase: {rollouts}
train:
  total_steps: {steps}
  lr: {LR}
  schedule: constant
  warmup_steps: 0
  micro_batch_size: {BATCH}
  grad_accum: 1
  clip_grad: 1.0
  save_every: {steps + 1}
engine: {{zero_stage: 0, dtype: fp32}}
"""


def unavoidable(paths: dict[str, Path], prompts: list[list[int]], epochs: int, n_micro: int) -> dict[str, float]:
    """The phase's unavoidable passes timed alone (seconds): decode, student forward+backward, optimizer."""
    import minillm_adapter
    import torch
    from transformers import AutoModelForCausalLM

    student = AutoModelForCausalLM.from_pretrained(paths["student"]).float()
    teacher = AutoModelForCausalLM.from_pretrained(paths["teacher"]).float().eval().requires_grad_(False)
    eos = int(student.config.eos_token_id)
    optimizer = torch.optim.AdamW(student.parameters(), lr=LR)
    out = {"decode": 0.0, "student_forward_backward": 0.0, "optimizer": 0.0}
    batches = []
    for m in range(n_micro):
        rows = [prompts[(m * BATCH + i) % len(prompts)] for i in range(BATCH)]
        width = max(map(len, rows))
        ids = torch.full((BATCH, width), eos, dtype=torch.long)
        mask = torch.zeros((BATCH, width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        t0 = time.perf_counter()
        dec = minillm_adapter.mixed_decode(
            student, teacher, ids, mask, alpha=ALPHA, max_new_tokens=NEW_TOKENS, eos_id=eos, seed=SEED + m
        )
        out["decode"] += time.perf_counter() - t0
        batches.append((ids, mask, dec.response_ids, dec.response_mask.long()))
    student.train()
    for _ in range(epochs):
        for ids, mask, resp, resp_mask in batches:
            t0 = time.perf_counter()
            full = torch.cat([ids, resp], 1)
            full_mask = torch.cat([mask, resp_mask], 1)
            pos = (full_mask.cumsum(1) - 1).clamp(min=0)
            tr = resp.size(1)
            logits = student(input_ids=full, attention_mask=full_mask, position_ids=pos, logits_to_keep=tr + 1).logits
            lp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, resp[..., None]).squeeze(-1)
            loss = -(lp * resp_mask).sum() / resp_mask.sum()
            loss.backward()
            out["student_forward_backward"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            out["optimizer"] += time.perf_counter() - t0
    return out


def child(work: Path, warmup: int, phases: int, rollouts: int, epochs: int, probe: str) -> dict:
    harness.as_minillm_does()
    harness.one_thread()
    import minillm_adapter

    import minillm_distill
    import minillm_distill.builtins
    from minillm_distill.recipe.loader import load_recipe
    from minillm_distill.train.loop import RunOptions, run_distill

    paths = tiny_models.build(work)
    n_micro = -(-rollouts // BATCH)
    steps_per_phase = epochs * n_micro
    timer = minillm_adapter.PartTimer()
    per_step: list[dict[str, float]] = []
    remove = minillm_adapter.install_phase_timers(timer, "teacher_mixed", "minillm", per_step)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            recipe_path = Path(tmp) / "recipe.yaml"
            recipe_path.write_text(recipe_text(paths, (warmup + phases) * steps_per_phase, rollouts, epochs, probe))
            run_distill(load_recipe(recipe_path), RunOptions(output_dir=Path(tmp) / "run"))
            rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    finally:
        remove()
    first = warmup * steps_per_phase
    phase_times, parts_per_phase = [], []
    for p in range(warmup, warmup + phases):
        sl = slice(p * steps_per_phase, (p + 1) * steps_per_phase)
        phase_times.append(sum(r["step_time_s"] for r in rows[sl]))
        parts: dict[str, float] = {}
        for d in per_step[sl]:
            for k, v in d.items():
                parts[k] = parts.get(k, 0.0) + v
        parts_per_phase.append(parts)
    parts = {k: statistics.median(p.get(k, 0.0) for p in parts_per_phase) for k in {*PARTS, "rollout"}}
    prompts = minillm_adapter.prompt_ids(paths["student"], paths["prompts"])
    alone = unavoidable(paths, prompts, epochs, n_micro)
    return {
        "phase_s": statistics.median(phase_times),
        "unavoidable_s": sum(alone.values()),
        "alone": alone,
        "parts": parts,
        "response_length": statistics.mean(r["response_length"] for r in rows[first:]),
        "minillm_distill": str(Path(minillm_distill.__file__).parent),
        "minillm_distill.builtins": str(Path(minillm_distill.builtins.__file__).parent),
    }


def report(name: str, results: list[dict]) -> None:
    phase = harness.summary([r["phase_s"] for r in results])
    alone = harness.summary([r["unavoidable_s"] for r in results])
    ratio = harness.ratio_summary([r["phase_s"] for r in results], [r["unavoidable_s"] for r in results])
    print(
        f"{name}: minillm_distill from {results[0]['minillm_distill']}, "
        f"plugins from {results[0]['minillm_distill.builtins']}"
    )
    print(f"  phase s {phase}; mean response length {statistics.mean(r['response_length'] for r in results):.1f}")
    print(f"  unavoidable passes alone s {alone}")
    print(f"  phase / unavoidable per round: {ratio} (target <= 1.15)")
    med = {k: statistics.median(r["parts"][k] for r in results) for k in results[0]["parts"]}
    order = ["rollout", *PARTS]
    inner = sum(med[k] for k in PARTS if k != "decode" and k != "probe")
    med["rest"] = phase.median - med["rollout"] - inner
    print("  parts (median s per phase): " + ", ".join(f"{k} {med[k]:.3f}" for k in [*order, "rest"]))
    a = {k: statistics.median(r["alone"][k] for r in results) for k in results[0]["alone"]}
    print("  alone (median s per phase): " + ", ".join(f"{k} {v:.3f}" for k, v in a.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1, help="untimed phases at the start of each round")
    parser.add_argument("--phases", type=int, default=2, help="timed phases per round")
    parser.add_argument("--rollouts", type=int, default=BATCH, help="rollouts_per_phase")
    parser.add_argument("--ppo-epochs", type=int, default=2)
    parser.add_argument(
        "--probe",
        choices=["default", "on", "off"],
        default="default",
        help="probe_student_length (default: each checkout's own default)",
    )
    parser.add_argument(
        "--checkout",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="the minillm checkout under test (default: this one)",
    )
    parser.add_argument("--other-checkout", type=Path, help="another checkout (e.g. 533b980) to alternate with")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "minillm-bench-models")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        harness.emit(child(args.work_dir, args.warmup, args.phases, args.rollouts, args.ppo_epochs, args.probe))
        return
    harness.one_thread()
    tiny_models.build(args.work_dir)
    common = [
        str(Path(__file__).resolve()),
        "--child",
        "--work-dir",
        args.work_dir,
        "--warmup",
        args.warmup,
        "--phases",
        args.phases,
        "--rollouts",
        args.rollouts,
        "--ppo-epochs",
        args.ppo_epochs,
        "--probe",
        args.probe,
    ]
    checkouts = {"current": args.checkout}
    if args.other_checkout is not None:
        checkouts["other"] = args.other_checkout
    systems = {
        name: (lambda r, p=harness.checkout_pythonpath(path): harness.run_child(common, pythonpath=p))
        for name, path in checkouts.items()
    }
    print(
        f"MiniLLM phase (teacher_mixed alpha {ALPHA} x minillm), batch {BATCH} x {NEW_TOKENS} new tokens, "
        f"rollouts_per_phase {args.rollouts}, ppo_epochs {args.ppo_epochs}, probe {args.probe}, vocab 50257, "
        f"student 2x64, teacher 4x256; {args.rounds} rounds x {args.phases} timed phases"
    )
    print("machine:", harness.machine_line())
    res = harness.alternate(systems, args.rounds)
    for name, path in checkouts.items():
        report(f"{name} ({path})", res[name])
    if "other" in res:
        ratio = harness.ratio_summary([r["phase_s"] for r in res["current"]], [r["phase_s"] for r in res["other"]])
        print(f"phase time current/other per pair: {ratio} (target <= 0.7 against 533b980)")


if __name__ == "__main__":
    main()
