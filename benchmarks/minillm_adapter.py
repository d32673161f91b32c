"""Every place the benchmarks reach into minillm beyond its stable entry points (``load_recipe``,
``run_distill``, the plugin classes, ``metrics.jsonl``). Each function here names the internal it relies on, so
a refactor of that internal breaks one function, not the scripts.

Relied on (all present in 533b980 and in the current tree):

* ``minillm_distill.data.records.load_records`` + ``minillm_distill.data.encode.encode_records`` with the gpt2 family's
  prompt template: the exact prompt ids minillm trains on, handed to TRL (:func:`prompt_ids`);
* ``minillm_distill.generation.decode`` / ``mixture`` / ``GenerationParams``: the teacher-mixed decode timed alone
  (:func:`mixed_decode`);
* ``minillm_distill.train.loop.train_step`` (the name the loop calls), the sampler plugin's ``sample``, the
  module-level ``generate_rollout`` of the ``teacher_mixed`` sampler module (its ``source=`` keyword tells
  the mixed decode from the student-length probe), the divergence plugin's ``prepare`` / ``loss``,
  DeepSpeed's ``DeepSpeedEngine.backward`` / ``step`` and ``GPT2Model.forward``
  (:func:`install_phase_timers`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def prompt_ids(model_dir: Path, prompts_file: Path, max_prompt_length: int = 320) -> list[list[int]]:
    """The prompt token ids minillm builds from ``prompts_file`` for the gpt2 family (Alpaca template)."""
    from minillm_distill.data.encode import encode_records
    from minillm_distill.data.records import load_records
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    loaded = load_model(ModelSpec(path=str(model_dir), family="gpt2"))
    records = load_records(str(prompts_file), require_response=False)
    data = encode_records(
        records, loaded.tokenizer, loaded.family, max_prompt_length=max_prompt_length, max_response_length=64
    )
    return data.prompts


def mixed_decode(
    student: Any,
    teacher: Any,
    prompt_ids: Any,
    prompt_mask: Any,
    *,
    alpha: float,
    max_new_tokens: int,
    eos_id: int,
    seed: int,
) -> Any:
    """One teacher-mixed decode (student and teacher stepping together, each with its KV cache)."""
    import torch

    from minillm_distill.generation import GenerationParams, decode, mixture

    return decode(
        prompt_ids,
        prompt_mask,
        student=student,
        teacher=teacher,
        params=GenerationParams(max_new_tokens=max_new_tokens),
        choose=mixture(alpha),
        generator=torch.Generator().manual_seed(seed),
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


class PartTimer:
    """Accumulates wall time per part name; ``region`` marks what the code is inside of (sampling or not)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.inside: list[str] = []

    @contextmanager
    def part(self, name: str):
        self.inside.append(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] += time.perf_counter() - t0
            self.counts[name] += 1
            self.inside.pop()

    def take(self) -> dict[str, float]:
        out = dict(self.totals)
        self.totals.clear()
        self.counts.clear()
        return out


def _wrap(owner: Any, attr: str, make: Callable[[Callable], Callable]) -> Callable[[], None]:
    original = getattr(owner, attr)
    setattr(owner, attr, make(original))
    return lambda: setattr(owner, attr, original)


def install_phase_timers(
    timer: PartTimer, sampler_name: str, divergence_name: str, per_step: list[dict[str, float]]
) -> Callable[[], None]:
    """Time the parts of a MiniLLM phase run through ``run_distill``; each optimizer step's part times are
    appended to ``per_step`` (``minillm_distill.train.loop.train_step`` is wrapped for that). Returns a function
    that removes the timers.

    Parts (seconds, summed): ``rollout`` (the sampler's ``sample``: everything the rollout costs),
    ``decode`` (the mixed decode inside it), ``probe`` (the student-length probe inside it, when on),
    ``prepare`` (the divergence's ``prepare``), ``student_forward`` / ``teacher_forward`` (GPT-2 trunk
    forwards outside sampling, with / without grad), ``loss`` (the divergence's ``loss``, which includes
    whatever scoring it does itself), ``backward`` and ``optimizer`` (DeepSpeed's ``backward`` / ``step``).
    """
    import deepspeed.runtime.engine as ds_engine
    from transformers.models.gpt2 import modeling_gpt2

    from minillm_distill.plugins import get_plugins

    plugins = get_plugins()
    sampler_cls = plugins.samplers.get(sampler_name)
    divergence_cls = plugins.divergences.get(divergence_name)
    sampler_module = __import__(sampler_cls.__module__, fromlist=["_"])
    undo = []

    def timed(name: str):
        def make(fn):
            def wrapper(*args, **kwargs):
                with timer.part(name):
                    return fn(*args, **kwargs)

            return wrapper

        return make

    undo.append(_wrap(sampler_cls, "sample", timed("rollout")))
    if hasattr(sampler_module, "generate_rollout"):

        def make_rollout(fn):
            def wrapper(*args, **kwargs):
                name = "probe" if kwargs.get("source") == "student" else "decode"
                with timer.part(name):
                    return fn(*args, **kwargs)

            return wrapper

        undo.append(_wrap(sampler_module, "generate_rollout", make_rollout))
    undo.append(_wrap(divergence_cls, "prepare", timed("prepare")))
    undo.append(_wrap(divergence_cls, "loss", timed("loss")))
    undo.append(_wrap(ds_engine.DeepSpeedEngine, "backward", timed("backward")))
    undo.append(_wrap(ds_engine.DeepSpeedEngine, "step", timed("optimizer")))

    def make_forward(fn):
        def wrapper(self, *args, **kwargs):
            if "rollout" in timer.inside:
                return fn(self, *args, **kwargs)
            import torch

            role = "teacher" if "teacher" in str(getattr(self.config, "_name_or_path", "")) else "student"
            grad = "" if torch.is_grad_enabled() else "_nograd"
            with timer.part(f"{role}_forward{grad}"):
                return fn(self, *args, **kwargs)

        return wrapper

    undo.append(_wrap(modeling_gpt2.GPT2Model, "forward", make_forward))

    import minillm_distill.train.loop as loop

    def make_step(fn):
        def wrapper(*args, **kwargs):
            timer.take()
            try:
                return fn(*args, **kwargs)
            finally:
                per_step.append(timer.take())

        return wrapper

    undo.append(_wrap(loop, "train_step", make_step))

    def remove() -> None:
        for u in reversed(undo):
            u()

    return remove
