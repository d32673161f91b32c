"""Data: record loading with Dolly/Alpaca field names, encoding, batch order, collation."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import SHARED_DATA

from minillm_distill.builtins.model_families.gpt2 import GPT2Family
from minillm_distill.byte_tokenizer import byte_level_tokenizer
from minillm_distill.data.batches import collate, micro_batch_indices
from minillm_distill.data.encode import encode_records
from minillm_distill.data.records import Record, load_records
from minillm_distill.errors import ResourceError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dolly_and_alpaca_field_names(tmp_path):
    p = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"instruction": "a", "context": "ctx", "response": "r1"},
            {"instruction": "b", "input": "inp", "output": "r2"},
            {"instruction": "c", "response": "r3"},
        ],
    )
    recs = load_records(str(p))
    assert recs == [Record("a", "ctx", "r1"), Record("b", "inp", "r2"), Record("c", "", "r3")]


def test_missing_field_names_the_line(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a", "response": "x"}, {"instruction": "b"}])
    with pytest.raises(ResourceError, match=r"line 2\): missing field 'response'"):
        load_records(str(p))
    assert load_records(str(p), require_response=False)[1].response is None


@pytest.mark.skipif(not (SHARED_DATA / "dolly").exists(), reason="../shared/data not present")
def test_shared_dolly_sample_loads():
    recs = load_records(str(SHARED_DATA / "dolly" / "databricks-dolly-15k.sample.jsonl"))
    assert len(recs) == 522
    assert all(r.instruction and r.response is not None for r in recs)
    assert any(r.input for r in recs)


def test_encode_drops_long_prompts_and_appends_eos():
    tok = byte_level_tokenizer()
    recs = [Record("short", "", "ok"), Record("x" * 500, "", "long prompt")]
    fam = GPT2Family()
    data = encode_records(recs, tok, fam, max_prompt_length=200, max_response_length=2)
    assert len(data) == 1 and data.dropped_long_prompts == 1
    assert tok.decode(data.prompts[0]) == fam.format_prompt("short")
    assert tok.decode(data.responses[0]) == "ok" and len(data.responses[0]) == 2  # EOS did not fit
    data = encode_records(recs[:1], tok, fam, max_prompt_length=200, max_response_length=8)
    assert data.responses[0][-1] == tok.eos_token_id


def test_batch_order_partitions_each_step_across_ranks_and_microbatches():
    n = 10
    seen = []
    for rank in range(2):
        seen += [
            i
            for mb in micro_batch_indices(n, seed=3, step=0, micro=2, grad_accum=2, world_size=2, rank=rank)
            for i in mb
        ]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 8  # 8 distinct examples in step 0
    # steps are a pure function of (seed, step): recomputing gives the same thing
    a = micro_batch_indices(n, seed=3, step=7, micro=2, grad_accum=2, world_size=2, rank=1)
    assert a == micro_batch_indices(n, seed=3, step=7, micro=2, grad_accum=2, world_size=2, rank=1)
    # an epoch covers every example exactly once
    epoch = [
        i
        for s in range(5)
        for i in micro_batch_indices(n, seed=3, step=s, micro=2, grad_accum=1, world_size=1, rank=0)[0]
    ]
    assert sorted(epoch) == list(range(n))


def test_collate_pads_prompts_left_and_responses_right():
    from minillm_distill.data.encode import EncodedData

    data = EncodedData(prompts=[[1, 2, 3], [4]], responses=[[5], [6, 7]], dropped_long_prompts=0)
    b = collate(data, [0, 1], pad_id=0)
    assert b.prompt_ids.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert b.prompt_mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert b.response_ids.tolist() == [[5, 0], [6, 7]]
    assert b.response_mask.tolist() == [[1, 0], [1, 1]]
    assert b.prompt_ids.dtype == torch.long


def _bos_tokenizer():
    """A fast word-level tokenizer whose post-processor adds BOS (as Llama's does)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "### Instruction:", "hello", "world", "ok", "again"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def _slow_gpt2_tokenizer(tmp_path):
    from transformers import GPT2Tokenizer

    vocab = {c: i for i, c in enumerate(["h", "e", "l", "o", "w", "r", "d", "k", "Ġ", "he", "ll", "<|endoftext|>"])}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\nh e\nl l\n")
    return GPT2Tokenizer(vocab_file=str(tmp_path / "vocab.json"), merges_file=str(tmp_path / "merges.txt"))


@pytest.mark.parametrize("kind", ["byte", "bos", "slow"])
def test_batched_encoding_equals_one_call_per_text(kind, tmp_path, monkeypatch):
    import minillm_distill.data.encode as encode_mod

    tok = {"byte": byte_level_tokenizer, "bos": _bos_tokenizer, "slow": lambda: _slow_gpt2_tokenizer(tmp_path)}[kind]()
    from minillm_distill.data.prompt_format import PromptFormatter

    fam = PromptFormatter("plain", None, tok)  # the bare instruction: short prompts, some over the limit
    texts = ["hello world", "ok", "hello again world", "", "world hello ok", "again"]
    recs = [Record(t, "", texts[(i + 1) % len(texts)]) for i, t in enumerate(texts)]
    monkeypatch.setattr(encode_mod, "BATCH", 4)  # two chunks, the second partial
    data = encode_records(recs, tok, fam, max_prompt_length=10, max_response_length=5)
    expect_p, expect_r, dropped = [], [], 0
    for r in recs:
        p = tok(fam.format_prompt(r.instruction, r.input), add_special_tokens=True)["input_ids"]
        if len(p) > 10:
            dropped += 1
            continue
        expect_p.append(p)
        expect_r.append((tok(r.response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])[:5])
    assert (data.prompts, data.responses, data.dropped_long_prompts) == (expect_p, expect_r, dropped)
    assert len(data.prompts) >= 3
    assert kind != "bos" or all(p[0] == 1 for p in data.prompts)  # the post-processor's BOS is kept
    assert dropped > 0 or kind != "byte"  # some prompts are over 10 byte tokens: the drop path runs


def test_pack_blocks_joins_documents_with_eos_and_drops_the_remainder(monkeypatch):
    import minillm_distill.data.encode as encode_mod
    from minillm_distill.data.pretrain import pack_blocks

    tok = _bos_tokenizer()  # word ids: hello 4, world 5, ok 6, again 7; EOS 2; its BOS must not be added
    monkeypatch.setattr(encode_mod, "BATCH", 2)  # documents in two chunks
    blocks = pack_blocks(["hello world", "ok", "again hello ok"], tok, 3)
    # 4 5 2 | 6 2 7 | 4 6 2  (9 tokens: three blocks, nothing left over)
    assert blocks.tolist() == [[4, 5, 2], [6, 2, 7], [4, 6, 2]]
    assert pack_blocks(["hello world", "ok", "again hello ok"], tok, 4).tolist() == [[4, 5, 2, 6], [2, 7, 4, 6]]
    with pytest.raises(ResourceError, match="fewer than one block"):
        pack_blocks(["ok"], tok, 8)
