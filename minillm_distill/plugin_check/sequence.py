"""Checks of a sequence-level divergence (:class:`~minillm_distill.divergence.SequenceDivergence`) on synthetic
rollouts: two micro-batches of three responses of different lengths (one of a single token), with
:class:`~minillm_distill.scoring.walk.ResponseScores` from hidden states and a linear output layer, as in training.
Tokens are drawn from a teacher-student mixture, and the rollouts carry what ``teacher_mixed`` records
(behaviour and teacher log-probs, importance weights, ``sampling_probs``), consistent with the scores.

Inputs: ordinary logits, vocabulary entries masked with ``-inf`` (an output-layer bias of ``-inf``), and
logits spread over 150 nats, so that tokens the teacher drew have probabilities that underflow to 0 under
the student. For every option set of :func:`~minillm_distill.plugin_check.cases.param_cases`:

* ``prepare``: one dict of finite tensors per micro-batch, finite phase metrics;
* ``loss``: a finite 0-dim loss and metrics per micro-batch, finite gradients for the student's hidden states
  and output layer, none for ``-inf`` entries;
* ``zero at equal``: with student = teacher = the sampling policy, the loss and its gradient are 0;
* ``micro-batch split``: the two micro-batches' contributions (with the step's global :class:`StepNorm`) sum
  to the loss and gradient of the same six responses as one micro-batch, so the step's loss does not depend
  on ``micro_batch_size`` or the number of ranks;
* ``pretrain_loss``: finite value, metrics and gradients on a pretraining block.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from minillm_distill.divergence import Reducer, SequenceDivergence, StepNorm
from minillm_distill.plugin_check.cases import Case, param_cases
from minillm_distill.plugin_check.result import CheckFailed, CheckPlan, CheckResult, fail_if
from minillm_distill.rollout import RolloutBatch
from minillm_distill.scoring.walk import OutputHead, ResponseScores

VOCAB, HIDDEN, T = 11, 8, 6
LENGTHS = ((6, 4, 1), (3, 6, 5))  # response lengths of the two micro-batches
BLOCKED = (2, 7)
ZERO_TOLERANCE = 1e-5

SEQUENCE_CHECKS = ("prepare", "loss", "zero at equal", "micro-batch split", "pretrain_loss")
SPLIT_RTOL, SPLIT_ATOL = 1e-4, 1e-6


@dataclass
class Model:
    """A model's final hidden states per micro-batch and its output layer."""

    hidden: list[torch.Tensor]
    head: torch.nn.Linear

    def scores(self, i: int, grad: bool) -> ResponseScores:
        h = self.hidden[i].detach().clone().requires_grad_(grad)
        return ResponseScores(hidden=h, head=OutputHead(self.head))

    def logits(self, i: int) -> torch.Tensor:
        with torch.no_grad():
            return self.head(self.hidden[i]).float()


@dataclass
class Setup:
    name: str
    student: Model
    teacher: Model
    batches: list[RolloutBatch]
    blocked: tuple[int, ...] = ()


def _model(seed: int, scale: float, blocked: tuple[int, ...], spread: bool) -> Model:
    g = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(HIDDEN, VOCAB, bias=True)
    with torch.no_grad():
        head.weight.copy_(torch.randn(VOCAB, HIDDEN, generator=g) * scale)
        bias = torch.zeros(VOCAB)
        if spread:  # 150 nats between the first and the last entry (reversed for odd seeds)
            ramp = torch.linspace(0.0, -150.0, VOCAB)
            bias = ramp.flip(0) if seed % 2 else ramp
        if blocked:
            bias[list(blocked)] = -math.inf
        head.bias.copy_(bias)
    head.bias.requires_grad_(False)
    hidden = [torch.randn(len(lengths), T, HIDDEN, generator=g) for lengths in LENGTHS]
    return Model(hidden, head)


