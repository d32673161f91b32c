"""``minillm plugins check``: which option values it tries, that it passes correct plugins and fails broken ones
(a NaN for one declared ``Params`` value, a NaN at ``-inf`` logits, a nonzero D(p, p), NaN gradients of a
sequence-level loss, samplers breaking the RolloutBatch contract), through the CLI with exit code 4."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint
from typing import Any, ClassVar, Literal

import pytest
import torch
from helpers import PLUGIN_FIXTURES
from pydantic import Field

import minillm_distill.plugins as plugins_mod
from minillm_distill.api import PluginParams, TokenDivergenceParams
from minillm_distill.errors import ExitCode
from minillm_distill.plugin_check import check_divergence, param_cases
from minillm_distill.plugin_check.sampler import build_check_models, check_sampler
from minillm_distill.plugins import DISABLE_ENV, load_plugins

FIXTURES = PLUGIN_FIXTURES


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def broken(monkeypatch):
    """The fixture plugins ``broken`` (divergences) and ``broken_samplers`` visible to the CLI."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    monkeypatch.syspath_prepend(str(FIXTURES))
    for mod in [m for m in sys.modules if m.startswith("fx_")]:
        del sys.modules[mod]
    real = plugins_mod.entry_points
    fakes = [
        EntryPoint(name="broken", value="fx_broken_divergences", group="minillm"),
        EntryPoint(name="broken_samplers", value="fx_broken_samplers", group="minillm"),
        EntryPoint(name="plain", value="fx_plain_divergence", group="minillm"),
    ]
    monkeypatch.setattr(plugins_mod, "entry_points", lambda group: [*real(group=group), *fakes])
    import fx_broken_divergences
    import fx_broken_samplers

    return fx_broken_divergences, fx_broken_samplers


def _by_check(results) -> dict[str, Any]:
    return {r.check: r for r in results}


# ------------------------------------------------------------------------------------------ option values


class _Mode(PluginParams):
    flag: bool = False
    kind: Literal["a", "b", "c"] = "b"
    count: int = Field(4, ge=1, le=6)
    rate: float = Field(0.5, gt=0, le=1)
    cap: float | None = Field(None, ge=0)
    label: str = "x"


def test_derived_values_from_types_and_bounds():
    labels = [c.label for c in param_cases(_Mode).cases]
    # bool: the other value; Literal: the other choices; int: bounds, then twice the default (8 > le: dropped);
    # float gt 0 / le 1: the inclusive bound 1.0, half the default (2x = 1.0 is the bound already); None-default
    # optional: the inner type's bound 0.0 and 1.0; str: nothing
    assert labels == [
        "defaults",
        "flag=True",
        "kind='a'",
        "kind='c'",
        "count=1",
        "count=6",
        "rate=1.0",
        "rate=0.25",
        "cap=0.0",
        "cap=1.0",
    ]


class _Declared(TokenDivergenceParams):
    check_values: ClassVar[dict[str, Sequence[Any]]] = {"k": (1, 3, -2), "temperature": ()}
    k: int = Field(0, ge=0)


class _DeclaredChild(_Declared):
    check_values: ClassVar[dict[str, Sequence[Any]]] = {"k": (5,)}


def test_declared_values_replace_derived_ones_and_bad_declarations_are_reported():
    found = param_cases(_Declared)
    assert [c.options for c in found.cases] == [{}, {"k": 1}, {"k": 3}]  # temperature: () switches it off
    assert len(found.rejected) == 1 and found.rejected[0].startswith("k=-2: ")
    child = param_cases(_DeclaredChild)  # inherits temperature: (), overrides k
    assert [c.options for c in child.cases] == [{}, {"k": 5}] and child.rejected == []


def test_builtin_jsd_is_varied_through_beta():
    cls = load_plugins().divergences.get("jsd")
    assert [c.options for c in param_cases(cls.Params).cases] == [
        {},
        {"temperature": 0.5},
        {"temperature": 2.0},
        {"beta": 0.0},
        {"beta": 1.0},
        {"beta": 0.25},
    ]


