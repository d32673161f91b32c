"""The plugin system and the CLI around it.

(a) the separately installable example plugin (examples/minillm-plugin-example), pip-installed into a temp dir;
(b) ``load_plugins`` on fake entry points naming the modules in tests/plugin_fixtures/;
(c) the CLI: ``minillm plugins``, ``--version``, ``--help``, error rendering, broken plugins.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import tomllib
import torch
import yaml
from helpers import PLUGIN_FIXTURES, ROOT, run_minillm

import minillm_distill
import minillm_distill.plugins as plugins_mod
from minillm_distill.cli.render import render_error
from minillm_distill.divergence import TokenDivergence, token_divergence_loss, token_divergence_sum
from minillm_distill.errors import ExitCode, MinillmError, PluginError, RecipeError
from minillm_distill.plugins import DISABLE_ENV, load_plugins
from minillm_distill.recipe.loader import validate_recipe_dict

FIXTURES = PLUGIN_FIXTURES
EXAMPLE = ROOT / "examples" / "minillm-plugin-example"
KD_RECIPE = ROOT / "recipes" / "tiny" / "kd.yaml"

BUILTIN = {
    "divergence": {"fkl", "rkl", "jsd", "tvd", "sfkl", "srkl", "akl", "sft"},
    "model_family": {"gpt2", "opt", "llama", "qwen2", "mistral", "generic"},
    "sampler": {"dataset"},
}


def _ep(name: str, module: str) -> EntryPoint:
    return EntryPoint(name=name, value=module, group="minillm")


def _forget_modules(*prefixes: str) -> None:
    for mod in [m for m in sys.modules if m.startswith(prefixes)]:
        del sys.modules[mod]


@pytest.fixture
def fixtures(monkeypatch):
    """Put tests/plugin_fixtures on sys.path (its modules import by top-level name) and forget them after."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    monkeypatch.syspath_prepend(str(FIXTURES))
    _forget_modules("fx_")
    yield
    _forget_modules("fx_")


@pytest.fixture
def extra_plugins(monkeypatch, fixtures):
    """Make the CLI see fake entry points (name -> fixture module) next to the installed ones."""
    real = plugins_mod.entry_points

    def install(**plugins: str) -> None:
        fakes = [_ep(name, module) for name, module in plugins.items()]
        monkeypatch.setattr(plugins_mod, "entry_points", lambda group: [*real(group=group), *fakes])

    return install


def _json(result) -> dict:
    return json.loads(result.stdout)


def _by_name(payload: dict) -> dict[str, dict]:
    return {p["name"]: p for p in payload["plugins"]}


# --------------------------------------------------------------------------------------------------------------
# (a) the example plugin package, installed with pip
# --------------------------------------------------------------------------------------------------------------

EXAMPLE_META = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """``pip install --no-deps --no-build-isolation --target <tmp>`` of a copy of the example (no build/ or
    egg-info litter in the source tree)."""
    tmp = tmp_path_factory.mktemp("example-plugin")
    src = tmp / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-input"]
        + ["--disable-pip-version-check", "--target", str(site), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout}\n{proc.stderr}"
    assert (site / "minillm_example_plugin" / "__init__.py").is_file()
    return site


