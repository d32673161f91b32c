"""``minillm plugins new NAME DIR``: a plugin package to start from, complete and passing its own tests.

It holds one token-level divergence (a mixture of forward and reverse KL with an ``alpha`` option), registered
through the ``minillm`` entry-point group, and tests that use the test kit (:mod:`minillm_distill.testing`): every
check of ``minillm plugins check`` as its own test, a value computed by hand, and one training step through
``minillm distill`` with the plugin installed for the test only.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from minillm_distill.errors import UsageError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*[A-Za-z0-9]$|^[A-Za-z]$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "A minillm plugin: the {div} divergence"
requires-python = ">=3.10"
dependencies = ["minillm-distill"]

[project.optional-dependencies]
dev = ["pytest"]

# minillm finds plugins through this entry-point group; the left side is the plugin's name
[project.entry-points.minillm]
{pkg} = "{pkg}"

[tool.setuptools.packages.find]
where = ["src"]
"""

MODULE = '''\
"""The {div} divergence: alpha * KL(p || q) + (1 - alpha) * KL(q || p), teacher p, student q.

alpha = 1 is word-level KD's forward KL, alpha = 0 MiniLLM's reverse KL (as a token-level loss).
"""

from __future__ import annotations

import torch
from pydantic import Field

from minillm_distill.api import TokenDivergence, TokenDivergenceParams, hookimpl

#: -inf log-probs (a vocabulary entry ruled out) would give 0 * -inf = nan: clamp them to a finite floor
LOG_FLOOR = -1e30


class MixedKLParams(TokenDivergenceParams):  # temperature, and:
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="weight of the forward KL")


class MixedKL(TokenDivergence):
    name = "{div}"
    description = "alpha * forward KL + (1 - alpha) * reverse KL"
    Params = MixedKLParams

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        log_p = torch.log_softmax(teacher_logits, dim=-1).clamp(min=LOG_FLOOR)
        log_q = torch.log_softmax(student_logits, dim=-1).clamp(min=LOG_FLOOR)
        forward = (log_p.exp() * (log_p - log_q)).sum(-1)
        reverse = (log_q.exp() * (log_q - log_p)).sum(-1)
        a = self.params.alpha
        return a * forward + (1.0 - a) * reverse


@hookimpl
def register_divergences(register):
    register(MixedKL)
'''

CONFTEST = """\
import importlib.util
import sys
from pathlib import Path

pytest_plugins = ["minillm_distill.testing"]  # the cli, install_plugin, tiny_model_folder fixtures; offline

if importlib.util.find_spec("{pkg}") is None:  # not installed yet: import it from src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
"""

TESTS = '''\
"""Tests of the {div} divergence, with minillm's test kit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from minillm_distill.testing import plugin_checks, run_minillm, run_plugin_check
from {pkg} import MixedKL

SRC = Path(__file__).resolve().parents[1] / "src"


# every check of `minillm plugins check`, on every option set, a test of its own
@pytest.mark.parametrize("item", plugin_checks(MixedKL))
def test_minillm_checks(item):
    run_plugin_check(item)


def test_a_value_by_hand():
    p, q = torch.tensor([[0.75, 0.25]]), torch.tensor([[0.5, 0.5]])
    forward = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    reverse = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    div = MixedKL(MixedKL.Params(alpha=0.25))
    got = div.per_token(q.log(), p.log(), torch.zeros(1, dtype=torch.long))
    torch.testing.assert_close(got, torch.tensor([0.25 * forward + 0.75 * reverse]))


def test_it_trains_through_minillm(install_plugin, tmp_path):
    env = install_plugin("{pkg}", distribution="{dist}", path=SRC)
    result = run_minillm(
        "distill", "tiny/kd", "--set", "divergence={{name: {div}, alpha: 0.3}}", "--set", "train.total_steps=2",
        "--output-dir", tmp_path / "run", env=env,
    )  # fmt: skip
    assert result.code == 0, result.output
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
'''

README = """\
# {dist}

A [minillm](https://github.com/minillm/minillm) plugin: the `{div}` divergence, alpha * KL(p || q) +
(1 - alpha) * KL(q || p).

```bash
pip install -e '.[dev]'                      # registers the plugin (entry-point group `minillm`)
minillm plugins                              # lists it
minillm plugins check {div}                  # minillm's property checks
pytest                                       # its own tests (the same checks, one test each, and a training step)
minillm distill tiny/kd --set divergence.name={div} --set divergence.alpha=0.3
```

Start from here: rename the class, change `per_token`, add options to its `Params`. The plugin guides and the
API reference: minillm's `docs/plugins/`.
"""


def package_name(dist: str) -> str:
    return re.sub(r"[-.]+", "_", dist).lower()


def write_plugin_template(dist: str, directory: Path, *, force: bool = False) -> list[Path]:
    """Write the package ``dist`` into ``directory``; return the files written."""
    if not _NAME.match(dist):
        raise UsageError(
            f"{dist!r} is not a distribution name",
            hint="letters, digits, '-', '_' and '.', starting with a letter: e.g. minillm-my-divergence",
        )
    pkg = package_name(dist)
    if not pkg.isidentifier() or keyword.iskeyword(pkg):
        raise UsageError(f"{dist!r} gives the import name {pkg!r}, which Python cannot import", hint="choose another")
    div = pkg.removeprefix("minillm_") or pkg
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{str(directory)!r} is a file", hint="give a new folder")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise UsageError(
            f"{str(directory)!r} is not empty", hint="give a new folder, or --force to write over files there"
        )
    files = {
        "pyproject.toml": PYPROJECT,
        f"src/{pkg}/__init__.py": MODULE,
        "tests/conftest.py": CONFTEST,
        f"tests/test_{pkg}.py": TESTS,
        "README.md": README,
    }
    written = []
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(dist=dist, pkg=pkg, div=div), encoding="utf-8")
        written.append(path)
    return written
