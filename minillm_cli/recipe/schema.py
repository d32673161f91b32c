"""The recipe schema: one frozen pydantic model per section, unknown keys are errors.

Plugin sections (``sampler``, ``divergence``) carry a ``name`` plus that plugin's own options, which the
loader validates with the plugin's ``Params`` once the name resolves.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Beta = Annotated[float, Field(ge=0, lt=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(Strict):
    """A model: a hub id or local path (``path``), or a from-scratch architecture (``family`` + ``scratch``)."""

    path: str | None = Field(None, description="hub id or local directory of a transformers model")
    family: str | None = Field(None, description="model-family plugin; detected from the config when omitted")
    revision: str | None = None
    scratch: dict[str, Any] | None = Field(
        None, description="build a randomly initialised model of this size (options of the family's Params)"
    )
    tokenizer: str | None = Field(
        None, description="hub id or path of the tokenizer (defaults to `path`); 'byte' is a built-in byte-level one"
    )
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.path is None) == (self.scratch is None):
            raise ValueError("give exactly one of `path` (hub id or local dir) or `scratch` (architecture)")
        if self.scratch is not None:
            if self.family is None:
                raise ValueError("a `scratch` model needs `family` (e.g. gpt2, llama)")
            if self.tokenizer is None:
                raise ValueError("a `scratch` model needs `tokenizer` (a hub id, a path, or 'byte')")
        return self


class PretrainSpec(Strict):
    """Plain-text corpus packed into fixed-length blocks for an auxiliary language-modelling loss."""

    path: str = Field(description="hub id or local .txt/.json/.jsonl file")
    text_field: str = "text"
    split: str = "train"
    block_size: int = Field(512, ge=8)


class DataSpec(Strict):
    train: str = Field(description="hub id or local JSON/JSONL file of prompt/response records")
    valid: str | None = None
    split: str = "train"
    max_prompt_length: int = Field(256, ge=1)
    max_response_length: int = Field(256, ge=1)
    pretrain: PretrainSpec | None = None


class PluginRef(BaseModel):
    """``name`` of a registered plugin plus its options (validated by the plugin's ``Params``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TrainSpec(Strict):
    total_steps: int = Field(1000, ge=1, description="optimizer steps; the LR schedule spans them")
    lr: float = Field(5e-5, gt=0)
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine", "linear"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    micro_batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    clip_grad: float = Field(1.0, ge=0, description="max gradient norm; 0 disables clipping")
    log_every: int = Field(1, ge=1)
    save_every: int = Field(500, ge=1)
    keep_last: int = Field(2, ge=1)
    max_bad_steps: int = Field(3, ge=1, description="abort after this many non-finite losses in a row")

    @model_validator(mode="after")
    def _check(self) -> TrainSpec:
        if self.warmup_steps > self.total_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) exceeds total_steps ({self.total_steps})")
        return self


class EngineSpec(Strict):
    zero_stage: int = Field(0, ge=0, le=3)
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    offload_optimizer: bool = False
    offload_params: bool = False
    deepspeed: dict[str, Any] = Field(
        default_factory=dict, description="raw DeepSpeed config keys merged over the generated config"
    )

    @model_validator(mode="after")
    def _check(self) -> EngineSpec:
        if self.offload_params and self.zero_stage != 3:
            raise ValueError("offload_params needs zero_stage 3")
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage 1, 2 or 3")
        return self


class EvalSpec(Strict):
    every: int = Field(0, ge=0, description="evaluate every N steps; 0 never")
    benchmarks: list[str] = Field(default_factory=list)
    max_new_tokens: int = Field(256, ge=1)
    limit: int | None = Field(None, ge=1)
    seeds: list[int] = Field(default_factory=lambda: [10])


class OutputSpec(Strict):
    dir: str = Field("runs/{name}", description="run directory; {name} is the recipe name")


class Recipe(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seed: int = Field(42, ge=0)
    teacher: ModelSpec | None = None
    student: ModelSpec
    data: DataSpec
    sampler: PluginRef = PluginRef(name="dataset")
    divergence: PluginRef
    train: TrainSpec = TrainSpec()
    engine: EngineSpec = EngineSpec()
    eval: EvalSpec = EvalSpec()
    output: OutputSpec = OutputSpec()

    @property
    def output_dir(self) -> str:
        return self.output.dir.replace("{name}", self.name)
