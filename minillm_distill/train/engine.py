"""DeepSpeed engines for the student (trained) and the teacher (frozen, inference only)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from minillm_distill.recipe.schema import EngineSpec, TrainSpec
from minillm_distill.train.schedule import lr_factor

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def deepspeed_config(eng: EngineSpec, train: TrainSpec, *, for_teacher: bool = False) -> dict[str, Any]:
    """The DeepSpeed config the recipe's ``engine`` and ``train`` sections imply (batch sizes and clipping come
    from ``train``); ``engine.deepspeed`` keys are merged over it."""
    zero: dict[str, Any] = {"stage": eng.zero_stage}
    if eng.offload_optimizer and not for_teacher:
        zero["offload_optimizer"] = {"device": "cpu"}
    if eng.offload_params:
        zero["offload_param"] = {"device": "cpu"}
    cfg: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": train.micro_batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "zero_optimization": zero,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
    }
    if train.clip_grad > 0 and not for_teacher:
        cfg["gradient_clipping"] = train.clip_grad
    if eng.dtype == "bf16":
        cfg["bf16"] = {"enabled": True}
    elif eng.dtype == "fp16":
        cfg["fp16"] = {"enabled": True, "initial_scale_power": 16}
    return _merge(cfg, eng.deepspeed)


def init_student(model: torch.nn.Module, eng: EngineSpec, train: TrainSpec) -> tuple[Any, Any, Any]:
    """(engine, optimizer, scheduler) with torch AdamW and the recipe's LR schedule."""
    import deepspeed

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in n.lower() or n.endswith(".bias") else decay).append(p)
    groups = [
        g
        for g in ({"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0})
        if g["params"]  # DeepSpeed drops empty groups, which would desynchronise the LR scheduler
    ]
    optimizer = torch.optim.AdamW(groups, lr=train.lr, betas=train.betas, eps=train.eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, train))
    engine, optimizer, _, scheduler = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=deepspeed_config(eng, train)
    )
    return engine, optimizer, scheduler


def init_teacher(model: torch.nn.Module, eng: EngineSpec, train: TrainSpec) -> Any:
    """The frozen teacher: ZeRO-3 sharded for inference when the student is ZeRO-3, else a plain module on
    the device, cast to the training dtype."""
    from deepspeed.accelerator import get_accelerator

    model.requires_grad_(False)
    model.eval()
    if eng.zero_stage == 3:
        import deepspeed

        cfg = deepspeed_config(eng, train, for_teacher=True)
        cfg.pop("gradient_clipping", None)
        engine, *_ = deepspeed.initialize(model=model, config=cfg)
        engine.eval()
        return engine
    return model.to(device=get_accelerator().current_device_name(), dtype=DTYPES[eng.dtype])
