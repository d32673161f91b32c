"""The recipe schema: one frozen pydantic model per section, unknown keys are errors.

Plugin sections (``sampler``, ``divergence``) carry a ``name`` plus that plugin's own options, which the
loader validates with the plugin's ``Params`` once the name resolves.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator


def _not_bool(value: Any) -> Any:
    """YAML ``true``/``false`` are not numbers (pydantic's lax mode would read them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError(f"Input should be a number, not the boolean {str(value).lower()}")
    return value


Float = Annotated[float, BeforeValidator(_not_bool)]
Int = Annotated[int, BeforeValidator(_not_bool)]

#: the largest seed: what both torch and numpy accept (numpy's seeds are 32-bit)
MAX_SEED = 2**32 - 1
Seed = Annotated[Int, Field(ge=0, le=MAX_SEED)]
Beta = Annotated[float, BeforeValidator(_not_bool), Field(ge=0, lt=1)]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Strict(BaseModel):
    """Frozen, unknown keys are errors, and numbers must be finite (no ``.inf``/``.nan``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LoraSpec(Strict):
    """Train low-rank adapters (peft) instead of the full student."""

    r: Int = Field(8, ge=1, description="adapter rank")
    alpha: Float = Field(16.0, gt=0, description="scaling numerator (lora_alpha)")
    dropout: Float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | None = Field(
        None, description="module names to adapt (default: peft's choice for the architecture)"
    )


class ModelSpec(Strict):
    """A model: a hub id or local path (``path``), or a from-scratch architecture (``family`` + ``scratch``)."""

    # ``scratch`` comes before ``family`` and ``tokenizer`` so their checks can see it and report the
    # problem at the key that is missing (``student.tokenizer``), not at the whole section.
    path: str | None = Field(None, description="hub id or local directory of a transformers model")
    scratch: dict[str, Any] | None = Field(
        None, description="build a randomly initialised model of this size (options of the family's Params)"
    )
    family: str | None = Field(
        None, validate_default=True, description="model-family plugin; detected from the config when omitted"
    )
    tokenizer: str | None = Field(
        None,
        validate_default=True,
        description="hub id or path of the tokenizer (defaults to `path`); 'byte' is a built-in byte-level one",
    )
    revision: str | None = None
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="a GGUF `path`: the file's sha256 (every run records it; a different file is refused)",
    )
    trust_remote_code: bool = False
    lora: LoraSpec | None = Field(None, description="student only: train LoRA adapters (needs the peft package)")

    @field_validator("family")
    @classmethod
    def _scratch_needs_family(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("scratch") is not None:
            raise ValueError("a `scratch` model needs `family` (e.g. gpt2, llama)")
        return value

    @field_validator("tokenizer")
    @classmethod
    def _scratch_needs_tokenizer(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("scratch") is not None:
            raise ValueError("a `scratch` model needs `tokenizer` (a hub id, a path, or 'byte')")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.path is None) == (self.scratch is None):
            raise ValueError("give exactly one of `path` (hub id or local dir) or `scratch` (architecture)")
        return self


class PretrainSpec(Strict):
    """Plain-text corpus packed into fixed-length blocks for an auxiliary language-modelling loss."""

    path: str = Field(description="hub id or local .txt/.json/.jsonl file")
    text_field: str = "text"
    split: str = "train"
    block_size: Int = Field(512, ge=8)


class DataSpec(Strict):
    train: str = Field(description="hub id or local JSON/JSONL file of prompt/response records")
    valid: str | None = None
    split: str = "train"
    max_prompt_length: Int = Field(256, ge=1)
    max_response_length: Int = Field(256, ge=1)
    pretrain: PretrainSpec | None = None
    prompt_format: str = Field(
        "family",
        description="how a record becomes the prompt: family (the model family's template), chat (the "
        "tokenizer's chat template), plain (the instruction as is), or a format string with {instruction} "
        "and {input}",
    )

    @field_validator("prompt_format")
    @classmethod
    def _known_prompt_format(cls, value: str) -> str:
        from minillm_distill.data.prompt_format import check_prompt_format

        return check_prompt_format(value)


class PluginRef(BaseModel):
    """``name`` of a registered plugin plus its options (validated by the plugin's ``Params``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TrainSpec(Strict):
    total_steps: Int = Field(1000, ge=1, description="optimizer steps; the LR schedule spans them")
    lr: Float = Field(5e-5, gt=0)
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: Float = Field(1e-8, gt=0)
    weight_decay: Float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine", "linear"] = "cosine"
    warmup_steps: Int = Field(0, ge=0)
    min_lr_ratio: Float = Field(0.0, ge=0, le=1)
    micro_batch_size: Int = Field(8, ge=1)
    grad_accum: Int = Field(1, ge=1)
    clip_grad: Float = Field(1.0, ge=0, description="max gradient norm; 0 disables clipping")
    log_every: Int = Field(1, ge=1)
    save_every: Int = Field(500, ge=1)
    keep_last: Int = Field(2, ge=1)
    max_bad_steps: Int = Field(3, ge=1, description="abort after this many non-finite losses in a row")
    kd_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="token-level methods: loss = kd_ratio * divergence + (1 - kd_ratio) * cross entropy on the "
        "response tokens (word-level KD as the MiniLLM reference mixes it)",
    )
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list,
        description="experiment trackers that get every metrics row and the resolved recipe (rank 0): "
        "tensorboard, wandb, mlflow (pip install 'minillm-distill[trackers]')",
    )
    loss_chunk_tokens: Int | None = Field(
        None,
        ge=1,
        description="tokens per chunk when the loss computes logits from hidden states (only [chunk, vocab] "
        "tensors exist; a walk that fits in one chunk is not recomputed in backward); null: about 16M logits per "
        "chunk (e.g. 64 tokens at a 152k vocabulary, 256 at 50k, 2048 at most)",
    )
    phase_teacher_logits_mib: Int = Field(
        256,
        ge=0,
        description="sequence-level methods with more than one PPO epoch (minillm): a rollout phase keeps the "
        "teacher's logits from decoding while they fit in this many MiB per rank (batch x max_new_tokens x "
        "vocabulary float32 per micro-batch), so no PPO epoch runs the teacher's output layer again; beyond it, "
        "the teacher's hidden states are kept and its output layer runs in every epoch. 0: never keep logits",
    )

    @field_validator("report_to")
    @classmethod
    def _trackers_installed(cls, value: list[str]) -> list[str]:
        from minillm_distill.tracker_names import missing_library

        problems = [p for p in (missing_library(name) for name in dict.fromkeys(value)) if p is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return list(dict.fromkeys(value))

    @field_validator("warmup_steps")
    @classmethod
    def _warmup_within_steps(cls, value: int, info: ValidationInfo) -> int:
        total = info.data.get("total_steps")
        if total is not None and value > total:
            raise ValueError(f"warmup_steps ({value}) exceeds total_steps ({total})")
        return value


class EngineSpec(Strict):
    zero_stage: Int = Field(0, ge=0, le=3)
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    offload_optimizer: bool = False
    offload_params: bool = False
    deepspeed: dict[str, Any] = Field(
        default_factory=dict, description="raw DeepSpeed config keys merged over the generated config"
    )

    @field_validator("offload_optimizer")
    @classmethod
    def _optimizer_offload_needs_zero(cls, value: bool, info: ValidationInfo) -> bool:
        stage = info.data.get("zero_stage")
        if value and stage == 0:
            raise ValueError("offload_optimizer needs zero_stage 1, 2 or 3 (it is 0)")
        return value

    @field_validator("offload_params")
    @classmethod
    def _param_offload_needs_zero3(cls, value: bool, info: ValidationInfo) -> bool:
        stage = info.data.get("zero_stage")
        if value and stage is not None and stage != 3:
            raise ValueError(f"offload_params needs zero_stage 3 (it is {stage})")
        return value


class EvalSpec(Strict):
    """Evaluation during training (rank 0, on the student; written to ``DIR/eval/step-N/`` and metrics.jsonl)."""

    every: Int = Field(0, ge=0, description="evaluate every N steps and at the end; 0 never")
    benchmarks: list[str] = Field(default_factory=list, description="benchmark plugins, e.g. [dolly]")
    data: dict[str, str] = Field(
        default_factory=dict, description="benchmark -> local file/folder (default: the benchmark's hub source)"
    )
    max_new_tokens: Int = Field(256, ge=1)
    limit: Int | None = Field(None, ge=1, description="first N examples of each benchmark")
    seeds: list[Seed] = Field(default_factory=lambda: [10], description=f"sampling seeds, 0 to {MAX_SEED}")
    batch_size: Int = Field(8, ge=1)


class OutputSpec(Strict):
    dir: str = Field("runs/{name}", description="run directory; {name} is the recipe name")


class Recipe(Strict):
    name: str = Field(description="run name (names the run directory); defaults to the recipe file's name")
    description: str = ""
    seed: Int = Field(42, ge=0, le=MAX_SEED, description=f"seeds everything in the run, 0 to {MAX_SEED}")
    teacher: ModelSpec | None = None
    teacher_cache: str | None = Field(
        None,
        description="a folder `minillm teacher capture` wrote: training reads the teacher's top-k from it and loads "
        "no teacher (token-level divergences, the dataset sampler)",
    )
    student: ModelSpec
    data: DataSpec
    sampler: PluginRef = PluginRef(name="dataset")
    divergence: PluginRef
    train: TrainSpec = TrainSpec()
    engine: EngineSpec = EngineSpec()
    eval: EvalSpec = EvalSpec()
    output: OutputSpec = OutputSpec()

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not a valid run name: start with a letter or digit, then use only letters, "
                "digits, '_', '.' and '-' (it names the run directory)"
            )
        return value

    @property
    def output_dir(self) -> str:
        return self.output.dir.replace("{name}", self.name)
