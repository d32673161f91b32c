"""The loop reads a sequence-level divergence's phase layout (``ppo_epochs``, ``rollouts_per_phase``) from
``PhaseParams``, the base class its ``Params`` declares them with, not from whatever attribute happens to exist."""

from __future__ import annotations

import pytest
from pydantic import Field

from minillm_distill.api import PhaseParams, PluginParams, SequenceDivergence


def _divergence(params_cls: type[PluginParams], **options) -> SequenceDivergence:
    class Div(SequenceDivergence):
        name = "phase_probe"
        Params = params_cls

        def prepare(self, batches, reduce):  # pragma: no cover - never called here
            raise NotImplementedError

        def loss(self, student, teacher, batch, prepared, norm):  # pragma: no cover
            raise NotImplementedError

    return Div.from_options(options)


class Declared(PhaseParams):
    ppo_epochs: int = Field(3, ge=1)


class Undeclared(PluginParams):
    ppo_epochs: int = 5
    rollouts_per_phase: int | None = 64


def test_declared_phase_options_and_their_defaults():
    div = _divergence(Declared)
    assert (div.ppo_epochs, div.rollouts_per_phase) == (3, None)
    div = _divergence(Declared, ppo_epochs=2, rollouts_per_phase=16)
    assert (div.ppo_epochs, div.rollouts_per_phase) == (2, 16)
    assert (_divergence(PhaseParams).ppo_epochs, _divergence(PhaseParams).rollouts_per_phase) == (1, None)


def test_options_without_the_base_class_are_read_with_a_deprecation_warning():
    div = _divergence(Undeclared)
    with pytest.warns(DeprecationWarning, match="PhaseParams"):
        assert div.ppo_epochs == 5
    with pytest.warns(DeprecationWarning, match="PhaseParams"):
        assert div.rollouts_per_phase == 64


def test_a_divergence_without_phase_options_runs_one_pass_per_step():
    div = _divergence(PluginParams)
    assert (div.ppo_epochs, div.rollouts_per_phase) == (1, None)


def test_the_minillm_divergence_declares_them():
    from minillm_distill.builtins.divergences.minillm import MiniLLMParams

    assert issubclass(MiniLLMParams, PhaseParams)
    assert MiniLLMParams().ppo_epochs == 4 and MiniLLMParams().rollouts_per_phase == 256
