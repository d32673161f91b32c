"""Tiny random models and tokenizers for offline tests (nothing is downloaded).

Reusable by any test::

    from tiny_models import save_tiny_model
    path = save_tiny_model(tmp_path / "teacher", "llama")   # a Hugging Face folder: model + tokenizer
    ModelSpec(path=str(path))                                # loads back through the llama plugin

Models are built through the model-family plugins from ``ModelSpec(scratch=..., tokenizer="byte")`` and are
small enough (1 layer, hidden 16) that building, saving and loading one takes well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minillm_distill.models import LoadedModel, load_model
from minillm_distill.recipe.schema import ModelSpec

FAMILIES = ("gpt2", "opt", "llama", "qwen2", "mistral")
TINY_SCRATCH: dict[str, Any] = {"layers": 1, "hidden": 16, "heads": 2, "intermediate": 32, "max_positions": 64}
SAMPLE_TEXTS = ("Hello, world!", "héllo wörld ✓ 日本語", "a")


def tiny_spec(family: str, *, tokenizer: str = "byte", **scratch: Any) -> ModelSpec:
    """A from-scratch ``ModelSpec`` of a tiny model; ``scratch`` overrides ``TINY_SCRATCH``."""
    return ModelSpec(family=family, tokenizer=tokenizer, scratch={**TINY_SCRATCH, **scratch})


def build_tiny(family: str, *, tokenizer: str = "byte", seed: int = 0, **scratch: Any) -> LoadedModel:
    """A tiny randomly initialised model of ``family`` with its tokenizer, in eval mode."""
    return load_model(tiny_spec(family, tokenizer=tokenizer, **scratch), seed=seed)


def save_tiny_model(
    directory: str | Path,
    family: str = "gpt2",
    *,
    tokenizer: str = "byte",
    seed: int = 0,
    embedding_rows: int | None = None,
    pad_token: bool = True,
    **scratch: Any,
) -> Path:
    """Build a tiny model of ``family`` and ``save_pretrained`` it with its tokenizer into ``directory``.

    ``embedding_rows`` pads the embedding matrix beyond the tokenizer (like Qwen's 151936 vs 152064 rows).
    ``pad_token=False`` saves a tokenizer and config without a pad token (like GPT-2 and LLaMA on the hub).
    """
    directory = Path(directory)
    loaded = build_tiny(family, tokenizer=tokenizer, seed=seed, **scratch)
    model, tok = loaded.model, loaded.tokenizer
    if embedding_rows is not None:
        model.resize_token_embeddings(embedding_rows, mean_resizing=False)
    if not pad_token:
        tok.pad_token = None
        model.config.pad_token_id = None
        if model.generation_config is not None:
            model.generation_config.pad_token_id = None
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def save_word_level_tokenizer(
    directory: str | Path,
    words: list[str],
    *,
    eos: str | None = "</s>",
    unk: str = "<unk>",
    pad: str | None = None,
) -> Path:
    """A whitespace word-level tokenizer over ``words`` (built offline with the ``tokenizers`` library), saved as
    a Hugging Face tokenizer folder: a vocabulary unlike the byte tokenizer's."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [t for t in (unk, eos, pad) if t is not None]
    vocab = {token: i for i, token in enumerate(dict.fromkeys([*specials, *words]))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=unk, eos_token=eos, pad_token=pad)
    directory = Path(directory)
    tok.save_pretrained(directory)
    return directory


def encode(tokenizer: Any, texts: tuple[str, ...] | list[str] = SAMPLE_TEXTS) -> dict[str, Any]:
    """A padded batch (``input_ids``, ``attention_mask``) of ``texts``."""
    return dict(tokenizer(list(texts), return_tensors="pt", padding=True))
