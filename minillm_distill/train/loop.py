"""``minillm distill``: build the run (:mod:`minillm_distill.train.setup`), then run steps, log, checkpoint, and write
the final model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from minillm_distill import run_layout
from minillm_distill.errors import (
    InterruptedRun,
    MinillmError,
    PeerLost,
    ResourceError,
    RuntimeFailure,
)
from minillm_distill.io_errors import resource_error, write_failure
from minillm_distill.plugin_blame import blame_plugin
from minillm_distill.plugins import get_plugins
from minillm_distill.recipe.schema import Recipe
from minillm_distill.train import checkpoint as ckpt
from minillm_distill.train import distributed as dist_utils
from minillm_distill.train.context import FP16_OVERFLOW
from minillm_distill.train.final import save_hf_folder
from minillm_distill.train.periodic_eval import PeriodicEval
from minillm_distill.train.progress import StepProgress
from minillm_distill.train.setup import RunOptions, build_run
from minillm_distill.train.step import train_step
from minillm_distill.train.trackers import open_trackers

OOM_HINT = (
    "lower train.micro_batch_size (raise train.grad_accum to keep the batch), raise engine.zero_stage, "
    "set engine.offload_optimizer / engine.offload_params, or shorten data.max_prompt_length / "
    "max_response_length"
)

WRITE_HINT = "free space on that disk or choose another output.dir, then run the same command with --resume"


@dataclass
class RunResult:
    run_dir: Path
    last_step: int
    final_dir: Path | None


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def run_distill(recipe: Recipe, opts: RunOptions) -> RunResult:
    dist_utils.init_distributed()
    try:
        return _run(recipe, opts)
    except (KeyboardInterrupt, MinillmError):
        raise
    except Exception as exc:
        if dist_utils.is_peer_lost(exc):
            raise PeerLost(
                f"rank {dist_utils.rank()}: another worker process stopped during training",
                why=(str(exc).splitlines() or [type(exc).__name__])[0],
                hint="continue from the latest checkpoint with `minillm distill RECIPE --resume`",
            ) from exc
        if _is_oom(exc):
            why = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ResourceError("out of memory during training", why=why, hint=OOM_HINT) from exc
        if write_failure(exc, Path.cwd()) is not None:  # a failed write no site wrapped (recipe.yaml, trackers)
            run_dir = Path(opts.output_dir or recipe.output_dir).absolute()
            name = getattr(exc, "filename", None)
            where = Path(name).absolute() if isinstance(name, str) else run_dir
            if where == run_dir or run_dir in where.parents:  # not a file minillm reads from elsewhere
                err = resource_error(exc, where, "run output", hint=WRITE_HINT)
                if err is not None:
                    raise err from exc
        blamed = blame_plugin(exc, get_plugins())
        if blamed is not None:
            raise blamed from exc
        raise


def _run(recipe: Recipe, opts: RunOptions) -> RunResult:
    run = build_run(recipe, opts)
    run_dir, main, engine, ctx, metrics = run.run_dir, run.main, run.engine, run.ctx, run.metrics
    start, end, total, prompts, tokenizer = run.start, run.end, run.total, run.prompts, run.student.tokenizer

    def save(step: int) -> None:
        if not ckpt.weights_finite(engine, ctx.device):
            previous = run_layout.latest_checkpoint(run_dir)
            kept = f"the last checkpoint, {previous.name}, is finite and kept" if previous else "none was written"
            raise RuntimeFailure(
                f"the student's weights are not finite after step {step}: no checkpoint written ({kept})",
                why="an update wrote inf/nan into them (a non-finite gradient the engine applied)",
                hint="lower train.lr or set train.clip_grad, and check custom divergences with `minillm plugins "
                "check`; " + (f"--resume continues from {previous.name}" if previous else "start the run again"),
            )
        ckpt.save_checkpoint(
            engine,
            run_dir,
            step,
            checkpoint_state(step),
            recipe.train.keep_last,
            # this rank's own: its rollout buffer and its sampler's state (ranks sample differently)
            rank_payload={"buffer": ctx.buffer, "sampler": ctx.outputs.sampler_state(ctx.sampler)},
        )

    def checkpoint_state(step: int) -> dict[str, Any]:
        return {
            "sampler": ctx.outputs.sampler_state(ctx.sampler),
            # which examples a step (or rollout phase) reads is a pure function of (seed, step), so the step
            # is the data position; the batch order is rebuilt from it on resume
            "data_position": {"seed": recipe.seed, "next_step": step},
            "recipe": recipe.name,
        }

    step = start
    bad_in_row = skipped = 0
    progress = StepProgress(
        enabled=main,
        total=end,
        start=start,
        description=f"{recipe.name} ({recipe.sampler.name} x {recipe.divergence.name})",
    )
    periodic = PeriodicEval(recipe.eval, recipe.engine.zero_stage == 3, run.plugins, tokenizer, prompts, run_dir)
    if main and periodic.skip_reason:
        progress.log(periodic.skip_reason)
    if main and metrics.dropped_lines:
        lines = ", ".join(map(str, metrics.dropped_lines))
        progress.log(f"warning: dropped unreadable line(s) {lines} of {metrics.path} (torn by a crash or a full disk)")
    if main and ctx.data.dropped_long_prompts:
        progress.log(f"dropped {ctx.data.dropped_long_prompts} prompt(s) longer than data.max_prompt_length")
    trackers = open_trackers(
        recipe.train.report_to,
        run_dir,
        run_name=recipe.name,
        config=run.resolved,
        resume_step=start if run.resume_from is not None else None,
        enabled=main,
    )
    try:
        with progress:
            while step < end:
                t0 = time.perf_counter()
                row = train_step(ctx, step)
                step += 1
                dt = time.perf_counter() - t0
                row = {"step": step, **row, "tokens_per_s": row["response_tokens"] / max(dt, 1e-9), "step_time_s": dt}
                if periodic.due(step, end):
                    try:
                        row.update(periodic.run(engine, step))
                    except BaseException:
                        # the steps before a failing evaluation are kept: their row and a checkpoint first
                        metrics.write(row)
                        save(step)
                        raise
                metrics.write(row)
                trackers.log(row)
                progress.update(step, row)
                if row["skipped"]:
                    skipped += 1
                    reason = ctx.skip_reason or "non-finite loss"
                    if reason == FP16_OVERFLOW:  # the loss scale settling: not counted towards max_bad_steps
                        progress.log(f"step {step}: {reason}, update skipped")
                    else:
                        bad_in_row += 1
                        progress.log(f"step {step}: {reason}, update skipped ({bad_in_row} in a row)")
                    if bad_in_row >= recipe.train.max_bad_steps:
                        save(step)
                        raise RuntimeFailure(
                            f"the loss or its gradient was not finite for {bad_in_row} steps in a row (last: step "
                            f"{step})",
                            why="the model diverged or the data produces inf/nan logits",
                            hint="lower train.lr, enable train.clip_grad, or use engine.dtype bf16/fp32 "
                            "instead of fp16",
                        )
                else:
                    bad_in_row = 0
                if step % recipe.train.save_every == 0 and step < end:
                    save(step)
    except KeyboardInterrupt:
        save(step)
        raise InterruptedRun(
            f"interrupted at step {step}; checkpoint written",
            hint="continue with: " + run_layout.resume_command(opts.argv or ["distill", "RECIPE"], run_dir),
        ) from None
    finally:
        trackers.close()
    if step > start and skipped == step - start:
        raise RuntimeFailure(
            f"every step of this run ({step - start}) skipped its update: the loss or its gradient was never finite",
            why="no weight was ever changed, so there is nothing to save (no checkpoint, no final/)",
            hint="lower train.lr, enable train.clip_grad, use engine.dtype bf16/fp32 instead of fp16, and check "
            "custom divergences with `minillm plugins check`",
        )
    save(step)
    final_dir = None
    if step >= total:
        card = None
        if main:
            from minillm_distill.export import metrics_at, model_card, read_run

            card = model_card(
                read_run(run_dir / run_layout.RECIPE),
                step=step,
                total_steps=total,
                dtype=recipe.engine.dtype,
                metrics=metrics_at(run_dir, step),
                prompt_example=prompts.format_prompt("{instruction}"),
            )
        final_dir = save_hf_folder(
            engine, tokenizer, run_dir / run_layout.FINAL, card, prompt_format=recipe.data.prompt_format
        )
    return RunResult(run_dir, step, final_dir)
