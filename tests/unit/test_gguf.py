"""GGUF model files: converted once to a float safetensors folder keyed by the file's sha256, loaded exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from gguf_writer import tiny_llama, write_gguf

from minillm_distill.errors import ResourceError
from minillm_distill.gguf import MARKER, converted_folder, file_sha256, is_gguf, local_source

pytest.importorskip("gguf")
pytest.importorskip("accelerate")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("MINILLM_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny LLaMA model and its GGUF file (float32)."""
    model = tiny_llama()
    path = write_gguf(model, tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    return model, path


def test_converted_model_gives_the_source_models_logits(source, cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, path = source
    folder = converted_folder(path)
    assert folder == cache / "gguf" / file_sha256(path)
    loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("the cat sat on the mat", return_tensors="pt").input_ids
    assert tokenizer.convert_ids_to_tokens(ids[0])[:2] == ["t", "he"]  # the file's merges are used
    with torch.no_grad():
        # exact: the query/key weights were stored in llama.cpp's rotary layout and must come back unpermuted
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).startswith(
        "<|im_start|>user\nhi<|im_end|>"
    )
    assert json.loads((folder / "prompt_format.json").read_text())["prompt_format"] == "chat"
    assert json.loads((folder / MARKER).read_text())["sha256"] == file_sha256(path)
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".safetensors") == ["model.safetensors"]


def test_second_use_reads_the_cache_without_converting(source, cache, monkeypatch):
    _, path = source
    lines: list[str] = []
    first = converted_folder(path, log=lines.append)
    assert len(lines) == 1 and "converting" in lines[0]
    import minillm_distill.gguf as gguf_module

    monkeypatch.setattr(gguf_module, "_convert", lambda *a: pytest.fail("converted twice"))
    assert converted_folder(path, log=lines.append) == first
    assert len(lines) == 1


def test_a_folder_without_the_marker_is_converted_again(source, cache):
    _, path = source
    target = cache / "gguf" / file_sha256(path)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # what a crash mid-write could leave
    folder = converted_folder(path)
    assert (folder / MARKER).is_file() and (folder / "model.safetensors").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]


def test_a_recorded_hash_that_differs_is_refused(source, cache):
    _, path = source
    with pytest.raises(ResourceError, match="not the file the recipe recorded") as info:
        converted_folder(path, sha256="0" * 64)
    assert file_sha256(path) in "\n".join(info.value.details)


def test_missing_packages_name_the_extra(source, cache, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    _, path = source
    with pytest.raises(ResourceError, match="needs the package gguf") as info:
        converted_folder(path)
    assert "minillm-distill[gguf]" in info.value.hint


def test_missing_file_and_sniffing(tmp_path, source):
    _, path = source
    assert is_gguf(path)
    wrong_magic = tmp_path / "model.gguf"
    wrong_magic.write_text("hello")
    assert not is_gguf(wrong_magic)  # the file's first bytes decide, not its name
    no_suffix = tmp_path / "weights.bin"
    no_suffix.write_bytes(path.read_bytes()[:64])
    assert is_gguf(no_suffix)
    assert local_source(str(tmp_path)) == str(tmp_path)  # a folder is left alone
    with pytest.raises(ResourceError, match="does not exist"):
        converted_folder(tmp_path / "absent.gguf")


def test_recipes_load_gguf_models_and_record_their_hash(source, cache, tmp_path):
    from minillm_distill.models import load_model
    from minillm_distill.recipe.loader import resolved_recipe_dict, validate_recipe_dict
    from minillm_distill.recipe.preflight import preflight
    from minillm_distill.recipe.schema import ModelSpec

    model, path = source
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"instruction": "say the cat", "response": "the cat"}) + "\n")
    recipe = validate_recipe_dict(
        {
            "name": "g",
            "teacher": {"path": str(path)},
            "student": {"path": str(path)},
            "data": {"train": str(data), "max_prompt_length": 16, "max_response_length": 8, "prompt_format": "chat"},
            "divergence": {"name": "fkl"},
        }
    )
    preflight(recipe)
    resolved = resolved_recipe_dict(recipe)
    assert resolved["teacher"]["sha256"] == resolved["student"]["sha256"] == file_sha256(path)
    loaded = load_model(ModelSpec(path=str(path)))
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, model(ids).logits)
    with pytest.raises(ResourceError, match="not the file the recipe recorded"):
        load_model(ModelSpec(path=str(path), sha256="a" * 64))


def test_a_hash_on_a_model_folder_is_a_preflight_problem(tmp_path):
    from tiny_models import save_tiny_model

    from minillm_distill.recipe.preflight import _local_dir_problem
    from minillm_distill.recipe.schema import ModelSpec

    folder = save_tiny_model(tmp_path / "m", "gpt2")
    assert _local_dir_problem(ModelSpec(path=str(folder))) is None
    problem = _local_dir_problem(ModelSpec(path=str(folder), sha256="b" * 64))
    assert problem is not None and "not a GGUF file" in problem
