"""The outcome of one check of one plugin, as ``minillm plugins check`` prints it."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CheckResult:
    """``plugin`` x ``check``: passed or not, how many option sets it ran, and what failed first."""

    kind: str  # "divergence" | "sampler"
    name: str
    check: str
    passed: bool
    cases: int = 0
    failure: str | None = None
    distribution: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "name": self.name,
            "distribution": self.distribution,
            "check": self.check,
            "passed": self.passed,
            "cases": self.cases,
            "failure": self.failure,
        }


class CheckFailed(Exception):
    """Raised inside a check with what went wrong (the first failure of a check is reported)."""


def fail_if(condition: bool, message: str | Callable[[], str]) -> None:
    """Fail the check with ``message`` (a string, or a function computing it) when ``condition`` holds."""
    if condition:
        raise CheckFailed(message() if callable(message) else message)


def _where(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc``'s traceback (where the plugin's code raised)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {Path(last.filename).name}:{last.lineno})"


def run_cases(kind: str, name: str, check: str, cases: list[Any], fn: Callable[[Any], None]) -> CheckResult:
    """Run ``fn(case)`` for every case; the first failure (a :class:`CheckFailed` or any exception the
    plugin raised) fails the check, naming the case."""
    for case in cases:
        try:
            fn(case)
        except CheckFailed as exc:
            return CheckResult(kind, name, check, False, len(cases), f"{case}: {exc}")
        except Exception as exc:  # the plugin's own code raised
            text = getattr(exc, "message", None) or str(exc)  # a MinillmError's one-line message
            failure = f"{case}: raised {type(exc).__name__}: {text}{_where(exc)}"
            return CheckResult(kind, name, check, False, len(cases), failure)
    return CheckResult(kind, name, check, True, len(cases))


def check_all(kind: str, name: str, found: Any, checks: dict[str, Callable[[Any], None]]) -> list[CheckResult]:
    """The results of one plugin: a failed ``declared values`` check when some of the values its ``Params``
    declares were rejected (``found.rejected``), then one result per entry of ``checks`` (check name ->
    ``fn(case)``) over the cases that were built (``found.cases``, a
    :class:`~minillm_distill.plugin_check.cases.Cases`)."""
    results = []
    if found.rejected:
        results.append(
            CheckResult(kind, name, "declared values", False, len(found.rejected), "; ".join(found.rejected))
        )
    results.extend(run_cases(kind, name, check, found.cases, fn) for check, fn in checks.items())
    return results


@dataclass
class CheckPlan:
    """The checks of one plugin class, before they run: its option sets (``found``) and check name ->
    ``fn(case)``. :meth:`run` is what ``minillm plugins check`` prints; :meth:`run_one` runs one check on one
    option set (the test kit makes each pair a pytest test)."""

    kind: str
    name: str
    found: Any
    checks: dict[str, Callable[[Any], None]]

    def run(self) -> list[CheckResult]:
        return check_all(self.kind, self.name, self.found, self.checks)

    def run_one(self, check: str, case: Any) -> CheckResult:
        if check == "declared values":
            passed = not self.found.rejected
            return CheckResult(self.kind, self.name, check, passed, len(self.found.rejected),
                               None if passed else "; ".join(self.found.rejected))  # fmt: skip
        return run_cases(self.kind, self.name, check, [case], self.checks[check])
