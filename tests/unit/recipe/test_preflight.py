"""`recipes validate` runs every check `distill` makes before training: each bad recipe below is rejected by
validate (exit 3, the dotted location) and by distill with the same code before any training starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_cases import DATA_FILE, VALID, edit


def _data(tmp: Path, name: str, content: bytes) -> str:
    p = tmp / name
    p.write_bytes(content)
    return str(p)


def _bad_recipes(tmp: Path) -> dict[str, tuple[str, list[str]]]:
    """case -> (recipe text, strings the panel must show)"""
    d = tmp / "adir"
    d.mkdir()
    not_model = tmp / "not-a-model"
    not_model.mkdir()
    (not_model / "notes.txt").write_text("hi")
    data = f"  train: {DATA_FILE}\n"
    fieldless = _data(tmp, "f.jsonl", b'{"foo": 1}\n')
    return {
        "empty data": (edit(data, f"  train: {_data(tmp, 'e.jsonl', b'')}\n"), ["data.train", "is empty"]),
        "binary data": (edit(data, f"  train: {_data(tmp, 'b.jsonl', bytes(range(256)))}\n"), ["data.train", "binary"]),
        "non-JSON data": (
            edit(data, f"  train: {_data(tmp, 't.jsonl', b'hello world')}\n"),
            ["data.train", "not JSON"],
        ),
        "field-less data": (
            edit(data, f"  train: {fieldless}\n"),
            ["data.train", "instruction"],
        ),
        "data dir": (edit(data, f"  train: {d}\n"), ["data.train", "directory"]),
        "missing teacher": (
            edit(
                "  scratch: {layers: 2, hidden: 64, heads: 2, max_positions: 256}\n  tokenizer: byte\n",
                f"  path: {tmp / 'nowhere'}\n",
            ),
            ["teacher.path", "does not exist"],
        ),
        "non-model teacher": (
            edit(
                "  scratch: {layers: 2, hidden: 64, heads: 2, max_positions: 256}\n  tokenizer: byte\n",
                f"  path: {not_model}\n",
            ),
            ["teacher.path", "config.json"],
        ),
        "unknown benchmark": (VALID + "eval:\n  every: 5\n  benchmarks: [dolyy]\n", ["eval.benchmarks.0", "dolly"]),
        "missing eval data": (
            VALID + "eval:\n  every: 5\n  benchmarks: [dolly]\n  data: {dolly: no-such-eval.jsonl}\n",
            ["eval.data.dolly", "file not found: no-such-eval.jsonl"],
        ),
        "eval data for an unlisted benchmark": (
            VALID + f"eval:\n  every: 5\n  benchmarks: [dolly]\n  data: {{vicuna: {DATA_FILE}}}\n",
            ["eval.data.vicuna", "not in eval.benchmarks"],
        ),
        "eval tokens fill the student": (
            VALID + "eval:\n  every: 5\n  benchmarks: [dolly]\n  max_new_tokens: 256\n",
            ["eval.max_new_tokens", "256 new tokens leave no room for a prompt", "below 256"],
        ),
        "sequence divergence, dataset sampler": (
            edit("divergence:\n  name: fkl\n  temperature: 1.0\n", "divergence:\n  name: minillm\n"),
            ["sampler.name", "log-probs", "teacher_mixed"],
        ),
        "minillm divergence, student sampler": (
            edit("divergence:\n  name: fkl\n  temperature: 1.0\n", "divergence:\n  name: minillm\n").replace(
                "name: dataset", "name: student"
            ),
            ["sampler.name", "teacher's log-probs", "'student'", "use one that does: teacher_mixed", "alpha 0"],
        ),
        "positions too short": (
            edit(
                "{layers: 1, hidden: 32, heads: 2, max_positions: 256}",
                "{layers: 1, hidden: 32, heads: 2, max_positions: 128}",
            ),
            ["student", "128 positions", "224"],
        ),
        "deepspeed key type": (
            edit(
                "  dtype: fp32\n",
                "  dtype: fp32\n  deepspeed: {gradient_clipping: '1.0', zero_optimization: {overlap_comm: 3}}\n",
            ),
            ["engine.deepspeed.gradient_clipping", "engine.deepspeed.zero_optimization.overlap_comm"],
        ),
    }


CASES = [
    "empty data",
    "binary data",
    "non-JSON data",
    "field-less data",
    "data dir",
    "missing teacher",
    "non-model teacher",
    "unknown benchmark",
    "missing eval data",
    "eval data for an unlisted benchmark",
    "eval tokens fill the student",
    "sequence divergence, dataset sampler",
    "minillm divergence, student sampler",
    "positions too short",
    "deepspeed key type",
]


@pytest.mark.parametrize("case", CASES)
def test_validate_and_distill_reject_before_training(case, cli, tmp_path):
    text, expected = _bad_recipes(tmp_path)[case]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    checked = cli("recipes", "validate", recipe)
    assert checked.code == 3, checked.output
    flat = " ".join(checked.output.split()).replace("│", "")
    for word in expected:
        assert word in " ".join(flat.split()), (word, checked.output)
    assert "Traceback" not in checked.output
    run_dir = tmp_path / "run"
    trained = cli("distill", recipe, "--output-dir", run_dir, "--max-steps", "1")
    assert trained.code == 3, trained.output
    assert "Traceback" not in trained.output
    assert not run_dir.exists()  # rejected before the run started


def test_every_problem_reported_at_once(cli, tmp_path):
    text, _ = _bad_recipes(tmp_path)["positions too short"]
    text = text.replace("  dtype: fp32\n", "  dtype: fp32\n  deepspeed: {steps_per_print: true}\n")
    text += "eval:\n  every: 5\n  benchmarks: [nope]\n"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    out = cli("recipes", "validate", recipe)
    assert out.code == 3
    flat = " ".join(out.output.replace("│", " ").split())
    assert "4 problems found before training" in flat, out.output
    for loc in ("student:", "engine.deepspeed.steps_per_print", "eval.benchmarks.0", "eval.max_new_tokens:"):
        assert loc in flat


LOL = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True)
)


def test_billion_laughs_recipe_is_refused_quickly(cli, tmp_path):
    recipe = tmp_path / "lol.yaml"
    recipe.write_text(LOL)
    out = cli("recipes", "validate", recipe)
    assert out.code == 3
    assert "too large once its aliases are expanded" in " ".join(out.output.split())
    assert "Traceback" not in out.output


def test_billion_laughs_in_set_value_is_a_usage_error(cli):
    value = "{" + ", ".join(LOL.strip().replace(": &", ": &").splitlines()) + "}"
    out = cli("distill", "tiny/kd", "--set", f"engine.deepspeed={value}")
    assert out.code == 2
    assert "100,000 values" in " ".join(out.output.split())


def test_expansion_limit_counts_aliases_not_text():
    from minillm_distill.recipe.yaml_io import ExpansionError, load_yaml

    small = "a: &a [1, 2]\nb: [*a, *a]\n"  # 1 map + keys/values: well under any limit
    assert load_yaml(small) == {"a": [1, 2], "b": [[1, 2], [1, 2]]}
    with pytest.raises(ExpansionError):
        load_yaml(LOL)
    with pytest.raises(ExpansionError, match="endless"):
        load_yaml("a: &a [1, *a]\n")


@pytest.mark.parametrize("depth", [65, 5000])
def test_a_deeply_nested_set_value_is_a_usage_error_not_a_recursion_error(cli, depth):
    out = cli(
        "recipes", "validate", "tiny/kd", "--schema-only", "--set", "engine.deepspeed.x=" + "[" * depth + "]" * depth
    )
    assert out.code == 2, out.output
    flat = " ".join(out.output.replace("│", " ").split())
    assert "nests more than 64 levels deep" in flat and "Traceback" not in out.output
    assert len(out.output) < 2000  # the 10,000-character value is not echoed whole


def test_a_deeply_nested_recipe_file_is_a_recipe_error(cli, tmp_path):
    recipe = tmp_path / "deep.yaml"
    recipe.write_text("name: deep\nx: " + "[" * 3000 + "]" * 3000 + "\n")
    out = cli("recipes", "validate", recipe)
    assert out.code == 3, out.output
    assert "nests more than 64 levels deep" in " ".join(out.output.split())


def test_nesting_up_to_the_limit_still_parses():
    from minillm_distill.recipe.yaml_io import MAX_DEPTH, load_yaml

    assert load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


@pytest.mark.parametrize(("key", "value"), [("seed", 2**64), ("seed", 2**32), ("seed", -1), ("eval.seeds", [2**40])])
def test_seeds_beyond_what_torch_and_numpy_accept_are_recipe_errors(cli, key, value):
    out = cli("recipes", "validate", "tiny/kd", "--schema-only", "--set", f"{key}={value}")
    assert out.code == 3, out.output
    flat = " ".join(out.output.replace("│", " ").split())
    assert key.split(".")[0] in flat and "Traceback" not in out.output
    assert cli("recipes", "validate", "tiny/kd", "--schema-only", "--set", f"seed={2**32 - 1}").code == 0


def test_validate_refuses_what_distill_refuses_a_system_turn_without_the_chat_template(cli, tmp_path):
    """``recipes validate`` passed this recipe and ``distill`` stopped at "needs the chat template" (exit 3)."""
    import json as _json

    data = tmp_path / "chat.jsonl"
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ]
    data.write_text(_json.dumps({"messages": conversation}) + "\n", encoding="utf-8")
    args = ("tiny/kd", "--set", f"data.train={data}", "--set", "data.prompt_format=family")
    out = cli("recipes", "validate", *args)
    assert out.code == 3, out.output
    flat = " ".join(out.output.replace("│", " ").split())
    assert "data.train" in flat and "needs the chat template" in flat and "chat.jsonl, record 1 (line 1)" in flat
    user_only = tmp_path / "user.jsonl"
    user_only.write_text(_json.dumps({"messages": conversation[1:]}) + "\n", encoding="utf-8")
    assert cli("recipes", "validate", "tiny/kd", "--set", f"data.train={user_only}").code == 0
