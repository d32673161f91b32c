"""``python -m minillm_demo.scale``: sizes, settings read back, the recipes of a size, and the results
(the whole command runs on the quick demo in tests/test_demo.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from minillm_demo.config import DemoSettings, ModelSize, TrainStage, quick_settings
from minillm_distill.errors import UsageError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_sizes_parse_and_bad_ones_are_usage_errors():
    from minillm_demo.scale import parse_size, size_name

    assert parse_size("2x16x2") == ModelSize(2, 16, 2) and size_name(ModelSize(3, 48, 4)) == "3x48x4"
    for bad in ("2x16", "2x15x2", "0x16x2", "big", "2x16x0"):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_settings_come_back_from_their_dict_form():
    from minillm_demo.scale import settings_from_dict

    s = DemoSettings(mode="default", seed=3, student=ModelSize(2, 16, 2), distill=TrainStage(10, 1e-3, 8, 1),
                     methods=("kd", "minillm"), world={"shared_weight": 0.0})  # fmt: skip
    back = settings_from_dict(json.loads(json.dumps(s.as_dict())))
    # as_dict() records the evaluation's automatic values resolved, so those come back resolved
    assert back == replace(s, eval=s.eval_config()) and back.as_dict() == s.as_dict()
    assert isinstance(back.eval.seeds, tuple) and isinstance(back.student, ModelSize) and back.eval.max_new_tokens > 0
    q = quick_settings()
    assert settings_from_dict(json.loads(json.dumps(q.as_dict()))) == replace(q, eval=q.eval_config())


def _fake_demo(root: Path, settings: DemoSettings) -> None:
    """What the scale command reads from a finished demo: settings, results, data, tokenizer, teacher folder."""
    from minillm_demo.pipeline import DemoPaths, make_data

    paths = DemoPaths(root)
    facts = make_data(settings, paths)
    (root / "runs" / "teacher" / "final").mkdir(parents=True)
    (root / "demo-settings.json").write_text(json.dumps({"settings": settings.as_dict(), "threads": 2}))
    entry = {"mean": 0.5, "std": 0.1, "seeds": [0.4, 0.6]}
    rows = {m: {"validity": entry, "rouge_l": entry} for m in ("teacher", "sft", "kd", "gkd", "minillm")}
    (root / "results.json").write_text(json.dumps({**rows, "settings": {**settings.as_dict(), **facts}}))


def test_a_sizes_recipes_train_that_size_under_the_demos_teacher(tmp_path):
    from minillm_demo.scale import _recipes, plan
    from minillm_distill.recipe.yaml_io import load_yaml

    settings = replace_quick(train_runs=2)
    _fake_demo(tmp_path, settings)
    (p,) = plan(tmp_path, [ModelSize(2, 16, 2)], ["minillm", "kd"], ["distill.steps=7"])
    assert p.settings.methods == ("kd", "minillm")  # the demo's order
    assert p.spec == {"student": "2x16x2", "methods": ["kd", "minillm"], "overrides": ["distill.steps=7"]}
    recipes = _recipes(p, tmp_path)
    assert sorted(recipes) == ["run1/kd", "run1/minillm", "run1/sft", "run2/kd", "run2/minillm", "run2/sft"]
    sft = load_yaml(recipes["run2/sft"].read_text())
    assert (sft["student"]["scratch"]["hidden"], sft["student"]["scratch"]["layers"]) == (16, 2)
    minillm = load_yaml(recipes["run1/minillm"].read_text())
    assert minillm["teacher"]["path"] == str(tmp_path / "runs" / "teacher" / "final")
    assert minillm["student"]["path"] == str(p.folder / "runs" / "run1" / "sft" / "final")
    assert minillm["train"]["total_steps"] == 7
    # the same seeds as the demo's own stages of that run: only the size differs
    from minillm_demo.recipes import build_recipes

    demo = build_recipes(settings, tmp_path / "data", tmp_path / "tokenizer", tmp_path / "runs")
    assert minillm["seed"] == demo["run1/minillm"]["seed"] and sft["seed"] == demo["run2/sft"]["seed"]


def replace_quick(**changes) -> DemoSettings:
    return replace(quick_settings(), train_prompts=300, valid_prompts=20, test_prompts=20, **changes)


def test_results_put_every_size_in_order_with_the_demos_own(tmp_path):
    from minillm_demo.scale import plan, scale_results
    from minillm_demo.scale_figure import draw_scale_figure, series

    settings = replace_quick(train_runs=2)
    _fake_demo(tmp_path, settings)
    plans = plan(tmp_path, [ModelSize(2, 48, 4), ModelSize(2, 16, 2)], ["kd"], [])
    for p, validity in zip(plans, (0.9, 0.1), strict=True):
        for run in (1, 2):
            for name in ("sft", "kd"):
                f = p.folder / "eval" / f"run{run}" / f"{name}.json"
                f.parent.mkdir(parents=True, exist_ok=True)
                per_seed = {"validity": [validity, validity + 0.02], "rouge_l": [10.0, 20.0]}
                f.write_text(json.dumps({"per_seed": per_seed}))
    results = scale_results(tmp_path, plans)
    assert [r["name"] for r in results["sizes"]] == ["2x16x2", "2x24x2", "2x48x4"]
    vocab = json.loads((tmp_path / "results.json").read_text())["settings"]["vocabulary"]
    assert [r["parameters"] for r in results["sizes"]] == [ModelSize(2, h, a).parameters(vocab) for h, a in
                                                           ((16, 2), (24, 2), (48, 4))]  # fmt: skip
    kd = results["sizes"][0]["models"]["kd"]["validity"]
    assert kd["seeds"] == pytest.approx([0.1, 0.12, 0.1, 0.12]) and kd["mean"] == pytest.approx(0.11)
    assert kd["std"] == pytest.approx((4 * 0.01**2 / 3) ** 0.5)
    xs, ys, _ = series(results, "kd", "validity", 100.0)
    assert ys == pytest.approx([11.0, 50.0, 91.0]) and xs == sorted(xs)
    assert results["methods"] == ["sft", "kd"] and results["teacher"]["validity"]["mean"] == 0.5
    assert draw_scale_figure(results, tmp_path / "scale.png").read_bytes().startswith(PNG_MAGIC)


def test_the_command_refuses_a_folder_without_a_demo_and_bad_arguments(tmp_path, cli):
    wide = {"COLUMNS": "400"}
    result = cli("demo", "scale", tmp_path, "2x16x2", env=wide)
    assert result.code == 2 and "holds no finished demo" in result.stderr
    result = cli("demo", "scale", tmp_path, "2x16", env=wide)
    assert result.code == 2 and "LAYERSxHIDDENxHEADS" in result.stderr
    assert cli("demo", "scale", "--bogus").code == 2
    settings = replace_quick(train_runs=2)
    _fake_demo(tmp_path, settings)
    result = cli("demo", "scale", tmp_path, "2x16x2", "--methods", "kd,bogus", env=wide)
    assert result.code == 2 and "bogus" in result.stderr
    result = cli("demo", "scale", tmp_path, "2x16x2", "--set", "distill.stepz=3", env=wide)
    assert result.code == 2 and "stepz" in result.stderr
