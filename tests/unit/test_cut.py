"""Depth pruning: a student made of some of the teacher's blocks, with embeddings, final norm and head copied."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_models import FAMILIES, build_tiny, save_tiny_model

from minillm_distill.cut import blocks, choose_layers, cut_model, parse_layers, write_cut
from minillm_distill.errors import UsageError

IDS = torch.tensor([[5, 17, 42, 9, 77, 3, 12, 60]])


@pytest.mark.parametrize("family", FAMILIES)
def test_keeping_every_block_gives_the_teachers_logits(family):
    teacher = build_tiny(family, layers=3).model
    student = cut_model(copy.deepcopy(teacher), [0, 1, 2])
    with torch.no_grad():
        assert torch.equal(student(IDS).logits, teacher(IDS).logits)


@pytest.mark.parametrize("family", ["gpt2", "llama", "qwen2"])
def test_kept_blocks_are_the_teachers_blocks_renumbered(family):
    teacher = build_tiny(family, layers=4).model
    student = cut_model(copy.deepcopy(teacher), [0, 3])
    stack = blocks(student)
    assert len(stack) == 2 and student.config.num_hidden_layers == 2
    names = dict(teacher.named_parameters())
    expected_names = {
        name.replace(".3.", ".1.") if ".3." in name else name
        for name in names
        if not any(f".{i}." in name for i in (1, 2))
    }
    got = dict(student.named_parameters())
    assert set(got) == expected_names
    for name, value in got.items():
        source = name.replace(".1.", ".3.") if ".1." in name else name
        assert torch.equal(value, names[source]), name
    # the cut model is a model of its own depth: its forward equals a fresh model of 2 blocks given these weights
    from transformers import AutoModelForCausalLM

    fresh = AutoModelForCausalLM.from_config(student.config).eval()
    fresh.load_state_dict(student.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh(IDS).logits, student(IDS).logits)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_kv_cached_decoding_matches_full_forward(family):
    """Each kept block indexes the KV cache by its new position (a stale layer_idx would read another block's)."""
    student = cut_model(build_tiny(family, layers=4).model, [1, 3])
    with torch.no_grad():
        out = student.generate(IDS, max_new_tokens=6, do_sample=False, use_cache=True, pad_token_id=0)
        full = student.generate(IDS, max_new_tokens=6, do_sample=False, use_cache=False, pad_token_id=0)
        assert torch.equal(out, full)
        cache = student(IDS, use_cache=True).past_key_values
        step = student(out[:, IDS.shape[1] : IDS.shape[1] + 1], past_key_values=cache).logits[:, -1]
        whole = student(out[:, : IDS.shape[1] + 1]).logits[:, -1]
        torch.testing.assert_close(step, whole, rtol=1e-5, atol=1e-5)


def test_choose_layers():
    assert choose_layers(30, every=3) == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 29]
    assert choose_layers(6, every=2) == [0, 2, 4, 5]
    assert choose_layers(6, every=1) == list(range(6))
    assert choose_layers(6, layers=[5, 0, 0, 2]) == [0, 2, 5]
    assert choose_layers(30, ends=(5, 6)) == [0, 1, 2, 3, 4, 24, 25, 26, 27, 28, 29]
    assert choose_layers(3, ends=(1, 1)) == [0, 2]
    assert choose_layers(3, ends=(2, 2)) == [0, 1, 2]
    with pytest.raises(UsageError, match="do not exist"):
        choose_layers(4, layers=[0, 4])
    with pytest.raises(UsageError, match="first and last blocks"):
        choose_layers(4)
    with pytest.raises(UsageError, match="first and last blocks"):
        choose_layers(4, every=2, ends=(1, 1))
    assert parse_layers("0-3,10") == [0, 1, 2, 3, 10]
    with pytest.raises(UsageError, match="not a list of layer numbers"):
        parse_layers("0,x")


def test_cut_command_writes_a_folder_that_loads(tmp_path, cli):
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    teacher = save_tiny_model(tmp_path / "teacher", "llama", layers=3)
    result = cli("models", "cut", str(teacher), str(tmp_path / "student"), "--layers", "0,2")
    assert result.code == 0, result.output
    assert "2 blocks kept (0, 2)" in result.stdout
    loaded = load_model(ModelSpec(path=str(tmp_path / "student")))
    reference = cut_model(load_model(ModelSpec(path=str(teacher))).model, [0, 2])
    with torch.no_grad():
        assert torch.equal(loaded.model(IDS).logits, reference(IDS).logits)
    again = cli("models", "cut", str(teacher), str(tmp_path / "student"), "--every", "2")
    assert again.code == 2 and "notanemptyfolder" in again.flat_stderr


def test_write_cut_refuses_a_bad_layer_before_writing(tmp_path):
    teacher = save_tiny_model(tmp_path / "teacher", "gpt2", layers=2)
    with pytest.raises(UsageError, match="do not exist"):
        write_cut(str(teacher), tmp_path / "student", layers=[0, 5])
    assert not (tmp_path / "student").exists()
