"""The batches that flow through a step: :class:`PromptBatch` (what a sampler is given) and :class:`RolloutBatch`
(what it returns, what scoring and the divergences read, what a checkpoint keeps of a rollout phase).

The ground floor of training: data, samplers, scoring, divergences and checkpoints all read these types, and
this module imports nothing of minillm. The sampler contract (:class:`~minillm_distill.sampler.Sampler`) is in
:mod:`minillm_distill.sampler`, which offers these names too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch


@dataclass
class PromptBatch:
    """What a sampler gets: one micro-batch of this rank's training examples, on the training device.

    ``prompt_ids`` / ``prompt_mask``: ``[B, P]``, **left**-padded (padding first, mask 0 there), the prompts
    already formatted (``data.prompt_format``) and tokenized. ``response_ids`` / ``response_mask``: ``[B, R]``,
    **right**-padded, the data's gold responses ending with EOS (inside the mask) when the data has responses,
    else ``None`` (a sampler with ``needs_responses = False`` must not need them).
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor | None = None
    response_mask: torch.Tensor | None = None


@dataclass
class RolloutBatch:
    """What :meth:`Sampler.sample` returns: the responses a training step learns from, plus what the sampler
    already knows about them, so nothing is computed twice.

    Shapes: ``B`` rows (the prompt batch's, in the same order), ``P`` prompt positions, ``T`` response positions
    (the longest response of the batch). Every per-token tensor is ``[B, T]`` and aligned with
    ``response_ids``: column ``t`` is about response token ``t``. Tensors may live on any device (the loop
    moves the batch to the training device with :meth:`to`). ``minillm plugins check`` checks this contract.

    Masks and EOS: ``response_mask`` is 1 for the tokens of each response **including the EOS that ended it**,
    then 0 for the padding after it (right padding: a row's ones are a prefix). A row that reached
    ``max_new_tokens`` without EOS is all ones. Divergences are computed only where the mask is 1, and the
    loss is divided by the global number of mask-1 tokens (all micro-batches, all ranks), so the EOS token is
    trained on, and what is written after it never matters.
    """

    prompt_ids: torch.Tensor
    """``[B, P]`` long, the prompts as given in :class:`PromptBatch` (left-padded)."""
    prompt_mask: torch.Tensor
    """``[B, P]``, 1 at real prompt tokens, 0 at the left padding."""
    response_ids: torch.Tensor
    """``[B, T]`` long, right-padded response token ids (below the vocabulary size both models share);
    positions after a row's end hold any id (``pad_token_id`` by convention), never read."""
    response_mask: torch.Tensor
    """``[B, T]`` (bool, or 0/1 of the prompt mask's dtype): 1 at response tokens, the final EOS included."""
    behaviour_logprobs: torch.Tensor | None = None
    """``[B, T]`` float32: log q(y_t | x, y_<t) under the **student's unprocessed** distribution (temperature 1,
    no top-k/top-p, normalised over the shared vocabulary rows) with the weights it had when it sampled (the
    "old" policy of a PPO-style update); 0 at masked positions. Sequence-level divergences need it: a sampler
    that always fills it sets ``records_logprobs = True``. ``None``: the student did not decode."""
    teacher_logprobs: torch.Tensor | None = None
    """``[B, T]`` float32: log p(y_t | x, y_<t) under the teacher's unprocessed distribution; 0 at masked
    positions. MiniLLM uses it as the reward without another teacher pass. ``None``: not known."""
    importance_weights: torch.Tensor | None = None
    """``[B, T]`` float32: w_t = q(y_t) / m(y_t), the student's unprocessed probability over the probability of
    the distribution ``m`` the token was actually drawn from (1 at masked positions). ``None`` means all ones
    (the tokens were drawn from the student itself)."""
    teacher_hidden: torch.Tensor | None = None
    """``[B, T, H]`` the teacher's final hidden state predicting each response token, kept by a sampler that
    decoded with the teacher: scoring then runs no teacher forward (zeros at masked positions). ``None`` when
    :attr:`teacher_logits` are kept instead."""
    teacher_logits: torch.Tensor | None = None
    """``[B, T, V]`` float32 the teacher's logits predicting each response token (unprocessed, the vocabulary rows
    both models share; any values at masked positions), kept by a sampler that decoded with the teacher when
    :attr:`SamplerContext.teacher_logits_bytes` allows: scoring then runs not even the teacher's output layer.
    :func:`generate_rollout` keeps these or ``teacher_hidden``, not both; scoring prefers these when a sampler
    sets both. :func:`generate_rollout` keeps the teacher's log-probabilities (logits too: a log-softmax leaves a
    softmax unchanged) and says so in :attr:`teacher_logits_normalised`."""
    teacher_logits_normalised: bool = False
    """:attr:`teacher_logits` are log-probabilities over their rows, so a divergence at temperature 1 may skip
    its log-softmax of them (the ``minillm`` divergence does, in every PPO epoch). ``False``: any logits."""
    source: str = ""
    """Who wrote the responses (``"student"``, ``"teacher"``, ``"dataset"``, ...), for logs."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Numbers the sampler reports about this rollout (an acceptance rate, a mixing coin's share, ...): each
    goes into ``metrics.jsonl`` as ``sampler/NAME``, the mean over the micro-batches and ranks of the step that
    report it. Finite numbers only (checked)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Anything else (e.g. ``sampling_probs`` from :func:`generate_rollout`, ``on_policy`` of ``mixed``). A
    sequence-level divergence's rollout buffer is saved in checkpoints, so values are tensors, numbers,
    strings, booleans, ``None``, lists and string-keyed dicts of those (no other objects: nothing is pickled).
    :meth:`to` does not move tensors in ``extras``."""

    def to(self, device: torch.device | str) -> RolloutBatch:
        """The same batch with every tensor field (not ``extras``) on ``device``."""
        moved = {
            k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items() if k != "extras"
        }
        return replace(self, **moved)


@dataclass
class PhaseBuffer:
    """This rank's rollouts of one phase and what the divergence prepared from them."""

    phase: int
    rollouts: list[RolloutBatch]
    prepared: list[dict[str, torch.Tensor]]
    metrics: dict[str, float]
