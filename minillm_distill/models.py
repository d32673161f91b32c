"""Loading teacher and student models from recipe ``ModelSpec``s through model-family plugins, and the
teacher/student vocabulary check."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError

from minillm_distill.byte_tokenizer import byte_level_tokenizer
from minillm_distill.errors import PluginError, RecipeError, ResourceError
from minillm_distill.gguf import local_source
from minillm_distill.model_family import ModelFamily
from minillm_distill.plugins import PluginSet, get_plugins

if TYPE_CHECKING:  # the recipe section this module reads (the recipe layer sits above this one)
    from minillm_distill.recipe.schema import ModelSpec

OFFLINE_HINT = (
    "give a local directory (a Hugging Face model folder), or make the hub id available in the local "
    "Hugging Face cache; with HF_HUB_OFFLINE=1 nothing is downloaded"
)
ONLINE_HINT = (
    "check the hub id (`name` or `owner/name`, and `revision`), your network and access token, "
    "or give a local directory (a Hugging Face model folder)"
)


# config attributes that hold a dropout probability, across the built-in families
DROPOUT_ATTRS = ("resid_pdrop", "embd_pdrop", "attn_pdrop", "dropout", "attention_dropout", "activation_dropout")


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    family: ModelFamily


def looks_local(source: str) -> bool:
    """A path rather than a hub id: hub ids are ``name`` or ``owner/name``, so anything with more than one
    ``/``, a backslash, or a leading ``.``, ``/`` or ``~`` is a path."""
    return (
        source.startswith((".", "/", "~"))
        or source.count("/") > 1
        or "\\" in source
        or Path(source).expanduser().exists()
    )


def _offline() -> bool:
    try:
        from huggingface_hub import is_offline_mode

        return bool(is_offline_mode())
    except ImportError:  # older huggingface_hub
        import os

        return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def detect_family(
    source: str, *, revision: str | None = None, plugins: PluginSet | None = None, trust_remote_code: bool = False
) -> ModelFamily:
    """The family plugin for a hub id or local path, from ``config.model_type`` (fallback last)."""
    from transformers import AutoConfig

    plugins = plugins or get_plugins()
    source = local_source(source, log=stderr_note)
    try:
        config = AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise load_error("model config", source, exc) from exc
    return family_for_model_type(config.model_type, plugins)


def family_for_model_type(model_type: str, plugins: PluginSet | None = None) -> ModelFamily:
    """The family whose ``model_types`` list ``model_type`` (else a fallback family). Two families claiming the
    same ``model_type`` is a conflict, like two plugins registering one name: neither silently takes over."""
    plugins = plugins or get_plugins()
    entries = plugins.model_families.entries()
    claims = [e for e in entries if not e.cls.fallback and model_type in e.cls.model_types]
    if len(claims) > 1:
        raise PluginError(
            f"{len(claims)} model families claim model_type {model_type!r}",
            details=[f"family {e.name!r} of plugin {e.plugin!r} ({e.distribution})" for e in claims],
            why="minillm cannot tell which one should load these models",
            hint="name the family in the recipe (student/teacher `family:`), or block one plugin with "
            "MINILLM_DISABLE_PLUGINS=<plugin name>",
        )
    for entry in sorted(entries, key=lambda e: e.cls.fallback):
        if entry.cls.matches(model_type):
            return entry.cls()
    raise ResourceError(f"no model family handles model_type {model_type!r}", hint="install a family plugin")


def unsafe_weights_error(source: str, exc: Exception) -> ResourceError:
    """A pickle weights file (``pytorch_model.bin``) that holds more than tensors: ``torch.load`` with
    ``weights_only=True`` refused it, and so does minillm (loading it any other way could run code from it)."""
    refused = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line), "")
    return ResourceError(
        f"the weights file of {source!r} holds objects other than tensors, which minillm never loads",
        why="it is a pickle file (pytorch_model.bin or similar) and unpickling such objects can run code from it"
        + (f"; {refused}" if refused else ""),
        hint="use a copy of the model with model.safetensors, or, from a source you trust, load it once in Python "
        "and save it with save_pretrained(..., safe_serialization=True)",
    )


def load_error(what: str, source: str, exc: Exception) -> ResourceError:
    if looks_local(source) and not Path(source).expanduser().exists():
        return ResourceError(f"cannot load {what}: path {source!r} does not exist", hint="check the path")
    first_line = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    if _offline():
        return ResourceError(
            f"cannot load {what} from {source!r} (Hugging Face offline mode: HF_HUB_OFFLINE=1)",
            why=first_line,
            hint=OFFLINE_HINT,
        )
    return ResourceError(f"cannot load {what} from {source!r}", why=first_line, hint=ONLINE_HINT)


def stderr_note(line: str) -> None:
    import sys

    print(f"minillm: {line}", file=sys.stderr, flush=True)


def spec_source(spec: ModelSpec) -> str:
    """The folder or hub id a ``ModelSpec`` loads from: its ``path``, or the converted folder of a GGUF file
    (checked against the recorded ``sha256`` when the spec has one)."""
    assert spec.path is not None
    return local_source(spec.path, sha256=spec.sha256, log=stderr_note)


def load_tokenizer(spec: ModelSpec, family: ModelFamily) -> Any:
    source = spec.tokenizer or spec.path
    assert source is not None  # the schema guarantees one
    if source == "byte":
        return family.prepare_tokenizer(byte_level_tokenizer())
    source = spec_source(spec) if source == spec.path else local_source(source, log=stderr_note)
    try:
        return family.load_tokenizer(source, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise load_error("tokenizer", source, exc) from exc


def spec_family(spec: ModelSpec, plugins: PluginSet) -> ModelFamily:
    """The family plugin a ``ModelSpec`` names, or the one its config's ``model_type`` selects."""
    if spec.family is not None:
        return plugins.model_families.get(spec.family)()
    return detect_family(
        spec_source(spec), revision=spec.revision, plugins=plugins, trust_remote_code=spec.trust_remote_code
    )


