"""What scoring hands the loss: final hidden states plus the output layer, and the one chunk walk over them.

At a 152k vocabulary the logits dominate a step (one float32 ``[8 x 512, 151936]`` tensor is 2.3 GiB), so
scoring stops at the model's final hidden states at the response positions (``[B, T, H]``, H << V) and keeps a
handle on the output layer (:class:`OutputHead`). :func:`walk_tokens` is the only place where vocabulary-sized
tensors exist: for each chunk of valid tokens it computes the student's logits (with grad) and the teacher's
(without) from the hidden states, cuts both to the vocabulary rows they share, applies the temperature, and
calls the consumer (a token divergence's ``per_token``, the MiniLLM terms, cross entropy, evaluation KL). In
backward the chunk is recomputed (``torch.utils.checkpoint``, non-reentrant: the head's weight is a parameter
used inside and its gradient, tied to the input embeddings or not, flows as usual), so only ``[chunk, V]``
tensors exist at any time, forward or backward. When all the valid tokens fit in one chunk (small batches, small
vocabularies: the offline demo), the walk is one plain autograd call: the same values and the peak of one
recomputed chunk, without the second pass through the output layer.

A model whose forward changes the logits after the output layer declares it through its config
(``final_logit_softcapping``, ``logit_scale``: :class:`OutputHead` applies them); scoring checks the head
against the model's own logits once per model and falls back to full logits (:meth:`ResponseScores.from_logits`,
a log line) when they differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

#: default chunk: as many tokens as keep one ``[chunk, V]`` float32 tensor near this many elements (a power of
#: two between 16 and 2048 tokens); chosen with ``benchmarks/loss_memory.py --chunks`` (see the README)
DEFAULT_CHUNK_ELEMENTS = 1 << 24
DEFAULT_CHUNK_TOKENS = None  # None: derived from the vocabulary with DEFAULT_CHUNK_ELEMENTS

ChunkFn = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor], torch.Tensor]
"""``fn(student_logits [n, V], teacher_logits [n, V] | None, targets [n]) -> [n] or [n, k]`` float32."""


def chunk_tokens_for(vocab: int, chunk_tokens: int | None = None) -> int:
    """Tokens per chunk: ``chunk_tokens`` when given, else the power of two (16..2048) whose ``[chunk, vocab]``
    float32 tensor is closest below :data:`DEFAULT_CHUNK_ELEMENTS`."""
    if chunk_tokens is not None:
        return max(int(chunk_tokens), 1)
    n = DEFAULT_CHUNK_ELEMENTS // max(int(vocab), 1)
    return int(min(max(2 ** int(math.floor(math.log2(max(n, 1)))), 16), 2048))


@dataclass
class OutputHead:
    """A model's output layer, called as a module (so hooks on it, e.g. DeepSpeed ZeRO-3's parameter
    gathering, run on every call, recomputation included), plus what the model's forward does to its output.

    ``softcap``: logits = tanh(logits / softcap) * softcap (config ``final_logit_softcapping``);
    ``scale``: logits = logits * scale (config ``logit_scale``)."""

    module: torch.nn.Module
    softcap: float | None = None
    scale: float | None = None

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.module(hidden)
        if self.scale is not None:
            logits = logits * self.scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


@dataclass
class ResponseScores:
    """A model's scores at ``[B, T]`` positions, row ``t`` predicting ``targets[:, t]``.

    Either ``hidden`` (``[B, T, H]`` final hidden states, the output layer's input) with ``head``, or, on the
    full path, ``logits`` (``[B, T, V]``). ``vocab_size`` is the number of vocabulary rows used (the width of
    the logits unless narrowed to rows shared with another model). Nothing
    vocabulary-sized is computed until :meth:`rows` is asked for a chunk."""

    hidden: torch.Tensor | None = None
    head: OutputHead | None = None
    logits: torch.Tensor | None = None
    vocab_size: int = 0
    chunk_tokens: int | None = None
    """tokens per chunk of the walk (``train.loss_chunk_tokens``); ``None``: from the vocabulary size"""
    normalised: bool = False
    """``logits`` are already log-probabilities over all ``vocab_size`` rows (the teacher's log-softmax kept by a
    teacher-mixed decode), so a consumer reading them at temperature 1 over those rows may skip its own
    log-softmax. Other consumers read them as logits: a log-softmax leaves the softmax unchanged."""

    def __post_init__(self) -> None:
        if self.logits is None and (self.hidden is None or self.head is None):
            raise ValueError("ResponseScores needs hidden states with a head, or logits")
        if not self.vocab_size:
            if self.logits is not None:
                self.vocab_size = int(self.logits.size(-1))
            else:
                assert self.head is not None
                weight = getattr(self.head.module, "weight", None)
                shape = getattr(weight, "ds_shape", None) or (weight.shape if weight is not None else None)
                if shape is None:
                    raise ValueError("ResponseScores: give vocab_size for a head without a weight")
                self.vocab_size = int(shape[0])

    @classmethod
    def from_logits(cls, logits: torch.Tensor) -> ResponseScores:
        """The full path: logits already computed (``[..., V]``)."""
        return cls(logits=logits)

    @property
    def source(self) -> torch.Tensor:
        """The tensor the scores are computed from (hidden states or logits)."""
        out = self.hidden if self.hidden is not None else self.logits
        assert out is not None
        return out

    @property
    def shape(self) -> torch.Size:
        """The leading ``[B, T]`` shape."""
        return self.source.shape[:-1]

    def flat(self) -> torch.Tensor:
        src = self.source
        return src.reshape(-1, src.size(-1))

    def rows(self, flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Logits ``[n, V]`` at the flat positions ``index`` of ``flat`` (= :meth:`flat`)."""
        # a view only of what nothing differentiates (the teacher's kept logits): a student's logits stay a copy
        picked = flat.index_select(0, index) if flat.requires_grad else _consecutive(flat, index)
        if self.hidden is None:
            return picked
        assert self.head is not None
        return self.head(picked)

    def narrow(self, rows: slice) -> ResponseScores:
        """The scores of a slice of the batch's rows."""
        return ResponseScores(
            hidden=self.hidden[rows] if self.hidden is not None else None,
            head=self.head,
            logits=self.logits[rows] if self.logits is not None else None,
            vocab_size=self.vocab_size,
            chunk_tokens=self.chunk_tokens,
            normalised=self.normalised,
        )


def _consecutive(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``flat[index]``: a view when ``index`` (on the CPU, where asking costs no device sync) is a run of
    consecutive rows, as every chunk of a batch without padding is, else a copy (``index_select``). A kept
    teacher logits chunk is then read in place, not copied (one ``[chunk, V]`` tensor less per chunk)."""
    n = int(index.numel())
    if n and index.device.type == "cpu":
        first = int(index[0])
        if int(index[-1]) - first == n - 1 and (n == 1 or bool((index.diff() == 1).all())):
            return flat.narrow(0, first, n)
    return flat.index_select(0, index)


def as_scores(x: ResponseScores | torch.Tensor | None) -> ResponseScores | None:
    """Scores from scores or from a logits tensor (the full path), ``None`` stays ``None``."""
    if x is None or isinstance(x, ResponseScores):
        return x
    return ResponseScores.from_logits(x)


@dataclass
class TokenWalk:
    """The consumer's outputs at the valid positions: ``values[i]`` belongs to flat position ``index[i]`` of
    the ``[B, T]`` mask (row-major order)."""

    index: torch.Tensor
    values: torch.Tensor


def _needs_sync(*scores: ResponseScores | None) -> bool:
    """Whether a head's weight is sharded across ranks (ZeRO-3): then every rank must call it equally often."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    for s in scores:
        if s is not None and s.head is not None and any(hasattr(p, "ds_id") for p in s.head.module.parameters()):
            return True
    return False


def _synced_chunks(n: int, device: torch.device) -> int:
    import torch.distributed as dist

    t = torch.tensor([float(n)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def walk_tokens(
    student: ResponseScores | torch.Tensor,
    teacher: ResponseScores | torch.Tensor | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    fn: ChunkFn,
    *,
    temperature: float = 1.0,
    chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
    teacher_rows: torch.Tensor | None = None,
    vocab_limit: int | None = None,
) -> TokenWalk:
    """Run ``fn`` over the valid positions of ``mask`` (``[B, T]``), one chunk of tokens at a time.

    ``teacher_rows`` (``[B, T, m]``, with ``teacher`` None): per-position rows ``fn`` gets in the teacher's place,
    as they are (not cut, not divided by the temperature): a cached teacher's top-k. ``vocab_limit``: cut the
    student's logits to this many rows (the rows the cache covers).

    ``fn`` gets float32 ``[n, V]`` student logits (with grad when the student's scores have it) and teacher
    logits (no grad; ``None`` without a teacher), both cut to the rows they share (``[:min(V_s, V_t)]``) and
    divided by ``temperature``, and the ``[n]`` target ids (``chunk_tokens`` per chunk: the argument, else the
    student scores' own setting, else derived from the vocabulary size); it returns ``[n]`` or ``[n, k]`` values. Under
    grad each chunk is recomputed in backward, so only one chunk's vocabulary-sized tensors are alive at once; a
    walk of a single chunk is not (plain autograd: nothing to gain from recomputing it).
    When an output layer is sharded across ranks (ZeRO-3), every rank walks the same number of chunks (empty
    ones where it has fewer tokens), because each call of the layer gathers its weight collectively."""
    s_scores = as_scores(student)
    t_scores = as_scores(teacher)
    assert s_scores is not None
    lead = mask.shape
    if s_scores.shape != lead or targets.shape != lead:
        raise ValueError(
            f"shape mismatch: scores {tuple(s_scores.source.shape)}, targets {tuple(targets.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    vocab = s_scores.vocab_size
    if t_scores is not None:
        if t_scores.shape != lead:
            raise ValueError(f"teacher scores {tuple(t_scores.source.shape)} do not match mask {tuple(lead)}")
        vocab = min(vocab, t_scores.vocab_size)
    if vocab_limit is not None:
        vocab = min(vocab, int(vocab_limit))
    if teacher_rows is not None and (t_scores is not None or tuple(teacher_rows.shape[:2]) != tuple(lead)):
        shape = tuple(teacher_rows.shape)
        raise ValueError(f"teacher_rows {shape} go without teacher scores, with the mask's leading shape {tuple(lead)}")
    idx = mask.reshape(-1).nonzero(as_tuple=True)[0]
    count = int(idx.numel())
    asked = chunk_tokens if chunk_tokens is not None else s_scores.chunk_tokens
    size = chunk_tokens_for(vocab, asked)
    n_chunks = math.ceil(count / size)
    if _needs_sync(s_scores, t_scores):
        n_chunks = _synced_chunks(n_chunks, idx.device)
    s_flat = s_scores.flat()
    t_flat = t_scores.flat().detach() if t_scores is not None else None
    packed = teacher_rows.reshape(-1, teacher_rows.size(-1)) if teacher_rows is not None else None
    flat_targets = targets.reshape(-1)
    inv_t = 1.0 / float(temperature)

    def chunk(s_src: torch.Tensor, t_src: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
        s = s_scores.rows(s_src, rows)[:, :vocab].float()
        t = None
        if t_scores is not None and t_src is not None:
            with torch.no_grad():
                t = t_scores.rows(t_src, rows)[:, :vocab].float()
        if inv_t != 1.0:
            s = s * inv_t
            t = t * inv_t if t is not None else None
        if packed is not None:
            t = packed.index_select(0, rows)
        # the teacher's rows may be a view of logits a phase reads again in its next PPO epoch: a write into them
        # shows in the source's version counter (a write into a private copy does not, and is harmless)
        seen = t_src._version if t_src is not None else 0
        out = fn(s, t, flat_targets.index_select(0, rows))
        if t_src is not None and t_src._version != seen:
            raise RuntimeError(
                "a divergence modified the teacher logits it was given in place; per_token must only read its "
                "inputs (compute into new tensors)"
            )
        return out

    # recompute in backward only when there is more than one chunk: a walk of one chunk holds one chunk's
    # tensors until backward either way, and plain autograd spares the second pass through the head
    recompute = torch.is_grad_enabled() and s_flat.requires_grad and n_chunks > 1
    parts = []
    for c in range(n_chunks):
        rows = idx[c * size : (c + 1) * size]
        if recompute:
            parts.append(checkpoint(chunk, s_flat, t_flat, rows, use_reentrant=False))
        else:
            parts.append(chunk(s_flat, t_flat, rows))
    if not parts:
        # keep the graph connected on an all-masked micro-batch: an empty slice, never nan
        return TokenWalk(idx, s_flat[:0, 0].float())
    return TokenWalk(idx, torch.cat(parts, dim=0))
