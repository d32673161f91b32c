"""Benchmark base class: an evaluation set with its prompt format and references.

A benchmark plugin subclasses :class:`Benchmark` and says where its data comes from and how one record of
its real format becomes :class:`EvalExample` s:

* ``hub_id`` (+ ``hub_config``, ``hub_split``) is what ``minillm eval --bench NAME`` loads through
  ``datasets.load_dataset`` when no ``--data`` is given; a set that only exists as a JSONL file in a
  repository names its pinned raw URL in ``source_url`` instead (downloaded once with the standard library,
  cached under ``~/.cache/minillm/benchmarks``; refused in offline mode: ``HF_DATASETS_OFFLINE`` /
  ``HF_HUB_OFFLINE``);
* :meth:`Benchmark.load_local` reads ``--data PATH`` (a ``.jsonl`` / ``.json`` file by default; override it
  for folders) and hands every record to :meth:`Benchmark.parse_record` together with *where* it came from
  (``data.jsonl line 12``), so a record in the wrong format is reported as
  ``data.jsonl line 12: no field 'response'`` (:class:`BenchmarkDataError`, exit code 2).

References are a tuple: several acceptable answers where the benchmark has them (S-NI); metrics take the
maximum over them. Per-benchmark hooks: :meth:`Benchmark.format_prompt` (default: the model family's
template), ``length_buckets`` (the bucketed Rouge-L) and :meth:`Benchmark.extra_scores` (more metrics).
``choices`` (label words) marks a classification example: the eval then also measures accuracy and
calibration (ECE) from the model's probabilities of the label words.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from minillm_distill.errors import ResourceError, UsageError
from minillm_distill.json_rows import RawRecord, RowsError, json_rows
from minillm_distill.registrable import Registrable


@dataclass(frozen=True)
class EvalExample:
    """One prompt of a benchmark and the references its answer is scored against (Rouge-L, exact match)."""

    instruction: str
    input: str
    references: tuple[str, ...]
    id: str = ""
    """A stable identifier within the benchmark (a record id, or the record's position)."""
    choices: tuple[str, ...] = ()
    """Label words of a classification example (empty for open-ended generation)."""
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Anything else worth keeping (category, task name, ...), copied into ``predictions.jsonl``."""

    def __post_init__(self) -> None:
        for name in ("references", "choices"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(
                    f"EvalExample.{name} must be a sequence of strings, not {type(value).__name__}"
                    + (f" (one reference: {name}=(text,))" if isinstance(value, str) else "")
                )
            object.__setattr__(self, name, tuple(value))


class BenchmarkDataError(UsageError):
    """A benchmark data file (``--data``) is not in the benchmark's format (exit code 2)."""

    title = "Benchmark data in the wrong format"


class EmptyBenchmarkError(UsageError):
    """Nothing to evaluate: the data holds no example, or ``--limit`` left none (exit code 2)."""

    title = "Empty benchmark"


Record = RawRecord
"""The old name of :class:`~minillm_distill.json_rows.RawRecord` (deprecated: ``minillm_distill.api.Record`` warns)."""


class Benchmark(Registrable):
    """Loads an evaluation set from its hub id or a local file (``data``)."""

    hub_id: ClassVar[str | None] = None
    """The dataset's id on the Hugging Face hub."""
    hub_config: ClassVar[str | None] = None
    hub_split: ClassVar[str] = "train"
    source_url: ClassVar[str | None] = None
    """A pinned URL of a JSONL file: the source when the set is not on the hub."""
    data_format: ClassVar[str] = ""
    """One line saying what a local data file looks like (shown when one is in the wrong format)."""
    length_buckets: ClassVar[tuple[tuple[int, int | None], ...]] = ((0, 5), (6, 10), (11, None))
    """Reference-length buckets (in words, ``None`` = no upper bound) for the bucketed Rouge-L."""
    example_records: ClassVar[tuple[Mapping[str, Any], ...]] = ()
    """A few records in the benchmark's own data format (as one line of its file holds), for ``minillm plugins
    check``: they must parse into examples with a non-empty instruction and string references."""
    scorer_packages: ClassVar[dict[str, str]] = {"rouge_score": "rouge-score"}
    """The packages scoring needs (import name -> the name to ``pip install``), checked by
    :meth:`check_scorers` before anything is generated. Every benchmark reports Rouge-L; a benchmark whose
    :meth:`extra_scores` needs more adds to this: ``{**Benchmark.scorer_packages, "sacrebleu": "sacrebleu"}``."""

    def check_scorers(self) -> None:
        """Raise :class:`ResourceError` naming every scoring package that cannot be imported (call before
        generating, so that a missing scorer is not found after the models have run)."""
        import importlib

        missing = []
        for module, package in self.scorer_packages.items():
            try:
                importlib.import_module(module)
            except ImportError as exc:
                missing.append((package, f"{package} (import {module}: {exc})"))
        if missing:
            names = " ".join(sorted({package for package, _ in missing}))
            raise ResourceError(
                f"benchmark {self.name!r} cannot be scored: missing package(s) {names}",
                details=[detail for _, detail in missing],
                why="its scores need these packages, and nothing is generated without them",
                hint=f"pip install {names}",
            )

    # -- entry point ---------------------------------------------------------------------------------
    def load_examples(self, data: str | None = None) -> list[EvalExample]:
        """Every example of the benchmark: from ``data`` (a local file or folder) or from the hub."""
        if data is None:
            return self.load_hub()
        path = Path(data).expanduser()
        if not path.exists():
            raise ResourceError(
                f"benchmark data {str(data)!r} does not exist",
                hint=f"give an existing file or folder with --data ({self.data_format or 'see the benchmark docs'}), "
                "or leave --data out to load the benchmark from the hub",
            )
        examples = self.load_local(path)
        if not examples:
            raise EmptyBenchmarkError(
                f"benchmark {self.name!r}: {str(data)!r} holds no example",
                hint=self.data_format or None,
            )
        return examples

    # -- local files -----------------------------------------------------------------------------------
    def load_local(self, path: Path) -> list[EvalExample]:
        """Examples from a local file (``.jsonl`` one record a line, or ``.json``); folders are refused
        unless a subclass knows its layout."""
        if path.is_dir():
            raise self.format_error(
                f"{path} is a folder; benchmark {self.name!r} reads one data file",
                hint=f"give the data file itself: {self.data_format}" if self.data_format else None,
            )
        return self.parse_records(read_records(path))

    def parse_records(self, records: Iterator[RawRecord] | Sequence[RawRecord]) -> list[EvalExample]:
        examples: list[EvalExample] = []
        for record in records:
            if not isinstance(record.data, Mapping):
                raise self.format_error(f"{record.where}: expected a JSON object, found {type(record.data).__name__}")
            examples.extend(self.parse_record(record.data, record.where, index=len(examples)))
        return examples

    def parse_record(self, record: Mapping[str, Any], where: str, *, index: int) -> list[EvalExample]:
        """The examples of one record of the benchmark's format (``index``: how many came before)."""
        raise NotImplementedError

    # -- the hub ---------------------------------------------------------------------------------------
    def load_hub(self) -> list[EvalExample]:
        if self.source_url is not None:
            rows = fetch_jsonl(self.source_url, benchmark=self.name, data_format=self.data_format)
            return self.parse_records(RawRecord(row, f"{self.source_url} line {i + 1}") for i, row in enumerate(rows))
        if self.hub_id is None:
            raise UsageError(
                f"benchmark {self.name!r} has no hub dataset",
                hint=f"give its data with --data PATH ({self.data_format})" if self.data_format else None,
            )
        rows = load_hub_rows(
            self.hub_id,
            benchmark=self.name,
            config=self.hub_config,
            split=self.hub_split,
            data_format=self.data_format,
        )
        source = f"hub dataset {self.hub_id}"
        return self.parse_records(RawRecord(row, f"{source} row {i}") for i, row in enumerate(rows))

    # -- helpers for subclasses ------------------------------------------------------------------------
    def format_prompt(self, example: EvalExample, family: Any) -> str:
        """The prompt the model sees: the model family's template (Alpaca style by default)."""
        return family.format_prompt(example.instruction, example.input)

    def extra_scores(self, predictions: Sequence[Any]) -> dict[str, Any]:
        """Benchmark-specific scores added to ``scores.json`` (default: none). ``predictions`` are
        :class:`minillm_distill.eval.runner.Prediction` s (``example``, ``seed``, ``prediction``, ...)."""
        return {}

    def format_error(self, message: str, *, hint: str | None = None) -> BenchmarkDataError:
        """The error for a data file in the wrong format (exit 2; the hint defaults to ``data_format``): raise it."""
        if hint is None and self.data_format:
            hint = f"benchmark {self.name!r} expects {self.data_format}"
        return BenchmarkDataError(message, hint=hint)

    def require(self, record: Mapping[str, Any], name: str, where: str, *, types: tuple[type, ...] = (str,)) -> Any:
        """``record[name]``, or a :class:`BenchmarkDataError` naming the missing/mistyped field and where."""
        if name not in record:
            present = ", ".join(repr(k) for k in list(record)[:8]) or "none"
            raise self.format_error(f"{where}: missing field {name!r} (fields present: {present})")
        value = record[name]
        if not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise self.format_error(f"{where}: field {name!r} should be {wanted}, found {type(value).__name__}")
        return value

    def instances(self, record: Mapping[str, Any], where: str, *, empty_hint: str = "") -> list[Any]:
        """The non-empty ``instances`` list of a record (Self-Instruct / Unnatural Instructions style); a
        ``datasets`` Sequence feature (a dict of lists) is turned back into a list of dicts."""
        instances = self.require(record, "instances", where, types=(list, dict))
        if isinstance(instances, dict):
            keys = list(instances)
            instances = [dict(zip(keys, values, strict=True)) for values in zip(*instances.values(), strict=True)]
        if not instances:
            raise self.format_error(f"{where}: field 'instances' is empty{empty_hint}")
        return instances

    def references(self, record: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
        """A reference field that is one string or a non-empty list of strings."""
        value = self.require(record, name, where, types=(str, list, tuple))
        refs = (value,) if isinstance(value, str) else tuple(value)
        if not refs or not all(isinstance(r, str) for r in refs):
            raise self.format_error(f"{where}: field {name!r} should be a string or a non-empty list of strings")
        return refs


def read_records(path: Path) -> Iterator[RawRecord]:
    """Records of a ``.json`` file (a list of objects, or one object) or a JSON-lines file (anything else), read by
    :func:`~minillm_distill.json_rows.json_rows` like training data. Blank lines are skipped; a file or line that
    cannot be read is a :class:`BenchmarkDataError` naming it."""
    try:
        for row in json_rows(path):
            yield RawRecord(
                row.data, f"{path.name} item {row.number - 1}" if row.line is None else f"{path.name} line {row.line}"
            )
    except RowsError as exc:
        if exc.line is not None:
            raise BenchmarkDataError(
                f"{path.name} line {exc.line}: {exc.problem}", hint="a .jsonl data file holds one JSON object per line"
            ) from exc
        raise BenchmarkDataError(f"{path}: {exc.problem}") from exc


def load_hub_rows(
    hub_id: str,
    *,
    benchmark: str,
    config: str | None = None,
    split: str = "train",
    data_format: str = "",
) -> list[dict[str, Any]]:
    """Rows of a dataset through ``datasets.load_dataset``; any failure (offline, unknown id, no network)
    becomes a :class:`ResourceError` that says how to give the data locally instead."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ResourceError("the `datasets` package is not installed", hint="pip install datasets") from exc
    try:
        dataset = datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # datasets raises many types (ConnectionError, FileNotFoundError, ValueError...)
        raise _download_error(benchmark, f"hub dataset {hub_id}", exc, data_format) from exc
    return [dict(row) for row in dataset]


def _offline() -> bool:
    return any(
        os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    )


def _download_error(benchmark: str, where: str, exc: BaseException, data_format: str) -> ResourceError:
    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return ResourceError(
        f"cannot load benchmark {benchmark!r} from {where}",
        why=f"{type(exc).__name__}: {first}",
        hint="check the network (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE must be unset to download), "
        "or give a local copy with --data PATH" + (f" ({data_format})" if data_format else ""),
    )


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "minillm" / "benchmarks"


def fetch_jsonl(url: str, *, benchmark: str, data_format: str = "") -> list[Any]:
    """The JSON objects of a JSONL file at ``url`` (a pinned raw URL), cached after the first download.
    Offline mode (``HF_DATASETS_OFFLINE`` / ``HF_HUB_OFFLINE``) uses the cache only."""
    import urllib.request

    cached = cache_dir() / (hashlib.sha256(url.encode()).hexdigest()[:16] + "-" + url.rsplit("/", 1)[-1])
    if not cached.is_file():
        if _offline():
            raise _download_error(
                benchmark, url, ConnectionError("offline mode is on and the file is not in the cache"), data_format
            )
        try:
            with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a fixed https URL
                payload = response.read()
            payload.decode("utf-8")
        except (OSError, ValueError) as exc:
            raise _download_error(benchmark, url, exc, data_format) from exc
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(cached.suffix + ".partial")
        partial.write_bytes(payload)
        partial.replace(cached)
    return [record.data for record in read_records(cached)]
