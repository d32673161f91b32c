"""The checks ``distill`` makes before training, which ``recipes validate`` runs too (one list, so the two
cannot drift apart).

Each check reads what it needs (model configs and tokenizers, the data files through the same reader
training uses) but never model weights, and returns every problem it finds as ``(dotted location,
message)``; :func:`preflight` raises one :class:`RecipeError` (exit 3) listing them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minillm_distill.divergence import SequenceDivergence
from minillm_distill.errors import MinillmError, RecipeError
from minillm_distill.gguf import is_gguf
from minillm_distill.plugins import PluginSet, get_plugins
from minillm_distill.recipe.deepspeed_keys import deepspeed_key_problems
from minillm_distill.recipe.loader import DATA_SUFFIXES, Problem
from minillm_distill.recipe.schema import ModelSpec, Recipe

SNIFF_BYTES = 64 * 1024  # how much of a data file is read to tell text from binary
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass
class Facts:
    """What the checks learn about the recipe's models (loaded once, shared by the checks)."""

    tokenizers: dict[str, Any] = field(default_factory=dict)  # role -> tokenizer
    configs: dict[str, Any] = field(default_factory=dict)  # role -> transformers config
    failed: set[str] = field(default_factory=set)  # roles whose config or tokenizer did not load


Check = Callable[[Recipe, PluginSet, Facts], list[Problem]]


def _error_text(err: MinillmError) -> str:
    return err.message + (f" ({err.why})" if err.why else "")


def _models(recipe: Recipe, plugins: PluginSet, facts: Facts) -> list[Problem]:
    """Each model's tokenizer and config load (a path that is missing or not a model folder is a problem)."""
    from minillm_distill.models import load_tokenizer, model_config, spec_family

    problems: list[Problem] = []
    for role, spec in (("student", recipe.student), ("teacher", recipe.teacher)):
        if spec is None:
            continue
        where = f"{role}.path" if spec.path is not None else f"{role}.tokenizer"
        local = _local_dir_problem(spec)
        if local is not None:
            problems.append((f"{role}.path", local))
            facts.failed.add(role)
            continue
        try:
            family = spec_family(spec, plugins)
            tokenizer = load_tokenizer(spec, family)
            facts.tokenizers[role] = tokenizer
            facts.configs[role] = model_config(spec, family, tokenizer)
        except MinillmError as err:
            problems.append((where, _error_text(err)))
            facts.failed.add(role)
    return problems


def _local_dir_problem(spec: ModelSpec) -> str | None:
    """A local model path that does not exist, is a file, or is a folder without a config and weights."""
    from minillm_distill.models import looks_local

    if spec.path is None or not looks_local(spec.path):
        return "sha256 applies to GGUF model files only" if spec.sha256 is not None else None
    p = Path(spec.path).expanduser()
    if not p.exists():
        return (
            f"model path {spec.path!r} does not exist (relative paths are tried beside the recipe, then in the "
            "working directory)"
        )
    if p.is_file() and is_gguf(p):
        return None  # a GGUF model file: converted to a folder when first loaded
    if spec.sha256 is not None:
        return f"sha256 is given but {spec.path!r} is not a GGUF file: remove sha256 (only GGUF files are checked)"
    if not p.is_dir():
        return (
            f"model path {spec.path!r} is a file; give the model's folder (with config.json and weights) or a GGUF file"
        )
    if not (p / "config.json").is_file():
        return f"{spec.path!r} is not a model folder: it has no config.json"
    if not any((p / name).is_file() for name in WEIGHT_FILES):
        return f"{spec.path!r} is not a model folder: it has no weights ({' or '.join(WEIGHT_FILES[::2])})"
    return None


def _vocabulary(recipe: Recipe, plugins: PluginSet, facts: Facts) -> list[Problem]:
    """Teacher and student share a tokenizer (token-level divergences compare the same ids)."""
    from minillm_distill.models import tokenizer_mismatch

    if "teacher" not in facts.tokenizers or "student" not in facts.tokenizers:
        return []
    err = tokenizer_mismatch(facts.tokenizers["teacher"], facts.tokenizers["student"])
    return [("teacher.tokenizer", f"{err.message}: {'; '.join(err.details)}")] if err is not None else []


