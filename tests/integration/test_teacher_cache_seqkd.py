"""SeqKD from a teacher cache (issue 25): a capture of a recipe whose sampler writes with the teacher alone keeps
one response per prompt, written by that sampler, and the teacher's top-k over it; training replays those responses
without a teacher; a cache of other responses is refused before training, naming what differs."""

from __future__ import annotations

import json
import re

import pytest
import torch
from helpers import run_minillm

from minillm_distill.teacher_cache.cache_format import read_manifest
from minillm_distill.teacher_cache.store import TeacherCache

ENV = {"OMP_NUM_THREADS": "1"}
SEQKD = ("tiny/seqkd", "--set", "train.total_steps=3", "--set", "train.micro_batch_size=2",
         "--set", "sampler.max_new_tokens=12")  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cache") / "tiny-seqkd-k256"
    res = run_minillm("teacher", "capture", *SEQKD, "--output", folder, "--k", "256", "--batch-size", "3",
                      "--shard-records", "3", env=ENV)  # fmt: skip
    assert res.code == 0, res.output
    return folder


def _recipe_parts(*sets: str):
    from minillm_distill.models import load_model
    from minillm_distill.plugins import get_plugins
    from minillm_distill.recipe.loader import load_recipe
    from minillm_distill.recipe.shipped import resolve_recipe_path
    from minillm_distill.teacher_cache.from_recipe import encoded_data

    overrides = ["train.total_steps=3", "train.micro_batch_size=2", "sampler.max_new_tokens=12", *sets]
    recipe = load_recipe(resolve_recipe_path("tiny/seqkd"), overrides)
    student = load_model(recipe.student, seed=recipe.seed)
    teacher = load_model(recipe.teacher, seed=recipe.seed + 1, dtype=torch.float32)
    return recipe, student, teacher, encoded_data(recipe, student, get_plugins())


def test_the_cache_keeps_the_teachers_own_responses_and_its_top_k_over_them(cache):
    recipe, student, teacher, data = _recipe_parts()
    manifest = read_manifest(cache)
    body = json.loads(manifest.settings.responses.removeprefix("teacher:"))
    assert body["sampler"] == "teacher" and body["options"]["max_new_tokens"] == 12
    assert [s["count"] for s in manifest.shards] == [3, 3, 2]
    store = TeacherCache(cache)
    responses = store.responses()
    assert len(responses) == len(data) == 8
    eos = student.tokenizer.eos_token_id
    assert any(r != gold for r, gold in zip(responses, data.responses, strict=True))  # not the data's responses
    for i, response in enumerate(responses):
        # a sampled response: it ends at its first EOS, or runs to max_new_tokens
        assert 1 <= len(response) <= 12
        assert eos not in response[:-1] and (response[-1] == eos or len(response) == 12)
        # the rows are the teacher's top-k over prompt + that response (a plain forward, float64 softmax)
        ids = torch.tensor([data.prompts[i] + response])
        with torch.no_grad():
            logits = teacher.model(ids).logits[0, len(data.prompts[i]) - 1 : -1].double()
        want_values, want_ids = torch.log_softmax(logits, -1).topk(256, dim=-1)
        rows = store.rows(i)
        assert rows.ids.shape == (len(response), 256)
        torch.testing.assert_close(rows.logprobs.double(), want_values, rtol=0, atol=2e-2)  # float16
        assert torch.equal(rows.ids[:, 0], want_ids[:, 0])


