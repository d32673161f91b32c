"""The test kit for plugin packages (and minillm's own tests): run ``minillm`` from a test, offline.

Use it as a pytest plugin, in the ``conftest.py`` of a plugin's tests::

    pytest_plugins = ["minillm_distill.testing"]

    def test_my_command(cli):
        result = cli("my-command", "--flag")
        assert result.code == 0 and "done" in result.stdout

Loading it sets the Hugging Face libraries offline (``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE``,
``TRANSFORMERS_OFFLINE``) and experiment trackers to offline, unless the environment already says otherwise, and
gives:

* the ``cli`` fixture: ``cli(*args, env=None)`` runs ``minillm ARGS...`` in this process (plugins loaded
  afresh for the call, as a new process would) and returns a :class:`CliResult` with the exit code, stdout and
  stderr; errors are the panels a user sees, with their exit codes (``minillm_distill.errors.ExitCode``);
* :func:`run_minillm`: the same in a subprocess (``python -m minillm_distill``), for what must not share this
  process (a fresh interpreter, a crash, a timeout);
* the ``install_plugin`` fixture: ``install_plugin("my_module", distribution="my-dist", path=folder)`` makes a
  plugin module installed for this test only (an entry point in the ``minillm`` group of a distribution, as
  ``pip install`` would make it), seen by ``cli`` and by ``run_minillm``'s subprocesses, gone after the test:
  no reinstalling between edits;
* the ``tiny_model_folder`` fixture: ``tiny_model_folder("llama")`` writes a tiny random model of any installed
  model family (1 layer, the byte-level tokenizer; options as in a recipe's ``scratch:``) as a Hugging Face
  folder and returns its path, for ``--model``, ``--teacher`` or a recipe's ``path:``; built offline in well under
  a second;
* the ``tiny_run_folder`` fixture: ``tiny_run_folder("tiny/kd", steps=2, save_every=1)`` trains a shipped (or
  your) recipe for a few steps in a subprocess and returns the finished run folder (``recipe.yaml``,
  ``metrics.jsonl``, ``checkpoints/step-N``, ``final/``), for tests of what reads runs (``export``, ``eval``,
  ``--resume``, a command of your own); ``--set`` overrides as keyword ``sets=[...]``.

* :func:`plugin_checks` and :func:`run_plugin_check`: every check ``minillm plugins check`` runs on a class, one
  pytest test per check and option set, narrowed to some checks or options when asked::

      @pytest.mark.parametrize("item", plugin_checks(MyDivergence))            # or checks=["gradient"],
      def test_my_divergence(item):                                             #    options={"alpha": 0.5}
          run_plugin_check(item)

The checks are also in :mod:`minillm_distill.api` (``check_divergence``, ``check_sampler``: all at once).
"""

from __future__ import annotations

import os

for _name, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("HF_DATASETS_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
    ("WANDB_MODE", "offline"),
    ("WANDB_SILENT", "true"),
):
    os.environ.setdefault(_name, _value)

import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Iterator, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

__all__ = [
    "CliResult",
    "PluginCheck",
    "cli",
    "install_plugin",
    "plugin_checks",
    "run_minillm",
    "run_plugin_check",
    "tiny_model_folder",
    "tiny_run_folder",
]


@dataclass
class CliResult:
    """What one ``minillm`` command did: its exit code and what it printed."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def flat_stderr(self) -> str:
        """stderr without the panel's box and whitespace: a long path wraps a message at any word."""
        return "".join(self.stderr.replace("│", "").split())


