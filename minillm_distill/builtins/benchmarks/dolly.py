"""DollyEval: databricks-dolly-15k (``instruction``, ``context``, ``response``, ``category``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minillm_distill.api import Benchmark, EvalExample


class DollyBenchmark(Benchmark):
    """Human-written instruction/response pairs. Prompt: ``instruction`` with ``context`` (when non-empty) as
    the input; reference: ``response``.

    The hub copy is the whole 15,011-record file; MiniLLM's DollyEval is a random 500-example split of it, so
    ``--limit`` or a local split file (``--data``) is the way to a paper-sized run."""

    name = "dolly"
    description = "DollyEval: databricks-dolly-15k instructions with human responses (Rouge-L)"
    hub_id = "databricks/databricks-dolly-15k"
    hub_split = "train"
    data_format = (
        "a JSONL file, one object a line with string fields 'instruction', 'response' and optionally 'context' "
        "and 'category' (databricks-dolly-15k.jsonl)"
    )
    example_records = (
        {"instruction": "Name a primary colour.", "context": "", "response": "Red.", "category": "open_qa"},
        {"instruction": "Summarize the text.", "context": "The cat sat on the mat.", "response": "A cat sat."},
    )

    def parse_record(self, record: Mapping[str, Any], where: str, *, index: int) -> list[EvalExample]:
        instruction = self.require(record, "instruction", where)
        response = self.require(record, "response", where)
        context = self.require(record, "context", where) if "context" in record else ""
        category = record.get("category")
        return [
            EvalExample(
                instruction=instruction,
                input=context.strip(),
                references=(response,),
                id=str(index),
                metadata={"category": category} if isinstance(category, str) else {},
            )
        ]
