"""Model-family plugins: building tiny models from scratch, save/load round trips, pad/EOS conventions,
teacher/student vocabulary checks, loading errors, prompt templates and the built-in byte tokenizer.

Everything is offline: models are built from configs, saved to ``tmp_path`` and loaded back."""

from __future__ import annotations

import time

import pytest
import torch
from tiny_models import (
    FAMILIES,
    TINY_SCRATCH,
    build_tiny,
    encode,
    save_tiny_model,
    save_word_level_tokenizer,
    tiny_spec,
)

from minillm_distill.byte_tokenizer import EOS, byte_level_tokenizer
from minillm_distill.errors import ExitCode, RecipeError, ResourceError
from minillm_distill.models import (
    OFFLINE_HINT,
    LoadedModel,
    check_vocab,
    detect_family,
    embedding_rows,
    family_for_model_type,
    load_model,
)
from minillm_distill.recipe.schema import ModelSpec


def logits(loaded: LoadedModel, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return loaded.model(**batch).logits


# -- save / load round trip through every family -------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_scratch_model_round_trips_through_its_family(tmp_path, family):
    built = build_tiny(family, seed=3)
    assert built.family.name == family
    assert built.model.config.model_type == family
    assert embedding_rows(built.model) == len(built.tokenizer) == 257
    built.model.save_pretrained(tmp_path)
    built.tokenizer.save_pretrained(tmp_path)

    detected = load_model(ModelSpec(path=str(tmp_path)))
    explicit = load_model(ModelSpec(path=str(tmp_path), family=family))
    assert detected.family.name == family  # from config.model_type, not the fallback
    assert explicit.family.name == family
    assert detect_family(str(tmp_path)).name == family

    batch = encode(detected.tokenizer)
    assert batch["attention_mask"].min() == 0  # the batch really is padded
    expected = logits(built, batch)
    assert expected.shape == (*batch["input_ids"].shape, 257)
    torch.testing.assert_close(logits(detected, batch), expected, rtol=0, atol=0)
    torch.testing.assert_close(logits(explicit, batch), expected, rtol=0, atol=0)


def test_grouped_query_attention_round_trip(tmp_path):
    built = build_tiny("llama", heads=4, kv_heads=2, layers=2)
    assert built.model.config.num_key_value_heads == 2
    built.model.save_pretrained(tmp_path)
    built.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(ModelSpec(path=str(tmp_path)))
    batch = encode(loaded.tokenizer)
    torch.testing.assert_close(logits(loaded, batch), logits(built, batch), rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_for_model_type_picks_the_family_before_the_fallback(family):
    assert family_for_model_type(family).name == family


@pytest.mark.parametrize("model_type", ["gpt_neox", "some_future_arch", ""])
def test_unknown_model_type_resolves_to_generic(model_type):
    assert family_for_model_type(model_type).name == "generic"


def test_generic_family_loads_an_architecture_without_its_own_plugin(tmp_path):
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    tok = byte_level_tokenizer()
    config = GPTNeoXConfig(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)

    loaded = load_model(ModelSpec(path=str(tmp_path)))
    assert loaded.family.name == "generic"
    assert loaded.model.config.model_type == "gpt_neox"
    batch = encode(loaded.tokenizer)
    with torch.no_grad():
        expected = model(**batch).logits
    torch.testing.assert_close(logits(loaded, batch), expected, rtol=0, atol=0)


def test_generic_family_cannot_build_from_scratch():
    with pytest.raises(RecipeError, match="cannot build models from scratch") as info:
        load_model(tiny_spec("generic"))
    assert info.value.exit_code == ExitCode.RECIPE


def test_invalid_scratch_options_are_a_recipe_error():
    with pytest.raises(RecipeError) as info:
        load_model(tiny_spec("llama", hidden=18, heads=4))
    assert "scratch" in info.value.message
    assert any("divisible" in d for d in info.value.details)


def test_scratch_build_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = build_tiny("gpt2", seed=7)
    after = torch.rand(3)
    b = build_tiny("gpt2", seed=7)
    c = build_tiny("gpt2", seed=8)
    torch.testing.assert_close(after, before)  # building did not consume the caller's random stream
    wa, wb, wc = (m.model.get_input_embeddings().weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_models_come_back_in_eval_mode_and_in_the_requested_dtype(tmp_path):
    built = load_model(tiny_spec("qwen2"), dtype=torch.bfloat16)
    assert not built.model.training
    assert built.model.dtype == torch.bfloat16
    save_tiny_model(tmp_path, "qwen2")
    loaded = load_model(ModelSpec(path=str(tmp_path)), dtype=torch.bfloat16)
    assert not loaded.model.training
    assert loaded.model.dtype == torch.bfloat16


# -- pad / EOS conventions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_missing_pad_token_becomes_eos(tmp_path, family):
    save_tiny_model(tmp_path, family, pad_token=False)
    assert '"pad_token": null' in (tmp_path / "tokenizer_config.json").read_text()

    loaded = load_model(ModelSpec(path=str(tmp_path)))
    tok = loaded.tokenizer
    assert tok.pad_token == tok.eos_token == EOS
    assert tok.pad_token_id == tok.eos_token_id == 256
    assert tok.padding_side == "left"
    assert loaded.model.config.pad_token_id == 256
    assert loaded.model.generation_config.pad_token_id == 256

    batch = encode(tok, ["a much longer prompt", "b"])
    assert batch["input_ids"][1, 0].item() == 256  # left padding with EOS
    assert batch["attention_mask"][1, 0].item() == 0
    assert batch["attention_mask"][:, -1].tolist() == [1, 1]


def test_an_existing_pad_token_is_kept(tmp_path):
    tok_dir = save_word_level_tokenizer(tmp_path / "tok", ["hello", "world"], pad="<pad>")
    loaded = load_model(tiny_spec("opt", tokenizer=str(tok_dir)))
    tok = loaded.tokenizer
    assert tok.pad_token == "<pad>" != tok.eos_token
    assert tok.padding_side == "left"
    assert loaded.model.config.pad_token_id == tok.pad_token_id
    assert loaded.model.config.vocab_size == len(tok) == 5  # <unk> </s> <pad> hello world


def test_tokenizer_without_pad_or_eos_is_a_clear_error(tmp_path):
    tok_dir = save_word_level_tokenizer(tmp_path / "tok", ["hello"], eos=None)
    with pytest.raises(ResourceError, match="neither a pad nor an EOS token"):
        load_model(tiny_spec("gpt2", tokenizer=str(tok_dir)))


# -- teacher / student vocabulary checks ----------------------------------------------------------------------


def test_padded_embedding_rows_share_the_tokenizer_rows():
    teacher = build_tiny("qwen2")
    student = build_tiny("qwen2", seed=1)
    student.model.resize_token_embeddings(300, pad_to_multiple_of=64, mean_resizing=False)  # 257 -> 320 rows
    assert embedding_rows(student.model) == 320
    assert check_vocab(teacher, student) == 257
    assert check_vocab(student, teacher) == 257

    teacher.model.resize_token_embeddings(384, mean_resizing=False)
    assert check_vocab(teacher, student) == 320  # both padded: compare on every row both have


def test_padded_vocabulary_survives_save_and_load(tmp_path):
    save_tiny_model(tmp_path / "teacher", "qwen2", embedding_rows=320)
    teacher = load_model(ModelSpec(path=str(tmp_path / "teacher")))
    student = build_tiny("qwen2", layers=1, hidden=16)
    assert teacher.model.config.vocab_size == 320
    assert len(teacher.tokenizer) == 257
    assert check_vocab(teacher, student) == 257
    batch = encode(teacher.tokenizer)
    assert logits(teacher, batch).shape[-1] == 320
    assert logits(student, batch).shape[-1] == 257


def test_different_tokenizers_are_a_clear_error(tmp_path):
    tok_dir = save_word_level_tokenizer(tmp_path / "tok", ["the", "cat", "sat"])
    teacher = build_tiny("gpt2")
    student = build_tiny("gpt2", tokenizer=str(tok_dir))
    with pytest.raises(RecipeError) as info:
        check_vocab(teacher, student)
    err = info.value
    assert err.exit_code == ExitCode.RECIPE
    assert "different tokenizers" in err.message
    assert "teacher: 257 tokens, student: 5 tokens" in err.details[0]
    assert err.hint and "same tokenizer" in err.hint


def test_same_size_but_different_tokens_is_an_error(tmp_path):
    words = [f"w{i}" for i in range(255)]  # 2 specials + 255 words = 257 tokens, like the byte tokenizer
    tok_dir = save_word_level_tokenizer(tmp_path / "tok", words)
    teacher = build_tiny("llama")
    student = build_tiny("llama", tokenizer=str(tok_dir))
    assert len(student.tokenizer) == len(teacher.tokenizer) == 257
    with pytest.raises(RecipeError, match="different tokenizers"):
        check_vocab(teacher, student)


def test_fewer_embedding_rows_than_tokens_is_an_error():
    teacher = build_tiny("gpt2")
    student = build_tiny("gpt2")
    student.model.resize_token_embeddings(200, mean_resizing=False)
    with pytest.raises(RecipeError, match=r"fewer embedding rows \(200\) than the tokenizer has tokens \(257\)"):
        check_vocab(teacher, student)


# -- loading errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["./does/not/exist", "does/not/exist", "/no/such/dir/model"])
@pytest.mark.parametrize("family", [None, "llama"])
def test_missing_local_path(path, family):
    with pytest.raises(ResourceError) as info:
        load_model(ModelSpec(path=path, family=family))
    err = info.value
    assert err.exit_code == ExitCode.RESOURCE
    assert f"path {path!r} does not exist" in err.message


def test_missing_tokenizer_path_for_a_scratch_model():
    with pytest.raises(ResourceError, match="does not exist"):
        load_model(tiny_spec("gpt2", tokenizer="./no/such/tokenizer"))


@pytest.mark.parametrize("family", [None, "qwen2"])
def test_unknown_hub_id_offline_fails_fast_with_the_offline_hint(family):
    from huggingface_hub import is_offline_mode

    if not is_offline_mode():
        pytest.skip("HF_HUB_OFFLINE is not set in this environment")
    start = time.monotonic()
    with pytest.raises(ResourceError) as info:
        load_model(ModelSpec(path="minillm-tests/no-such-model-xyz", family=family))
    assert time.monotonic() - start < 10
    err = info.value
    assert err.exit_code == ExitCode.RESOURCE
    assert "'minillm-tests/no-such-model-xyz'" in err.message
    assert "HF_HUB_OFFLINE=1" in err.message
    assert err.hint == OFFLINE_HINT
    assert err.why  # the underlying reason from transformers / huggingface_hub


# -- prompt template -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", [*FAMILIES, "generic"])
def test_alpaca_prompt_template(family):
    fam = family_for_model_type(family) if family != "generic" else family_for_model_type("unknown")
    assert fam.format_prompt("Name a colour.") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nName a colour.\n\n### Response:\n"
    )
    assert fam.format_prompt("Translate to French.", "good morning") == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n### Instruction:\nTranslate to French."
        "\n\n### Input:\ngood morning\n\n### Response:\n"
    )
    # braces in user text are not format fields
    assert "### Instruction:\nuse {x} and {}\n" in fam.format_prompt("use {x} and {}")


# -- built-in byte tokenizer ------------------------------------------------------------------------------------

TEXTS = [
    "plain ascii",
    "Hello , world . don 't  double  spaces",
    "  leading and trailing  ",
    "tabs\tand\nnew\r\nlines",
    "héllo wörld — “quotes” ✓",
    "日本語のテキスト 🙂👍🏽",
    "e\u0301 vs \u00e9 (not NFC-normalised)",
    "control \x00\x01\x7f bytes",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_byte_tokenizer_round_trips_utf8(text):
    tok = byte_level_tokenizer()
    ids = tok(text)["input_ids"]
    assert len(ids) == len(text.encode("utf-8"))  # one token per byte, no merges
    assert all(0 <= i < 256 for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode([*ids, tok.eos_token_id], skip_special_tokens=True) == text


def test_byte_tokenizer_is_deterministic():
    a, b = byte_level_tokenizer(), byte_level_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    text = " ".join(TEXTS)
    assert a(text)["input_ids"] == b(text)["input_ids"]
    # every byte value maps to its own id
    assert len({tuple(a(bytes([i]).decode("latin-1"))["input_ids"]) for i in range(256)}) == 256


def test_byte_tokenizer_special_tokens():
    tok = byte_level_tokenizer()
    assert len(tok) == 257
    assert len(tok.get_vocab()) == 257
    assert tok.eos_token == EOS
    assert tok.eos_token_id == 256
    assert tok.convert_tokens_to_ids(EOS) == 256
    assert tok(EOS)["input_ids"] == [256]  # EOS is a single special token, not 13 bytes
    assert tok("x")["input_ids"] == tok("x", add_special_tokens=True)["input_ids"]  # no BOS/EOS added


def test_byte_tokenizer_survives_save_and_auto_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    original = byte_level_tokenizer()
    original.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(reloaded) == 257
    assert reloaded.eos_token_id == 256
    assert reloaded.get_vocab() == original.get_vocab()
    for text in TEXTS:
        ids = reloaded(text)["input_ids"]
        assert ids == original(text)["input_ids"]
        assert reloaded.decode(ids) == text


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_byte_tokenizer_is_the_one_loaded_back_in_every_family(tmp_path, family):
    """transformers swaps in a model-type-specific tokenizer class for some model types (qwen2 gets
    Qwen2Tokenizer, which NFC-normalises); the family plugin must load the saved tokenizer as it is."""
    save_tiny_model(tmp_path, family)
    loaded = load_model(ModelSpec(path=str(tmp_path)))
    original = byte_level_tokenizer()
    for text in TEXTS:
        assert loaded.tokenizer(text)["input_ids"] == original(text)["input_ids"], text
        assert loaded.tokenizer.decode(original(text)["input_ids"]) == text


def test_tiny_helpers_default_size_is_tiny():
    assert TINY_SCRATCH["hidden"] <= 32
    assert TINY_SCRATCH["layers"] <= 2


GREEDY_FAMILY = """
from minillm_distill.api import ModelFamily, hookimpl


class GreedyFamily(ModelFamily):
    name = "greedy_gpt2"
    model_types = ("gpt2",)


@hookimpl
def register_model_families(register):
    register(GreedyFamily)
"""


def test_two_families_claiming_one_model_type_is_a_conflict_not_a_silent_takeover(
    install_plugin, tmp_path, monkeypatch
):
    (tmp_path / "fx_greedy_family.py").write_text(GREEDY_FAMILY, encoding="utf-8")
    install_plugin("fx_greedy_family", distribution="fx-greedy", name="greedy", path=tmp_path)
    from minillm_distill.errors import PluginError
    from minillm_distill.plugins import get_plugins, reset_plugins

    with pytest.raises(PluginError) as err:
        family_for_model_type("gpt2", get_plugins())
    assert "2 model families claim model_type 'gpt2'" in err.value.message
    details = " ".join(err.value.details)
    assert "family 'greedy_gpt2' of plugin 'greedy' (fx-greedy)" in details and "family 'gpt2'" in details
    assert family_for_model_type("llama", get_plugins()).name == "llama"  # other model types are untouched
    monkeypatch.setenv("MINILLM_DISABLE_PLUGINS", "greedy")
    reset_plugins()
    assert family_for_model_type("gpt2", get_plugins()).name == "gpt2"