# ------------------------------------------------------------------------------------------ divergences


def test_nan_for_one_declared_value_fails_naming_it(broken):
    results = _by_check(check_divergence(broken[0].TopKKL))
    assert results["per_token shape"].passed and results["non-negative"].passed
    finite = results["finite"]
    assert not finite.passed and finite.cases == 5  # defaults, temperature 0.5 and 2, k = 1 and 3
    assert finite.failure.startswith("k=1: 16 of 16 values not finite (e.g. nan) at random logits")


def test_nan_only_at_minus_inf_logits_fails(broken):
    results = _by_check(check_divergence(broken[0].UnclampedKL))
    assert not results["finite"].passed
    assert results["finite"].failure.startswith("defaults: ")
    assert results["finite"].failure.endswith("at -inf logits (masked vocabulary entries)")
    assert not results["gradient"].passed and "-inf logits" in results["gradient"].failure


def test_nonzero_at_equal_distributions_fails(broken):
    results = _by_check(check_divergence(broken[0].ShiftedKL))
    assert [c for c, r in results.items() if not r.passed] == ["zero at equal"]
    assert "D(p, p) is not 0" in results["zero at equal"].failure and "0.01" in results["zero at equal"].failure


def test_sequence_divergence_with_nan_gradients_at_minus_inf_fails(broken):
    results = _by_check(check_divergence(broken[0].NaiveReinforce))
    assert results["prepare"].passed and results["pretrain_loss"].passed
    assert not results["loss"].passed
    assert results["loss"].failure == (
        "defaults: the gradient has nan/inf entries at -inf logits (masked vocabulary entries), micro-batch 0"
    )


def test_sequence_divergence_normalising_by_its_own_micro_batch_fails_the_split_check(broken):
    results = _by_check(check_divergence(broken[0].LocalMean))
    assert [c for c, r in results.items() if not r.passed] == ["micro-batch split"]
    failure = results["micro-batch split"].failure
    assert failure.startswith("defaults: two micro-batches sum to ") and "norm.tokens" in failure


# ------------------------------------------------------------------------------------------ samplers


@pytest.fixture(scope="module")
def models():
    return build_check_models()


def test_builtin_teacher_mixed_sampler_keeps_the_contract(models):
    """Student and teacher decode together: every field of the RolloutBatch is filled and checked."""
    results = check_sampler(load_plugins().samplers.get("teacher_mixed"), "teacher_mixed", models)
    assert [r.check for r in results] == [
        "contract",
        "EOS inside the mask",
        "log-probs",
        "reproducible",
        "checkpointable",
        "synced (ZeRO-3)",
    ]
    assert all(r.passed for r in results), [r.failure for r in results if not r.passed]
    assert results[0].cases == 13  # every GenerationParams field and alpha, probe_student_length were varied


def test_sampler_leaving_eos_outside_the_mask_fails(broken, models):
    results = _by_check(check_sampler(broken[1].EosOutside, models=models))
    eos = results["EOS inside the mask"]
    assert not eos.passed and "without an EOS inside the mask" in eos.failure
    # the EOS position it dropped from the mask still carries a log-prob
    assert not results["log-probs"].passed and "not 0 at masked positions" in results["log-probs"].failure
    assert results["contract"].passed


def test_sampler_reporting_processed_logprobs_fails_for_the_options_that_show_it(broken, models):
    results = _by_check(check_sampler(broken[1].ProcessedLogprobs, models=models))
    logprobs = results["log-probs"]
    assert not logprobs.passed
    # right at the defaults and for other max_new_tokens; min_new_tokens=1 bans EOS at the first step, so the
    # processed distribution the token was drawn from is no longer the student's own
    assert logprobs.failure.startswith("max_new_tokens=8, min_new_tokens=1: behaviour_logprobs differ")
    assert results["contract"].passed and results["EOS inside the mask"].passed


