"""`minillm generate`: batched sampling, determinism, jsonl in/out, template, streaming, errors."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch
from tiny_models import save_tiny_model

from minillm_distill.cli import generate as gen
from minillm_distill.generation import GenerationParams

PROMPTS = ["Name a primary color.", "What is 2 plus 2?", "Hi", "Summarize the text below in one short sentence."]


def says(text: str, *pieces: str) -> bool:
    """Every piece is in the (Rich-panel) output, ignoring borders and line wrapping."""
    flat = re.sub(r"[\s│╭╮╰╯─•]+", "", text)
    return "Traceback" not in text and all(re.sub(r"\s+", "", p) in flat for p in pieces)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gen-models")
    # 512 positions: the Alpaca template alone is ~150 byte tokens
    return {family: save_tiny_model(root / family, family, seed=3, max_positions=512) for family in ("gpt2", "llama")}


@pytest.fixture
def gpt2(model_dirs) -> Path:
    return model_dirs["gpt2"]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_file(cli, model: Path, inp: Path, out: Path, *extra: str) -> list[dict]:
    res = cli("generate", "--model", model, "--input", inp, "--output", out, "--max-new-tokens", "12", *extra)
    assert res.code == 0, res.output
    return read_jsonl(out)


def test_same_seed_same_responses_other_seed_other_responses(cli, gpt2, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", [{"prompt": p} for p in PROMPTS])
    a = run_file(cli, gpt2, inp, tmp_path / "a.jsonl", "--seed", "7")
    b = run_file(cli, gpt2, inp, tmp_path / "b.jsonl", "--seed", "7")
    c = run_file(cli, gpt2, inp, tmp_path / "c.jsonl", "--seed", "8")
    assert a == b
    assert [r["response"] for r in a] != [r["response"] for r in c]
    assert all(r["response"] for r in a)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_batch_size_does_not_change_responses(cli, model_dirs, tmp_path, family):
    """Each prompt has its own generator: left padding and batch composition change nothing."""
    inp = write_jsonl(tmp_path / "in.jsonl", [{"prompt": p} for p in PROMPTS])
    together = run_file(cli, model_dirs[family], inp, tmp_path / "all.jsonl", "--batch-size", "4", "--seed", "5")
    one_by_one = run_file(cli, model_dirs[family], inp, tmp_path / "one.jsonl", "--batch-size", "1", "--seed", "5")
    in_threes = run_file(cli, model_dirs[family], inp, tmp_path / "three.jsonl", "--batch-size", "3", "--seed", "5")
    assert together == one_by_one == in_threes


def test_single_prompt_streams_the_same_response_as_a_batch(cli, gpt2, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", [{"prompt": p} for p in PROMPTS])
    batch = run_file(cli, gpt2, inp, tmp_path / "all.jsonl", "--seed", "11")
    res = cli("generate", "--model", gpt2, "-p", PROMPTS[0], "--max-new-tokens", "12", "--seed", "11")
    assert res.code == 0, res.output
    assert res.stdout == batch[0]["response"] + "\n"
    # with --output the single prompt still streams, and the file holds the same response
    res = cli("generate", "-m", gpt2, "-p", PROMPTS[0], "--max-new-tokens", "12", "--seed", "11", "-o", tmp_path / "s")
    assert res.code == 0 and res.stdout == batch[0]["response"] + "\n"
    assert read_jsonl(tmp_path / "s") == [batch[0]]


class RecordingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


def test_streaming_writes_token_by_token(gpt2):
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    loaded = load_model(ModelSpec(path=str(gpt2)))
    ids = [loaded.tokenizer("Hello", add_special_tokens=True)["input_ids"]]
    params = GenerationParams(max_new_tokens=16, top_k=3)
    stream = RecordingStream()
    streamed = gen.sample(loaded.model, loaded.tokenizer, ids, params, seed=2, batch_size=1, stream=stream)
    plain = gen.sample(loaded.model, loaded.tokenizer, ids, params, seed=2, batch_size=1)
    assert streamed == plain
    assert stream.getvalue() == plain[0] + "\n"
    assert len([w for w in stream.writes if w != "\n"]) > 1  # written as it was drawn, not all at the end


def test_text_stream_waits_for_whole_characters():
    from minillm_distill.byte_tokenizer import byte_level_tokenizer

    tok = byte_level_tokenizer()
    text = "héllo ✓ 日本"
    out = RecordingStream()
    stream = gen.TextStream(tok, [tok.eos_token_id], out)
    for token in [*tok(text)["input_ids"], tok.eos_token_id, 65]:  # nothing after EOS is written
        stream.push(torch.tensor([token]))
    stream.finish(text)
    assert out.getvalue() == text + "\n"
    assert not any("\ufffd" in w for w in out.writes)
    assert len(out.writes) > 5


def test_template_is_applied_unless_raw(cli, gpt2, monkeypatch):
    from minillm_distill import generation
    from minillm_distill.model_family import ALPACA_PROMPT

    seen: list[str] = []
    real_decode = generation.decode

    def spy(prompt_ids, prompt_mask, **kwargs):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(gpt2)
        for row, mask in zip(prompt_ids, prompt_mask, strict=True):
            seen.append(tok.decode(row[mask.bool()].tolist()))
        return real_decode(prompt_ids, prompt_mask, **kwargs)

    monkeypatch.setattr(generation, "decode", spy)  # `sample` imports it when called
    assert cli("generate", "--model", gpt2, "-p", "Say hi", "--max-new-tokens", "2").code == 0
    assert cli("generate", "--model", gpt2, "-p", "Say hi", "--raw", "--max-new-tokens", "2").code == 0
    assert seen == [ALPACA_PROMPT.format(instruction="Say hi"), "Say hi"]


def test_templated_prompt_equals_raw_formatted_prompt(cli, gpt2):
    """Greedy decoding: `-p X` gives what `--raw -p <family template of X>` gives."""
    from minillm_distill.model_family import ALPACA_PROMPT

    common = ("--model", gpt2, "--max-new-tokens", "10", "--top-k", "1")
    templated = cli("generate", *common, "-p", "Add 1 and 2.")
    raw = cli("generate", *common, "--raw", "-p", ALPACA_PROMPT.format(instruction="Add 1 and 2."))
    assert templated.code == raw.code == 0
    assert templated.stdout == raw.stdout


def test_jsonl_fields_in_and_out(cli, gpt2, tmp_path):
    inp = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"instruction": "Summarize.", "input": "The cat sat on the mat.", "id": 1},
            "",
            {"instruction": "Translate to French: hello", "context": ""},
            {"prompt": "Name a color."},
            {"instruction": "Use the context.", "context": "Paris is in France."},
        ],
    )
    out = tmp_path / "nested" / "out.jsonl"
    rows = run_file(cli, gpt2, inp, out, "--batch-size", "2")
    assert [list(r) for r in rows] == [
        ["prompt", "input", "response"],
        ["prompt", "response"],
        ["prompt", "response"],
        ["prompt", "input", "response"],
    ]
    assert [r["prompt"] for r in rows] == [
        "Summarize.",
        "Translate to French: hello",
        "Name a color.",
        "Use the context.",
    ]
    assert rows[0]["input"] == "The cat sat on the mat." and rows[3]["input"] == "Paris is in France."
    assert all(isinstance(r["response"], str) for r in rows)


def test_several_prompts_without_output_print_each(cli, gpt2):
    res = cli("generate", "--model", gpt2, "-p", "one", "-p", "two", "--max-new-tokens", "4")
    assert res.code == 0, res.output
    assert ">>> one" in res.stdout and ">>> two" in res.stdout


@pytest.mark.parametrize(
    ("lines", "code", "needles"),
    [
        (['{"instruction": "ok"}', "{not json"], 5, ["line 2", "not valid JSON"]),
        (['{"instruction": "ok"}', '{"prompt": "ok"}', '{"input": "x"}'], 5, ["line 3", "'instruction'"]),
        (['["a list"]'], 5, ["line 1", "JSON object"]),
        (['{"instruction": 3}'], 5, ["line 1", "must be a string"]),
        (["", "  "], 5, ["no prompts"]),
    ],
)
def test_bad_input_files(cli, gpt2, tmp_path, lines, code, needles):
    inp = write_jsonl(tmp_path / "bad.jsonl", lines)
    res = cli("generate", "--model", gpt2, "--input", inp)
    assert res.code == code, res.output
    for needle in needles:
        assert says(res.stderr, needle), res.stderr
    assert "Traceback" not in res.output


def test_usage_and_resource_errors(cli, gpt2, tmp_path):
    missing = cli("generate", "--model", tmp_path / "no-such-model", "-p", "x")
    assert missing.code == 5 and says(missing.stderr, "does not exist")
    no_prompts = cli("generate", "--model", gpt2)
    assert no_prompts.code == 2 and says(no_prompts.stderr, "no prompts")
    inp = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "x"}])
    both = cli("generate", "--model", gpt2, "-p", "x", "--input", inp)
    assert both.code == 2 and says(both.stderr, "not both")
    no_file = cli("generate", "--model", gpt2, "--input", tmp_path / "absent.jsonl")
    assert no_file.code == 5 and says(no_file.stderr, "does not exist")
    bad_top_p = cli("generate", "--model", gpt2, "-p", "x", "--top-p", "1.5")
    assert bad_top_p.code == 2 and says(bad_top_p.stderr, "--top-p")
    too_long = cli("generate", "--model", gpt2, "-p", "x", "--max-new-tokens", "1000")
    assert too_long.code == 2 and says(too_long.stderr, "512 positions")
    assert not any("Traceback" in r.output for r in (missing, no_prompts, both, no_file, bad_top_p, too_long))
