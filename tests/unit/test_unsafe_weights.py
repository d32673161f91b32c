"""A model folder whose pickle weights file carries a payload: every command that loads models ends in a panel
(exit 5) that never advises ``weights_only=False``, and the payload never runs."""

from __future__ import annotations

import os
import re

import pytest
import torch
from helpers import BENCH_FIXTURES
from tiny_models import save_tiny_model

from minillm_distill.errors import ExitCode, ResourceError


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def planted(tmp_path):
    from safetensors.torch import load_file

    folder = save_tiny_model(tmp_path / "model", "gpt2")
    weights = load_file(folder / "model.safetensors")
    marker = tmp_path / "payload-ran"
    torch.save({**weights, "extra": Payload(str(marker))}, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder, marker


def test_load_model_refuses_it_with_a_resource_error(planted):
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    folder, marker = planted
    with pytest.raises(ResourceError) as info:
        load_model(ModelSpec(path=str(folder)))
    err = info.value
    assert err.exit_code == ExitCode.RESOURCE and str(folder) in err.message
    assert "weights_only" not in f"{err.message} {err.why} {err.hint}" and "safe_serialization" in err.hint
    assert not marker.exists()


def test_generate_and_eval_end_in_a_panel(cli, planted, tmp_path):
    folder, marker = planted
    commands = (
        ("generate", "--model", folder, "-p", "hi", "--max-new-tokens", "2"),
        ("eval", "--bench", "dolly", "--model", folder, "--data", BENCH_FIXTURES / "dolly.jsonl", "--limit", "2",
         "--output-dir", tmp_path / "eval"),
    )  # fmt: skip
    for args in commands:
        res = cli(*args)
        assert res.code == 5, res.output
        flat = re.sub(r"[\s│╭╮╰╯─•]+", "", res.output)
        assert "Traceback" not in res.output and "weights_only" not in flat
        assert "holdsobjectsotherthantensors" in flat, args[0]
    assert not marker.exists()
