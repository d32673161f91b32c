"""Prompt formats (family, chat, plain, format strings) and chat templates, on tokenizers built here."""

from __future__ import annotations

import json

import pytest
import torch
from chat_tokenizers import chat_tokenizer, save_chat_tokenizer
from recipe_cases import VALID, assert_reported

from minillm_distill.builtins.model_families.gpt2 import GPT2Family
from minillm_distill.builtins.model_families.qwen2 import Qwen2Family
from minillm_distill.data.batches import collate
from minillm_distill.data.chat import end_of_turn_id
from minillm_distill.data.encode import encode_records
from minillm_distill.data.prompt_format import (
    PromptFormatter,
    check_prompt_format,
    check_same_chat_template,
    read_prompt_format,
    resolve_prompt_format,
    write_prompt_format,
)
from minillm_distill.data.records import Record, load_records
from minillm_distill.errors import RecipeError, UsageError
from minillm_distill.eval.prompts import encode_prompt
from minillm_distill.model_facts import eos_token_ids

CONVERSATION = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Red."},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Blue."},
    ]
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_chat_prompt_is_the_hand_built_chatml_string_and_response_ends_with_im_end(tmp_path):
    tok = chat_tokenizer("chatml")
    records = load_records(
        write_jsonl(tmp_path / "d.jsonl", [CONVERSATION, {"instruction": "Sum", "input": "1 2", "response": "3"}])
    )
    fmt = PromptFormatter("chat", Qwen2Family(), tok)
    assert fmt.record_prompt(records[0]) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nName a colour.<|im_end|>\n"
        "<|im_start|>assistant\nRed.<|im_end|>\n"
        "<|im_start|>user\nAnother?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # a Dolly/Alpaca record is one user turn: the instruction, a blank line, the input
    assert fmt.record_prompt(records[1]) == "<|im_start|>user\nSum\n\n1 2<|im_end|>\n<|im_start|>assistant\n"
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn_id(tok) == im_end != tok.eos_token_id
    data = encode_records(records, tok, fmt, max_prompt_length=500, max_response_length=50)
    assert tok.decode(data.prompts[0]) == fmt.record_prompt(records[0])
    assert data.responses[0] == [*tok("Blue.", add_special_tokens=False)["input_ids"], im_end]
    assert data.responses[1][-1] == im_end and tok.eos_token_id not in data.responses[1]
    batch = collate(data, [0, 1], pad_id=tok.pad_token_id)
    # the end-of-turn token is inside the response mask (it is trained on)
    for row, response in enumerate(data.responses):
        n = int(batch.response_mask[row].sum())
        assert n == len(response) and int(batch.response_ids[row, n - 1]) == im_end


def test_end_of_turn_counts_as_eos_and_stops_decoding(tmp_path):
    from tiny_models import build_tiny

    from minillm_distill.generation import GenerationParams, decode

    loaded = build_tiny("qwen2", tokenizer=str(save_chat_tokenizer(tmp_path / "tok")))
    tok, model = loaded.tokenizer, loaded.model
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert eos_token_ids(tok) == sorted({tok.eos_token_id, im_end})
    vocab = model.config.vocab_size
    assert vocab > im_end
    # a head that always predicts <|im_end|>: generation must stop after that one token
    head = torch.nn.Linear(model.config.hidden_size, vocab, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-30.0)
        head.bias[im_end] = 30.0
    model.lm_head = head
    ids = torch.tensor([[1, 2, 3]])
    out = decode(
        ids,
        torch.ones_like(ids),
        student=model,
        params=GenerationParams(max_new_tokens=6),
        generator=torch.Generator().manual_seed(0),
        eos_token_id=eos_token_ids(tok, model),
        pad_token_id=tok.pad_token_id,
    )
    assert out.response_ids.shape[1] == 1 and int(out.response_ids[0, 0]) == im_end
    assert int(out.response_mask.sum()) == 1


def test_llama3_template_writes_bos_once_in_training_and_eval():
    tok = chat_tokenizer("llama3")
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert end_of_turn_id(tok) == eot
    fmt = PromptFormatter("chat", Qwen2Family(), tok)
    record = Record("Hi", "", "Yo")
    text = fmt.record_prompt(record)
    assert text == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    data = encode_records([record], tok, fmt, max_prompt_length=500, max_response_length=50)
    bos = tok.bos_token_id
    assert data.prompts[0].count(bos) == 1 and data.prompts[0][0] == bos
    assert encode_prompt(tok, text, 500) == data.prompts[0]  # eval encodes the prompt exactly as training did
    assert data.responses[0][-1] == eot


