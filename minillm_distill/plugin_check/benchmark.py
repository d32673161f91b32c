"""Checks of a benchmark (:class:`~minillm_distill.benchmark.Benchmark`), offline:

* ``declaration``: ``data_format`` says what a local file looks like, ``length_buckets`` are ascending
  non-overlapping word ranges (only the last open-ended), ``scorer_packages`` maps import names to pip names;
* ``scorers``: the packages scoring needs import (else ``minillm eval`` refuses to start);
* ``records``: the benchmark's ``example_records`` (a few records in its own format; declare them to have
  ``parse_record`` checked) parse into examples with a non-empty instruction, string references and unique ids,
  and each gets a prompt (``format_prompt`` with the ``gpt2`` family) that holds its instruction.
"""

from __future__ import annotations

import functools

from minillm_distill.json_rows import RawRecord
from minillm_distill.plugin_check.cases import Case, Cases
from minillm_distill.plugin_check.result import CheckFailed, CheckPlan, fail_if


def _check_declaration(cls: type, case: Case) -> None:
    fail_if(
        not isinstance(cls.data_format, str) or not cls.data_format.strip(),
        "data_format is empty: a user with a file in the wrong format is told nothing about the right one",
    )
    buckets = cls.length_buckets
    fail_if(not isinstance(buckets, tuple) or not buckets, "length_buckets is not a non-empty tuple of (low, high)")
    previous_high = -1
    for i, bucket in enumerate(buckets):
        fail_if(not (isinstance(bucket, tuple) and len(bucket) == 2), f"length_buckets[{i}] is not (low, high)")
        low, high = bucket
        fail_if(not isinstance(low, int) or low <= previous_high, f"length_buckets[{i}] starts at {low!r}, not after "
                f"the previous bucket's end ({previous_high})")  # fmt: skip
        fail_if(high is None and i != len(buckets) - 1, f"length_buckets[{i}] is open-ended but not the last")
        fail_if(high is not None and (not isinstance(high, int) or high < low), f"length_buckets[{i}] is {bucket!r}")
        previous_high = high if high is not None else previous_high
    packages = cls.scorer_packages
    fail_if(not isinstance(packages, dict) or not all(isinstance(k, str) and isinstance(v, str)
            for k, v in packages.items()), "scorer_packages is not a dict of import name -> pip name")  # fmt: skip


def _check_scorers(cls: type, case: Case) -> None:
    try:
        cls().check_scorers()
    except Exception as exc:
        raise CheckFailed(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}") from exc


def _check_records(cls: type, case: Case) -> None:
    from minillm_distill.benchmark import EvalExample
    from minillm_distill.plugins import get_plugins

    records = cls.example_records
    if not records:
        return  # nothing declared to parse: `minillm plugins check` notes it
    bench = cls()
    examples = bench.parse_records([RawRecord(dict(r), f"example_records[{i}]") for i, r in enumerate(records)])
    fail_if(not isinstance(examples, list) or not examples, "example_records parse into no example")
    family = get_plugins().model_families.get("gpt2")()
    ids = []
    for ex in examples:
        fail_if(not isinstance(ex, EvalExample), f"parse_record returned {type(ex).__name__}, not EvalExample")
        fail_if(not ex.instruction.strip(), f"example {ex.id!r} has an empty instruction")
        fail_if(not ex.references, f"example {ex.id!r} has no reference")
        prompt = bench.format_prompt(ex, family)
        fail_if(not isinstance(prompt, str) or ex.instruction not in prompt,
                f"the prompt of example {ex.id!r} does not hold its instruction")  # fmt: skip
        ids.append(ex.id)
    fail_if(len(set(ids)) != len(ids), f"example ids repeat: {ids}")


_CHECKS = {"declaration": _check_declaration, "scorers": _check_scorers, "records": _check_records}


def plan_benchmark(cls: type, name: str | None = None) -> CheckPlan:
    """The checks of a benchmark class (one case), not yet run."""
    checks = {check: functools.partial(fn, cls) for check, fn in _CHECKS.items()}
    return CheckPlan("benchmark", name or cls.name, Cases([Case({}, "declared")]), checks)


def notes(cls: type) -> list[str]:
    """What the checks could not look at."""
    if not getattr(cls, "example_records", ()):
        return ["no example_records declared: parse_record was not checked"]
    return []
