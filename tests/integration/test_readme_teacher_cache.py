"""The README's capture -> train -> eval on the real teacher runs as written: every line of its code block under
"## A teacher captured once" is run in order in a fresh working directory that has the clone's ``recipes/`` and,
beside it, a small Dolly-format file at ``../shared/data/dolly/`` (so the block's paths hold as they are). The
teacher is the real SmolLM2-135M-Instruct, fetched with pip. Only the sizes shrink, by options added at the end
of a line: two training steps, three evaluation prompts of 8 new tokens."""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess

import pytest
from helpers import ROOT, run_minillm, write_dolly

pytestmark = pytest.mark.slow
pytest.importorskip("gguf")

SECTION = "## A teacher captured once"
SMALLER = {
    "distill": [
        "--set",
        "train.total_steps=2",
        "--set",
        "train.warmup_steps=0",
        "--set",
        "train.micro_batch_size=4",
        "--set",
        "train.save_every=2",
    ],
    "eval": ["--limit", "3", "--max-new-tokens", "8"],
}


def block_lines() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"the README has no section {SECTION!r}"
    block = re.search(r"```bash\n(.*?)```", text.split(SECTION, 1)[1], re.S)
    assert block is not None, "the section has no bash block"
    return [line for line in block.group(1).splitlines() if shlex.split(line, comments=True)]


def test_the_block_holds_fetch_cut_capture_train_eval_of_one_recipe():
    commands = [shlex.split(line, comments=True) for line in block_lines()]
    minillm = [c[1] for c in commands if c[0] == "minillm"]
    assert minillm == ["models", "models", "teacher", "distill", "eval"], minillm
    capture = next(c for c in commands if c[:2] == ["minillm", "teacher"])
    distill = next(c for c in commands if c[:2] == ["minillm", "distill"])
    assert capture[3] == distill[2] == "recipes/smollm2/kd-cached.yaml"  # the cache is the recipe's


def test_the_readme_teacher_cache_block_runs(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "recipes").symlink_to(ROOT / "recipes", target_is_directory=True)
    write_dolly(tmp_path / "shared/data/dolly/databricks-dolly-15k.jsonl", n=24)  # ../shared from `work`
    env = {"OMP_NUM_THREADS": "2", "MINILLM_CACHE": str(tmp_path / "cache")}
    for line in block_lines():
        words = shlex.split(line, comments=True)
        if words[0] != "minillm":
            subprocess.run(["bash", "-c", line], cwd=work, check=True)
            continue
        res = run_minillm(*words[1:], *SMALLER.get(words[1], []), env=env, cwd=work, timeout=900)
        if words[1:3] == ["models", "fetch"] and res.code == 5 and "cannot download the package" in res.output:
            pytest.skip(f"the package index is not reachable: {res.output[-300:]}")
        assert res.code == 0, (line, res.output)
        assert "Loading weights" not in res.output, (line, res.output)  # no library progress bars in a pipe
        if words[1] == "teacher":
            assert re.search(r"captured 24 records, [\d,]+ response tokens: 2\d\d\.\d bytes per token", res.stderr)
    manifest = json.loads((work / "caches/smollm2-kd-k64/manifest.json").read_text())
    assert manifest["complete"] and manifest["settings"]["k"] == 64 and manifest["settings"]["vocab_size"] == 49152
    run = work / "runs/smollm2-kd-cached"
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in rows)
    scores = list((work / "runs").rglob("scores.json"))
    assert scores, "the eval line wrote no scores"
