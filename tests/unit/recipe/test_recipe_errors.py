"""Malformed recipes: each one is rejected with exit code 3, the dotted location of the problem, and no
Python traceback. Every case is a valid tiny recipe with one thing broken."""

from __future__ import annotations

import pytest
from recipe_cases import DATA_FILE, DIVERGENCE, STUDENT, STUDENT_SCRATCH, TEACHER, VALID, assert_reported, edit, flat  # noqa: F401


def test_valid_base_recipe_validates(cli, tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    res = cli("recipes", "validate", path)
    assert res.code == 0, res.output
    assert "broken (dataset x fkl)" in res.stdout


# (id, recipe text, strings the output must contain: the dotted location first)
CASES = [
    ("wrong-type-lr", edit("lr: 1e-3", "lr: fast"), ["train.lr:", "valid number"]),
    ("wrong-type-bool-as-number", edit("lr: 1e-3", "lr: true"), ["train.lr:", "not the boolean true"]),
    ("wrong-type-int-fraction", edit("total_steps: 20", "total_steps: 20.5"), ["train.total_steps:"]),
    ("wrong-type-section", edit(DIVERGENCE, "divergence: fkl\n"), ["divergence:", "{name: fkl}"]),
    ("wrong-type-model", edit(TEACHER, "teacher: gpt2\n"), ["teacher:", "{path: gpt2}"]),
    ("unknown-top-level-key", VALID + "trian:\n  lr: 1\n", ["trian:", "unknown key", "Did you mean 'train'?"]),
    (
        "unknown-nested-key",
        edit("lr: 1e-3", "lr: 1e-3\n  learning_rate: 3"),
        ["train.learning_rate:", "unknown key", "total_steps"],
    ),
    (
        "unknown-divergence",
        edit("name: fkl", "name: jsdd"),
        ["divergence.name:", "unknown divergence 'jsdd'", "fkl, jsd", "Did you mean 'jsd'?"],
    ),
    ("unknown-sampler", edit("name: dataset", "name: datset"), ["sampler.name:", "unknown sampler", "'dataset'"]),
    (
        "unknown-model-family",
        edit("  family: gpt2\n  scratch: {layers: 2", "  family: gtp2\n  scratch: {layers: 2"),
        ["teacher.family:", "unknown model family 'gtp2'", "llama", "Did you mean 'gpt2'?"],
    ),
    (
        "unknown-plugin-option",
        edit("name: fkl\n  temperature: 1.0", "name: jsd\n  bta: 0.3"),
        ["divergence.bta:", "unknown key 'bta'", "Did you mean 'beta'?"],
    ),
    (
        "jsd-beta-out-of-range",
        edit("name: fkl\n  temperature: 1.0", "name: jsd\n  beta: 1.5"),
        ["divergence.beta:", "less than or equal to 1"],
    ),
    (
        "skew-alpha-out-of-range",
        edit("name: fkl\n  temperature: 1.0", "name: srkl\n  alpha: 1.0"),
        ["divergence.alpha:", "less than 1"],
    ),
    ("temperature-zero", edit("temperature: 1.0", "temperature: 0"), ["divergence.temperature:", "greater than 0"]),
    ("temperature-infinite", edit("temperature: 1.0", "temperature: .inf"), ["divergence.temperature:", "finite"]),
    ("negative-lr", edit("lr: 1e-3", "lr: -1e-3"), ["train.lr:", "greater than 0"]),
    ("nan-lr", edit("lr: 1e-3", "lr: .nan"), ["train.lr:", "finite number"]),
    ("betas-out-of-range", edit("lr: 1e-3", "lr: 1e-3\n  betas: [0.9, 1.0]"), ["train.betas.1:", "less than 1"]),
    ("betas-negative", edit("lr: 1e-3", "lr: 1e-3\n  betas: [-0.1, 0.99]"), ["train.betas.0:", "greater than"]),
    (
        "warmup-exceeds-total-steps",
        edit("warmup_steps: 2", "warmup_steps: 50"),
        ["train.warmup_steps:", "exceeds total_steps (20)"],
    ),
    ("zero-stage-4", edit("zero_stage: 0", "zero_stage: 4"), ["engine.zero_stage:", "less than or equal to 3"]),
    ("bad-dtype", edit("dtype: fp32", "dtype: fp8"), ["engine.dtype:", "'bf16'"]),
    (
        "offload-without-zero",
        edit("dtype: fp32", "dtype: fp32\n  offload_optimizer: true"),
        ["engine.offload_optimizer:", "zero_stage 1, 2 or 3"],
    ),
    (
        "offload-params-without-zero3",
        edit("zero_stage: 0", "zero_stage: 2\n  offload_params: true"),
        ["engine.offload_params:", "zero_stage 3"],
    ),
    ("missing-teacher", edit(TEACHER, ""), ["teacher:", "divergence 'fkl' needs a teacher"]),
    (
        "model-both-path-and-scratch",
        edit(STUDENT_SCRATCH, STUDENT_SCRATCH + "  path: gpt2\n"),
        ["student:", "exactly one of `path`"],
    ),
    ("model-neither-path-nor-scratch", edit(STUDENT_SCRATCH, ""), ["student:", "exactly one of `path`"]),
    (
        "scratch-without-tokenizer",
        edit(STUDENT, "student:\n  family: gpt2\n" + STUDENT_SCRATCH),
        ["student.tokenizer:", "needs `tokenizer`"],
    ),
    (
        "scratch-without-family",
        edit(STUDENT, "student:\n" + STUDENT_SCRATCH + "  tokenizer: byte\n"),
        ["student.family:", "needs `family`"],
    ),
    (
        "scratch-heads-do-not-divide-hidden",
        edit("hidden: 32, heads: 2", "hidden: 32, heads: 3"),
        ["student.scratch:", "hidden (32) must be divisible by heads (3)"],
    ),
    (
        "scratch-unknown-option",
        edit("hidden: 32, heads: 2", "hiden: 32, heads: 2"),
        ["student.scratch.hiden:", "Did you mean 'hidden'?"],
    ),
    ("scratch-out-of-range", edit("layers: 1,", "layers: 0,"), ["student.scratch.layers:", "greater than or equal"]),
    ("missing-data-file", edit(f"train: {DATA_FILE}", "train: data/nothere.jsonl"), ["data.train:", "not found"]),
    ("missing-required-section", edit(DIVERGENCE, ""), ["divergence:", "Field required"]),
    ("bad-recipe-name", edit("name: broken", "name: 'bad name!'"), ["name:", "not a valid run name"]),
    ("bad-schedule", edit("lr: 1e-3", "lr: 1e-3\n  schedule: cosin"), ["train.schedule:", "'cosine'"]),
    ("negative-seed", edit("seed: 1", "seed: -1"), ["seed:", "greater than or equal to 0"]),
    (
        "duplicate-key",
        edit("lr: 1e-3", "lr: 1e-3\n  lr: 2e-3"),
        ["train.lr:", "given twice (lines 22 and 23)"],
    ),
    ("duplicate-section", VALID + "engine:\n  zero_stage: 1\n", ["engine:", "given twice"]),
    ("yaml-syntax-bracket", edit("lr: 1e-3", "lr: [1e-3"), ["YAML syntax error at line", "column"]),
    ("yaml-syntax-tab", edit("  lr: 1e-3", "\tlr: 1e-3"), ["YAML syntax error at line 22, column 1", "'\\t'"]),
    ("top-level-list", "- name: broken\n- seed: 1\n", ["(top level):", "got list"]),
    ("top-level-scalar", "just a string\n", ["(top level):", "got str"]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_recipe_validate(cli, tmp_path, text, expected):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    res = cli("recipes", "validate", path)
    assert res.code == 3, res.output
    assert "Invalid recipe (exit 3)" in res.stderr
    assert_reported(res.output, *expected)


DISTILL_CASES = ["unknown-divergence", "negative-lr", "missing-teacher", "duplicate-key", "yaml-syntax-bracket"]


@pytest.mark.parametrize("case_id", DISTILL_CASES)
def test_malformed_recipe_distill(cli, tmp_path, case_id):
    _, text, expected = next(c for c in CASES if c[0] == case_id)
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    res = cli("distill", path)
    assert res.code == 3, res.output
    assert_reported(res.output, *expected)


def test_empty_file(cli, tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# only a comment\n")
    res = cli("recipes", "validate", path)
    assert res.code == 3
    assert_reported(res.output, "the recipe is empty")


def test_missing_file(cli, tmp_path):
    res = cli("recipes", "validate", tmp_path / "nope.yaml")
    assert res.code == 3
    assert_reported(res.output, "recipe file not found", "nope.yaml")


def test_missing_file_distill(cli, tmp_path):
    res = cli("distill", tmp_path / "nope.yaml")
    assert res.code == 3
    assert_reported(res.output, "recipe file not found")


def test_directory(cli, tmp_path):
    res = cli("recipes", "validate", tmp_path)
    assert res.code == 3
    assert_reported(res.output, "is a directory")


def test_not_utf8(cli, tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    res = cli("recipes", "validate", path)
    assert res.code == 3
    assert_reported(res.output, "cannot read recipe")


def test_disallowed_character_has_a_position(cli, tmp_path):
    path = tmp_path / "ctrl.yaml"
    path.write_text("name: x\nseed: 1\x07\n")
    res = cli("recipes", "validate", path)
    assert res.code == 3
    assert_reported(res.output, "line 2, column 8", "not allowed in YAML")


def test_several_problems_reported_at_once(cli, tmp_path):
    text = (
        edit("lr: 1e-3", "lr: -1")
        .replace("zero_stage: 0", "zero_stage: 9")
        .replace("name: fkl", "name: fkll")
        .replace("hidden: 32, heads: 2", "hidden: 32, heads: 5")
        .replace(f"train: {DATA_FILE}", "train: missing.jsonl")
    )
    path = tmp_path / "many.yaml"
    path.write_text(text)
    res = cli("recipes", "validate", path)
    assert res.code == 3
    assert_reported(
        res.output,
        "5 problems",
        "train.lr:",
        "engine.zero_stage:",
        "divergence.name:",
        "student.scratch:",
        "data.train:",
    )


def test_several_duplicate_keys_reported_at_once(cli, tmp_path):
    path = tmp_path / "dups.yaml"
    path.write_text(edit("lr: 1e-3", "lr: 1e-3\n  lr: 2e-3") + "seed: 3\n")
    res = cli("recipes", "validate", path)
    assert res.code == 3
    assert_reported(res.output, "2 keys given twice", "train.lr:", "seed:")


def test_validate_reports_every_file(cli, tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(VALID)
    bad.write_text(edit("lr: 1e-3", "lr: -1"))
    res = cli("recipes", "validate", bad, good)
    assert res.code == 3
    assert "ok" in res.stdout and "good.yaml" in res.stdout
    assert_reported(res.stderr, "train.lr:")


def test_override_can_break_a_recipe(cli, tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    res = cli("recipes", "validate", path, "--set", "divergence.beta=2", "--set", "divergence.name=jsd")
    assert res.code == 3
    assert_reported(res.output, "divergence.beta:")


def test_debug_shows_the_traceback(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(edit("lr: 1e-3", "lr: -1"))
    res = cli("--debug", "distill", path)
    assert res.code == 3
    assert "Traceback" in res.output


def test_pretraining_corpus_with_a_divergence_that_ignores_it_is_an_error(cli):
    res = cli("recipes", "validate", "recipes/tiny/kd.yaml", "--set", "data.pretrain.path=recipes/tiny/data/corpus.txt")
    assert res.code == 3
    assert "data.pretrain" in res.output and "no pretraining term" in " ".join(res.output.split())
    ok = cli("recipes", "validate", "recipes/tiny/minillm.yaml")
    assert ok.code == 0