def scratch_config(spec: ModelSpec, family: ModelFamily, tokenizer: Any) -> Any:
    """The ``transformers`` config of a from-scratch (``scratch:``) model, sized for ``tokenizer``."""
    try:
        scratch = family.Params.model_validate(spec.scratch)
    except ValidationError as exc:
        raise RecipeError(
            f"invalid `scratch` options for model family {family.name!r}",
            details=[f"{'.'.join(['scratch', *map(str, e['loc'])])}: {e['msg']}" for e in exc.errors()],
            hint=f"see the options of {type(family).__name__}.Params",
        ) from exc
    try:
        config = family.build_config(
            scratch,
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    except NotImplementedError as exc:
        raise RecipeError(
            str(exc), hint="name a concrete family (gpt2, opt, llama, qwen2, mistral) for a `scratch` model"
        ) from exc
    if getattr(scratch, "init_std", None) is not None:
        for attr in ("initializer_range", "init_std"):  # OPT calls it init_std
            if hasattr(config, attr):
                setattr(config, attr, scratch.init_std)
    if getattr(scratch, "dropout", None) is not None:
        for attr in DROPOUT_ATTRS:
            if hasattr(config, attr):
                setattr(config, attr, scratch.dropout)
    return config


def model_config(spec: ModelSpec, family: ModelFamily, tokenizer: Any) -> Any:
    """The model's ``transformers`` config without loading any weights (what ``recipes validate`` reads)."""
    if spec.scratch is not None:
        return scratch_config(spec, family, tokenizer)
    from transformers import AutoConfig

    source = spec_source(spec)
    try:
        return AutoConfig.from_pretrained(source, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise load_error("model config", source, exc) from exc


def load_model(
    spec: ModelSpec,
    *,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    plugins: PluginSet | None = None,
) -> LoadedModel:
    """Load (or build from scratch) the model and tokenizer a ``ModelSpec`` names.

    The model comes back in eval mode either way (as ``from_pretrained`` returns it), with
    ``config.pad_token_id`` and ``generation_config.pad_token_id`` set from the tokenizer when missing."""
    plugins = plugins or get_plugins()
    family = spec_family(spec, plugins)
    tokenizer = load_tokenizer(spec, family)
    if spec.scratch is not None:
        from transformers import AutoModelForCausalLM

        config = scratch_config(spec, family, tokenizer)
        fork_devices: list[int] = []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config)
        if dtype is not None:
            model = model.to(dtype)
        model.eval()  # like from_pretrained: the trainer switches the student to train mode itself
    else:
        from safetensors import SafetensorError

        source = spec_source(spec)
        try:
            model = family.load_model(
                source, revision=spec.revision, dtype=dtype, trust_remote_code=spec.trust_remote_code
            )
        except SafetensorError as exc:
            raise ResourceError(
                f"the weights of {spec.path!r} are corrupt, truncated or empty (model.safetensors)",
                why=(str(exc).splitlines() or [type(exc).__name__])[0],
                hint="copy or export the model again (`minillm export RUN_DIR`); a run's final/ folder is "
                "written whole or not at all",
            ) from exc
        except pickle.UnpicklingError as exc:
            raise unsafe_weights_error(source, exc) from None
        except (OSError, ValueError) as exc:
            raise load_error("model", spec.path, exc) from exc
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, family=family)


def embedding_rows(model: Any) -> int:
    return int(model.get_input_embeddings().weight.shape[0])


def check_vocab(teacher: LoadedModel, student: LoadedModel) -> int:
    """Teacher and student must share a tokenizer; their embedding matrices may be padded differently
    (e.g. 151936 vs 152064 rows). Returns the number of shared rows to compare logits on."""
    mismatch = tokenizer_mismatch(teacher.tokenizer, student.tokenizer)
    if mismatch is not None:
        raise mismatch
    shared = min(embedding_rows(teacher.model), embedding_rows(student.model))
    needed = len(teacher.tokenizer)
    if shared < needed:
        raise RecipeError(
            f"a model has fewer embedding rows ({shared}) than the tokenizer has tokens ({needed})",
            hint="resize the model's token embeddings to the tokenizer",
        )
    return shared


def tokenizer_mismatch(teacher_tokenizer: Any, student_tokenizer: Any) -> RecipeError | None:
    """The error for a teacher and student whose tokenizers map tokens to different ids, or None."""
    t_vocab, s_vocab = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if t_vocab != s_vocab:
        only_t = len(set(t_vocab.items()) - set(s_vocab.items()))
        only_s = len(set(s_vocab.items()) - set(t_vocab.items()))
        return RecipeError(
            "teacher and student use different tokenizers",
            details=[
                f"teacher: {len(t_vocab)} tokens, student: {len(s_vocab)} tokens; "
                f"{only_t} teacher and {only_s} student token->id pairs are not shared",
            ],
            why="token-level distillation compares the two models' distributions over the same token ids",
            hint="pick a student of the teacher's family (same tokenizer), or set the same `tokenizer:` for both",
        )
    return None


def check_model_source(path: str, what: str = "model") -> None:
    """Fail before any work if a model cannot be found: a missing local path, or a config that cannot be
    read (offline hub id, a folder that is not a model)."""
    if looks_local(path) and not Path(path).expanduser().exists():
        raise ResourceError(
            f"{what} path {path!r} does not exist",
            hint="give a Hugging Face model folder (config.json, weights, tokenizer) or a hub id",
        )
    detect_family(path)