def test_plain_and_format_string_prompts():
    tok = chat_tokenizer("chatml", template=None)
    fam = GPT2Family()
    assert PromptFormatter("plain", fam, tok).format_prompt("Do it", "now") == "Do it\n\nnow"
    assert PromptFormatter("plain", fam, tok).format_prompt("Do it") == "Do it"
    assert PromptFormatter("Q: {instruction} [{input}]\nA:", fam, tok).format_prompt("x", "y") == "Q: x [y]\nA:"
    assert PromptFormatter("family", fam, tok).format_prompt("x") == fam.format_prompt("x")
    # a response under a non-chat format ends with EOS, as before
    assert PromptFormatter("plain", fam, tok).response_end_id() == tok.eos_token_id


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Q: {question}", "unknown placeholder {question}"),
        ("Q: {}", "unknown placeholder {}"),
        ("Q: {input}", "no {instruction} placeholder"),
        ("Q: {instruction", "not a valid format string"),
        ("Q: {instruction!r}", "takes no conversion"),
        ("alpaca", "neither family, chat, plain nor a format string"),
    ],
)
def test_bad_format_strings(value, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        check_prompt_format(value)


def test_bad_prompt_format_is_a_recipe_error_at_its_key(cli, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        VALID.replace("  max_response_length: 64\n", "  max_response_length: 64\n  prompt_format: 'Q: {q}'\n")
    )
    res = cli("recipes", "validate", path)
    assert res.code == 3
    assert_reported(res.output, "data.prompt_format", "unknown placeholder {q}")


def test_chat_without_a_template_is_a_recipe_error():
    tok = chat_tokenizer("chatml", template=None)
    with pytest.raises(RecipeError, match="data.prompt_format is 'chat' but the tokenizer .* has no chat template"):
        PromptFormatter("chat", Qwen2Family(), tok)
    with pytest.raises(UsageError, match="has no chat template"):
        PromptFormatter("chat", Qwen2Family(), tok, where="--prompt-format", error=UsageError)


def test_conversation_needs_chat_unless_it_is_one_user_turn(tmp_path):
    tok = chat_tokenizer("chatml")
    fam = GPT2Family()
    single = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}
    records = load_records(write_jsonl(tmp_path / "d.jsonl", [single, CONVERSATION]))
    fmt = PromptFormatter("family", fam, tok)
    assert fmt.record_prompt(records[0]) == fam.format_prompt("Hi")
    with pytest.raises(RecipeError, match=r"d.jsonl, record 2 \(line 2\): a conversation .* needs the chat template"):
        fmt.record_prompt(records[1])


def test_teacher_student_template_mismatch_names_both():
    with pytest.raises(RecipeError, match="teacher 'runs/t' and the student 'runs/s' have different chat templates"):
        check_same_chat_template(chat_tokenizer("llama3"), chat_tokenizer("chatml"), "runs/t", "runs/s")
    check_same_chat_template(chat_tokenizer("chatml"), chat_tokenizer("chatml"), "a", "b")  # same: fine


def test_saved_prompt_format_is_the_default(tmp_path):
    assert resolve_prompt_format(None, str(tmp_path)) == "family"
    write_prompt_format(tmp_path, "chat")
    assert read_prompt_format(tmp_path) == "chat"
    assert resolve_prompt_format(None, str(tmp_path)) == "chat"
    assert resolve_prompt_format("plain", str(tmp_path)) == "plain"  # the option wins
    with pytest.raises(UsageError, match="--prompt-format: unknown placeholder"):
        resolve_prompt_format("{x}", str(tmp_path))


def test_generate_rejects_a_bad_prompt_format_and_chat_without_template(cli, tmp_path):
    from tiny_models import save_tiny_model

    model = save_tiny_model(tmp_path / "m", "gpt2")  # byte tokenizer: no chat template
    res = cli("generate", "--model", model, "-p", "hi", "--prompt-format", "{nope}")
    assert res.code == 2
    assert_reported(res.output, "--prompt-format: unknown placeholder {nope}")
    res = cli("generate", "--model", model, "-p", "hi", "--prompt-format", "chat", "--max-new-tokens", "1")
    assert res.code == 2
    assert_reported(res.output, "the prompt format is 'chat' but the tokenizer", "has no chat template")
