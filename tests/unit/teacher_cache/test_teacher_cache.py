"""The teacher's top-k cache (issue 25, capture): the values against a float64 computation, the format's size,
a capture killed mid-way and resumed, and the refusals of a cache that does not match."""

from __future__ import annotations

import json
import math

import pytest
import torch

from minillm_distill.recipe.loader import load_recipe
from minillm_distill.recipe.shipped import resolve_recipe_path
from minillm_distill.teacher_cache.cache_format import CacheFormatError, read_manifest
from minillm_distill.teacher_cache.capture import capture
from minillm_distill.teacher_cache.from_recipe import encoded_data, recipe_settings
from minillm_distill.teacher_cache.store import TeacherCache
from minillm_distill.teacher_cache.topk_teacher import TeacherTopK, topk_rows


def test_topk_rows_against_float64():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 50, generator=g) * 3
    logits[0, 7] = float("-inf")  # a ruled-out entry
    ids, values, tail = topk_rows(logits, temperature=2.0, k=8)
    ref = torch.log_softmax(logits.double() / 2.0, dim=-1)
    want_values, want_ids = ref.topk(8, dim=-1)
    assert torch.equal(ids, want_ids)
    torch.testing.assert_close(values.double(), want_values, rtol=0, atol=1e-6)
    rest = 1.0 - want_values.exp().sum(-1)
    torch.testing.assert_close(tail.double(), rest.log(), rtol=0, atol=1e-5)
    # the three parts are the whole distribution
    torch.testing.assert_close((values.exp().sum(-1) + tail.exp()).double(), torch.ones(5, dtype=torch.float64))


def test_the_tail_stays_exact_when_the_top_k_hold_almost_all_the_mass():
    logits = torch.full((1, 1000), -40.0)
    logits[0, :4] = 0.0  # the rest holds e^-40 * 996 / 4 of the mass: 1 - sum underflows in float32
    _, _, tail = topk_rows(logits, 1.0, 4)
    want = math.log(996 * math.exp(-40.0) / (4 + 996 * math.exp(-40.0)))
    assert tail.item() == pytest.approx(want, rel=1e-6)


@pytest.fixture(scope="module")
def tiny():
    from minillm_distill.models import load_model
    from minillm_distill.plugins import get_plugins

    recipe = load_recipe(resolve_recipe_path("tiny/kd"), ["divergence.temperature=2.0"])
    plugins = get_plugins()
    student = load_model(recipe.student, seed=recipe.seed)
    teacher = load_model(recipe.teacher, seed=recipe.seed + 1)
    data = encoded_data(recipe, student, plugins)
    settings = recipe_settings(recipe, student, 16, plugins)
    return recipe, student, teacher, data, settings


def _capture(tiny, folder, **kw):
    recipe, student, teacher, data, settings = tiny
    chosen = kw.pop("settings", settings)
    pad = int(student.tokenizer.pad_token_id)
    return capture(teacher.model, data, folder, chosen, pad_id=pad, batch_size=3,
                   shard_records=kw.pop("shard_records", 3), **kw)  # fmt: skip


def test_the_cache_holds_the_teachers_own_top_k_at_the_recipes_temperature(tiny, tmp_path):
    from minillm_distill.data.batches import collate
    from minillm_distill.rollout import RolloutBatch
    from minillm_distill.scoring.forward import response_logits

    recipe, student, teacher, data, settings = tiny
    result = _capture(tiny, tmp_path / "cache")
    assert result.records == len(data) == 8 and result.tokens == sum(len(r) for r in data.responses)
    cache = TeacherCache(tmp_path / "cache")
    assert cache.settings.temperature == 2.0 and cache.settings.k == 16 and cache.settings.vocab_size == 257
    for i in (0, 5, 7):
        b = collate(data, [i], int(student.tokenizer.pad_token_id))
        with torch.no_grad():
            logits = response_logits(teacher.model, RolloutBatch(b.prompt_ids, b.prompt_mask, b.response_ids,
                                                                 b.response_mask))[0].double()  # fmt: skip
        ref = torch.log_softmax(logits / 2.0, dim=-1)
        want_values, want_ids = ref.topk(16, dim=-1)
        rows = cache.rows(i)
        assert torch.equal(rows.ids, want_ids)
        torch.testing.assert_close(rows.logprobs.double(), want_values, rtol=1e-3, atol=1e-3)  # float16
        rest = torch.log1p(-want_values.exp().sum(-1))
        torch.testing.assert_close(rows.tail.double(), rest, rtol=1e-3, atol=1e-3)