def _positions(recipe: Recipe, plugins: PluginSet, facts: Facts) -> list[Problem]:
    """Each model's position embeddings cover a whole prompt plus response."""
    from minillm_distill.model_facts import max_positions

    need = recipe.data.max_prompt_length + recipe.data.max_response_length
    problems: list[Problem] = []
    for role, config in facts.configs.items():
        have = max_positions(config)
        if have is not None and have < need:
            problems.append(
                (
                    f"{role}",
                    f"the model covers {have} positions, shorter than data.max_prompt_length + "
                    f"data.max_response_length = {need}; lower those lengths (or use a model with more positions)",
                )
            )
    return problems


def _data(recipe: Recipe, plugins: PluginSet, facts: Facts) -> list[Problem]:
    """Each local data file exists, is a non-empty text file, and its records have the needed fields."""
    sampler_cls = plugins.samplers.get(recipe.sampler.name)
    need_responses = getattr(sampler_cls, "needs_responses", True)
    slots = [("data.train", recipe.data.train, need_responses), ("data.valid", recipe.data.valid, need_responses)]
    problems: list[Problem] = []
    for where, source, responses in slots:
        if source is None:
            continue
        problem = _data_file_problem(source, responses, recipe.data.split, recipe.data.prompt_format)
        if problem is not None:
            problems.append((where, problem))
    if recipe.data.pretrain is not None:
        problem = _file_kind_problem(Path(recipe.data.pretrain.path))
        if problem is not None:
            problems.append(("data.pretrain.path", problem))
    return problems


def _is_local(source: str) -> bool:
    return source.endswith(DATA_SUFFIXES) or Path(source).exists()


def _file_kind_problem(path: Path) -> str | None:
    if not _is_local(str(path)):
        return None  # a hub dataset id: read at training time
    if not path.exists():
        return f"data file not found: {path}"
    if path.is_dir():
        return f"{path} is a directory; give a .json/.jsonl file"
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not head.strip():
        return f"{path} is empty"
    if b"\x00" in head:
        return f"{path} is a binary file, not JSON/JSONL text"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the sniff boundary
            return f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON/JSONL"
    return None


def _data_file_problem(source: str, need_responses: bool, split: str, prompt_format: str) -> str | None:
    from minillm_distill.data.prompt_format import needs_chat_error, needs_chat_template
    from minillm_distill.data.records import load_records

    path = Path(source)
    problem = _file_kind_problem(path)
    if problem is not None or not _is_local(source):
        return problem
    if path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        first = next((line for line in lines if line.strip()), "")
        try:
            json.loads(first)
        except json.JSONDecodeError as exc:
            return f"{path}: the first record is not JSON ({exc.msg}); each line must be one JSON object"
    try:
        records = load_records(source, split=split, require_response=need_responses)
    except MinillmError as err:
        return _error_text(err)
    if prompt_format != "chat":  # as distill formats them: only the chat template writes a whole conversation
        chat_only = next((r for r in records if needs_chat_template(r)), None)
        if chat_only is not None:
            return _error_text(needs_chat_error(chat_only, prompt_format))
    return None


def _benchmarks(recipe: Recipe, plugins: PluginSet, facts: Facts) -> list[Problem]:
    return [
        (f"eval.benchmarks.{i}", plugins.benchmarks.unknown_message(name))
        for i, name in enumerate(recipe.eval.benchmarks)
        if name not in plugins.benchmarks
    ]


