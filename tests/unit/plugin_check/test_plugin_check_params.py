"""The test kit's per-check pytest parameters (``plugin_checks`` / ``run_plugin_check``): each check on each
option set is a test of its own, narrowed to some checks or options when asked, and a broken plugin fails
exactly the pairs ``minillm plugins check`` reports."""

from __future__ import annotations

import pytest
from _pytest.outcomes import Failed
from helpers import PLUGIN_FIXTURES

from minillm_distill.plugins import load_plugins
from minillm_distill.testing import plugin_checks, run_plugin_check


@pytest.fixture
def broken(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_FIXTURES))
    import fx_broken_divergences

    return fx_broken_divergences


def _ids(params) -> list[str]:
    """The ids without the plugin's name in front."""
    return [p.id.split(" ", 1)[1] for p in params]


def test_one_parameter_per_check_and_option_set():
    fkl = load_plugins().divergences.get("fkl")
    params = plugin_checks(fkl)
    ids = _ids(params)
    assert len(ids) == len(set(ids))
    checks = {i.split("[")[0] for i in ids}
    assert checks == {"per_token shape", "finite", "non-negative", "zero at equal", "gradient"}
    per_check = {c: sum(i.startswith(c + "[") for i in ids) for c in checks}
    assert len(set(per_check.values())) == 1 and per_check["gradient"] > 1  # every option set, every check


def test_narrowing_to_a_check_and_an_option_value(broken):
    params = plugin_checks(broken.TopKKL, checks=["finite"], options={"k": 3})
    assert _ids(params) and all(i.startswith("finite[") and "k=3" in i for i in _ids(params))
    with pytest.raises(ValueError, match="no check"):
        plugin_checks(broken.TopKKL, checks=["finite"], options={"k": 99})
    with pytest.raises(ValueError, match="has no check"):
        plugin_checks(broken.TopKKL, checks=["speed"])


def test_a_broken_class_fails_exactly_the_pairs_plugins_check_reports(broken):
    outcomes = {}
    for param in plugin_checks(broken.TopKKL, checks=["finite"]):
        (item,) = param.values
        try:
            run_plugin_check(item)
            outcomes[param.id] = True
        except Failed as exc:
            outcomes[param.id] = False
            assert "check 'finite'" in str(exc) and "fixture_topk_kl" in str(exc)
    # k = 0 (the full vocabulary) is correct; every k >= 1 gives 0 * log 0 = nan
    assert outcomes and all(ok == ("k=" not in i or "k=0" in i) for i, ok in outcomes.items()), outcomes
    assert not all(outcomes.values()) and any(outcomes.values())


def test_samplers_get_parameters_too():
    student = load_plugins().samplers.get("student")
    params = plugin_checks(student, checks=["contract"])
    assert params
    run_plugin_check(params[0].values[0])  # builds the tiny models on first use and passes
