"""A recipe's teacher cache: the settings it must have, and capturing it (``minillm teacher capture``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from minillm_distill.errors import RecipeError, ResourceError, UsageError
from minillm_distill.model_facts import shared_vocab_size
from minillm_distill.rollout import PromptBatch
from minillm_distill.teacher_cache.cache_format import CacheSettings
from minillm_distill.teacher_cache.capture import CaptureResult, capture
from minillm_distill.teacher_cache.fingerprints import (
    data_fingerprint,
    responses_setting,
    teacher_fingerprint,
    tokenizer_fingerprint,
)


def encoded_data(recipe: Any, student: Any, plugins: Any) -> Any:
    """The training data encoded exactly as ``minillm distill`` encodes it."""
    from minillm_distill.data.encode import encode_records
    from minillm_distill.data.prompt_format import PromptFormatter
    from minillm_distill.data.records import load_records

    sampler = plugins.samplers.get(recipe.sampler.name)
    records = load_records(recipe.data.train, split=recipe.data.split,
                           require_response=getattr(sampler, "needs_responses", True))  # fmt: skip
    prompts = PromptFormatter(recipe.data.prompt_format, student.family, student.tokenizer)
    return encode_records(records, student.tokenizer, prompts, max_prompt_length=recipe.data.max_prompt_length,
                          max_response_length=recipe.data.max_response_length)  # fmt: skip


def temperature_of(recipe: Any, plugins: Any) -> float:
    divergence = plugins.divergences.get(recipe.divergence.name).from_options(recipe.divergence.options)
    return float(getattr(divergence.params, "temperature", 1.0))


def teacher_vocab_size(recipe: Any, student: Any, plugins: Any) -> int:
    """The teacher's vocabulary rows from its config alone (no weights loaded)."""
    from minillm_distill.models import model_config, spec_family

    config = model_config(recipe.teacher, spec_family(recipe.teacher, plugins), student.tokenizer)
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    return int(config.vocab_size)


#: the stream of the seeds a capture's sampler draws the teacher's responses with
WRITE_STREAM = 0x534551


def recipe_settings(recipe: Any, student: Any, k: int, plugins: Any) -> CacheSettings:
    """The settings a cache for ``recipe`` has (what ``capture`` writes, what training checks)."""
    from minillm_distill.model_facts import config_vocab_size

    if recipe.teacher is None:
        raise RecipeError("the recipe has no teacher to capture", hint="add a `teacher:` section")
    student_vocab = config_vocab_size(student.model)
    vocab = min(v for v in (student_vocab, teacher_vocab_size(recipe, student, plugins)) if v is not None)
    return CacheSettings(
        teacher=teacher_fingerprint(recipe.teacher, recipe.seed + 1),
        tokenizer=tokenizer_fingerprint(student.tokenizer),
        temperature=temperature_of(recipe, plugins),
        k=k,
        vocab_size=int(vocab),
        data=data_fingerprint(recipe.data.train, recipe.data.split),
        prompt_format=recipe.data.prompt_format,
        max_prompt_length=recipe.data.max_prompt_length,
        max_response_length=recipe.data.max_response_length,
        responses=responses_setting(recipe, plugins),
    )


def teacher_writer(recipe: Any, student: Any, teacher: Any, plugins: Any) -> Callable[[PromptBatch, int], Any]:
    """The recipe's sampler as a capture calls it: the teacher writes the responses to a batch of prompts, with
    draws seeded from the recipe seed and the batch's first record; each rollout is checked against the sampler
    contract as in training (a broken one is a plugin error naming the sampler)."""
    import torch

    from minillm_distill.plugin_outputs import PluginOutputs
    from minillm_distill.sampler import SamplerContext
    from minillm_distill.seeds import derive_seed

    sampler = plugins.samplers.get(recipe.sampler.name).from_options(recipe.sampler.options)
    outputs = PluginOutputs(plugins, shared_vocab_size(student.model, teacher.model))

    def write(batch: PromptBatch, first: int) -> Any:
        generator = torch.Generator().manual_seed(derive_seed(recipe.seed, first, WRITE_STREAM))
        ctx = SamplerContext(student=student.model, teacher=teacher.model, tokenizer=student.tokenizer, step=0,
                             generator=generator, seed=recipe.seed)  # fmt: skip
        return outputs.rollout(sampler, batch, sampler.sample(batch, ctx))

    return write


def capture_recipe(
    recipe: Any,
    folder: Path,
    *,
    k: int,
    batch_size: int,
    shard_records: int,
    teacher_url: str | None = None,
    teacher_model: str | None = None,
) -> CaptureResult:
    """Capture ``recipe``'s cache into ``folder``: with its teacher loaded here, or (``teacher_url``) asked of an
    OpenAI-compatible server (:class:`~minillm_distill.teacher_cache.served_teacher.ServedTeacher`): the teacher's
    weights are then not loaded here, though its config (vocabulary size) and files (fingerprint) are read."""
    import torch
    from transformers.utils import logging as hf_logging

    from minillm_distill.models import load_model
    from minillm_distill.plugins import get_plugins

    hf_logging.disable_progress_bar()  # the weights' loading bars: the capture prints its own summary
    plugins = get_plugins()
    student = load_model(recipe.student, seed=recipe.seed)
    settings = recipe_settings(recipe, student, k, plugins)
    if k > settings.vocab_size:
        raise UsageError(f"--k {k} is more than the vocabulary ({settings.vocab_size} tokens)")
    data = encoded_data(recipe, student, plugins)
    if teacher_url is not None:
        from minillm_distill.teacher_cache.served_teacher import ServedTeacher

        if settings.teacher_wrote:
            raise UsageError(f"sampler {recipe.sampler.name!r} has the teacher write responses, which a served "
                             "teacher does not do here", hint="capture SeqKD without --teacher-url")  # fmt: skip
        rows = teacher_vocab_size(recipe, student, plugins)
        if rows > settings.vocab_size:  # in-process, the shared rows are renormalised; a server's are not
            raise UsageError(
                f"the teacher's vocabulary has {rows} rows, the student shares {settings.vocab_size}: a served "
                "teacher's log-probs are over all of them",
                hint="capture with the teacher in this process (no --teacher-url)",
            )
        source: Any = ServedTeacher(teacher_url, teacher_model)
        write = None
    else:
        teacher = load_model(recipe.teacher, seed=recipe.seed + 1, dtype=torch.float32)
        source = teacher.model
        write = teacher_writer(recipe, student, teacher, plugins) if settings.teacher_wrote else None
    try:
        return capture(source, data, folder, settings, pad_id=int(student.tokenizer.pad_token_id),
                       batch_size=batch_size, shard_records=shard_records, write=write,
                       writer={"seed": recipe.seed})  # fmt: skip
    except ValueError as exc:
        raise ResourceError(str(exc), hint="capture into a new folder, or remove that one") from exc