@pytest.fixture(autouse=True)
def _huge_page_switch_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process ``minillm`` command sets THP_MEM_ALLOC_ENABLE in os.environ (minillm_distill/host_memory.py):
    registering it with monkeypatch undoes that after each test, so what later subprocesses inherit does not
    depend on test order."""
    value = os.environ.get("THP_MEM_ALLOC_ENABLE")
    if value is None:
        monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    else:
        monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", value)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., CliResult]]:
    """Run ``minillm ARGS...`` in-process; returns exit code, stdout, stderr."""
    from minillm_distill.cli.main import main
    from minillm_distill.cli.state import state
    from minillm_distill.plugins import reset_plugins

    def run(*args: Any, env: dict[str, str] | None = None) -> CliResult:
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        reset_plugins()
        state.debug = False
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        reset_plugins()
        return CliResult(code, out, err)

    yield run


@pytest.fixture
def install_plugin(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., dict[str, str]]]:
    """``install_plugin(module, *, distribution, name=None, path=None, version="0.1")``: install the plugin
    ``module`` (the entry point's target, e.g. ``"my_pkg.plugin"``) under the entry-point name ``name`` (default:
    the module's last part) as distribution ``distribution``, for this test only. ``path``: a folder to import
    ``module`` from (default: wherever it already imports from). The folders go on ``sys.path`` (for ``cli``)
    and ``PYTHONPATH`` (for subprocesses); returns ``{"PYTHONPATH": ...}`` to pass as ``env=`` where a command
    runs with an environment of its own."""
    import importlib

    from minillm_distill.plugins import reset_plugins

    def install(
        module: str, *, distribution: str, name: str | None = None, path: str | Path | None = None, version: str = "0.1"
    ) -> dict[str, str]:
        site = tmp_path_factory.mktemp("site")
        info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n", encoding="utf-8"
        )
        entry = name or module.rpartition(".")[2]
        (info / "entry_points.txt").write_text(f"[minillm]\n{entry} = {module}\n", encoding="utf-8")
        folders = [str(site)] + ([str(Path(path).resolve())] if path is not None else [])
        for folder in reversed(folders):
            monkeypatch.syspath_prepend(folder)
        pythonpath = os.pathsep.join([*folders, *filter(None, [os.environ.get("PYTHONPATH")])])
        monkeypatch.setenv("PYTHONPATH", pythonpath)
        importlib.invalidate_caches()
        reset_plugins()
        return {"PYTHONPATH": pythonpath}

    yield install
    reset_plugins()


#: the shape of ``tiny_model_folder``'s models (a recipe's ``scratch:`` options; each may be overridden)
TINY_SCRATCH: dict[str, int] = {"layers": 1, "hidden": 16, "heads": 2, "intermediate": 32, "max_positions": 128}


@pytest.fixture
def tiny_model_folder(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_model_folder(family="gpt2", *, seed=0, **scratch) -> Path``: a tiny random model of ``family``
    (any installed model family, built from its ``scratch`` parameters) saved with the byte-level tokenizer."""

    def build(family: str = "gpt2", *, seed: int = 0, **scratch: Any) -> Path:
        from minillm_distill.models import load_model
        from minillm_distill.recipe.schema import ModelSpec

        loaded = load_model(ModelSpec(family=family, tokenizer="byte", scratch={**TINY_SCRATCH, **scratch}), seed=seed)
        folder = tmp_path_factory.mktemp(f"tiny-{family}")
        loaded.model.save_pretrained(folder)
        loaded.tokenizer.save_pretrained(folder)
        return folder

    return build


@pytest.fixture
def tiny_run_folder(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_run_folder(recipe="tiny/kd", *, steps=2, save_every=1, sets=(), env=None) -> Path``: a finished run
    of ``recipe`` (``steps`` optimizer steps, a checkpoint every ``save_every``), trained in a subprocess."""

    def train(
        recipe: str = "tiny/kd",
        *,
        steps: int = 2,
        save_every: int = 1,
        sets: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> Path:
        run = tmp_path_factory.mktemp("run") / "run"
        overrides = [f"train.total_steps={steps}", f"train.save_every={save_every}", *sets]
        args = ["distill", recipe, "--output-dir", run, *(a for o in overrides for a in ("--set", o))]
        result = run_minillm(*args, env={"OMP_NUM_THREADS": "1", **(env or {})}, timeout=600)
        if result.code != 0:
            pytest.fail(f"training the run folder failed (exit {result.code}):\n{result.output[-3000:]}", pytrace=False)
        return run

    return train


def run_minillm(
    *args: Any, env: dict[str, str] | None = None, timeout: float = 300, cwd: str | Path | None = None
) -> CliResult:
    """Run ``python -m minillm_distill ARGS...`` in a subprocess (this interpreter, this environment plus ``env``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "minillm_distill", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@dataclass(frozen=True)
class PluginCheck:
    """One check of one plugin class on one option set (a pytest parameter from :func:`plugin_checks`)."""

    cls: type
    check: str
    label: str
    """The option set's label (``default``, ``temperature=2.0``, ...); empty for ``declared values``."""

    def __str__(self) -> str:
        return f"{self.check}[{self.label}]" if self.label else self.check


def plugin_checks(
    cls: type, *, checks: Sequence[str] | None = None, options: Mapping[str, Any] | None = None
) -> list[Any]:
    """``pytest.param``s, one per check of ``cls`` (a divergence or sampler class) and option set, with ids
    like ``gradient[temperature=2.0]``: the checks ``minillm plugins check`` runs, each a test of its own.
    ``checks``: only these checks; ``options``: only option sets with these values. A narrowing that selects
    nothing raises ``ValueError`` listing what there is (a test that runs no check would pass silently)."""
    from minillm_distill.plugin_check import check_plan

    plan = check_plan(cls)
    wanted = set(checks) if checks is not None else None
    names = list(plan.checks)
    if wanted is not None and not wanted <= {*names, "declared values"}:
        raise ValueError(f"{cls.__qualname__} has no check(s) {sorted(wanted - set(names))}; its checks: {names}")
    params = []
    if plan.found.rejected and (wanted is None or "declared values" in wanted) and not options:
        params.append(pytest.param(PluginCheck(cls, "declared values", ""), id=f"{plan.name} declared values"))
    cases = [c for c in plan.found.cases if all(c.options.get(k) == v for k, v in (options or {}).items())]
    for check in names:
        if wanted is not None and check not in wanted:
            continue
        params += [pytest.param(PluginCheck(cls, check, c.label), id=f"{plan.name} {check}[{c.label}]") for c in cases]
    if not params:
        labels = [c.label for c in plan.found.cases]
        raise ValueError(f"no check of {cls.__qualname__} matches checks={checks} options={options}; "
                         f"option sets: {labels}")  # fmt: skip
    return params


def run_plugin_check(item: PluginCheck) -> None:
    """Run one :class:`PluginCheck`; a failure fails the test with the check's message (no traceback through
    minillm's checking code)."""
    from minillm_distill.plugin_check import check_plan

    plan = check_plan(item.cls)
    case = next((c for c in plan.found.cases if c.label == item.label), None)
    if item.check != "declared values" and case is None:
        pytest.fail(f"{item.cls.__qualname__} no longer has the option set {item.label!r}", pytrace=False)
    result = plan.run_one(item.check, case)
    if not result.passed:
        pytest.fail(f"{plan.kind} {plan.name!r}, check {item.check!r}: {result.failure}", pytrace=False)