def _sampler_logprobs(recipe: Recipe, plugins: PluginSet, facts: Facts) -> list[Problem]:
    """A sequence-level divergence trains on the student's own log-probs, which the sampler must record (and,
    when it says so, on the teacher's log-probs of the sampled tokens)."""
    div, sampler = recipe.divergence.name, recipe.sampler.name
    if div not in plugins.divergences or sampler not in plugins.samplers:
        return []
    if not issubclass(plugins.divergences.get(div), SequenceDivergence):
        return []
    if getattr(plugins.samplers.get(sampler), "records_logprobs", None) is False:
        recording = [e.name for e in plugins.samplers.entries() if getattr(e.cls, "records_logprobs", None) is True]
        return [
            (
                "sampler.name",
                f"divergence {div!r} needs rollouts with the student's log-probs, which sampler {sampler!r} does "
                f"not record; use one that does: {', '.join(recording) or '(none installed)'}",
            )
        ]
    if getattr(plugins.divergences.get(div), "needs_teacher_logprobs", False) and (
        getattr(plugins.samplers.get(sampler), "records_teacher_logprobs", None) is False
    ):
        recording = [e.name for e in plugins.samplers.entries() if getattr(e.cls, "records_teacher_logprobs", None)]
        alone = " (teacher_mixed with alpha 0 samples from the student alone)" if "teacher_mixed" in recording else ""
        return [
            (
                "sampler.name",
                f"divergence {div!r} needs the teacher's log-probs of the sampled tokens, which sampler {sampler!r} "
                f"does not record; use one that does: {', '.join(recording) or '(none installed)'}{alone}",
            )
        ]
    return []


def _evaluation(recipe: Recipe, plugins: PluginSet, facts: Facts) -> list[Problem]:
    """Evaluation during training gets training's checks: its data files exist, and the student has room for
    a prompt beside ``eval.max_new_tokens`` (found now, not at the first evaluation after hours of training)."""
    from minillm_distill.model_facts import max_positions

    spec = recipe.eval
    if spec.every == 0 or not spec.benchmarks:
        return []
    problems: list[Problem] = []
    for bench, source in spec.data.items():
        if bench not in spec.benchmarks:
            problems.append((f"eval.data.{bench}", f"{bench!r} is not in eval.benchmarks {spec.benchmarks}"))
        elif not Path(source).expanduser().exists():
            problems.append(
                (
                    f"eval.data.{bench}",
                    f"file not found: {source} (relative paths are tried beside the recipe, then in the working "
                    "directory)",
                )
            )
    have = max_positions(facts.configs["student"]) if "student" in facts.configs else None
    if have is not None and spec.max_new_tokens >= have:
        problems.append(
            (
                "eval.max_new_tokens",
                f"{spec.max_new_tokens} new tokens leave no room for a prompt: the student covers {have} positions; "
                f"set eval.max_new_tokens below {have}",
            )
        )
    return problems


def _deepspeed(recipe: Recipe, plugins: PluginSet, facts: Facts) -> list[Problem]:
    return deepspeed_key_problems(recipe.engine.deepspeed)


