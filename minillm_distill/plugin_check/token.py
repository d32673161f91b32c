"""Checks of a token-level divergence (:class:`~minillm_distill.divergence.TokenDivergence`).

For every option set of :func:`~minillm_distill.plugin_check.cases.param_cases` and every input of
:func:`~minillm_distill.plugin_check.inputs.logit_pairs` (temperature applied as the core applies it):

* ``per_token shape``: a float tensor of shape ``[N]`` for ``N`` rows (1 and 16);
* ``finite``: no nan or inf;
* ``non-negative``: no value below :data:`~minillm_distill.divergence.NEGATIVE_TOLERANCE`;
* ``zero at equal``: D(p, p) = 0, also when p comes from shifted logits (divergences with a teacher);
* ``gradient``: through the core (:func:`~minillm_distill.divergence.token_divergence_loss`, masked positions
  holding garbage), the loss and the student-logit gradient are finite, and ``-inf`` entries get none.
"""

from __future__ import annotations

import functools
import math

import torch

from minillm_distill.divergence import NEGATIVE_TOLERANCE, TokenDivergence, token_divergence_loss
from minillm_distill.plugin_check.cases import Case, param_cases
from minillm_distill.plugin_check.inputs import LogitPair, logit_pairs
from minillm_distill.plugin_check.result import CheckFailed, CheckPlan, CheckResult, fail_if

#: |D(p, p)| above this fails ``zero at equal``
IDENTITY_TOLERANCE = 1e-4

TOKEN_CHECKS = ("per_token shape", "finite", "non-negative", "zero at equal", "gradient")


def _make(cls: type[TokenDivergence], case: Case) -> TokenDivergence:
    return cls(cls.Params.model_validate(case.options))


def _temperature(div: TokenDivergence) -> float:
    return float(getattr(div.params, "temperature", 1.0))


def _values(div: TokenDivergence, pair: LogitPair, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    inv = 1.0 / _temperature(div)
    with torch.no_grad():
        out = div.per_token(student * inv, teacher * inv if div.needs_teacher else None, pair.targets)
    fail_if(not isinstance(out, torch.Tensor), f"per_token returned {type(out).__name__}, not a tensor")
    fail_if(
        tuple(out.shape) != (pair.targets.numel(),),
        f"per_token returned shape {tuple(out.shape)} for {pair.targets.numel()} rows",
    )
    return out.detach().float()


def _fail_where(bad: torch.Tensor, values: torch.Tensor, what: str, pair: LogitPair, prefix: str = "") -> None:
    """Fail naming how many values are bad, one of them, and the input, when any of ``bad`` is set."""
    if bool(bad.any()):
        first = values[bad][0].item()
        count = f"{int(bad.sum())} of {values.numel()} values"
        raise CheckFailed(f"{prefix}{count} {what} (e.g. {first:.4g}) at {pair.name}")


def _check_shape(cls: type[TokenDivergence], case: Case) -> None:
    div = _make(cls, case)
    g = torch.Generator().manual_seed(0)
    for n in (1, 16):
        s, t = torch.randn(n, 11, generator=g), torch.randn(n, 11, generator=g)
        out = div.per_token(s, t if div.needs_teacher else None, torch.randint(0, 11, (n,), generator=g))
        fail_if(not isinstance(out, torch.Tensor), f"per_token returned {type(out).__name__}, not a tensor")
        fail_if(tuple(out.shape) != (n,), f"per_token returned shape {tuple(out.shape)} for {n} rows; expected ({n},)")
        fail_if(not out.is_floating_point(), f"per_token returned dtype {out.dtype}, not a float tensor")


def _check_finite(cls: type[TokenDivergence], case: Case) -> None:
    div = _make(cls, case)
    for pair in logit_pairs():
        values = _values(div, pair, pair.student, pair.teacher)
        bad = ~torch.isfinite(values)
        _fail_where(bad, values, "not finite", pair)


def _check_nonnegative(cls: type[TokenDivergence], case: Case) -> None:
    div = _make(cls, case)
    for pair in logit_pairs():
        values = _values(div, pair, pair.student, pair.teacher)
        bad = values < NEGATIVE_TOLERANCE
        _fail_where(bad, values, f"below {NEGATIVE_TOLERANCE:g}", pair)


def _check_identity(cls: type[TokenDivergence], case: Case) -> None:
    div = _make(cls, case)
    for pair in logit_pairs():
        same = [("D(p, p)", pair.student)]
        if "scale 3" in pair.name or "-inf" in pair.name:
            same.append(("D(p, p) from shifted logits", pair.student + 7.5))
        for label, other in same:
            values = _values(div, pair, pair.student, other)
            bad = ~(values.abs() <= IDENTITY_TOLERANCE)
            _fail_where(bad, values, "nonzero", pair, prefix=f"{label} is not 0: ")


def _garbage_positions(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked-out positions hold what real runs leave there: -inf rows and huge values."""
    x = x.clone()
    junk = torch.full_like(x[0, 0], -math.inf)
    junk[0] = 3.0e38
    x[~mask] = junk
    return x


def _check_gradient(cls: type[TokenDivergence], case: Case) -> None:
    div = _make(cls, case)
    for pair in logit_pairs():
        b, t = 2, pair.targets.numel() // 2
        shape = (b, t, pair.student.size(-1))
        mask = torch.ones(b, t, dtype=torch.bool)
        mask[0, -2:] = False
        mask[1, -1] = False
        student = _garbage_positions(pair.student.reshape(shape), mask).requires_grad_()
        teacher = _garbage_positions(pair.teacher.reshape(shape), mask)
        targets = pair.targets.reshape(b, t).masked_fill(~mask, -100)
        loss = token_divergence_loss(div, student, teacher if div.needs_teacher else None, targets, mask)
        if not bool(torch.isfinite(loss)):
            raise CheckFailed(f"the loss is {loss.item()} at {pair.name}")
        loss.backward()
        grad = student.grad
        fail_if(grad is None, "no gradient reaches the student's logits")
        assert grad is not None
        fail_if(not bool(torch.isfinite(grad).all()), f"the gradient has nan/inf entries at {pair.name}")
        if pair.blocked:
            blocked = grad[..., list(pair.blocked)][mask]
            fail_if(bool((blocked != 0).any()), f"-inf vocabulary entries get a gradient at {pair.name}")


_CHECKS = {
    "per_token shape": _check_shape,
    "finite": _check_finite,
    "non-negative": _check_nonnegative,
    "zero at equal": _check_identity,
    "gradient": _check_gradient,
}


def plan_token_divergence(cls: type[TokenDivergence], name: str | None = None) -> CheckPlan:
    """The token-level checks of ``cls`` and its option sets, not yet run."""
    checks = {
        check: functools.partial(fn, cls)
        for check, fn in _CHECKS.items()
        if cls.needs_teacher or check != "zero at equal"  # a teacher-free loss (sft) has no D(p, p)
    }
    return CheckPlan("divergence", name or getattr(cls, "name", cls.__name__), param_cases(cls.Params), checks)


def check_token_divergence(cls: type[TokenDivergence], name: str | None = None) -> list[CheckResult]:
    """Every token-level check of ``cls`` over its option sets; one result per check."""
    return plan_token_divergence(cls, name).run()
