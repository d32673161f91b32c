"""The ``synthetic`` benchmark: a split of the synthetic task, scored against its exact answer distribution.

Data: a Dolly-format JSONL split (``instruction``, ``context``, ``response``) as
:func:`minillm_demo.synthetic.write_splits` writes it, with ``world.json`` (the world's seed and sizes,
:func:`save_world`) in the same folder; ``--data`` may also name the folder (its ``test.jsonl`` is read).
Each example's references are ``n_references`` responses drawn from the *true* distribution of its prompt
(:meth:`World.references`, deterministic in the prompt and the world), or the record's own ``references``
list when it has one, so Rouge-L is measured against what the task really allows, not one gold answer.

:meth:`SyntheticBenchmark.extra_scores` adds the task's own metrics through the exact checker, per seed and
as mean and standard deviation over seeds: ``validity``, ``coverage``, ``mode_coverage``, ``true_nll``,
``finished`` and the share of each error kind (:func:`minillm_demo.synthetic.evaluate`). A prediction
counts as finished (ended with EOS) when it is shorter than ``max_new_tokens`` tokens: the eval strips EOS
from the text, and generation only stops early at EOS. Every valid response is far shorter than the eval's
default of 256 new tokens; set ``max_new_tokens`` on the instance when evaluating with another limit.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from minillm_demo.synthetic.metrics import evaluate
from minillm_demo.synthetic.task import EOS, TaskConfig, World, length_buckets, make_world
from minillm_distill.api import Benchmark, EvalExample, ResourceError, read_records

WORLD_FILE = "world.json"
DEFAULT_REFERENCES = 8


# -- the world beside the data ----------------------------------------------------------------------------
def world_spec(world: World) -> dict[str, Any]:
    """What rebuilds ``world`` exactly: its seed and its config."""
    return {"seed": world.seed, "config": asdict(world.config)}


def save_world(world: World, directory: str | Path) -> Path:
    """Write ``DIR/world.json`` (see :func:`world_spec`); returns its path."""
    path = Path(directory) / WORLD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(world_spec(world), indent=2) + "\n", encoding="utf-8")
    return path


def load_world(path: str | Path) -> World:
    """The world a ``world.json`` describes (a :class:`ResourceError` when it is missing or malformed)."""
    path = Path(path)
    if not path.is_file():
        raise ResourceError(
            f"no {WORLD_FILE} at {path}",
            why="the synthetic benchmark rebuilds the task's exact answer distribution from the world's seed",
            hint="give a split written by `minillm demo` (its data/ folder holds world.json beside test.jsonl)",
        )
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        return make_world(int(spec["seed"]), TaskConfig(**spec.get("config", {})))
    except (ValueError, TypeError, KeyError) as exc:
        raise ResourceError(
            f"{path} does not describe a synthetic world ({type(exc).__name__}: {exc})",
            hint='expected {"seed": <int>, "config": {<TaskConfig fields>}}',
        ) from exc


class SyntheticBenchmark(Benchmark):
    """Held-out prompts of the synthetic task; references drawn from the true distribution; validity and
    coverage from the exact checker."""

    name = "synthetic"
    description = "synthetic multi-mode task: Rouge-L vs true-distribution references, validity, coverage"
    data_format = (
        "a JSONL split written by `minillm demo` (Dolly fields 'instruction', 'context', 'response', optionally "
        f"a 'references' list) with {WORLD_FILE} in the same folder, or that folder itself (its test.jsonl)"
    )
    # reference lengths in words are 1 + the number of outputs (3..5 in the default world); a loaded world sets
    # its own (:func:`length_buckets`, shifted by the mode word)
    length_buckets = ((0, 4), (5, 5), (6, None))

    def __init__(self, params: Any = None, *, n_references: int = DEFAULT_REFERENCES, max_new_tokens: int = 256):
        super().__init__(params)
        if n_references < 1:
            raise ValueError("n_references must be >= 1")
        self.n_references = n_references
        self.max_new_tokens = max_new_tokens
        self.world: World | None = None

    # -- loading -------------------------------------------------------------------------------------------
    def load_local(self, path: Path) -> list[EvalExample]:
        if path.is_dir():
            path = path / "test.jsonl"
            if not path.is_file():
                raise self.format_error(f"{path.parent} holds no test.jsonl")
        self.world = load_world(path.parent / WORLD_FILE)
        if self.world.config.max_arity > 1 or self.world.config.max_items > 5:
            self.length_buckets = tuple(
                (low + 1, None if high is None else high + 1) for low, high in length_buckets(self.world.config)
            )
        return self.parse_records(read_records(path))

    def load_hub(self) -> list[EvalExample]:
        raise self.format_error(
            "benchmark 'synthetic' has no hub source: its data is generated offline",
            hint="run `minillm demo` (or write a split with minillm_demo.synthetic.write_splits and save_world) "
            "and pass --data DIR/data/test.jsonl",
        )

    def parse_record(self, record: Mapping[str, Any], where: str, *, index: int) -> list[EvalExample]:
        world = self._require_world()
        instruction = self.require(record, "instruction", where)
        try:
            prompt = world.parse_prompt(instruction)
        except ValueError as exc:
            raise self.format_error(f"{where}: {exc}") from None
        if "references" in record:
            references = self.references(record, "references", where)
        else:
            references = tuple(world.references(prompt, self.n_references))
        return [
            EvalExample(
                instruction=instruction,
                input="",
                references=references,
                id=str(index),
                metadata={"genre": world.genre_words[prompt.genre], "items": len(prompt.symbols)},
            )
        ]

    def _require_world(self) -> World:
        if self.world is None:
            raise ResourceError(
                "the synthetic benchmark has no world loaded",
                hint=f"load a split with load_examples(path) (it reads {WORLD_FILE} beside it), or set .world",
            )
        return self.world

    # -- scores ----------------------------------------------------------------------------------------------
    def task_metrics(self, prompts: Sequence[str], texts: Sequence[str], finished: Sequence[bool]) -> dict[str, float]:
        """:func:`evaluate` of responses whose EOS was stripped; ``finished`` says which ended with EOS."""
        marked = [f"{t} {EOS}" if done else t for t, done in zip(texts, finished, strict=True)]
        return evaluate(self._require_world(), prompts, marked)

    def extra_scores(self, predictions: Sequence[Any]) -> dict[str, Any]:
        """``{"synthetic": {metric: mean over seeds, metric + "_std": ..., "per_seed": {seed: {...}}}}``."""
        by_seed: dict[int, list[Any]] = defaultdict(list)
        for pred in predictions:
            by_seed[pred.seed].append(pred)
        per_seed = {
            seed: self.task_metrics(
                [p.example.instruction for p in preds],
                [p.prediction for p in preds],
                [p.length < self.max_new_tokens for p in preds],
            )
            for seed, preds in by_seed.items()
        }
        out: dict[str, Any] = {}
        for key in next(iter(per_seed.values()), {}):
            values = [m[key] for m in per_seed.values()]
            out[key] = _mean(values)
            out[f"{key}_std"] = _std(values)
        out["per_seed"] = {str(seed): values for seed, values in per_seed.items()}
        return {"synthetic": out}


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _std(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    if len(finite) < 2:
        return 0.0
    m = _mean(finite)
    return math.sqrt(sum((v - m) ** 2 for v in finite) / (len(finite) - 1))
