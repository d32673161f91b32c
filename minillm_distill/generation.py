"""Batched sampling from one causal LM, or from a student and a teacher stepping together.

:func:`decode` is the one decoding loop every generating sampler uses. It runs any ``transformers`` causal
LM (stock, no patches) with a KV cache per model, on **left-padded** prompts:

* the first forward pass takes the whole prompt with its attention mask and explicit
  ``position_ids = cumsum(mask) - 1``, so a row's positions start at 0 at its first real token whatever its
  padding; every later step feeds one token per row at the row's next position, with the mask extended by
  one column;
* at each step the caller's ``choose(q, p)`` turns the *processed* student and teacher distributions
  (temperature, then top-k, then top-p; :func:`processed_probs`) into the distribution the next token is
  drawn from, one token per row by inverse transform sampling with ``generator`` (:func:`_draw`);
* with ``no_repeat_ngram_size = n > 0`` a token that would complete an n-gram already present in the row
  (its prompt's real tokens plus what it generated so far; padding is not part of it) is banned at that step:
  its logit is set to ``-inf`` before temperature and filtering, for both models' processed distributions (as
  ``transformers``' ``NoRepeatNGramLogitsProcessor`` does, minus the padding); a row whose every token would be
  banned keeps its distribution unchanged. ``0`` (the default) changes nothing;
* a row stops at its first EOS (the EOS itself is part of the response and of its mask) or after
  ``max_new_tokens``; positions after the end hold ``pad_token_id``, mask 0, log-probs 0 and sampling
  probability 1; the loop stops as soon as every row has ended.

For each response token it returns the log-probs of the chosen token under the *unprocessed* distributions
(temperature 1, no filtering) of the student and of the teacher, and the probability of the chosen token
under the distribution it was actually drawn from. Models are put in eval mode while decoding (no dropout)
and every submodule's train/eval flag is restored afterwards; everything runs under ``torch.no_grad()``.

Vocabularies: the logits of both models are cut to ``vocab_size`` rows (default: the smaller of the two
models' logits), so a teacher and a student whose embedding matrices are padded differently (e.g.
151936 vs 152064 rows) sample and score over the same shared ids; log-probs are normalised over those rows.

Sharded parameters (ZeRO-3) need every rank to run the same number of forward passes: with ``synced=True``
and ``torch.distributed`` initialised, a rank whose rows have all ended keeps stepping (feeding padding)
until every rank is done; its outputs are trimmed back to its own longest response.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field, model_validator

from minillm_distill.model_facts import as_id_list, unwrap
from minillm_distill.registrable import PluginParams

ChooseFn = Callable[[torch.Tensor | None, torch.Tensor | None], torch.Tensor]
"""``choose(q, p) -> probs``: the sampling distribution ``[B, V]`` from the processed student (``q``) and
teacher (``p``) distributions (either is ``None`` when that model is not decoding)."""


class GenerationParams(PluginParams):
    """Sampling options of a generating sampler."""

    max_new_tokens: int = Field(256, ge=1, description="longest response, in tokens (EOS included)")
    min_new_tokens: int = Field(
        0, ge=0, description="EOS cannot be drawn before a response has this many tokens; 0 = off"
    )
    temperature: float = Field(1.0, gt=0, description="logits are divided by this before sampling")
    top_k: int = Field(0, ge=0, description="sample only from the k most likely tokens; 0 = off")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: smallest set with this much mass; 1 = off")
    no_repeat_ngram_size: int = Field(
        0, ge=0, description="never repeat an n-gram of this size within a row (prompt included); 0 = off"
    )

    @model_validator(mode="after")
    def _min_within_max(self) -> GenerationParams:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) exceeds max_new_tokens ({self.max_new_tokens}); "
                "lower min_new_tokens or raise max_new_tokens"
            )
        return self


@dataclass
class Decoded:
    """The output of :func:`decode`; every tensor is ``[B, T]`` with ``T`` the longest response."""

    response_ids: torch.Tensor
    response_mask: torch.Tensor
    student_logprobs: torch.Tensor | None
    """log q(y_t) under the unprocessed student distribution (0 at masked positions)."""
    teacher_logprobs: torch.Tensor | None
    """log p(y_t) under the unprocessed teacher distribution (0 at masked positions)."""
    sampling_probs: torch.Tensor
    """probability of y_t under the distribution it was drawn from (1 at masked positions)."""
    teacher_hidden: torch.Tensor | None = None
    """``[B, T, H]`` the teacher's final hidden state predicting y_t (0 at masked positions), with
    ``keep_teacher_hidden``."""
    teacher_logits: torch.Tensor | None = None
    """``[B, T, V]`` float32 the teacher's log-probabilities predicting y_t (the log-softmax of its unprocessed
    logits, cut to the shared vocabulary rows; any values at masked positions), with ``keep_teacher_logits``.
    They are logits too (a log-softmax leaves a softmax unchanged), already normalised."""


# -- the sampling distribution -------------------------------------------------------------------------


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits with everything below the k-th largest value set to ``-inf`` (ties with it are kept).
    ``k = 0`` or ``k >= vocab`` leaves the logits unchanged."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Logits outside the nucleus set to ``-inf``: the most likely tokens are kept, in order, until the mass
    already kept reaches ``p`` (so the kept set is the smallest one with mass >= p; the top token is always
    kept). ``p = 1`` leaves the logits unchanged."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    sorted_probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    drop_sorted = mass_before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def processed_probs(logits: torch.Tensor, params: GenerationParams) -> torch.Tensor:
    """The distribution sampling uses: float32 softmax of logits / temperature, after top-k then top-p."""
    logits = logits.float()
    if params.temperature != 1.0:
        logits = logits / params.temperature
    logits = top_k_filter(logits, params.top_k)
    logits = top_p_filter(logits, params.top_p)
    return torch.softmax(logits, dim=-1)


def choose_student(q: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
    if q is None:
        raise ValueError("choose_student needs the student to decode")
    return q


def choose_teacher(q: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
    if p is None:
        raise ValueError("choose_teacher needs the teacher to decode")
    return p


def mixture(alpha: float) -> ChooseFn:
    """``choose`` for teacher-mixed sampling: ``(1 - alpha) q + alpha p``."""

    def choose(q: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
        if q is None or p is None:
            raise ValueError("teacher-mixed sampling needs both the student and the teacher to decode")
        return (1.0 - alpha) * q + alpha * p

    return choose


@contextmanager
def eval_mode(models: Iterable[Any]):
    """Put models in eval mode; restore every submodule's own train/eval flag afterwards."""
    models = list(models)
    saved = [(module, module.training) for model in models for module in model.modules()]
    try:
        for model in models:
            model.eval()
        yield
    finally:
        for module, training in saved:
            module.training = training


