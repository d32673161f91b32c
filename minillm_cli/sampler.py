"""Sampler base class and the batches a sampler consumes and produces."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch

from minillm_cli.components import Component


@dataclass
class PromptBatch:
    """Prompts (left-padded) and, when the data has them, gold responses (right-padded)."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor | None = None
    response_mask: torch.Tensor | None = None


@dataclass
class RolloutBatch:
    """What a sampler returns: prompt and response ids with masks, plus whatever it already knows so
    nothing is computed twice (behaviour log-probs, teacher log-probs, importance weights, all ``[B, T_r]``
    aligned with ``response_ids``)."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    behaviour_logprobs: torch.Tensor | None = None
    teacher_logprobs: torch.Tensor | None = None
    importance_weights: torch.Tensor | None = None
    source: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> RolloutBatch:
        moved = {
            k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items() if k != "extras"
        }
        return replace(self, **moved)


@dataclass
class SamplerContext:
    """Everything a sampler may use for one step."""

    student: Any
    teacher: Any | None
    tokenizer: Any
    step: int
    generator: torch.Generator
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


class Sampler(Component):
    """Decides where the response tokens of a training batch come from."""

    needs_teacher: ClassVar[bool] = False

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """State saved in checkpoints (schedules, buffers). Stateless samplers return ``{}``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state
