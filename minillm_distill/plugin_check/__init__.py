"""``minillm plugins check``: property checks of installed divergences, samplers, model families and
benchmarks, shipped with minillm so that a plugin author needs no source checkout.

* token-level divergences: :mod:`minillm_distill.plugin_check.token`;
* sequence-level divergences: :mod:`minillm_distill.plugin_check.sequence`;
* samplers (the :class:`~minillm_distill.rollout.RolloutBatch` contract, on tiny models):
  :mod:`minillm_distill.plugin_check.sampler`;
* model families (a tiny model built, saved and loaded back; the prompt): :mod:`minillm_distill.plugin_check.family`;
* benchmarks (declarations, scorers, ``example_records`` parsed): :mod:`minillm_distill.plugin_check.benchmark`;
* which option values are tried (``Params.check_values``, or derived from the fields):
  :mod:`minillm_distill.plugin_check.cases`.

Each check runs over every option set and reports one :class:`CheckResult` (passed, or the first failure with
the options and the input that broke it). A plugin's own tests can call the same functions::

    from minillm_distill.api import check_divergence
    assert all(r.passed for r in check_divergence(MyDivergence)), check_divergence(MyDivergence)
"""

from __future__ import annotations

from typing import Any

from minillm_distill.plugin_check.cases import Case, Cases, param_cases
from minillm_distill.plugin_check.result import CheckPlan, CheckResult

__all__ = [
    "Case",
    "Cases",
    "CheckPlan",
    "CheckResult",
    "check_divergence",
    "check_plan",
    "check_sampler",
    "param_cases",
    "tiny_models",
]


def check_divergence(cls: type[Any], name: str | None = None) -> list[CheckResult]:
    """The checks of a token-level or sequence-level divergence class."""
    from minillm_distill.divergence import SequenceDivergence, TokenDivergence

    if issubclass(cls, TokenDivergence):
        from minillm_distill.plugin_check.token import check_token_divergence

        return check_token_divergence(cls, name)
    if issubclass(cls, SequenceDivergence):
        from minillm_distill.plugin_check.sequence import check_sequence_divergence

        return check_sequence_divergence(cls, name)
    raise TypeError(f"{cls!r} is neither a TokenDivergence nor a SequenceDivergence")


def check_sampler(cls: type[Any], name: str | None = None) -> list[CheckResult]:
    """The checks of a sampler class, on tiny models built from configs."""
    from minillm_distill.plugin_check.sampler import check_sampler as run

    return run(cls, name)


def check_plan(cls: type[Any], name: str | None = None) -> CheckPlan:
    """The checks of a divergence, sampler, model family or benchmark class and its option sets, not yet run:
    ``.run()`` gives every result (what ``minillm plugins check`` prints), ``.run_one(check, case)`` one check on
    one option set."""
    from minillm_distill.divergence import SequenceDivergence, TokenDivergence
    from minillm_distill.sampler import Sampler

    if isinstance(cls, type) and issubclass(cls, Sampler):
        from minillm_distill.plugin_check.sampler import plan_sampler

        return plan_sampler(cls, name)
    if isinstance(cls, type) and issubclass(cls, TokenDivergence):
        from minillm_distill.plugin_check.token import plan_token_divergence

        return plan_token_divergence(cls, name)
    if isinstance(cls, type) and issubclass(cls, SequenceDivergence):
        from minillm_distill.plugin_check.sequence import plan_sequence_divergence

        return plan_sequence_divergence(cls, name)
    from minillm_distill.benchmark import Benchmark
    from minillm_distill.model_family import ModelFamily

    if isinstance(cls, type) and issubclass(cls, ModelFamily):
        from minillm_distill.plugin_check.family import plan_model_family

        return plan_model_family(cls, name)
    if isinstance(cls, type) and issubclass(cls, Benchmark):
        from minillm_distill.plugin_check.benchmark import plan_benchmark

        return plan_benchmark(cls, name)
    raise TypeError(f"{cls!r} is not a divergence, sampler, model family or benchmark class")


def tiny_models() -> Any:
    """What the sampler checks run on (built once per process): ``.student`` and ``.teacher`` (tiny GPT-2s
    sharing the byte-level ``.tokenizer``), ``.batch`` (a :class:`~minillm_distill.rollout.PromptBatch` of three
    prompts with gold responses), ``.eos`` (the EOS ids) and ``.vocab`` (the vocabulary size)."""
    from minillm_distill.plugin_check.sampler import build_check_models

    return build_check_models()
