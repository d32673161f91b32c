"""Training from a teacher cache (issue 25 §2): no teacher is loaded, the losses are the live teacher's (to float16
rounding) when the tail holds one token, and every mismatch between cache and recipe is refused before training
(exit 3, naming what differs); a record the cache does not hold is an error, never a silent skip."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import run_minillm

from minillm_distill.errors import RecipeError

ENV = {"OMP_NUM_THREADS": "1"}
KD = ("tiny/kd", "--set", "train.total_steps=4", "--set", "train.micro_batch_size=2")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cache") / "tiny-kd-k256"
    res = run_minillm("teacher", "capture", "tiny/kd", "--output", folder, "--k", "256", env=ENV)
    assert res.code == 0, res.output
    return folder


def _losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_from_the_cache_loads_no_teacher_and_matches_the_live_one(cache, tmp_path):
    cached = run_minillm("distill", *KD, "--set", f"teacher_cache={cache}", "--set", "teacher=null",
                         "--output-dir", tmp_path / "cached", env=ENV)  # fmt: skip
    assert cached.code == 0, cached.output
    live = run_minillm("distill", *KD, "--output-dir", tmp_path / "live", env=ENV)
    assert live.code == 0, live.output
    # k = 256 of 257 rows: the tail bucket is one token, so the coarsened KL is the dense one; float16 values
    assert _losses(tmp_path / "cached") == pytest.approx(_losses(tmp_path / "live"), rel=2e-3)
    assert (tmp_path / "cached" / "final" / "model.safetensors").exists()


@pytest.mark.parametrize("stage", [0, 3])
def test_two_processes_from_the_cache_match_two_with_the_live_teacher(cache, tmp_path, stage):
    """Under --nproc 2 each rank reads the rows of its own records (ZeRO-3: the student sharded, no teacher to
    shard); the losses are the live teacher's on the same two ranks."""
    two = (*KD, "--nproc", "2", "--set", f"engine.zero_stage={stage}")
    cached = run_minillm("distill", *two, "--set", f"teacher_cache={cache}", "--set", "teacher=null",
                         "--output-dir", tmp_path / "cached", env=ENV)  # fmt: skip
    assert cached.code == 0, cached.output
    live = run_minillm("distill", *two, "--output-dir", tmp_path / "live", env=ENV)
    assert live.code == 0, live.output
    assert len(_losses(tmp_path / "cached")) == 4
    assert _losses(tmp_path / "cached") == pytest.approx(_losses(tmp_path / "live"), rel=2e-3)


@pytest.mark.parametrize(
    ("sets", "words"),
    [
        (("divergence.temperature=2.0",), "another temperature (1.0) than the recipe's divergence.temperature (2.0)"),
        (("data.max_response_length=32",), "another max_response_length (64)"),
        (("sampler={name: student, max_new_tokens: 8}",), "sampler 'student' writes responses with the student"),
        (("divergence={name: minillm}", "sampler={name: teacher_mixed, max_new_tokens: 8}"),
         "divergence 'minillm' trains on the student's own samples"),
    ],
)  # fmt: skip
def test_a_cache_that_does_not_fit_the_recipe_is_refused_before_training(cache, tmp_path, sets, words):
    args = [a for s in sets for a in ("--set", s)]
    res = run_minillm("distill", *KD, "--set", f"teacher_cache={cache}", *args, "--output-dir", tmp_path / "run",
                      env=ENV)  # fmt: skip
    assert res.code == 3, res.output
    flat = " ".join(res.output.replace("│", " ").split())
    assert "teacher_cache" in flat and words in flat, flat
    assert not (tmp_path / "run").exists()


def test_an_unfinished_cache_is_refused(cache, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["records"] += 1  # one record short of the data: never finished
    (partial / "manifest.json").write_text(json.dumps(manifest))
    res = run_minillm("recipes", "validate", *KD, "--set", f"teacher_cache={partial}", env=ENV)
    assert res.code == 3 and "its capture stopped before the end" in " ".join(res.output.replace("│", " ").split())


def test_a_record_the_cache_does_not_hold_is_an_error_naming_it(cache):
    from minillm_distill.teacher_cache.store import TeacherCache
    from minillm_distill.train.cached_teacher import check_records

    store = TeacherCache(cache)
    hashes = store.record_hashes()
    assert len(hashes) == 8
    # the records as the capture encoded them pass; one changed token in record 5 is named
    from minillm_distill.models import load_model
    from minillm_distill.plugins import get_plugins
    from minillm_distill.recipe.loader import load_recipe
    from minillm_distill.recipe.shipped import resolve_recipe_path
    from minillm_distill.teacher_cache.from_recipe import encoded_data

    recipe = load_recipe(resolve_recipe_path("tiny/kd"), [])
    data = encoded_data(recipe, load_model(recipe.student, seed=recipe.seed), get_plugins())
    check_records(store, data.prompts, data.responses)
    responses = [list(r) for r in data.responses]
    responses[5][0] += 1
    with pytest.raises(RecipeError, match="record 5 of the training data"):
        check_records(store, data.prompts, responses)
    with pytest.raises(RecipeError, match="holds 8 records, the recipe's data encodes to 7"):
        check_records(store, data.prompts[:7], data.responses[:7])
    assert torch.is_tensor(store.rows(0).ids)
