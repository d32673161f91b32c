"""What plugins hand back during ``minillm distill``, checked before minillm uses it.

``minillm plugins check`` runs a plugin on tiny models; a run meets it on the real ones, with the real data.
The same contract is checked here, so a broken output is an exit-4 panel naming the plugin, its distribution
and what to fix (never an ``IndexError`` deep in scoring, a ``TypeError`` while checkpointing, or a run that
trains silently on a dropped row or a NaN log-prob):

* every rollout a sampler returns: :func:`~minillm_distill.rollout_contract.rollout_problems` (shapes, id
  range, a right-padded 0/1 mask, finite per-token tensors); linear in the rollout's size;
* the sampler's ``state_dict()`` survives JSON: on the first call, and before every checkpoint (so a bad state
  never leaves a half-written ``.tmp-step-N``);
* a sequence divergence's ``prepare`` (one dict of finite tensors per micro-batch) and ``loss`` (a 0-dim tensor
  that carries the student's gradient, metrics that are numbers): on the first call of each;
* a token divergence's ``per_token``: :func:`minillm_distill.divergence.check_per_token_output` on its first call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from minillm_distill.errors import PluginError
from minillm_distill.plugin_blame import plugin_origin
from minillm_distill.plugins import PluginSet
from minillm_distill.rollout import PromptBatch, RolloutBatch
from minillm_distill.rollout_contract import rollout_problems, state_problem


def _numbers_problem(metrics: Any, what: str) -> str | None:
    if not isinstance(metrics, dict):
        return f"{what} are {type(metrics).__name__}, not a dict of numbers"
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            return f"{what}[{key!r}] is {type(value).__name__}, not a number"
        if not math.isfinite(number):
            return f"{what}[{key!r}] is {number}"
    return None


@dataclass
class PluginOutputs:
    """The checks of one run (one per training process)."""

    plugins: PluginSet | None
    vocab: int | None
    _checked: set[str] = field(default_factory=set)

    def _fail(self, kind: str, name: str, obj: object, message: str, details: list[str], command: str) -> PluginError:
        return PluginError(
            f"{plugin_origin(self.plugins, kind, name, obj)} {message}",
            details=details,
            why="the plugin broke minillm's contract for that output during training (checked before it is used)",
            hint=f"fix the plugin (`minillm plugins check {name}` runs these checks on tiny models) or report it to "
            f"its maintainers; or choose another {command} in the recipe",
        )

    def rollout(self, sampler: Any, prompts: PromptBatch, rollout: Any) -> RolloutBatch:
        """``rollout`` if it keeps the contract for ``prompts`` (every call), and on the first call the sampler's
        state must survive JSON."""
        problems = rollout_problems(rollout, prompts, self.vocab)
        if problems:
            raise self._fail("sampler", sampler.name, sampler, "returned a rollout that breaks the contract", problems,
                             "sampler.name")  # fmt: skip
        if "sampler state" not in self._checked:
            self.sampler_state(sampler)
            self._checked.add("sampler state")
        return rollout

    def sampler_state(self, sampler: Any) -> dict[str, Any]:
        """The sampler's ``state_dict()``, refused unless it survives JSON (before a checkpoint is begun)."""
        state = sampler.state_dict()
        problem = state_problem(state)
        if problem is not None:
            raise self._fail("sampler", sampler.name, sampler, "has a state that cannot be checkpointed", [problem],
                             "sampler.name")  # fmt: skip
        return state

    def prepared(self, div: Any, rollouts: list[RolloutBatch], result: Any) -> tuple[list[dict[str, Any]], dict]:
        """A sequence divergence's ``prepare`` result: ``(one dict of finite tensors per micro-batch, metrics)``
        (checked on the first call)."""
        problem = None
        if not (isinstance(result, tuple) and len(result) == 2):
            problem = f"prepare returned {type(result).__name__}, not (prepared, metrics)"
        elif "prepare" not in self._checked:
            prepared, metrics = result
            if not isinstance(prepared, list) or len(prepared) != len(rollouts):
                got = len(prepared) if isinstance(prepared, list) else type(prepared).__name__
                problem = f"prepare returned {got} prepared entries for {len(rollouts)} micro-batches"
            else:
                for i, item in enumerate(prepared):
                    if not isinstance(item, dict) or not all(isinstance(v, torch.Tensor) for v in item.values()):
                        problem = f"prepared[{i}] is not a dict of tensors"
                    elif not all(bool(torch.isfinite(v.detach().float()).all()) for v in item.values()):
                        problem = f"prepared[{i}] has nan/inf values"
                    if problem:
                        break
            problem = problem or _numbers_problem(metrics, "prepare's metrics")
        if problem is not None:
            raise self._fail("divergence", div.name, div, "returned a broken prepare result", [problem],
                             "divergence.name")  # fmt: skip
        self._checked.add("prepare")
        return result

    def sequence_loss(self, div: Any, result: Any, student_grad: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        """A sequence divergence's ``loss`` result: ``(0-dim tensor, metrics)``; on the first call the loss must
        carry the student's gradient (when the student's scores do) and the metrics be numbers."""
        problem = None
        if not (isinstance(result, tuple) and len(result) == 2):
            problem = f"loss returned {type(result).__name__}, not (loss, metrics)"
        else:
            loss, metrics = result
            if not isinstance(loss, torch.Tensor):
                problem = f"loss returned a {type(loss).__name__} as the loss, not a tensor"
            elif loss.dim() != 0:
                problem = f"loss returned a tensor of shape {tuple(loss.shape)}, not a 0-dim (scalar) tensor"
            elif "loss" not in self._checked:
                if student_grad and not loss.requires_grad:
                    problem = (
                        "loss returned a tensor without a gradient: it was computed from detached inputs "
                        "(.detach(), .item(), torch.no_grad()), so training would change nothing"
                    )
                else:
                    problem = _numbers_problem(metrics, "loss metrics")
        if problem is not None:
            raise self._fail("divergence", div.name, div, "returned a broken loss", [problem], "divergence.name")
        self._checked.add("loss")
        return result