def test_own_decoding_loop_ignoring_synced_fails_only_the_synced_check(broken, models):
    """The issue's sampler: a correct loop of its own that would hang under ZeRO-3 with several ranks."""
    results = check_sampler(broken[1].OwnLoop, models=models)
    assert [r.check for r in results if not r.passed] == ["synced (ZeRO-3)"], [r.failure for r in results]
    failure = results[-1].failure
    assert "forward passes without minillm's rank synchronisation" in failure and "generate_rollout" in failure
    # max_new_tokens=1 (one step, nothing to synchronise) is skipped; the first multi-step case fails
    assert failure.startswith("max_new_tokens=8: ")


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_fails_broken_plugins_with_exit_4(broken, cli):
    result = cli("plugins", "check", "fixture_topk_kl", "fixture_unclamped_kl", "fkl")
    assert result.code == ExitCode.PLUGIN == 4, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3 * 5 + 1  # one line per plugin x check, then the summary
    assert lines[0].split() == ["PASS", "divergence", "fixture_topk_kl", "per_token", "shape", "5", "option", "sets"]
    topk_finite = next(line for line in lines if "fixture_topk_kl" in line and " finite " in line)
    assert topk_finite.startswith("FAIL") and "k=1: 16 of 16 values not finite" in topk_finite
    assert all(line.startswith("PASS") for line in lines if " fkl " in line)
    assert lines[-1] == (
        "15 checks of 3 plugin classes: 2 failed (divergence fixture_topk_kl, divergence fixture_unclamped_kl)"
    )


def test_cli_json_and_selection_by_plugin_name(broken, cli):
    result = cli("plugins", "check", "broken", "--json")
    assert result.code == 4, result.output
    payload = json.loads(result.stdout)
    names = {r["name"] for r in payload["results"]}
    assert names == {
        "fixture_topk_kl",
        "fixture_unclamped_kl",
        "fixture_shifted_kl",
        "fixture_naive_reinforce",
        "fixture_local_mean",
    }
    assert payload["failed"] == sorted(f"divergence {n}" for n in names)
    shifted = [r for r in payload["results"] if r["name"] == "fixture_shifted_kl"]
    assert [r["check"] for r in shifted if not r["passed"]] == ["zero at equal"]


def test_cli_passing_plugin_exits_0_and_unknown_name_is_a_usage_error(cli):
    ok = cli("plugins", "check", "rkl")
    assert ok.code == 0, ok.output
    assert ok.stdout.splitlines()[-1] == "5 checks of 1 plugin class: all passed"
    unknown = cli("plugins", "check", "no_such_divergence")
    assert unknown.code == ExitCode.USAGE
    assert "benchmark or plugin named 'no_such_divergence'" in " ".join(unknown.stderr.replace("│", " ").split())


@pytest.mark.slow
def test_builtin_minillm_passes_the_sequence_checks():
    """No false alarm on a correct, many-optioned sequence-level divergence (34 option sets)."""
    results = check_divergence(load_plugins().divergences.get("minillm"), "minillm")
    assert [r.check for r in results] == ["prepare", "loss", "zero at equal", "micro-batch split", "pretrain_loss"]
    assert all(r.passed for r in results), [f"{r.check}: {r.failure}" for r in results if not r.passed]
    assert results[0].cases == 34


def test_cli_a_bare_divergence_subclass_fails_its_level(broken, cli):
    result = cli("plugins", "check", "fixture_plain")
    assert result.code == 4, result.output
    line, summary = result.stdout.splitlines()
    assert line.split()[:4] == ["FAIL", "divergence", "fixture_plain", "level"]
    assert "subclasses Divergence but neither TokenDivergence nor SequenceDivergence" in line
    assert summary == "1 check of 1 plugin class: 1 failed (divergence fixture_plain)"
