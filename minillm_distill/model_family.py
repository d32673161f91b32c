"""Model-family base class: how one architecture family loads, builds from scratch and formats prompts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, model_validator

from minillm_distill.errors import ResourceError
from minillm_distill.registrable import PluginParams, Registrable

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

# Tokenizer classes that mean "tokenizer.json exactly as saved". For some model types (qwen2, phi3, ...)
# transformers 5 ignores such a declaration and substitutes its own class, which rebuilds the normalizer and
# pre-tokenizer (Qwen2Tokenizer adds NFC): a tokenizer saved next to a qwen2 model would then not be the one
# loaded back. ``ModelFamily.load_tokenizer`` honours the declaration instead.
GENERIC_TOKENIZER_CLASSES = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast"})

ALPACA_PROMPT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
ALPACA_PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)


class ScratchParams(PluginParams):
    """Size options of a model built from scratch (random init), common to every family."""

    layers: int = Field(2, ge=1, description="number of transformer blocks")
    hidden: int = Field(64, ge=1, description="hidden (embedding) size")
    heads: int = Field(2, ge=1, description="attention heads")
    kv_heads: int | None = Field(None, ge=1, description="key/value heads (grouped-query attention)")
    intermediate: int | None = Field(None, ge=1, description="MLP size (default 4 * hidden)")
    max_positions: int = Field(512, ge=8, description="longest sequence the model accepts")
    dropout: float | None = Field(
        None, ge=0, lt=1, description="every dropout probability of the config (default: the family's own)"
    )
    init_std: float | None = Field(
        None, gt=0, description="std of the random weight init (config initializer_range); larger gives a peakier model"
    )

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ScratchParams:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be divisible by kv_heads ({self.kv_heads})")
        return self

    @property
    def mlp(self) -> int:
        return self.intermediate or 4 * self.hidden


class ModelFamily(Registrable):
    """Loads models of one architecture family through ``transformers``.

    ``model_types`` lists the ``config.model_type`` values it handles; a family with ``fallback = True``
    handles anything and is consulted last. ``Params`` holds the from-scratch size options.
    """

    model_types: ClassVar[tuple[str, ...]] = ()
    fallback: ClassVar[bool] = False
    Params: ClassVar[type[PluginParams]] = ScratchParams

    @classmethod
    def matches(cls, model_type: str) -> bool:
        return cls.fallback or model_type in cls.model_types

    # -- building and loading -------------------------------------------------------------------
    def build_config(
        self, scratch: ScratchParams, *, vocab_size: int, bos_token_id: int, eos_token_id: int, pad_token_id: int
    ) -> PretrainedConfig:
        """A ``transformers`` config for a randomly initialised model of the given size."""
        raise NotImplementedError(f"model family {self.name!r} cannot build models from scratch")

    def load_tokenizer(self, source: str, *, revision: str | None = None, **kwargs: Any) -> PreTrainedTokenizerBase:
        """The tokenizer of a hub id or local folder (``kwargs``: ``trust_remote_code`` and the like), through
        :meth:`prepare_tokenizer`."""
        from transformers import AutoTokenizer, PreTrainedTokenizerFast

        declared = _declared_tokenizer_config(source, revision)
        if declared.get("tokenizer_class") in GENERIC_TOKENIZER_CLASSES and "auto_map" not in declared:
            kwargs.pop("trust_remote_code", None)
            tok = PreTrainedTokenizerFast.from_pretrained(source, revision=revision, **kwargs)
        else:
            tok = AutoTokenizer.from_pretrained(source, revision=revision, **kwargs)
        return self.prepare_tokenizer(tok)

    def prepare_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
        """Pad/EOS conventions: a missing pad token becomes EOS; padding on the left for generation."""
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ResourceError(
                    f"tokenizer {getattr(tokenizer, 'name_or_path', '') or type(tokenizer).__name__!r} has neither "
                    "a pad nor an EOS token",
                    why="batches are padded, and generation stops at EOS",
                    hint="use a tokenizer that defines an EOS token (or a pad token)",
                )
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        return tokenizer

    def load_model(
        self, source: str, *, revision: str | None = None, dtype: Any = None, **kwargs: Any
    ) -> PreTrainedModel:
        """The causal LM of a hub id or local folder, in ``dtype`` (default ``AutoModelForCausalLM``)."""
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(source, revision=revision, dtype=dtype, **kwargs)

    # -- prompts --------------------------------------------------------------------------------
    def format_prompt(self, instruction: str, input: str = "") -> str:
        """The prompt a model of this family is trained and evaluated with (Alpaca style by default,
        as the MiniLLM reference uses)."""
        if input:
            return ALPACA_PROMPT_WITH_INPUT.format(instruction=instruction, input=input)
        return ALPACA_PROMPT.format(instruction=instruction)


def _declared_tokenizer_config(source: str, revision: str | None) -> dict[str, Any]:
    """``tokenizer_config.json`` of a local folder or cached hub id; empty when it cannot be read (the
    ``AutoTokenizer`` call that follows then reports the problem)."""
    try:
        from transformers.models.auto.tokenization_auto import get_tokenizer_config

        return dict(get_tokenizer_config(source, revision=revision))
    except (ImportError, OSError, ValueError):
        return {}
