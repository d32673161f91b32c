"""A teacher outside the minillm process: an OpenAI-compatible server that returns prompt log-probabilities.

vLLM's ``/v1/completions`` takes ``prompt`` as lists of token ids and ``prompt_logprobs: k``, and answers, for every
prompt position after the first, the top-k token ids with their log-probabilities and ranks (plus the prompt's own
token at its rank). :class:`ServedTeacher` sends prompt + response of each row and reads the response positions;
the tail is ``log(1 - their mass)``, computed in float64. Start a server with the teacher, e.g.::

    python -m vllm.entrypoints.openai.api_server --model TEACHER_DIR --served-model-name teacher \\
        --dtype float32 --max-logprobs 64

then ``minillm teacher capture RECIPE --output DIR --teacher-url http://localhost:8000/v1``. The server's
log-probabilities are its model's unprocessed distribution (temperature 1) over its whole vocabulary, so another
temperature, or a token id beyond the vocabulary the student shares, is refused rather than approximated. minillm
cannot see which weights the server holds: serve the recipe's teacher (the cache records the recipe's teacher
fingerprint).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from typing import Any

import torch

from minillm_distill.errors import ResourceError, UsageError
from minillm_distill.rollout import RolloutBatch
from minillm_distill.teacher_cache.topk_teacher import TeacherTopK

SERVER_HINT = (
    "start an OpenAI-compatible server with the teacher that returns prompt log-probs, e.g. `python -m "
    "vllm.entrypoints.openai.api_server --model TEACHER --max-logprobs 64`, and give its /v1 address"
)


class ServedTeacher:
    """The top-k of a teacher behind ``url`` (``http://host:port/v1``); ``model``: the served model's name (the
    only one the server lists when omitted)."""

    def __init__(self, url: str, model: str | None = None, *, timeout: float = 600.0) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout
        self.model = model or self._only_model()

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (the user's URL)
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise ResourceError(f"the served teacher at {self.url} answered {exc.code}: {detail}",
                                hint="a limit on log-probs is the server's --max-logprobs") from exc  # fmt: skip
        except (urllib.error.URLError, OSError, ValueError) as exc:
            where = self.url + path
            raise ResourceError(f"cannot reach the served teacher at {where}: {exc}", hint=SERVER_HINT) from exc

    def _only_model(self) -> str:
        names = [m.get("id") for m in self._call("/models").get("data", []) if isinstance(m, dict)]
        if len(names) != 1:
            raise UsageError(f"the server at {self.url} serves {names or 'no models'}: name one with --teacher-model")
        return str(names[0])

    def topk(self, batch: RolloutBatch, *, k: int, temperature: float, vocab_size: int) -> TeacherTopK:
        if temperature != 1.0:
            raise UsageError(
                f"a served teacher gives its log-probs at temperature 1, the recipe asks for {temperature}",
                hint="capture with the teacher in this process (no --teacher-url), or use temperature 1.0",
            )
        prompts, lengths = [], []
        for row in range(batch.prompt_ids.size(0)):
            prompt = batch.prompt_ids[row][batch.prompt_mask[row].bool()].tolist()
            response = batch.response_ids[row][batch.response_mask[row].bool()].tolist()
            prompts.append((prompt, response))
            lengths.append(len(response))
        body = {"model": self.model, "prompt": [p + r for p, r in prompts], "max_tokens": 1, "temperature": 1.0,
                "prompt_logprobs": k}  # fmt: skip
        answer = self._call("/completions", body)
        try:
            return self._rows(answer, prompts, lengths, k, vocab_size)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ResourceError(
                f"the served teacher's answer is not in the format minillm reads ({type(exc).__name__}: {exc})",
                hint="use a server that returns vLLM's `prompt_logprobs` (token id -> logprob and rank per position)",
            ) from exc

    def _rows(self, answer: Any, prompts: list[tuple[list[int], list[int]]], lengths: list[int], k: int,
              vocab_size: int) -> TeacherTopK:  # fmt: skip
        choices = sorted(answer["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != len(prompts):
            raise ResourceError(f"the served teacher answered {len(choices)} rows for {len(prompts)}")
        ids, values, tails = [], [], []
        for (prompt, response), choice in zip(prompts, choices, strict=True):
            positions = choice.get("prompt_logprobs") or []
            for t in range(len(response)):
                at = len(prompt) + t
                entry = positions[at] if at < len(positions) else None
                top = _top_k(entry, k, at)
                beyond = [i for i, _ in top if i >= vocab_size]
                if beyond:
                    raise ResourceError(
                        f"the served teacher's top {k} holds token id {beyond[0]}, beyond the {vocab_size} vocabulary "
                        "rows the student shares",
                        hint="serve a teacher with the student's vocabulary, or capture in this process",
                    )
                ids.append([i for i, _ in top])
                values.append([v for _, v in top])
                mass = math.fsum(math.exp(v) for _, v in top)
                tails.append(math.log1p(-mass) if mass < 1.0 else float("-inf"))
        return TeacherTopK(
            torch.tensor(ids, dtype=torch.long).reshape(-1, k),
            torch.tensor(values, dtype=torch.float32).reshape(-1, k),
            torch.tensor(tails, dtype=torch.float32),
            lengths,
        )


def _top_k(entry: Any, k: int, position: int) -> list[tuple[int, float]]:
    """The ``k`` entries of ranks 1..k of one position's ``{token id: {"logprob", "rank"}}``, best first."""
    if not isinstance(entry, dict):
        raise ResourceError(f"the served teacher gave no prompt log-probs at position {position}",
                            hint="the server must support `prompt_logprobs` (vLLM does)")  # fmt: skip
    # the prompt's own token comes too, at its rank (beyond k, or tied with the k-th): the best k by rank, then value
    ranked = sorted(((int(e["rank"]), -float(e["logprob"]), int(i)) for i, e in entry.items()))
    top = [(i, -v) for rank, v, i in ranked[:k] if rank <= k]
    if len(top) != k:
        raise ResourceError(f"the served teacher gave {len(top)} of the {k} log-probs asked at position {position}",
                            hint="raise the server's --max-logprobs to at least --k")  # fmt: skip
    return top