def test_a_resumed_capture_writes_the_same_responses_and_other_options_write_others(cache, tmp_path):
    from minillm_distill.plugins import get_plugins
    from minillm_distill.teacher_cache.capture import capture
    from minillm_distill.teacher_cache.from_recipe import recipe_settings, teacher_writer

    recipe, student, teacher, data = _recipe_parts()
    plugins = get_plugins()
    settings = recipe_settings(recipe, student, 256, plugins)
    assert settings == read_manifest(cache).settings
    pad = int(student.tokenizer.pad_token_id)
    write = teacher_writer(recipe, student, teacher, plugins)

    def stop_after_first(manifest):
        if len(manifest.shards) == 1:
            raise KeyboardInterrupt

    folder = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        capture(teacher.model, data, folder, settings, pad_id=pad, batch_size=3, shard_records=3, write=write,
                on_shard=stop_after_first, writer={"seed": 1})  # fmt: skip
    # the draws depend on the seed and on which records share a batch: resuming with either changed is refused
    for changed, words in (({"batch_size": 2}, "batch_size (3, now 2)"), ({"writer": {"seed": 2}}, "seed (1, now 2)")):
        args = {"batch_size": 3, "writer": {"seed": 1}, **changed}
        with pytest.raises(ValueError, match=re.escape(words)):
            capture(teacher.model, data, folder, settings, pad_id=pad, shard_records=3, write=write, **args)
    result = capture(teacher.model, data, folder, settings, pad_id=pad, batch_size=3, shard_records=3, write=write,
                     writer={"seed": 1})  # fmt: skip
    assert result.resumed_from == 3
    assert TeacherCache(folder).responses() == TeacherCache(cache).responses()
    for name in ("shard-00001.safetensors", "shard-00002.safetensors"):
        assert (folder / name).read_bytes() == (cache / name).read_bytes()

    hot, _, hot_teacher, _ = _recipe_parts("sampler.temperature=3.0")
    hot_settings = recipe_settings(hot, student, 256, plugins)
    assert hot_settings.responses != settings.responses
    capture(hot_teacher.model, data, tmp_path / "hot", hot_settings, pad_id=pad, batch_size=3, shard_records=3,
            write=teacher_writer(hot, student, hot_teacher, plugins))  # fmt: skip
    assert TeacherCache(tmp_path / "hot").responses() != TeacherCache(cache).responses()


def test_the_capture_scores_the_written_responses_from_decoding_without_a_second_forward(tmp_path):
    """The rollout the teacher wrote carries its hidden states: the top-k comes from them (the output layer only),
    so the teacher's forward passes are the decoding's own (a prefill of the prompts, then one token at a time)."""
    from minillm_distill.plugins import get_plugins
    from minillm_distill.teacher_cache.capture import capture
    from minillm_distill.teacher_cache.from_recipe import recipe_settings, teacher_writer

    recipe, student, teacher, data = _recipe_parts()
    plugins = get_plugins()
    settings = recipe_settings(recipe, student, 256, plugins)
    lengths: list[int] = []
    hook = teacher.model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(int(kwargs["input_ids"].shape[1])), with_kwargs=True
    )
    try:
        capture(teacher.model, data, tmp_path / "c", settings, pad_id=int(student.tokenizer.pad_token_id),
                batch_size=8, write=teacher_writer(recipe, student, teacher, plugins))  # fmt: skip
    finally:
        hook.remove()
    longest_prompt = max(len(p) for p in data.prompts)
    assert lengths and lengths[0] == longest_prompt  # the prefill
    assert all(n == 1 for n in lengths[1:]), lengths  # then one token at a time, and no forward over prompt + response
    assert TeacherCache(tmp_path / "c").manifest.complete


