"""An output path of the wrong kind (a file where a folder is wanted, or the reverse, or a path under a file)
is a usage error (exit 2) found before any model is loaded or any response generated."""

from __future__ import annotations

import pytest


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize("kind", ["folder", "under a file"])
def test_generate_output_of_the_wrong_kind(cli, tmp_path, kind):
    blocker = tmp_path / "blocker"
    if kind == "folder":
        blocker.mkdir()
        out = blocker
    else:
        blocker.write_text("x")
        out = blocker / "responses.jsonl"
    # the model path does not exist: the output check must come first
    res = cli("generate", "-m", tmp_path / "no-model", "-p", "hi", "-o", out)
    assert res.code == 2, res.output
    assert ("is a folder" if kind == "folder" else "is a file") in _flat(res.output)
    assert "Traceback" not in res.output


@pytest.mark.parametrize("kind", ["file", "under a file"])
def test_eval_output_dir_of_the_wrong_kind(cli, tmp_path, kind):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker if kind == "file" else blocker / "results"
    res = cli("eval", "-b", "dolly", "-m", tmp_path / "no-model", "-o", out)
    assert res.code == 2, res.output
    assert "is a file" in _flat(res.output)
    assert "Traceback" not in res.output
    assert blocker.read_text() == "x"


@pytest.mark.parametrize(
    ("command", "damage"),
    [("generate", "empty"), ("generate", "truncated"), ("generate", "garbage"), ("eval", "truncated")],
)
def test_corrupt_safetensors_is_a_resource_panel(cli, tmp_path, damage, command):
    import shutil

    from tiny_models import save_tiny_model

    model = save_tiny_model(tmp_path / "m", "gpt2", seed=0, max_positions=256)
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"\x07" * 64}[damage])
    if command == "generate":
        res = cli("generate", "-m", model, "-p", "hi", "--max-new-tokens", "2")
    else:
        bench = tmp_path / "b.jsonl"
        bench.write_text('{"instruction": "hi", "response": "ho"}\n')
        res = cli("eval", "-b", "dolly", "--data", bench, "-m", model, "-o", tmp_path / "out", "--seeds", "1")
    shutil.rmtree(model)
    assert res.code == 5, res.output
    assert "corrupt, truncated or empty" in _flat(res.output)
    assert "Traceback" not in res.output