def _forward_parameters(model: Any) -> set[str]:
    """Named parameters of the model's ``forward`` (to pass ``position_ids`` / ``logits_to_keep`` only where
    they exist, e.g. ALiBi models such as BLOOM take no ``position_ids``)."""
    try:
        return set(inspect.signature(unwrap(model).forward).parameters)
    except (TypeError, ValueError):
        return {"position_ids"}


def all_ranks_done(local_done: bool, device: torch.device) -> bool:
    """Whether every rank has finished decoding (one all-reduce; ``local_done`` alone in one process). Decoding
    loops until all are done so that the ranks' collectives stay in lock-step; ``plugins check`` substitutes
    this function to see that a sampler asks it every step."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return local_done
    flag = torch.tensor([0.0 if local_done else 1.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.SUM)
    return flag.item() == 0.0


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row from ``probs`` ``[B, V]`` (rows need not be normalised), by inverse transform sampling:
    the first index whose cumulative mass (float64) exceeds ``u * total``, ``u ~ U[0, 1)`` from ``generator``.
    A token of probability 0 is never drawn. ``torch.multinomial`` draws the same distribution, but on the CPU
    at a 50k vocabulary it costs about 2.5x this per ``[8, 50257]`` draw (``benchmarks/token_draw.py``; about a
    quarter of a teacher-mixed decode's time under cProfile in ``benchmarks/minillm_phase.py``)."""
    if generator is not None and generator.device.type != probs.device.type:
        # a CPU generator with GPU models: draw on the CPU (same tokens on every device type)
        return _draw(probs.cpu(), generator).to(probs.device)
    cdf = probs.double().cumsum(dim=-1)
    total = cdf[:, -1:]
    if not bool(((total > 0) & torch.isfinite(total)).all()):
        raise ValueError("sampling distribution with no finite positive mass (nan or inf in the logits?)")
    u = torch.rand(total.shape, generator=generator, dtype=torch.float64, device=probs.device) * total
    # u < total strictly, so some index has cdf > u; the first one has positive probability
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True).squeeze(-1)


