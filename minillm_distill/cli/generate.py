"""``minillm generate``: batched, KV-cached sampling from one model, streamed for a single prompt.

Decoding is :func:`minillm_distill.generation.decode` (left-padded batches, one KV cache). Each prompt samples
with its own ``torch.Generator`` seeded ``seed + i`` (``i`` its 0-based position among the prompts), drawn in
the ``choose`` callback of ``decode``: a prompt's response does not depend on ``--batch-size`` nor on the
other prompts of its batch, and ``-p X --seed S`` gives the same response as ``X`` first in a file. The same
callback sees each token as it is drawn, which is how a single prompt is streamed to the terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import typer

from minillm_distill.errors import ResourceError, UsageError
from minillm_distill.json_rows import RowsError, json_rows

if TYPE_CHECKING:  # torch is imported by the functions that use it: `minillm --help` must not import it
    import torch

    from minillm_distill.generation import GenerationParams

PROMPT_FIELDS = ("instruction", "prompt")
INPUT_FIELDS = ("input", "context")


@dataclass(frozen=True)
class Prompt:
    text: str
    """the prompt as given (the instruction, or the raw text)"""
    input: str = ""
    where: str = ""
    """where it came from, for error messages (``-p #1``, ``prompts.jsonl, line 3``)"""

    def model_text(self, prompts: Any) -> str:
        """What the model reads: the prompt through the prompt format (a
        :class:`minillm_distill.data.prompt_format.PromptFormatter`)."""
        return prompts.format_prompt(self.text, self.input)

    def record(self, response: str) -> dict[str, str]:
        row = {"prompt": self.text}
        if self.input:
            row["input"] = self.input
        row["response"] = response
        return row


# -- reading prompts -------------------------------------------------------------------------------------


def read_prompt_file(path: Path) -> list[Prompt]:
    """One JSON object per line with ``instruction`` (optional ``input``/``context``) or ``prompt`` (or a
    ``.json`` list of them); blank lines are skipped. Every problem names the file and line."""
    if not path.exists():
        raise ResourceError(f"input file {str(path)!r} does not exist", hint="check --input")
    if path.is_dir():
        raise ResourceError(f"input {str(path)!r} is a directory", hint="give a .jsonl file")
    hint = 'each line is a JSON object such as {"instruction": "...", "input": "..."} or {"prompt": "..."}'
    prompts = []
    try:
        rows = list(json_rows(path))
    except RowsError as exc:
        if exc.line is None:
            raise ResourceError(f"cannot read input file {str(path)!r}", why=exc.problem) from exc
        raise ResourceError(f"{path}, line {exc.line}: {exc.problem}", hint=hint) from exc
    for item in rows:
        row = item.data
        where = f"{path}, line {item.line}" if item.line is not None else f"{path}, record {item.number}"
        if not isinstance(row, dict):
            raise ResourceError(f"{where}: expected a JSON object, got {type(row).__name__}", hint=hint)
        name = next((f for f in PROMPT_FIELDS if row.get(f) is not None), None)
        if name is None:
            raise ResourceError(f"{where}: missing field 'instruction' (or 'prompt')", hint=hint)
        extra_name = next((f for f in INPUT_FIELDS if row.get(f) is not None), None)
        for field in (name, extra_name):
            if field is not None and not isinstance(row[field], str):
                raise ResourceError(
                    f"{where}: field {field!r} must be a string, got {type(row[field]).__name__}", hint=hint
                )
        prompts.append(Prompt(row[name], row[extra_name] if extra_name else "", where))
    if not prompts:
        raise ResourceError(f"no prompts in {str(path)!r}", hint=hint)
    return prompts


def collect_prompts(texts: Sequence[str], input_file: Path | None) -> list[Prompt]:
    if texts and input_file is not None:
        raise UsageError("give prompts with -p or with --input, not both")
    if input_file is not None:
        return read_prompt_file(input_file)
    if not texts:
        raise UsageError("no prompts", hint='give one or more -p "TEXT", or --input prompts.jsonl')
    return [Prompt(text, "", f"-p #{i + 1}") for i, text in enumerate(texts)]


# -- sampling --------------------------------------------------------------------------------------------


class RowSampler:
    """A ``decode`` ``choose`` callback that draws each row's token with that row's own generator and
    returns the point mass on it (which ``decode``'s own draw then picks). ``on_tokens`` sees every draw."""

    def __init__(self, generators: list[torch.Generator], on_tokens: Callable[[torch.Tensor], None] | None = None):
        self.generators = generators
        self.on_tokens = on_tokens

    def __call__(self, q: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
        import torch

        assert q is not None
        rows = q.cpu()
        drawn = torch.cat(
            [torch.multinomial(rows[i : i + 1], 1, generator=g).view(1) for i, g in enumerate(self.generators)]
        )
        if self.on_tokens is not None:
            self.on_tokens(drawn)
        return torch.zeros_like(q).scatter_(-1, drawn.to(q.device)[:, None], 1.0)


class TextStream:
    """Writes one row's text as its tokens arrive (whole characters only), up to its first EOS."""

    def __init__(self, tokenizer: Any, eos_ids: Sequence[int], out: TextIO) -> None:
        self.tokenizer = tokenizer
        self.eos = set(eos_ids)
        self.out = out
        self.ids: list[int] = []
        self.written = ""
        self.ended = False

    def push(self, tokens: torch.Tensor) -> None:
        token = int(tokens[0])
        if self.ended:
            return
        if token in self.eos:
            self.ended = True
            return
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") or not text.startswith(self.written):
            return  # an incomplete multi-byte character: wait for the rest
        self._write(text[len(self.written) :])
        self.written = text

    def finish(self, final_text: str) -> None:
        """Write whatever of the final response is not on the terminal yet, then a newline."""
        if final_text.startswith(self.written):
            self._write(final_text[len(self.written) :])
        self._write("\n")

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()


def encode_prompts(
    prompts: Sequence[Prompt], tokenizer: Any, formatter: Any, *, max_new_tokens: int, limit: int | None
) -> list[list[int]]:
    from minillm_distill.data.chat import adds_special_tokens

    encoded = []
    for prompt in prompts:
        text = prompt.model_text(formatter)
        ids = tokenizer(text, add_special_tokens=adds_special_tokens(tokenizer, text))["input_ids"]
        if not ids:
            raise UsageError(f"{prompt.where}: the prompt is empty", hint="give some text, or drop --raw")
        if limit is not None and len(ids) + max_new_tokens > limit:
            raise UsageError(
                f"{prompt.where}: the prompt is {len(ids)} tokens; with --max-new-tokens {max_new_tokens} that "
                f"exceeds the model's {limit} positions",
                hint=f"lower --max-new-tokens (at most {max(limit - len(ids), 0)} for this prompt) or shorten it",
            )
        encoded.append(ids)
    return encoded


def sample(
    model: Any,
    tokenizer: Any,
    prompt_ids: Sequence[list[int]],
    params: GenerationParams,
    *,
    seed: int,
    batch_size: int,
    stream: TextIO | None = None,
    on_batch: Callable[[int, list[str]], None] | None = None,
) -> list[str]:
    """Responses to every prompt (text, special tokens dropped). Prompt ``i`` samples with a generator seeded
    ``seed + i``. With ``stream`` (single prompt only) the response is written there as it is drawn."""
    import torch

    from minillm_distill.eval.prompts import left_pad
    from minillm_distill.generation import decode
    from minillm_distill.model_facts import eos_token_ids, pad_token_id

    eos = eos_token_ids(tokenizer, model)
    pad = pad_token_id(tokenizer, eos)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if stream is not None and len(prompt_ids) != 1:
        raise ValueError("streaming needs exactly one prompt")
    responses: list[str] = []
    for start in range(0, len(prompt_ids), batch_size):
        batch = prompt_ids[start : start + batch_size]
        generators = [torch.Generator().manual_seed(seed + start + i) for i in range(len(batch))]
        streamer = TextStream(tokenizer, eos, stream) if stream is not None else None
        chooser = RowSampler(generators, streamer.push if streamer is not None else None)
        ids, mask = (t.to(device) for t in left_pad(batch, pad))
        out = decode(
            ids,
            mask,
            student=model,
            params=params,
            choose=chooser,
            generator=torch.Generator().manual_seed(0),  # draws from point masses: any generator will do
            eos_token_id=eos,
            pad_token_id=pad,
        )
        texts = []
        for row in range(len(batch)):
            tokens = out.response_ids[row][out.response_mask[row].bool()].tolist()
            texts.append(tokenizer.decode(tokens, skip_special_tokens=True))
        if streamer is not None:
            streamer.finish(texts[0])
        if on_batch is not None:
            on_batch(start, texts)
        responses.extend(texts)
    return responses


# -- the command -----------------------------------------------------------------------------------------


def generate(
    model: str = typer.Option(..., "--model", "-m", help="Model folder (e.g. runs/x/final) or hub id."),
    prompt: list[str] = typer.Option([], "--prompt", "-p", help="A prompt; repeat for several."),
    input_file: Path | None = typer.Option(
        None, "--input", "-i", help="JSONL file: one object per line with instruction (+ input) or prompt."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write {prompt, response} JSONL lines here."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Longest response, in tokens."),
    temperature: float = typer.Option(1.0, "--temperature", help="Divide the logits by this (> 0)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass (0 < p <= 1; 1 = off)."),
    top_k: int = typer.Option(0, "--top-k", min=0, help="Sample from the k most likely tokens (0 = off)."),
    seed: int = typer.Option(
        0, "--seed", min=0, max=2**32 - 1, help="Prompt i samples with seed + i: same seed, same output."
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Prompts decoded together."),
    raw: bool = typer.Option(False, "--raw", help="Feed prompts as they are (the same as --prompt-format plain)."),
    prompt_format: str | None = typer.Option(
        None,
        "--prompt-format",
        help="family, chat (the tokenizer's chat template), plain, or a format string with {instruction} and "
        "{input} (default: what the model was trained with, from its prompt_format.json; else family).",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Sample responses from a model: batched with a KV cache, streamed for a single prompt.

    Prompts are written the way the model was trained (its prompt_format.json; the model family's Alpaca-style
    template when it has none), or as --prompt-format / --raw say.
    """
    from pydantic import ValidationError

    from minillm_distill.data.prompt_format import cli_formatter, resolve_prompt_format
    from minillm_distill.generation import GenerationParams
    from minillm_distill.model_facts import max_positions
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    try:
        params = GenerationParams(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
    except ValidationError as exc:
        flags = {"max_new_tokens": "--max-new-tokens", "temperature": "--temperature", "top_k": "--top-k"}
        flags["top_p"] = "--top-p"
        raise UsageError(
            "invalid sampling options",
            details=[f"{flags.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors()],
        ) from exc
    if raw and prompt_format not in (None, "plain"):
        raise UsageError("--raw is --prompt-format plain: give one of them")
    if raw:
        prompt_format = "plain"
    resolve_prompt_format(prompt_format, model)  # a bad --prompt-format: before loading anything
    if output is not None:
        from minillm_distill.cli.output_paths import check_output_file

        check_output_file(output, "--output/-o")
    prompts = collect_prompts(prompt, input_file)
    from minillm_distill.cli.device import resolve_device

    torch_device = resolve_device(device)  # before a GGUF file's conversion or any loading
    from minillm_distill.gguf import local_source
    from minillm_distill.models import stderr_note

    model = local_source(model, log=stderr_note)  # a GGUF file: its converted folder (prompt_format.json and all)
    resolve_prompt_format(prompt_format, model)  # the model folder's prompt_format.json: before loading it
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    loaded = load_model(ModelSpec(path=model))
    lm = loaded.model.to(torch_device)
    formatter = cli_formatter(prompt_format, model, loaded.family, loaded.tokenizer)
    encoded = encode_prompts(
        prompts, loaded.tokenizer, formatter, max_new_tokens=max_new_tokens, limit=max_positions(lm)
    )

    from minillm_distill.io_errors import writing

    sink = None
    hint = "free space on that disk or choose another --output, then run the command again"
    if output is not None:
        with writing(output, "generations", hint=hint):
            output.parent.mkdir(parents=True, exist_ok=True)
            sink = open(output, "w", encoding="utf-8")  # noqa: SIM115 - closed below, written batch by batch

    def write_batch(start: int, texts: list[str]) -> None:
        if sink is not None:
            with writing(output, "generations", hint=hint):
                for offset, text in enumerate(texts):
                    sink.write(json.dumps(prompts[start + offset].record(text), ensure_ascii=False) + "\n")
                sink.flush()

    single = len(prompts) == 1
    try:
        responses = sample(
            lm,
            loaded.tokenizer,
            encoded,
            params,
            seed=seed,
            batch_size=batch_size,
            stream=sys.stdout if single else None,
            on_batch=write_batch,
        )
    finally:
        if sink is not None:
            with writing(output, "generations", hint=hint):
                sink.close()
    if output is not None:
        typer.echo(f"wrote {len(responses)} response(s) to {output}", err=True)
    elif not single:
        for p, response in zip(prompts, responses, strict=True):
            typer.echo(f">>> {p.text}" + (f"\n>>> {p.input}" if p.input else ""))
            typer.echo(response)
            typer.echo("")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
