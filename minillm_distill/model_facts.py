"""Facts about a loaded model and its tokenizer, in one place: the model inside its wrappers, its device, its
vocabulary size, its EOS and pad ids, its context length. Decoding, scoring, evaluation, pre-flight and the
samplers all read them here, so they agree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def unwrap(model: Any) -> Any:
    """The ``transformers`` model inside a wrapper such as a DeepSpeed engine (which has ``.module``)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, torch.nn.Module) else model


def model_device(model: Any) -> torch.device:
    for param in unwrap(model).parameters():
        return param.device
    return torch.device("cpu")


def config_vocab_size(model: Any) -> int | None:
    config = getattr(unwrap(model), "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    size = getattr(config, "vocab_size", None)
    return int(size) if isinstance(size, int) else None


def shared_vocab_size(*models: Any) -> int | None:
    """The smallest ``config.vocab_size`` of the given models (``None`` entries skipped)."""
    sizes = [s for s in (config_vocab_size(m) for m in models if m is not None) if s is not None]
    return min(sizes) if sizes else None


def as_id_list(value: Any) -> list[int]:
    """A token id, a list of them or None (as configs give EOS ids) as a list of ints."""
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def eos_token_ids(tokenizer: Any, *models: Any) -> list[int]:
    """EOS ids: the tokenizer's, its chat template's end-of-turn token, and those in each model's
    ``generation_config``."""
    from minillm_distill.data.chat import end_of_turn_id

    ids = as_id_list(getattr(tokenizer, "eos_token_id", None)) + as_id_list(end_of_turn_id(tokenizer))
    for model in models:
        if model is None:
            continue
        gen_config = getattr(unwrap(model), "generation_config", None)
        ids += as_id_list(getattr(gen_config, "eos_token_id", None))
    return sorted(set(ids))


def pad_token_id(tokenizer: Any, eos_ids: Sequence[int] = ()) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is not None:
        return int(pad)
    return int(eos_ids[0]) if eos_ids else 0


def unwrap_base(model: Any) -> Any:
    """The ``transformers`` model inside a DeepSpeed engine and/or a PEFT wrapper (a LoRA student's base model,
    whose forward runs the adapters)."""
    inner = unwrap(model)
    get_base = getattr(inner, "get_base_model", None)
    return get_base() if callable(get_base) else inner


#: the config keys a model's context length goes by, in the order they are read
POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def max_positions(model_or_config: Any) -> int | None:
    """The longest sequence a model accepts, from its config (given the model or the config; a multimodal
    config's text part): the first of :data:`POSITION_KEYS` that is a positive integer, or None when the config
    names none. Pre-flight, ``minillm eval`` and ``minillm generate`` all read it here, so they agree."""
    config = getattr(model_or_config, "config", model_or_config)
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for key in POSITION_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