def test_training_replays_the_cached_responses_without_a_teacher(cache, tmp_path, cli, monkeypatch):
    import minillm_distill.train.setup as setup
    import minillm_distill.train.token_step as token_step

    cached = TeacherCache(cache).responses()
    seen: list[int] = []
    real = token_step.cached_rows

    def spy(store, rollout, device):
        for row, record in enumerate(rollout.extras["data_indices"]):
            ids = rollout.response_ids[row][rollout.response_mask[row].bool()].tolist()
            assert ids == cached[record], f"record {record}: the rollout is not the cached response"
            seen.append(record)
        return real(store, rollout, device)

    monkeypatch.setattr(token_step, "cached_rows", spy)
    real_load = setup.load_model

    def load(spec, *args, **kwargs):  # the from-scratch teacher has 2 layers, the student 1
        assert not (spec.scratch and spec.scratch.get("layers") == 2), "the teacher was loaded"
        return real_load(spec, *args, **kwargs)

    monkeypatch.setattr(setup, "load_model", load)
    res = cli("distill", *SEQKD, "--set", f"teacher_cache={cache}", "--set", "teacher=null", "--set",
              "divergence.name=fkl", "--output-dir", tmp_path / "kd", env=ENV)  # fmt: skip
    assert res.code == 0, res.output
    assert len(seen) == 3 * 2  # every row of every step was a cached response
    rows = [json.loads(line) for line in (tmp_path / "kd" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["loss"] > 0 for r in rows)

    # SeqKD proper (sft: no teacher rows read): what the sampler is handed are the cached responses
    import minillm_distill.train.context as context

    real_collate, handed = context.collate, []

    def collate(data, indices, pad_id):
        batch = real_collate(data, indices, pad_id)
        for row, record in enumerate(indices):
            assert batch.response_ids[row][batch.response_mask[row].bool()].tolist() == cached[record]
            handed.append(record)
        return batch

    monkeypatch.setattr(context, "collate", collate)
    sft = cli("distill", *SEQKD, "--set", f"teacher_cache={cache}", "--output-dir", tmp_path / "sft", env=ENV)
    assert sft.code == 0, sft.output  # the recipe's teacher section kept: it is still not loaded
    assert len(handed) == 3 * 2
    # a student of another seed trains from the same capture (the scratch teacher's weights follow the seed, so
    # this recipe drops it)
    other = cli("distill", *SEQKD, "--set", f"teacher_cache={cache}", "--set", "teacher=null", "--set", "seed=7",
                "--output-dir", tmp_path / "seed7", env=ENV)  # fmt: skip
    assert other.code == 0, other.output


def test_a_misspelt_sampler_without_a_teacher_is_listed_with_the_other_problems(cli):
    res = cli("recipes", "validate", "tiny/kd", "--set", "teacher=null", "--set", "sampler.name=datset")
    assert res.code == 3, res.output
    assert "datset" in res.stderr


@pytest.mark.parametrize(
    ("sets", "words"),
    [
        (("sampler.temperature=0.7",), "written with other sampler options: sampler.temperature 1.0 (the recipe: 0.7)"),
        (("sampler={name: dataset}",),
         "the cache holds the teacher's responses (sampler 'teacher'); the recipe trains on the data's"),
        (("sampler={name: mixed, max_new_tokens: 12}",), "sampler 'mixed' writes responses with the student"),
    ],
)  # fmt: skip
def test_a_cache_of_other_responses_is_refused_before_training(cache, sets, words):
    args = [a for s in sets for a in ("--set", s)]
    res = run_minillm("recipes", "validate", *SEQKD, "--set", f"teacher_cache={cache}", *args, env=ENV)
    assert res.code == 3, res.output
    flat = " ".join(res.output.replace("│", " ").split())
    assert words in flat, flat


def test_a_cache_of_the_datas_responses_is_refused_for_seqkd(tmp_path):
    folder = tmp_path / "kd-cache"
    res = run_minillm("teacher", "capture", "tiny/kd", "--output", folder, "--k", "8", env=ENV)
    assert res.code == 0, res.output
    res = run_minillm("recipes", "validate", "tiny/kd", "--set", "sampler={name: teacher, max_new_tokens: 12}",
                      "--set", f"teacher_cache={folder}", env=ENV)  # fmt: skip
    assert res.code == 3, res.output
    flat = " ".join(res.output.replace("│", " ").split())
    assert "the cache follows the data's responses; the recipe's sampler 'teacher' has the teacher write" in flat
