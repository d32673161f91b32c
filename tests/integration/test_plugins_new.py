"""``minillm plugins new`` writes a plugin package whose own tests pass as written (they use the test kit: the
``plugins check`` checks one test each, a value by hand, a training step through ``minillm distill``)."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import run_minillm


def test_the_new_package_passes_its_own_tests(tmp_path):
    folder = tmp_path / "minillm-mixed-kl"
    res = run_minillm("plugins", "new", "minillm-mixed-kl", folder)
    assert res.code == 0, res.output
    assert (folder / "src" / "minillm_mixed_kl" / "__init__.py").exists()
    pyproject = (folder / "pyproject.toml").read_text()
    assert '[project.entry-points.minillm]\nminillm_mixed_kl = "minillm_mixed_kl"' in pyproject
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        cwd=folder, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