#: every check ``distill`` runs before training, in order; ``recipes validate`` runs the same list
def _teacher_cache(recipe: Recipe, plugins: PluginSet, facts: Facts) -> list[Problem]:
    """The cache exists, is complete, and was captured with this recipe's teacher, tokenizer, data, prompt format,
    lengths and temperature (each field that differs is named). Its records are compared with the encoded data
    when training starts."""
    if recipe.teacher_cache is None:
        return []
    from minillm_distill.teacher_cache.cache_format import CacheFormatError, read_manifest
    from minillm_distill.teacher_cache.fingerprints import (
        data_fingerprint,
        responses_setting,
        teacher_fingerprint,
        tokenizer_fingerprint,
    )

    try:
        manifest = read_manifest(Path(recipe.teacher_cache))
    except CacheFormatError as exc:
        return [("teacher_cache", str(exc))]
    if not manifest.complete:
        done = f"{manifest.records_done} of {manifest.records}"
        return [("teacher_cache", f"the cache holds {done} records: its capture stopped before the end; run the "
                 "same `minillm teacher capture` command again to finish it")]  # fmt: skip
    cached = manifest.settings
    wanted: dict[str, Any] = {
        "prompt_format": recipe.data.prompt_format,
        "max_prompt_length": recipe.data.max_prompt_length,
        "max_response_length": recipe.data.max_response_length,
        "data": data_fingerprint(recipe.data.train, recipe.data.split),
    }
    try:
        divergence = plugins.divergences.get(recipe.divergence.name).from_options(recipe.divergence.options)
        wanted["temperature"] = float(getattr(divergence.params, "temperature", 1.0))
    except Exception:  # bad options: reported by validation
        pass
    try:
        responses = responses_setting(recipe, plugins)
    except Exception:  # an unknown sampler or bad options: reported by validation
        responses = cached.responses
    if responses != cached.responses:
        return [("teacher_cache", f"{_responses_differ(cached.responses, responses)}: capture one for this recipe "
                 "with `minillm teacher capture`")]  # fmt: skip
    if "student" in facts.tokenizers:
        wanted["tokenizer"] = tokenizer_fingerprint(facts.tokenizers["student"])
    if recipe.teacher is not None and "teacher" not in facts.failed:
        wanted["teacher"] = teacher_fingerprint(recipe.teacher, recipe.seed + 1)
    keys = {
        "temperature": "divergence.temperature",
        "data": "data.train",
        "tokenizer": "student (its tokenizer)",
        "teacher": "teacher",
        "prompt_format": "data.prompt_format",
        "max_prompt_length": "data.max_prompt_length",
        "max_response_length": "data.max_response_length",
    }
    problems = [
        ("teacher_cache", f"the cache was captured with another {field} ({getattr(cached, field)!r}) than the "
         f"recipe's {keys[field]} ({value!r}): capture one for this recipe with `minillm teacher capture`")
        for field, value in wanted.items()
        if getattr(cached, field) != value
    ]  # fmt: skip
    student_vocab = getattr(facts.configs.get("student"), "vocab_size", None)
    if isinstance(student_vocab, int) and cached.vocab_size > student_vocab:
        problems.append(("teacher_cache", f"the cache covers {cached.vocab_size} vocabulary rows, the student has "
                         f"{student_vocab}"))  # fmt: skip
    return problems


def _responses_differ(cached: str, wanted: str) -> str:
    """How a cache's responses differ from what the recipe's sampler would train on, in words."""
    import json

    def body(responses: str) -> dict[str, Any] | None:
        return json.loads(responses.removeprefix("teacher:")) if responses.startswith("teacher:") else None

    have, want = body(cached), body(wanted)
    if have is None:
        name = want["sampler"] if want else None
        return f"the cache follows the data's responses; the recipe's sampler {name!r} has the teacher write its own"
    if want is None:
        return f"the cache holds the teacher's responses (sampler {have['sampler']!r}); the recipe trains on the data's"
    if have["sampler"] != want["sampler"]:
        return f"the cache's responses were written by sampler {have['sampler']!r}, the recipe's is {want['sampler']!r}"
    old, new = have["options"], want["options"]
    changed = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
    return "the cache's responses were written with other sampler options: " + ", ".join(
        f"sampler.{k} {old.get(k)!r} (the recipe: {new.get(k)!r})" for k in changed
    )


CHECKS: tuple[Check, ...] = (
    _models,
    _vocabulary,
    _positions,
    _data,
    _benchmarks,
    _evaluation,
    _sampler_logprobs,
    _teacher_cache,
    _deepspeed,
)


def preflight_problems(recipe: Recipe, plugins: PluginSet | None = None) -> list[Problem]:
    plugins = plugins if plugins is not None else get_plugins()
    facts = Facts()
    problems: list[Problem] = []
    for check in CHECKS:
        problems.extend(check(recipe, plugins, facts))
    return problems


def preflight(recipe: Recipe, *, source: str = "recipe", plugins: PluginSet | None = None) -> None:
    """Raise one :class:`RecipeError` listing every problem the pre-training checks find."""
    problems = preflight_problems(recipe, plugins)
    if problems:
        n = len(problems)
        raise RecipeError(
            f"{source}: {n} problem{'s' if n > 1 else ''} found before training",
            details=[f"{loc}: {msg}" for loc, msg in problems],
            hint="fix each location listed (dotted path into the YAML); `minillm recipes validate FILE` runs "
            "these checks without training",
        )
