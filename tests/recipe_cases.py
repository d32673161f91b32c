"""A valid tiny recipe as text (``VALID``) and the pieces tests break in it, with the assertion that a problem was
reported as a panel; shared by the recipe, data, pre-flight, prompt-format and tracker tests."""

from __future__ import annotations

import re

from helpers import ROOT

DATA_FILE = ROOT / "recipes" / "tiny" / "data" / "instructions.jsonl"

# A valid recipe (the shape of recipes/tiny/kd.yaml); cases below break exactly one thing in it.
VALID = f"""\
name: broken
seed: 1
teacher:
  family: gpt2
  scratch: {{layers: 2, hidden: 64, heads: 2, max_positions: 256}}
  tokenizer: byte
student:
  family: gpt2
  scratch: {{layers: 1, hidden: 32, heads: 2, max_positions: 256}}
  tokenizer: byte
data:
  train: {DATA_FILE}
  max_prompt_length: 160
  max_response_length: 64
sampler:
  name: dataset
divergence:
  name: fkl
  temperature: 1.0
train:
  total_steps: 20
  lr: 1e-3
  warmup_steps: 2
  micro_batch_size: 4
engine:
  zero_stage: 0
  dtype: fp32
"""

TEACHER = """\
teacher:
  family: gpt2
  scratch: {layers: 2, hidden: 64, heads: 2, max_positions: 256}
  tokenizer: byte
"""
STUDENT_SCRATCH = "  scratch: {layers: 1, hidden: 32, heads: 2, max_positions: 256}\n"
STUDENT = "student:\n  family: gpt2\n" + STUDENT_SCRATCH + "  tokenizer: byte\n"
DIVERGENCE = "divergence:\n  name: fkl\n  temperature: 1.0\n"


def edit(old: str, new: str) -> str:
    assert VALID.count(old) == 1, f"test bug: {old!r} must occur exactly once in VALID"
    return VALID.replace(old, new)


def flat(text: str) -> str:
    """Output without Rich panel borders and whitespace, so wrapped lines still match."""
    return re.sub(r"[\s│╭╮╰╯─•]+", "", text)


def assert_reported(out: str, *expected: str) -> None:
    assert "Traceback" not in out
    for piece in expected:
        assert flat(piece) in flat(out), f"{piece!r} not in output:\n{out}"
