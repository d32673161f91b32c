"""The README's quick start runs verbatim: every ``minillm`` line of its first code block after "## Quick start"
is run in order, in a fresh working directory that has the clone's ``recipes/`` (as a clone does), and must exit
0 and do what its comment says (the extended run reaches step 40; the eval scores both models), with no library
noise and, its output being a pipe, plain progress lines."""

from __future__ import annotations

import json
import re
import shlex

from helpers import ROOT, run_minillm


def quick_start_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "the quick start has no bash block"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "minillm":
            commands.append(words[1:])
    return commands


def test_the_quick_start_block_has_the_commands_it_promises():
    commands = quick_start_commands()
    names = [c[0] for c in commands]
    assert names.count("distill") >= 5 and {"recipes", "generate", "eval", "export"} <= set(names)
    assert not any("../shared" in w for c in commands for w in c)  # a user has no ../shared


def test_the_readme_quick_start_runs_verbatim(tmp_path):
    (tmp_path / "recipes").symlink_to(ROOT / "recipes", target_is_directory=True)
    env = {"OMP_NUM_THREADS": "1"}
    for words in quick_start_commands():
        res = run_minillm(*words, env=env, cwd=tmp_path, timeout=600)
        assert res.code == 0, (words, res.output)
        # library noise stays off the screen: DeepSpeed's CPU notice (it went to stdout), torch's deprecations
        assert "[WARNING]" not in res.output and "FutureWarning" not in res.output, (words, res.output)
        if words[0] == "distill":  # output to a pipe: plain progress lines as the run goes, the result on stdout
            assert re.search(r"step \d+/\d+ loss [\d.]+", res.stderr), res.stderr
            assert res.stdout.startswith("done: step"), res.stdout
        if "--resume" in words:  # "extend a finished run": it trained on to the new total
            rows = (tmp_path / "runs/kd/metrics.jsonl").read_text().splitlines()
            assert json.loads(rows[-1])["step"] == 40, rows[-1]
            assert "done: step 40/40" in res.output
        if words[0] == "eval":
            assert "tiny-kd" in res.output and "tiny-minillm" in res.output  # both models scored
            assert list((tmp_path / "runs" / "eval").rglob("scores.json"))
    assert (tmp_path / "exported" / "config.json").exists()
