"""Benchmark base class: an evaluation set with its prompt format and references."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from minillm_cli.components import Component


@dataclass(frozen=True)
class EvalExample:
    instruction: str
    input: str
    references: tuple[str, ...]


class Benchmark(Component):
    """Loads an evaluation set from its hub id or a local file (``data``)."""

    hub_id: ClassVar[str | None] = None

    def load_examples(self, data: str | None = None) -> list[EvalExample]:
        raise NotImplementedError