@pytest.fixture
def example_in_process(example_site, monkeypatch):
    """The installed example visible to this process (entry points are read from sys.path)."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    monkeypatch.syspath_prepend(str(example_site))
    _forget_modules("minillm_example_plugin")
    yield example_site
    _forget_modules("minillm_example_plugin")


def _pythonpath(site: Path) -> dict[str, str]:
    extra = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(site) + (os.pathsep + extra if extra else "")}


def _hellinger_recipe(tmp_path: Path, name: str = "hellinger-kd", **divergence) -> Path:
    data = yaml.safe_load(KD_RECIPE.read_text(encoding="utf-8"))
    data["name"] = name
    data["data"]["train"] = str(KD_RECIPE.parent / data["data"]["train"])
    data["divergence"] = {"name": "hellinger", **divergence}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.slow
def test_example_plugin_listed_by_plugins_json(example_site):
    result = run_minillm("plugins", "--json", env=_pythonpath(example_site))
    assert result.code == 0, result.output
    payload = _json(result)
    example = _by_name(payload)["example"]
    assert example["distribution"] == "minillm-plugin-example" == EXAMPLE_META["name"]
    assert example["version"] == EXAMPLE_META["version"]
    assert example["status"] == "loaded", example["error"]
    assert example["target"] == "minillm_example_plugin" and example["builtin"] is False
    assert example["provides"] == {
        "divergence": ["hellinger", "reinforce_rkl"],
        "sampler": ["geometric_mixed"],
        "command": ["hello-plugin"],
    }
    assert "hellinger" in payload["registries"]["divergence"]
    assert BUILTIN["divergence"] <= set(payload["registries"]["divergence"])
    assert payload["conflicts"] == []


@pytest.mark.slow
def test_example_plugin_divergence_used_by_a_recipe(example_site, tmp_path):
    recipe = _hellinger_recipe(tmp_path, temperature=2.0)
    result = run_minillm("recipes", "validate", str(recipe), env=_pythonpath(example_site))
    assert result.code == 0, result.output
    assert "ok" in result.stdout and "hellinger" in result.stdout


def test_without_the_example_hellinger_is_unknown(tmp_path, monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    data = yaml.safe_load(_hellinger_recipe(tmp_path).read_text(encoding="utf-8"))
    with pytest.raises(RecipeError) as info:
        validate_recipe_dict(data, plugins=load_plugins())
    assert any(d.startswith("divergence.name: unknown divergence 'hellinger'") for d in info.value.details)


def test_example_plugin_options_validated_by_its_params(example_in_process, tmp_path):
    plugins = load_plugins()
    good = yaml.safe_load(_hellinger_recipe(tmp_path, temperature=0.5).read_text(encoding="utf-8"))
    recipe = validate_recipe_dict(good, plugins=plugins)
    assert recipe.divergence.name == "hellinger"
    bad = yaml.safe_load(_hellinger_recipe(tmp_path, temperature=-1, beta=0.5).read_text(encoding="utf-8"))
    with pytest.raises(RecipeError) as info:
        validate_recipe_dict(bad, plugins=plugins)
    locations = {d.split(":")[0] for d in info.value.details}
    assert {"divergence.temperature", "divergence.beta"} <= locations
    assert info.value.exit_code == ExitCode.RECIPE


def _hand_hellinger(p: list[float], q: list[float]) -> float:
    return 1.0 - sum(math.sqrt(a * b) for a, b in zip(p, q, strict=True))


def test_example_divergence_value_equals_hand_computation(example_in_process):
    plugins = load_plugins()
    entry = next(e for e in plugins.divergences.entries() if e.name == "hellinger")
    assert (entry.plugin, entry.distribution) == ("example", "minillm-plugin-example")
    cls = plugins.divergences.get("hellinger")
    assert issubclass(cls, TokenDivergence) and cls.needs_teacher

    # one token, written out: p = (0.7, 0.2, 0.1), q = (0.4, 0.4, 0.2)
    p, q = [0.7, 0.2, 0.1], [0.4, 0.4, 0.2]
    expected = 1 - (math.sqrt(0.28) + math.sqrt(0.08) + math.sqrt(0.02))
    assert _hand_hellinger(p, q) == pytest.approx(expected)
    value = token_divergence_loss(
        cls(),
        torch.tensor([[q]]).log(),
        torch.tensor([[p]]).log(),
        torch.zeros(1, 1, dtype=torch.long),
        torch.ones(1, 1, dtype=torch.bool),
    )
    assert value.item() == pytest.approx(expected, abs=1e-6)

    # a masked batch with temperature 2, against the formula 1/2 sum (sqrt p - sqrt q)^2 in float64
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 4, 7, generator=gen) * 3, torch.randn(2, 4, 7, generator=gen) * 3
    mask = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 0]], dtype=torch.bool)
    targets = torch.zeros(2, 4, dtype=torch.long)
    div = cls.from_options({"temperature": 2.0})
    got = token_divergence_loss(div, s, t, targets, mask).item()
    ps, qs = (x.double().div(2.0).softmax(-1)[mask] for x in (t, s))
    want = (0.5 * (ps.sqrt() - qs.sqrt()).pow(2).sum(-1)).mean().item()
    assert got == pytest.approx(want, abs=1e-6)
    rows = [_hand_hellinger(a.tolist(), b.tolist()) for a, b in zip(ps, qs, strict=True)]
    assert got == pytest.approx(sum(rows) / len(rows), abs=1e-6)


def test_example_divergence_properties(example_in_process):
    """The conventions every divergence keeps (the registry-wide property tests are collected before this
    plugin is importable, so check them here too)."""
    div = load_plugins().divergences.get("hellinger")()
    gen = torch.Generator().manual_seed(1)
    s = (torch.randn(3, 5, 11, generator=gen) * 4).requires_grad_()
    t = torch.randn(3, 5, 11, generator=gen) * 4
    t[..., 0] = float("-inf")  # a masked-out vocabulary row must not produce nan
    targets = torch.zeros(3, 5, dtype=torch.long)
    mask = torch.rand(3, 5, generator=gen) > 0.3
    same = token_divergence_loss(div, t, t, targets, mask)
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    loss = token_divergence_loss(div, s, t, targets, mask)
    swapped = token_divergence_loss(div, t, s.detach(), targets, mask)
    assert 0.0 < loss.item() <= 1.0 and loss.item() == pytest.approx(swapped.item(), abs=1e-6)
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad[~mask].abs().sum() == 0
    # split into micro-batches, summed and divided by the global count: the same value
    total = sum(
        token_divergence_sum(div, s[i : i + 1], t[i : i + 1], targets[:1], mask[i : i + 1])[0] for i in range(3)
    )
    assert (total / mask.sum()).item() == pytest.approx(loss.item(), abs=1e-6)


def test_example_sampler_and_sequence_divergence_train_a_step_through_the_cli(example_in_process, cli, tmp_path):
    """The example's sampler (geometric_mixed) feeds its sequence-level divergence (reinforce_rkl): one optimizer
    step of `minillm distill` on the tiny recipe, metrics from both."""
    data = yaml.safe_load(KD_RECIPE.read_text(encoding="utf-8"))
    data["name"] = "example-seq"
    data["data"]["train"] = str(KD_RECIPE.parent / data["data"]["train"])
    data["data"]["max_response_length"] = 8
    data["sampler"] = {"name": "geometric_mixed", "alpha": 0.5, "max_new_tokens": 8}
    data["divergence"] = {"name": "reinforce_rkl", "gamma": 0.9}
    data["train"].update(total_steps=1, save_every=1, warmup_steps=0)
    recipe = tmp_path / "example-seq.yaml"
    recipe.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp_path / "run"
    result = cli("distill", str(recipe), "--output-dir", str(out))
    assert result.code == 0, result.output
    (row,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert row["step"] == 1 and row["phase"] == 0 and not row["skipped"]
    assert math.isfinite(row["loss"]) and math.isfinite(row["grad_norm"]) and row["grad_norm"] > 0
    # reinforce_rkl's own metrics: the phase's mean reward log p - log q_old (<= 0 in expectation is not
    # guaranteed per batch, but it is a finite mean over sampled tokens) and the step's return
    assert math.isfinite(row["rollout/reward"]) and math.isfinite(row["return"])
    assert 1 <= row["response_length"] <= 8
    assert (out / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_example_plugins_check_through_the_cli(example_in_process, cli):
    """`minillm plugins check example`: every class of the example package passes (exit 0)."""
    result = cli("plugins", "check", "example")
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    checked = {tuple(line.split()[1:3]) for line in lines[:-1]}
    assert checked == {("divergence", "hellinger"), ("divergence", "reinforce_rkl"), ("sampler", "geometric_mixed")}
    assert all(line.startswith("PASS") for line in lines[:-1])
    assert len(lines) - 1 == 5 + 5 + 6  # token, sequence and sampler checks
    assert lines[-1] == "16 checks of 3 plugin classes: all passed"


def test_example_plugin_command(example_in_process, cli):
    result = cli("hello-plugin")
    assert result.code == 0, result.output
    assert "hellinger(p=[0.7, 0.2, 0.1], q=[0.4, 0.4, 0.2]) = 0.046586" in result.stdout
    assert "1.000000" in cli("hello-plugin", "--p", "1,0", "--q", "0,1").stdout
    assert cli("hello-plugin", "--p", "0.5,0.5", "--q", "1,0,0").code == ExitCode.USAGE
    help_text = cli("--help").stdout
    assert "hello-plugin" in help_text


def test_example_plugin_disabled_by_name_or_distribution(example_in_process, monkeypatch):
    for blocked in ("example", "minillm-plugin-example"):
        monkeypatch.setenv(DISABLE_ENV, blocked)
        plugins = load_plugins()
        info = next(p for p in plugins.plugins if p.name == "example")
        assert info.status == "disabled" and "hellinger" not in plugins.divergences


# --------------------------------------------------------------------------------------------------------------
# (b) load_plugins with fake entry points
# --------------------------------------------------------------------------------------------------------------


def _statuses(plugin_set) -> dict[str, str]:
    return {p.name: p.status for p in plugin_set.plugins}


def _error(plugin_set, name: str) -> str:
    return next(p.error for p in plugin_set.plugins if p.name == name) or ""


def test_good_plugin_loads(fixtures):
    ps = load_plugins(eps=[_ep("good", "fx_good_a")])
    assert _statuses(ps) == {"good": "loaded"}
    info = ps.plugins[0]
    assert info.provides == {"divergence": ["fixture_zero"]} and info.error is None
    assert info.distribution == "unknown" and info.target == "fx_good_a"
    assert ps.divergences.names() == ["fixture_zero"]
    ps.check()


def test_import_error_is_reported_and_others_still_load(fixtures):
    ps = load_plugins(
        eps=[_ep("boom", "fx_import_error"), _ep("good", "fx_good_a"), _ep("bye", "fx_exit_on_import")]
        + [_ep("missing", "fx_no_such_module")]
    )
    assert _statuses(ps) == {"boom": "failed", "good": "loaded", "bye": "failed", "missing": "failed"}
    assert _error(ps, "boom") == "RuntimeError: fixture plugin exploded on import [/] [bold]"
    assert "SystemExit: fixture plugin called sys.exit on import" in _error(ps, "bye")
    assert "ModuleNotFoundError" in _error(ps, "missing") and "fx_no_such_module" in _error(ps, "missing")
    assert "Traceback" in next(p.traceback for p in ps.plugins if p.name == "boom")
    assert ps.divergences.names() == ["fixture_zero"]


def test_hook_that_raises_fails_the_plugin_and_registers_nothing(fixtures):
    ps = load_plugins(eps=[_ep("half", "fx_hook_error"), _ep("good", "fx_good_a")])
    assert _statuses(ps) == {"half": "failed", "good": "loaded"}
    assert _error(ps, "half") == "in register_divergences: ValueError: fixture hook failed halfway"
    assert "fixture_half_registered" not in ps.divergences
    assert ps.plugins[0].provides == {}
    assert ps.manager.get_plugin("half") is None


def test_misspelled_hook_name_fails_the_plugin(fixtures):
    ps = load_plugins(eps=[_ep("typo", "fx_misspelled_hook")])
    assert _statuses(ps) == {"typo": "failed"}
    err = _error(ps, "typo")
    assert "unknown hook 'register_divergence'" in err and "did you mean 'register_divergences'" in err
    assert len(ps.divergences) == 0


def test_hook_with_unknown_argument_fails_the_plugin(fixtures):
    ps = load_plugins(eps=[_ep("args", "fx_bad_hook_args")])
    assert _statuses(ps) == {"args": "failed"}
    assert "registry" in _error(ps, "args")


def test_registering_a_non_subclass_fails_the_plugin(fixtures):
    ps = load_plugins(eps=[_ep("wrong", "fx_not_a_subclass")])
    assert _statuses(ps) == {"wrong": "failed"}
    assert "TypeError" in _error(ps, "wrong") and "is not a subclass of" in _error(ps, "wrong")
    assert "fixture_not_a_divergence" not in ps.divergences


def test_entry_point_naming_a_class_and_hook_taking_no_arguments(fixtures):
    ps = load_plugins(eps=[_ep("cls", "fx_class_plugin:ClassPlugin")])
    assert _statuses(ps) == {"cls": "loaded"}, _error(ps, "cls")
    assert ps.divergences.names() == ["fixture_zero"]


def test_same_divergence_name_from_two_plugins_is_an_error_naming_both(fixtures):
    ps = load_plugins(eps=[_ep("alpha", "fx_good_a"), _ep("beta", "fx_good_b")])
    assert _statuses(ps) == {"alpha": "loaded", "beta": "loaded"}
    assert len(ps.conflicts) == 1
    with pytest.raises(PluginError) as info:
        ps.check()
    text = str(info.value)
    assert "'fixture_zero'" in text and "'alpha'" in text and "'beta'" in text
    assert info.value.exit_code == ExitCode.PLUGIN == 4
    assert DISABLE_ENV in (info.value.hint or "")


def test_disabled_plugins_are_not_imported(fixtures, monkeypatch):
    monkeypatch.setenv(DISABLE_ENV, " beta , not-installed,")
    ps = load_plugins(eps=[_ep("alpha", "fx_good_a"), _ep("beta", "fx_good_b"), _ep("boom", "fx_import_error")])
    assert _statuses(ps) == {"alpha": "loaded", "beta": "disabled", "boom": "failed"}
    assert "fx_good_b" not in sys.modules
    assert ps.conflicts == []
    ps.check()  # blocking one side resolves the conflict, as the error's hint says


def test_disabling_by_distribution_name(monkeypatch):
    monkeypatch.setenv(DISABLE_ENV, "minillm-distill")
    ps = load_plugins()
    builtins = [p for p in ps.plugins if p.distribution == "minillm-distill"]
    assert builtins and all(p.status == "disabled" for p in builtins)
    assert "fkl" not in ps.divergences


def test_two_entry_points_with_one_name_or_one_module(fixtures):
    ps = load_plugins(eps=[_ep("dup", "fx_good_a"), _ep("dup", "fx_good_b"), _ep("again", "fx_good_a")])
    assert [p.status for p in ps.plugins] == ["loaded", "failed", "failed"]
    assert "'dup'" in ps.plugins[1].error and "fx_good_a" in ps.plugins[1].error
    assert "already registered as plugin 'dup'" in ps.plugins[2].error
    assert ps.conflicts == []


# --------------------------------------------------------------------------------------------------------------
# (c) the CLI
# --------------------------------------------------------------------------------------------------------------


def test_plugins_json_lists_every_builtin(cli, monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    result = cli("plugins", "--json")
    assert result.code == 0, result.output
    payload = _json(result)
    builtins = [p for p in payload["plugins"] if p["target"].startswith("minillm_distill.builtins.")]
    assert {p["name"] for p in builtins} >= {"divergences", "model_families", "samplers"}
    for p in builtins:
        assert (p["distribution"], p["version"], p["status"], p["builtin"]) == (
            "minillm-distill",
            minillm_distill.__version__,
            "loaded",
            True,
        )
    assert not any(p["builtin"] for p in payload["plugins"] if p not in builtins)
    monkeypatch.setenv("COLUMNS", "200")  # one line per cell
    table = cli("plugins")
    assert table.code == 0 and table.output.count("minillm-distill (built-in)") == len(builtins)
    provided: dict[str, set[str]] = {}
    for p in builtins:
        for kind, names in p["provides"].items():
            provided.setdefault(kind, set()).update(names)
    for kind, names in BUILTIN.items():
        assert names <= provided.get(kind, set()), kind
        assert names <= set(payload["registries"][kind]), kind
    assert payload["conflicts"] == []


def test_plugins_table(cli, monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    result = cli("plugins")
    assert result.code == 0, result.output
    out = result.stdout
    for word in ("minillm plugins", "divergences", "model_families", "samplers", "loaded", "minillm", "fkl"):
        assert word in out
    assert "{" not in out  # a table, not JSON


def test_version(cli):
    result = cli("--version")
    assert result.code == 0
    assert result.stdout.strip() == f"minillm {minillm_distill.__version__}"


def test_help_lists_every_command(cli):
    result = cli("--help")
    assert result.code == 0
    for command in ("distill", "eval", "generate", "export", "plugins", "recipes"):
        assert command in result.stdout
    bare = cli()  # no arguments: the help
    assert bare.code in (0, 2) and "Usage" in bare.output and "distill" in bare.output


def test_error_renders_a_panel_without_traceback_and_debug_shows_it(cli, tmp_path):
    missing = tmp_path / "nope.yaml"
    plain = cli("distill", str(missing))
    assert plain.code == ExitCode.RECIPE
    assert "recipe file not found" in plain.stderr and "╭" in plain.stderr and "Invalid recipe" in plain.stderr
    assert "Traceback" not in plain.output and "--debug" in plain.stderr
    debug = cli("--debug", "distill", str(missing))
    assert debug.code == ExitCode.RECIPE
    assert "recipe file not found" in debug.stderr
    assert "Traceback (most recent call last)" in debug.stderr and "RecipeError" in debug.stderr


def test_debug_traceback_is_printed_verbatim(capsys):
    """Rich must not read [brackets] in a traceback as markup (it would eat them, or crash on ``[/]``)."""
    try:
        raise MinillmError("bad value [/] in list[str]")
    except MinillmError as err:
        render_error(err, debug=True)
    err_out = capsys.readouterr().err
    assert 'MinillmError("bad value [/] in list[str]")' in err_out.replace("\n", "")


def test_cli_survives_broken_plugins(cli, extra_plugins):
    extra_plugins(
        boom="fx_import_error",
        half="fx_hook_error",
        cmdfail="fx_command_error",
        clash="fx_command_clash",
        unbuildable="fx_command_unbuildable",
        hello="fx_commands",
    )
    result = cli("plugins", "--json")
    assert result.code == 0, result.output
    payload = _json(result)
    plugins = _by_name(payload)
    assert {n: plugins[n]["status"] for n in ("boom", "half", "cmdfail", "clash", "unbuildable", "hello")} == {
        "boom": "failed",
        "half": "failed",
        "cmdfail": "failed",
        "clash": "failed",
        "unbuildable": "failed",
        "hello": "loaded",
    }
    assert plugins["cmdfail"]["error"] == "in register_commands: RuntimeError: fixture register_commands failed"
    assert plugins["cmdfail"]["provides"] == {}
    assert "fixture_from_command_plugin" not in payload["registries"]["divergence"]  # withdrawn with its plugin
    assert "command 'plugins' is already provided by minillm" in plugins["clash"]["error"]
    assert "in register_commands" in plugins["unbuildable"]["error"]
    assert plugins["hello"]["provides"] == {"command": ["fixture-hello"]}
    assert all(plugins[n]["status"] == "loaded" for n in ("divergences", "model_families", "samplers"))

    table = cli("plugins")
    assert table.code == 0, table.output
    assert "failed" in table.stdout and "exploded" in table.stdout
    assert "[/]" in table.stdout and "[bold]" in table.stdout  # the error is shown as text, not read as markup

    assert cli("fixture-hello", "--name", "tests").stdout.strip() == "hello tests from a fixture plugin"
    assert cli("fixture-half-added").code == ExitCode.USAGE  # rolled back with its failed plugin
    assert cli("fixture-unbuildable").code == ExitCode.USAGE
    help_text = cli("--help")
    assert help_text.code == 0 and "fixture-hello" in help_text.stdout and "fixture-half-added" not in help_text.stdout
    listing = cli("plugins", "--json").stdout
    assert json.loads(listing)["plugins"]  # the built-in `plugins` command was not hijacked
    assert "hijacked" not in listing

    debug = cli("--debug", "plugins")
    assert debug.code == 0 and "Traceback" in debug.stdout and "fixture plugin exploded" in debug.stdout


def test_cli_reports_conflicts_with_exit_4(cli, extra_plugins):
    extra_plugins(alpha="fx_good_a", beta="fx_good_b")
    listing = cli("plugins", "--json")
    assert listing.code == ExitCode.PLUGIN
    conflicts = _json(listing)["conflicts"]
    assert len(conflicts) == 1 and "'alpha'" in conflicts[0] and "'beta'" in conflicts[0]

    validate = cli("recipes", "validate", str(KD_RECIPE))
    assert validate.code == ExitCode.PLUGIN
    assert "Plugin error" in validate.stderr and "'alpha'" in validate.stderr and "'beta'" in validate.stderr
    assert "Traceback" not in validate.output

    resolved = cli("plugins", "--json", env={DISABLE_ENV: "beta"})
    assert resolved.code == 0
    assert _by_name(_json(resolved))["beta"]["status"] == "disabled"