class NgramBlocker:
    """Which tokens would repeat an n-gram of a row (prompt + generated tokens so far), for
    ``no_repeat_ngram_size``. Keeps, per row, every (n-1)-gram prefix seen and the tokens that followed it."""

    def __init__(self, n: int, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> None:
        if n < 1:
            raise ValueError("no_repeat_ngram_size must be >= 1 for an NgramBlocker")
        self.n = n
        ids, mask = prompt_ids.tolist(), prompt_mask.tolist()
        self.history: list[list[int]] = [
            [t for t, m in zip(row, keep, strict=True) if m] for row, keep in zip(ids, mask, strict=True)
        ]
        self.seen: list[dict[tuple[int, ...], set[int]]] = [{} for _ in self.history]
        for row, tokens in enumerate(self.history):
            for end in range(n, len(tokens) + 1):
                self._add(row, tokens[end - n : end])

    def _add(self, row: int, ngram: list[int]) -> None:
        self.seen[row].setdefault(tuple(ngram[:-1]), set()).add(ngram[-1])

    def banned(self, width: int, device: torch.device) -> torch.Tensor:
        """``[B, width]`` bool: True where the token would complete an n-gram the row already contains."""
        mask = torch.zeros(len(self.history), width, dtype=torch.bool)
        k = self.n - 1
        for row, tokens in enumerate(self.history):
            if len(tokens) < k:
                continue
            followers = self.seen[row].get(tuple(tokens[len(tokens) - k :]) if k else ())
            ids = [t for t in followers or () if 0 <= t < width]
            if ids and len(ids) < width:  # never ban every token of a row
                mask[row, ids] = True
        return mask.to(device)

    def append(self, tokens: torch.Tensor, alive: torch.Tensor) -> None:
        """Extend each alive row by its new token (finished rows are left as they are)."""
        for row, (token, live) in enumerate(zip(tokens.tolist(), alive.tolist(), strict=True)):
            if not live:
                continue
            history = self.history[row]
            history.append(int(token))
            if len(history) >= self.n:
                self._add(row, history[-self.n :])


def with_eos_banned(banned: torch.Tensor | None, eos: torch.Tensor, batch_size: int, width: int) -> torch.Tensor:
    """``banned`` (or no ban) plus the EOS ids below ``width`` for every row (``min_new_tokens``). A row whose
    every token would then be banned keeps only the EOS ban; EOS ids covering the whole vocabulary ban nothing."""
    eos_mask = torch.zeros(batch_size, width, dtype=torch.bool, device=eos.device)
    eos_mask[:, eos[eos < width]] = True
    if bool(eos_mask[:1].all()):
        eos_mask[:] = False
    if banned is None:
        return eos_mask
    merged = banned | eos_mask
    return torch.where(merged.all(dim=-1, keepdim=True), eos_mask, merged)


def _processed(logits: torch.Tensor, params: GenerationParams, banned: torch.Tensor | None) -> torch.Tensor:
    if banned is not None:
        logits = logits.masked_fill(banned, float("-inf"))
    return processed_probs(logits, params)


# -- the decoding loop ---------------------------------------------------------------------------------


@torch.no_grad()
def decode(
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    *,
    student: Any | None = None,
    teacher: Any | None = None,
    params: GenerationParams | None = None,
    choose: ChooseFn | None = None,
    generator: torch.Generator | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
    vocab_size: int | None = None,
    synced: bool = False,
    keep_teacher_hidden: bool = False,
    keep_teacher_logits: bool = False,
) -> Decoded:
    """Sample responses to left-padded prompts ``[B, P]`` (see the module docstring).

    ``student`` and ``teacher`` are causal LMs (at least one); both decode the same tokens, each with its
    own KV cache. ``choose(q, p)`` returns the sampling distribution from the processed distributions
    (default: the student's if it decodes, else the teacher's). ``eos_token_id`` may be one id or several.
    ``keep_teacher_hidden``: also return the teacher's final hidden state at every response token
    (``Decoded.teacher_hidden``), so scoring needs no teacher forward over these tokens.
    ``keep_teacher_logits``: also return the teacher's log-probabilities at every response token
    (``Decoded.teacher_logits``, ``[B, T, V]`` float32: ``max_new_tokens x V`` floats per row, allocated once),
    so scoring needs not even the teacher's output layer, and a divergence reading them needs no log-softmax.
    """
    params = params or GenerationParams()
    named = [(kind, m) for kind, m in (("student", student), ("teacher", teacher)) if m is not None]
    if not named:
        raise ValueError("decode needs a student or a teacher model")
    if choose is None:
        choose = choose_student if student is not None else choose_teacher
    device = prompt_ids.device
    batch_size = prompt_ids.shape[0]
    eos = torch.tensor(as_id_list(eos_token_id), dtype=torch.long, device=device)
    mask_dtype = prompt_mask.dtype

    attention = prompt_mask.to(device=device, dtype=torch.long)
    next_position = attention.sum(-1)
    input_ids = prompt_ids
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    accepted = {kind: _forward_parameters(m) for kind, m in named}
    caches: dict[str, Any] = {kind: _new_cache(accepted[kind]) for kind, _ in named}
    keep_hidden = keep_teacher_hidden and teacher is not None
    hiddens: list[torch.Tensor] = []
    keep_logits = keep_teacher_logits and teacher is not None
    kept_logits: torch.Tensor | None = None

    ngram = params.no_repeat_ngram_size
    blocker = NgramBlocker(ngram, prompt_ids, prompt_mask) if ngram else None
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    tokens, alive_steps, logprobs, chosen_probs = [], [], {kind: [] for kind, _ in named}, []
    local_len = 0
    with eval_mode([m for _, m in named]):
        for step in range(params.max_new_tokens):
            raw: dict[str, torch.Tensor] = {}
            for kind, model in named:
                extra: dict[str, Any] = {}
                if "position_ids" in accepted[kind]:
                    extra["position_ids"] = position_ids
                if "logits_to_keep" in accepted[kind]:
                    extra["logits_to_keep"] = 1
                if kind == "teacher" and keep_hidden:
                    extra["output_hidden_states"] = True
                out = model(
                    input_ids=input_ids,
                    attention_mask=attention,
                    use_cache=True,
                    **_cache_kwargs(accepted[kind], caches[kind]),
                    **extra,
                )
                caches[kind] = _returned_cache(out)
                raw[kind] = out.logits[:, -1, :].float()
                if kind == "teacher" and keep_hidden:
                    # the teacher's final hidden state predicting this step's token (the output layer's input)
                    hiddens.append(out.hidden_states[-1][:, -1, :])
            width = min(x.shape[-1] for x in raw.values())
            if vocab_size is not None:
                width = min(width, vocab_size)
            raw = {kind: x[:, :width] for kind, x in raw.items()}
            # one log-softmax per model and step: it gives the drawn token's log-probability and, for the
            # teacher, what is kept
            log_probs = {kind: torch.log_softmax(x, dim=-1) for kind, x in raw.items()}
            if keep_logits:
                if kept_logits is None:  # one buffer for the whole decode: no [B, V] list to stack
                    kept_logits = raw["teacher"].new_empty(batch_size, params.max_new_tokens, width)
                kept_logits[:, step].copy_(log_probs["teacher"])

            banned = blocker.banned(width, device) if blocker is not None else None
            if step < params.min_new_tokens and eos.numel():
                banned = with_eos_banned(banned, eos, batch_size, width)
            probs = choose(
                _processed(raw["student"], params, banned) if "student" in raw else None,
                _processed(raw["teacher"], params, banned) if "teacher" in raw else None,
            )
            alive = ~finished
            drawn = _draw(probs, generator)
            for kind, x in log_probs.items():
                lp = x.gather(-1, drawn[:, None]).squeeze(-1)
                logprobs[kind].append(torch.where(alive, lp, torch.zeros_like(lp)))
            m = probs.gather(-1, drawn[:, None]).squeeze(-1)
            chosen_probs.append(torch.where(alive, m, torch.ones_like(m)))
            token = torch.where(alive, drawn, torch.full_like(drawn, pad_token_id))
            tokens.append(token)
            alive_steps.append(alive)
            if bool(alive.any()):
                local_len = step + 1
            finished = finished | (alive & torch.isin(token, eos))
            if blocker is not None:
                blocker.append(token, alive)

            if step + 1 == params.max_new_tokens:
                break
            done = bool(finished.all())
            if synced:
                done = all_ranks_done(done, device)
            if done:
                break
            input_ids = token[:, None]
            position_ids = next_position[:, None]
            next_position = next_position + 1
            attention = torch.cat([attention, attention.new_ones(batch_size, 1)], dim=-1)

    length = local_len
    ids = torch.stack(tokens, dim=1)[:, :length]
    return Decoded(
        response_ids=ids,
        response_mask=torch.stack(alive_steps, dim=1)[:, :length].to(mask_dtype),
        student_logprobs=torch.stack(logprobs["student"], 1)[:, :length] if "student" in logprobs else None,
        teacher_logprobs=torch.stack(logprobs["teacher"], 1)[:, :length] if "teacher" in logprobs else None,
        sampling_probs=torch.stack(chosen_probs, dim=1)[:, :length],
        teacher_hidden=_masked_hidden(hiddens, alive_steps, length) if keep_hidden else None,
        teacher_logits=kept_logits[:, :length].contiguous() if kept_logits is not None else None,
    )


def _masked_hidden(hiddens: list[torch.Tensor], alive: list[torch.Tensor], length: int) -> torch.Tensor:
    h = torch.stack(hiddens, dim=1)[:, :length]
    keep = torch.stack(alive, dim=1)[:, :length, None]
    return torch.where(keep, h, torch.zeros_like(h))


def _new_cache(accepted: set[str]) -> Any:
    """An empty KV cache object (transformers' Cache API), or ``None`` for a model that builds its own."""
    try:
        from transformers import DynamicCache
    except ImportError:  # pragma: no cover - transformers always has it in supported versions
        return None
    return DynamicCache() if ("cache" in accepted or "past_key_values" in accepted) else None  # else: its own


def _cache_kwargs(accepted: set[str], cache: Any) -> dict[str, Any]:
    """The cache argument under the name the model's forward takes (``cache`` in current transformers,
    ``past_key_values`` before)."""
    if "cache" in accepted:
        return {"cache": cache}
    return {"past_key_values": cache}


def _returned_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)