def test_bytes_per_token_at_k_64(tiny, tmp_path):
    """258 bytes a token for the values (uint16 ids, float16 log-probs and tail); the file's own overhead on top."""
    from safetensors.torch import load_file

    recipe, student, teacher, data, settings = tiny
    from dataclasses import replace

    result = _capture(tiny, tmp_path / "c64", settings=replace(settings, k=64), shard_records=100)
    shard = load_file(tmp_path / "c64" / "shard-00000.safetensors")
    assert shard["ids"].dtype == torch.uint16 and shard["logprobs"].dtype == torch.float16
    core = sum(shard[n].numel() * shard[n].element_size() for n in ("ids", "logprobs", "tail"))
    assert core == 258 * result.tokens
    assert result.bytes_per_token < 258 + 4 + 600 / result.tokens  # offsets, hashes, header


def test_a_capture_killed_mid_way_resumes_to_the_same_cache(tiny, tmp_path):
    straight = tmp_path / "straight"
    _capture(tiny, straight)

    class Killed(Exception):
        pass

    def kill_after_first(manifest):
        raise Killed

    split = tmp_path / "split"
    with pytest.raises(Killed):
        _capture(tiny, split, on_shard=kill_after_first)
    manifest = read_manifest(split)
    assert manifest.records_done == 3 and not manifest.complete
    with pytest.raises(CacheFormatError, match="incomplete"):
        TeacherCache(split)
    (split / ".shard-00001.safetensors.tmp").write_bytes(b"half a shard")  # what a kill mid-write leaves
    (split / "shard-00001.safetensors").write_bytes(b"not listed")
    result = _capture(tiny, split)
    assert result.resumed_from == 3 and not list(split.glob(".*.tmp"))
    a, b = TeacherCache(straight), TeacherCache(split)
    for i in range(len(a)):
        ra, rb = a.rows(i), b.rows(i)
        assert torch.equal(ra.ids, rb.ids) and torch.equal(ra.logprobs, rb.logprobs) and torch.equal(ra.tail, rb.tail)
    assert a.record_hashes() == b.record_hashes()


def test_a_folder_with_a_cache_of_other_settings_is_refused_and_a_changed_shard_is_found(tiny, tmp_path):
    from dataclasses import replace

    recipe, student, teacher, data, settings = tiny
    folder = tmp_path / "cache"
    _capture(tiny, folder)
    with pytest.raises(ValueError, match="other settings \\(temperature\\)"):
        _capture(tiny, folder, settings=replace(settings, temperature=1.0))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] is True and len(manifest["shards"]) == 3
    shard = folder / manifest["shards"][1]["file"]
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF
    shard.write_bytes(bytes(raw))
    cache = TeacherCache(folder)
    cache.rows(0)  # the first shard is intact
    with pytest.raises(CacheFormatError, match="does not match its sha256"):
        cache.rows(4)


def test_the_capture_command(cli, tmp_path):
    res = cli("teacher", "capture", "tiny/kd", "--output", tmp_path / "cache", "--k", "8")
    assert res.code == 0, res.output
    flat = " ".join(res.stderr.split())
    assert "captured 8 records" in flat and "bytes per token" in flat and "tokens/s" in flat
    again = cli("teacher", "capture", "tiny/kd", "--output", tmp_path / "cache", "--k", "8")
    assert again.code == 0 and "nothing left to capture" in " ".join(again.stderr.split())
    other = cli("teacher", "capture", "tiny/kd", "--output", tmp_path / "cache", "--k", "9")
    assert other.code == 5 and "other settings (k)" in " ".join(other.stderr.replace("│", " ").split())


def test_any_top_k_teacher_can_stand_behind_a_capture(tiny, tmp_path):
    """The seam for a teacher outside the process: capture asks ``topk(batch, k=, temperature=, vocab_size=)`` and
    stores what it answers (here a teacher that answers ids 0..k-1 with uniform log-probs)."""
    recipe, student, teacher, data, settings = tiny
    asked = []

    class Uniform:
        def topk(self, batch, *, k, temperature, vocab_size):
            asked.append((k, temperature, vocab_size))
            lengths = batch.response_mask.sum(1).tolist()
            n = sum(lengths)
            ids = torch.arange(k).repeat(n, 1)
            logprobs = torch.full((n, k), -math.log(vocab_size))
            tail = torch.full((n,), math.log((vocab_size - k) / vocab_size))
            return TeacherTopK(ids, logprobs, tail, lengths)

    capture(Uniform(), data, tmp_path / "u", settings, pad_id=int(student.tokenizer.pad_token_id), batch_size=4)
    assert asked and set(asked) == {(16, 2.0, 257)}
    rows = TeacherCache(tmp_path / "u").rows(3)
    assert rows.ids.tolist() == [list(range(16))] * len(data.responses[3])
    torch.testing.assert_close(rows.logprobs, torch.full_like(rows.logprobs, -math.log(257)), rtol=1e-3, atol=1e-3)
