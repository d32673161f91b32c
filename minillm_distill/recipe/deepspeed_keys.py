"""Types of the common raw DeepSpeed keys a recipe may set under ``engine.deepspeed``.

DeepSpeed reads many top-level keys without checking their type, so ``gradient_clipping: "1.0"`` or
``train_micro_batch_size_per_gpu: "8"`` ends in a ``TypeError`` deep inside it. This small typed model
catches the wrong type at its dotted location first. Keys it does not list pass through unchecked (DeepSpeed
has hundreds); sections it lists accept further keys too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError


def _whole_number(value: Any) -> Any:
    """DeepSpeed sizes are ints but are often written ``5e8``; booleans and strings are not numbers."""
    if isinstance(value, bool):
        raise ValueError(f"Input should be an integer, not the boolean {str(value).lower()}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"Input should be a number, not the boolean {str(value).lower()}")
    return value


DsInt = Annotated[int, BeforeValidator(_whole_number)]
DsFloat = Annotated[float, BeforeValidator(_number)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Offload(_Section):
    device: Literal["cpu", "nvme", "none"] | None = None
    pin_memory: bool | None = None
    nvme_path: str | None = None
    buffer_count: DsInt | None = None


class _Zero(_Section):
    stage: DsInt | None = None
    allgather_partitions: bool | None = None
    allgather_bucket_size: DsInt | None = None
    overlap_comm: bool | None = None
    reduce_scatter: bool | None = None
    reduce_bucket_size: DsInt | None = None
    contiguous_gradients: bool | None = None
    round_robin_gradients: bool | None = None
    offload_optimizer: _Offload | None = None
    offload_param: _Offload | None = None
    sub_group_size: DsInt | None = None
    stage3_max_live_parameters: DsInt | None = None
    stage3_max_reuse_distance: DsInt | None = None
    stage3_prefetch_bucket_size: DsInt | None = None
    stage3_param_persistence_threshold: DsInt | None = None
    stage3_gather_16bit_weights_on_model_save: bool | None = None


class _Fp16(_Section):
    enabled: bool | Literal["auto"] | None = None
    auto_cast: bool | None = None
    loss_scale: DsFloat | None = None
    initial_scale_power: DsInt | None = None
    loss_scale_window: DsInt | None = None
    hysteresis: DsInt | None = None
    consecutive_hysteresis: bool | None = None
    min_loss_scale: DsFloat | None = None


class _Enabled(_Section):
    enabled: bool | Literal["auto"] | None = None


class _ActivationCheckpointing(_Section):
    partition_activations: bool | None = None
    cpu_checkpointing: bool | None = None
    contiguous_memory_optimization: bool | None = None
    number_checkpoints: DsInt | None = None
    synchronize_checkpoint_boundary: bool | None = None
    profile: bool | None = None


class DeepSpeedKeys(_Section):
    train_batch_size: DsInt | None = None
    train_micro_batch_size_per_gpu: DsInt | None = None
    gradient_accumulation_steps: DsInt | None = None
    steps_per_print: DsInt | None = None
    gradient_clipping: DsFloat | None = None
    prescale_gradients: bool | None = None
    gradient_predivide_factor: DsFloat | None = None
    wall_clock_breakdown: bool | None = None
    dump_state: bool | None = None
    zero_allow_untested_optimizer: bool | None = None
    zero_force_ds_cpu_optimizer: bool | None = None
    memory_breakdown: bool | None = None
    communication_data_type: str | None = None
    seq_parallel_communication_data_type: str | None = None
    zero_optimization: _Zero | None = None
    fp16: _Fp16 | None = None
    bf16: _Enabled | None = None
    amp: _Enabled | None = None
    activation_checkpointing: _ActivationCheckpointing | None = None
    flops_profiler: _Enabled | None = None
    comms_logger: _Enabled | None = None
    tensorboard: _Enabled | None = None


def deepspeed_key_problems(raw: dict[str, Any], prefix: str = "engine.deepspeed") -> list[tuple[str, str]]:
    """``(dotted location, message)`` for every known DeepSpeed key of the wrong type in ``raw``."""
    try:
        DeepSpeedKeys.model_validate(raw)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            # pydantic adds the union member it tried (``bool``, ``literal['auto']``...) to the location
            parts = [str(p) for p in err["loc"] if isinstance(p, str) and p in _KNOWN_KEYS]
            where = ".".join([prefix, *parts])
            out.append((where, f"{str(err['msg']).removeprefix('Value error, ')} (got {err.get('input')!r})"))
        return sorted(set(out))
    return []


def _all_keys(model: type[BaseModel]) -> set[str]:
    keys = set(model.model_fields)
    for field in model.model_fields.values():
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                keys |= _all_keys(arg)
    return keys


_KNOWN_KEYS = _all_keys(DeepSpeedKeys)
