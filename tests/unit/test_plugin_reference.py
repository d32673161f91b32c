"""docs/plugins/reference.md is what ``python -m minillm_distill.plugin_reference`` writes from the code: a
changed hook, attribute, method signature or field fails here until the page is rewritten."""

from __future__ import annotations

from helpers import ROOT

from minillm_distill.api import API_VERSION
from minillm_distill.plugin_reference import render


def test_the_reference_page_matches_the_code():
    page = (ROOT / "docs" / "plugins" / "reference.md").read_text(encoding="utf-8")
    assert page == render(), "rewrite it: python -m minillm_distill.plugin_reference > docs/plugins/reference.md"


def test_the_page_covers_every_hook_and_states_the_version():
    page = render()
    for hook in ("register_divergences", "register_samplers", "register_model_families", "register_benchmarks",
                 "register_commands"):  # fmt: skip
        assert f"`{hook}(" in page
    assert f"`minillm_distill.api.API_VERSION` is **{API_VERSION[0]}.{API_VERSION[1]}**" in page
    assert "- `per_token(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, targets:" in page
    assert "| `metrics` | `dict[str, float]` | `{}` |" in page  # the sampler metrics channel is listed
