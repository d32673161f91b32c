"""Building a distillation run before its first step: the run folder (fresh or resumed), the plugins, the
student and teacher, the data, the DeepSpeed engines, the checkpoint to resume from, the resolved recipe and the
metrics file; the loop (:mod:`minillm_distill.train.loop`) then only runs steps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from minillm_distill import run_layout
from minillm_distill.data.encode import EncodedData, encode_records
from minillm_distill.data.pretrain import load_texts, pack_blocks
from minillm_distill.data.prompt_format import PromptFormatter, check_same_chat_template
from minillm_distill.data.records import load_records
from minillm_distill.divergence import SequenceDivergence, TokenDivergence
from minillm_distill.errors import ResourceError, UsageError
from minillm_distill.lora import apply_lora
from minillm_distill.model_facts import shared_vocab_size
from minillm_distill.models import LoadedModel, check_vocab, load_model
from minillm_distill.plugin_outputs import PluginOutputs
from minillm_distill.plugins import PluginSet, get_plugins
from minillm_distill.recipe.loader import resolved_recipe_dict
from minillm_distill.recipe.schema import Recipe
from minillm_distill.recipe.yaml_io import dump_yaml
from minillm_distill.train import checkpoint as ckpt
from minillm_distill.train import distributed as dist_utils
from minillm_distill.train.engine import DTYPES, init_student, init_teacher
from minillm_distill.train.metrics import MetricsWriter
from minillm_distill.train.step import StepContext


@dataclass
class RunOptions:
    output_dir: Path | None = None
    max_steps: int | None = None
    resume: bool = False
    argv: list[str] | None = None  # the command's arguments (after ``minillm``), for the advice to resume


@dataclass
class Run:
    """Everything a run is made of once built; the step context (:class:`StepContext`) holds what a step uses."""

    recipe: Recipe
    run_dir: Path
    main: bool
    plugins: PluginSet
    resume_from: Path | None
    student: LoadedModel
    prompts: PromptFormatter
    engine: Any
    ctx: StepContext
    start: int
    end: int
    total: int
    resolved: dict[str, Any]
    metrics: MetricsWriter


def _source(spec: Any) -> str:
    return spec.path or f"{spec.family} scratch model (tokenizer {spec.tokenizer})"


def _prepare_run_dir(run_dir: Path, opts: RunOptions) -> Path | None:
    latest = ckpt.latest_checkpoint(run_dir)
    if opts.resume and latest is None:
        raise ResourceError(
            f"--resume: no complete checkpoint in {run_layout.checkpoints_dir(run_dir)}",
            hint="start without --resume, or point --output-dir at the run to continue",
        )
    if not opts.resume and latest is not None:
        raise UsageError(
            f"{run_dir} already holds a run (checkpoint {latest.name})",
            hint="add --resume to continue it, or choose another --output-dir",
        )
    return latest if opts.resume else None


def build_run(recipe: Recipe, opts: RunOptions) -> Run:
    from minillm_distill.train.deepspeed_import import import_deepspeed

    import_deepspeed()
    from deepspeed.accelerator import get_accelerator

    plugins = get_plugins()
    plugins.check()
    main = dist_utils.is_main()
    run_dir = Path(opts.output_dir or recipe.output_dir)
    resume_from = _prepare_run_dir(run_dir, opts)
    for name in (run_layout.RECIPE, run_layout.METRICS, run_layout.TRACKERS, run_layout.CHECKPOINTS, run_layout.FINAL):
        run_layout.inside(run_dir, run_dir / name, name)  # never write through a link out of the run folder
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    dist_utils.barrier()

    divergence = plugins.divergences.get(recipe.divergence.name).from_options(recipe.divergence.options)
    sampler = plugins.samplers.get(recipe.sampler.name).from_options(recipe.sampler.options)
    if not isinstance(divergence, TokenDivergence | SequenceDivergence):
        raise UsageError(f"divergence {divergence.name!r} is neither token- nor sequence-level")

    student = load_model(recipe.student, seed=recipe.seed)
    if recipe.student.lora is not None:
        student.model = apply_lora(student.model, recipe.student.lora)
    # a teacher cache stands in for the teacher: none is loaded (pre-flight compared the cache with the recipe)
    wants_teacher = recipe.teacher is not None and recipe.teacher_cache is None
    teacher = load_model(recipe.teacher, seed=recipe.seed + 1) if wants_teacher else None
    if teacher is not None:
        check_vocab(teacher, student)
    prompts = PromptFormatter(recipe.data.prompt_format, student.family, student.tokenizer)
    if teacher is not None and recipe.data.prompt_format == "chat":
        check_same_chat_template(teacher.tokenizer, student.tokenizer, _source(recipe.teacher), _source(recipe.student))

    records = load_records(
        recipe.data.train, split=recipe.data.split, require_response=getattr(sampler, "needs_responses", True)
    )
    data = encode_records(
        records,
        student.tokenizer,
        prompts,
        max_prompt_length=recipe.data.max_prompt_length,
        max_response_length=recipe.data.max_response_length,
    )
    cache = None
    if recipe.teacher_cache is not None:
        from minillm_distill.teacher_cache.cache_format import CacheFormatError
        from minillm_distill.teacher_cache.store import TeacherCache
        from minillm_distill.train.cached_teacher import CachedResponses, check_records

        try:
            cache = TeacherCache(recipe.teacher_cache)
            if cache.settings.teacher_wrote:  # SeqKD: the responses the teacher wrote at capture, replayed
                data = EncodedData(data.prompts, cache.responses(), data.dropped_long_prompts)
                sampler = CachedResponses(sampler)
            check_records(cache, data.prompts, data.responses)
        except CacheFormatError as exc:
            raise ResourceError(str(exc), hint="capture the cache again (`minillm teacher capture`)") from exc
    if len(data) == 0:
        raise ResourceError(
            f"every prompt in {recipe.data.train} is longer than data.max_prompt_length "
            f"({recipe.data.max_prompt_length} tokens)",
            hint="raise data.max_prompt_length",
        )

    engine, _, _ = init_student(student.model, recipe.engine, recipe.train)
    engine.train()  # loaded models come back in eval mode
    teacher_model = init_teacher(teacher.model, recipe.engine, recipe.train) if teacher is not None else None
    device = torch.device(get_accelerator().current_device_name())
    if recipe.engine.dtype != "fp32" and teacher_model is not None and recipe.engine.zero_stage != 3:
        teacher_model.to(DTYPES[recipe.engine.dtype])

    start = 0
    if resume_from is not None:
        state = ckpt.load_checkpoint(engine, resume_from)
        start = int(state["step"])
        sampler.load_state_dict(state.get("sampler", {}))
    total = recipe.train.total_steps
    end = min(total, opts.max_steps) if opts.max_steps is not None else total
    resolved = resolved_recipe_dict(recipe, plugins)
    if main:
        (run_dir / run_layout.RECIPE).write_text(dump_yaml(resolved), encoding="utf-8")
    metrics = MetricsWriter(
        run_dir / run_layout.METRICS, enabled=main, truncate_after=start if resume_from is not None else None
    )
    pretrain = None
    if recipe.data.pretrain is not None and isinstance(divergence, SequenceDivergence):
        pretrain = pack_blocks(load_texts(recipe.data.pretrain), student.tokenizer, recipe.data.pretrain.block_size)
    ctx = StepContext(
        train=recipe.train,
        seed=recipe.seed,
        sharded=recipe.engine.zero_stage == 3,
        engine=engine,
        teacher=teacher_model,
        tokenizer=student.tokenizer,
        sampler=sampler,
        divergence=divergence,
        data=data,
        device=device,
        pretrain_blocks=pretrain,
        outputs=PluginOutputs(plugins, shared_vocab_size(engine.module, teacher_model)),
        cache=cache,
    )
    if resume_from is not None:
        payload = ckpt.load_rank_payload(resume_from)
        if isinstance(payload, dict) and "sampler" in payload:  # this rank's own sampler state
            ctx.buffer = payload.get("buffer")
            sampler.load_state_dict(payload["sampler"])
        else:  # a checkpoint from before per-rank sampler state: the buffer alone (rank 0's sampler state)
            ctx.buffer = payload
    return Run(
        recipe=recipe,
        run_dir=run_dir,
        main=main,
        plugins=plugins,
        resume_from=resume_from,
        student=student,
        prompts=prompts,
        engine=engine,
        ctx=ctx,
        start=start,
        end=end,
        total=total,
        resolved=resolved,
        metrics=metrics,
    )
