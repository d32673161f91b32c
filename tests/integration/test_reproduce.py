"""``minillm reproduce --budget quick`` end to end on a tiny GGUF teacher: the pipeline, not its numbers."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from gguf_writer import tiny_llama, write_gguf
from helpers import write_dolly

pytestmark = pytest.mark.slow
pytest.importorskip("gguf")


def write_data(root: Path) -> Path:
    """A data folder laid out like ``../shared/data``: Dolly (1,100 records) and a small SelfInst file."""
    write_dolly(root / "dolly" / "databricks-dolly-15k.jsonl")
    rng = random.Random(1)
    (root / "self_inst").mkdir(parents=True)
    with (root / "self_inst" / "user_oriented_instructions.jsonl").open("w") as handle:
        for i in range(3):
            row = {"id": f"u{i}", "instruction": f"tell {rng.random()}", "instances": [{"input": "", "output": "a"}]}
            handle.write(json.dumps(row) + "\n")
    return root


@pytest.mark.slow
def test_quick_pipeline_runs_resumes_and_refuses_other_settings(tmp_path, monkeypatch):
    from helpers import run_minillm

    env = {"MINILLM_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    teacher = write_gguf(tiny_llama(layers=3), tmp_path / "teacher.gguf")
    data = write_data(tmp_path / "data")
    out = tmp_path / "out"
    args = ["reproduce", "--budget", "quick", "--data-dir", data, "--teacher", teacher, "--output-dir", out]
    first = run_minillm(*args, env=env, timeout=900)
    assert first.code == 0, first.output[-3000:]

    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert list(rows) == ["teacher", "cut", "sft", "kd", "seqkd", "gkd", "minillm"]
    for name, row in rows.items():
        assert row["dolly"]["n"] == 3 and row["self_inst"]["n"] == 2
        assert len(row["dolly"]["rougeL_per_seed"]) == 1
        exposure = row["dolly"].get("exposure_bias")  # measured for students against the teacher
        assert (exposure is None) == (name == "teacher")
        if exposure is not None:
            assert exposure["prompts"] == 2 and exposure["samples_per_prompt"] == 2 and exposure["lengths"]
    assert set(results["verdicts"]["dolly"]) == {f"minillm vs {m}" for m in ("sft", "kd", "seqkd", "gkd")}
    assert len(results["side_by_side"]) == 3
    assert set(results["side_by_side"][0]["answers"]) == {"Teacher", "SFT", "MiniLLM"}
    assert (out / "results.png").stat().st_size > 0 and "| MiniLLM |" in (out / "results.md").read_text()
    # the student was cut from the teacher: 2 of its 3 blocks; distilled students start from the SFT student
    cut = json.loads((out / "models" / "cut" / "config.json").read_text())
    assert cut["num_hidden_layers"] == 2
    assert json.loads((out / "models" / "cut" / "minillm-cut.json").read_text())["blocks_kept"] == [0, 2]
    sft = yaml.safe_load((out / "recipes" / "sft.yaml").read_text())
    assert sft["description"].endswith("student from the teacher's blocks [0, 2]")
    for method in ("kd", "seqkd", "gkd", "minillm"):
        recipe = (out / "runs" / method / "recipe.yaml").read_text()
        assert str(out / "runs" / "sft" / "final") in recipe and "sha256:" in recipe
    split = json.loads((out / "data" / "split.json").read_text())
    assert split["records"] == {"train": 100, "valid": 500, "test": 500}

    # again: everything is done, nothing runs
    stamp = (out / "runs" / "kd" / "final" / "model.safetensors").stat().st_mtime_ns
    again = run_minillm(*args, env=env, timeout=300)
    assert again.code == 0, again.output[-2000:]
    assert "train SFT" not in again.stderr and "evaluate" not in again.stderr
    assert (out / "runs" / "kd" / "final" / "model.safetensors").stat().st_mtime_ns == stamp

    # a lost evaluation is redone alone
    (out / "evals" / "gkd.json").unlink()
    redo = run_minillm(*args, env=env, timeout=300)
    assert redo.code == 0 and "evaluate GKD" in redo.stderr and "train SFT" not in redo.stderr
    assert "evaluate KD" not in redo.stderr

    other = run_minillm(*args[:-2], "--seed", "1", "--output-dir", out, env=env, timeout=300)
    assert other.code == 2 and "other settings" in other.stderr


def test_bad_inputs_fail_before_the_folder_is_claimed(tmp_path, cli):
    data = write_data(tmp_path / "data")
    out = tmp_path / "out"
    missing = cli(
        "reproduce", "--budget", "quick", "--data-dir", data, "--teacher", tmp_path / "nope", "--output-dir", out
    )
    assert missing.code == 5 and "doesnotexist" in missing.flat_stderr
    no_dolly = cli("reproduce", "--budget", "quick", "--data-dir", tmp_path, "--output-dir", out)
    assert no_dolly.code == 2 and "Dolly" in no_dolly.stderr
    assert not (out / "settings.json").exists()