def _rollouts(student: Model, teacher: Model, alpha: float, seed: int) -> list[RolloutBatch]:
    """Tokens drawn from (1 - alpha) q + alpha p, with the log-probs and weights a sampler records."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, lengths in enumerate(LENGTHS):
        b = len(lengths)
        logq = torch.log_softmax(student.logits(i), dim=-1)
        logp = torch.log_softmax(teacher.logits(i), dim=-1)
        m = (1 - alpha) * logq.exp() + alpha * logp.exp()
        ids = torch.multinomial(m.reshape(-1, VOCAB), 1, generator=g).reshape(b, T)
        mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
        q_y, p_y = logq.gather(-1, ids[..., None])[..., 0], logp.gather(-1, ids[..., None])[..., 0]
        m_y = m.gather(-1, ids[..., None])[..., 0]
        zero = torch.zeros_like(q_y)
        weights = torch.where(mask, q_y.exp() / m_y, torch.ones_like(q_y))
        out.append(
            RolloutBatch(
                prompt_ids=torch.ones(b, 3, dtype=torch.long),
                prompt_mask=torch.ones(b, 3, dtype=torch.long),
                response_ids=torch.where(mask, ids, torch.zeros_like(ids)),
                response_mask=mask.long(),
                behaviour_logprobs=torch.where(mask, q_y, zero),
                teacher_logprobs=torch.where(mask, p_y, zero),
                importance_weights=weights,
                source="plugins-check",
                extras={"sampling_probs": torch.where(mask, m_y, torch.ones_like(m_y))},
            )
        )
    return out


def setups() -> list[Setup]:
    """The synthetic phases the checks run on (deterministic)."""
    out = []
    for k, (name, scale, blocked, spread) in enumerate(
        [
            ("ordinary logits", 1.0, (), False),
            ("-inf logits (masked vocabulary entries)", 1.0, BLOCKED, False),
            ("tiny probabilities (underflow to 0)", 1.0, (), True),
        ]
    ):
        student = _model(100 + 2 * k, scale, blocked, spread)
        teacher = _model(101 + 2 * k, scale * 2, blocked, spread)
        out.append(Setup(name, student, teacher, _rollouts(student, teacher, 0.3, 200 + k), blocked))
    return out


def equal_setup() -> Setup:
    """Student = teacher, and the tokens drawn from that same distribution (weights 1)."""
    model = _model(300, 1.0, BLOCKED, False)
    return Setup("student = teacher = sampler", model, model, _rollouts(model, model, 0.0, 301), BLOCKED)


def _make(cls: type[SequenceDivergence], case: Case) -> SequenceDivergence:
    return cls(cls.Params.model_validate(case.options))


def _finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value.detach().float()).all())
    return math.isfinite(float(value))


def _prepare(div: SequenceDivergence, setup: Setup) -> list[dict[str, torch.Tensor]]:
    result = div.prepare(setup.batches, Reducer())
    fail_if(
        not (isinstance(result, tuple) and len(result) == 2),
        f"prepare returned {type(result).__name__}, not (prepared, metrics)",
    )
    prepared, metrics = result
    fail_if(
        not isinstance(prepared, list) or len(prepared) != len(setup.batches),
        f"prepare returned {len(prepared) if isinstance(prepared, list) else type(prepared).__name__} prepared "
        f"entries for {len(setup.batches)} micro-batches",
    )
    for i, item in enumerate(prepared):
        fail_if(not isinstance(item, dict), f"prepared[{i}] is {type(item).__name__}, not a dict of tensors")
        for key, value in item.items():
            fail_if(not isinstance(value, torch.Tensor), f"prepared[{i}][{key!r}] is not a tensor")
            fail_if(not _finite(value), f"prepared[{i}][{key!r}] has nan/inf values at {setup.name}")
    fail_if(not isinstance(metrics, dict), f"prepare's metrics are {type(metrics).__name__}, not a dict")
    for key, value in metrics.items():
        fail_if(not _finite(value), f"phase metric {key!r} is {value} at {setup.name}")
    return prepared


def _norm(setup: Setup) -> StepNorm:
    tokens = sum(int(b.response_mask.sum()) for b in setup.batches)
    return StepNorm(tokens, sum(b.response_ids.size(0) for b in setup.batches))


def _loss(div: SequenceDivergence, setup: Setup, i: int, prepared: dict[str, torch.Tensor]):
    student = setup.student.scores(i, grad=True)
    setup.student.head.zero_grad()
    loss, metrics = div.loss(student, setup.teacher.scores(i, grad=False), setup.batches[i], prepared, _norm(setup))
    fail_if(not isinstance(loss, torch.Tensor) or loss.dim() != 0, "loss did not return a 0-dim tensor")
    fail_if(not _finite(loss), f"the loss is {loss.item()} at {setup.name}, micro-batch {i}")
    for key, value in metrics.items():
        fail_if(not _finite(value), f"loss metric {key!r} is {value} at {setup.name}, micro-batch {i}")
    return loss, student


def _grads_finite(loss: torch.Tensor, student: ResponseScores, setup: Setup, where: str) -> list[torch.Tensor]:
    if not loss.requires_grad:
        return []
    loss.backward()
    grads = [g for g in (student.hidden.grad, setup.student.head.weight.grad) if g is not None]
    for g in grads:
        fail_if(not bool(torch.isfinite(g).all()), f"the gradient has nan/inf entries at {where}")
    return grads


def _check_prepare(cls: type[SequenceDivergence], case: Case) -> None:
    for setup in setups():
        _prepare(_make(cls, case), setup)


def _check_loss(cls: type[SequenceDivergence], case: Case) -> None:
    for setup in setups():
        div = _make(cls, case)
        prepared = _prepare(div, setup)
        for i in range(len(setup.batches)):
            loss, student = _loss(div, setup, i, prepared[i])
            _grads_finite(loss, student, setup, f"{setup.name}, micro-batch {i}")
            weight_grad = setup.student.head.weight.grad
            if setup.blocked and weight_grad is not None:
                fail_if(
                    bool((weight_grad[list(setup.blocked)] != 0).any()),
                    f"-inf vocabulary entries get a gradient at {setup.name}",
                )


def _check_equal(cls: type[SequenceDivergence], case: Case) -> None:
    setup = equal_setup()
    div = _make(cls, case)
    prepared = _prepare(div, setup)
    for i in range(len(setup.batches)):
        loss, student = _loss(div, setup, i, prepared[i])
        if abs(loss.item()) > ZERO_TOLERANCE:
            raise CheckFailed(f"the loss is {loss.item():.4g}, not 0, at {setup.name} (micro-batch {i})")
        for g in _grads_finite(loss, student, setup, setup.name):
            largest = g.abs().max().item()
            if largest > ZERO_TOLERANCE:
                raise CheckFailed(f"the gradient is {largest:.4g}, not 0, at {setup.name} (micro-batch {i})")


def _joined(setup: Setup) -> Setup:
    """The same responses as one micro-batch (both micro-batches have ``T`` positions)."""
    import dataclasses

    def cat(values: list[Any]) -> Any:
        if all(v is None for v in values):
            return None
        if isinstance(values[0], torch.Tensor):
            return torch.cat(values, dim=0)
        if isinstance(values[0], dict):
            return {k: cat([v[k] for v in values]) for k in values[0]}
        return values[0]

    fields = {f.name: cat([getattr(b, f.name) for b in setup.batches]) for f in dataclasses.fields(RolloutBatch)}
    one = RolloutBatch(**fields)

    def model(m: Model) -> Model:
        return Model([torch.cat(m.hidden, dim=0)], m.head)

    return Setup(setup.name, model(setup.student), model(setup.teacher), [one], setup.blocked)


def _check_split(cls: type[SequenceDivergence], case: Case) -> None:
    for setup in setups()[:2]:
        div = _make(cls, case)
        prepared = _prepare(div, setup)
        total, hidden_grads = 0.0, []
        setup.student.head.zero_grad()
        for i in range(len(setup.batches)):
            student = setup.student.scores(i, grad=True)
            teacher = setup.teacher.scores(i, grad=False)
            loss, _ = div.loss(student, teacher, setup.batches[i], prepared[i], _norm(setup))
            if loss.requires_grad:
                loss.backward()
            total += loss.item()
            hidden_grads.append(student.hidden.grad if student.hidden.grad is not None else torch.zeros(0))
        split_weight = setup.student.head.weight.grad
        split_weight = split_weight.clone() if split_weight is not None else None

        one = _joined(setup)
        div = _make(cls, case)
        (joined_prepared,), _ = div.prepare(one.batches, Reducer())
        student = one.student.scores(0, grad=True)
        one.student.head.zero_grad()
        loss, _ = div.loss(student, one.teacher.scores(0, grad=False), one.batches[0], joined_prepared, _norm(one))
        if loss.requires_grad:
            loss.backward()
        if abs(loss.item() - total) > SPLIT_ATOL + SPLIT_RTOL * abs(loss.item()):
            raise CheckFailed(
                f"two micro-batches sum to {total:.6g}, the same responses as one give {loss.item():.6g}, at "
                f"{setup.name}: divide by the step's global counts (norm.tokens, norm.sequences), not the "
                "micro-batch's own"
            )
        pairs = [(torch.cat(hidden_grads, dim=0), student.hidden.grad), (split_weight, one.student.head.weight.grad)]
        for got, want in pairs:
            if got is None or want is None or got.numel() == 0:
                continue
            if not torch.allclose(got, want, rtol=SPLIT_RTOL, atol=SPLIT_ATOL):
                raise CheckFailed(
                    f"the gradient of two micro-batches differs from that of one (max difference "
                    f"{float((got - want).abs().max()):.3g}) at {setup.name}"
                )


def _check_pretrain(cls: type[SequenceDivergence], case: Case) -> None:
    for setup in setups():
        div = _make(cls, case)
        student = setup.student.scores(0, grad=True)
        teacher = setup.teacher.scores(0, grad=False) if getattr(div.params, "kd_ratio", 0.0) > 0 else None
        g = torch.Generator().manual_seed(5)
        targets = torch.randint(0, VOCAB, tuple(student.shape), generator=g)
        if setup.blocked:
            blocked = torch.zeros(VOCAB, dtype=torch.bool)
            blocked[list(setup.blocked)] = True
            targets = torch.where(blocked[targets], torch.zeros_like(targets), targets)
        mask = torch.ones_like(targets, dtype=torch.bool)
        setup.student.head.zero_grad()
        loss, metrics = div.pretrain_loss(student, teacher, targets, mask, float(mask.numel()))
        fail_if(not isinstance(loss, torch.Tensor) or loss.dim() != 0, "pretrain_loss did not return a 0-dim tensor")
        fail_if(not _finite(loss), f"pretrain_loss is {loss.item()} at {setup.name}")
        for key, value in metrics.items():
            fail_if(not _finite(value), f"pretrain metric {key!r} is {value} at {setup.name}")
        _grads_finite(loss, student, setup, f"{setup.name} (pretraining block)")


_CHECKS = {
    "prepare": _check_prepare,
    "loss": _check_loss,
    "zero at equal": _check_equal,
    "micro-batch split": _check_split,
    "pretrain_loss": _check_pretrain,
}


def plan_sequence_divergence(cls: type[SequenceDivergence], name: str | None = None) -> CheckPlan:
    """The sequence-level checks of ``cls`` and its option sets, not yet run."""
    checks = {check: functools.partial(fn, cls) for check, fn in _CHECKS.items()}
    return CheckPlan("divergence", name or getattr(cls, "name", cls.__name__), param_cases(cls.Params), checks)


def check_sequence_divergence(cls: type[SequenceDivergence], name: str | None = None) -> list[CheckResult]:
    """Every sequence-level check of ``cls`` over its option sets; one result per check."""
    return plan_sequence_divergence(cls, name).run()
