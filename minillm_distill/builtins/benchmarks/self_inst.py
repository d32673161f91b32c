"""SelfInst: the 252 user-oriented instructions of Self-Instruct (``human_eval/user_oriented_instructions.jsonl``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minillm_distill.api import Benchmark, EvalExample

# The upstream file at a fixed commit of https://github.com/yizhongw/self-instruct (Apache-2.0).
SELF_INSTRUCT_URL = (
    "https://raw.githubusercontent.com/yizhongw/self-instruct/0b26ccaa415992100fa32df62d41b994cf928e23/"
    "human_eval/user_oriented_instructions.jsonl"
)


class SelfInstBenchmark(Benchmark):
    """Prompt: ``instruction`` with ``instances[0].input`` (may be empty) as the input; reference:
    ``instances[0].output``. Every upstream record has exactly one instance."""

    name = "self_inst"
    description = "SelfInst: 252 user-oriented instructions from Self-Instruct (Rouge-L)"
    # the set is a plain JSONL file in its GitHub repository (the hub copy, yizhongw/self_instruct, needs a
    # loading script, which `datasets` no longer runs)
    source_url = SELF_INSTRUCT_URL
    data_format = (
        "a JSONL file, one object a line with 'id', 'instruction' and 'instances': a list whose first item has "
        "string fields 'input' and 'output' (user_oriented_instructions.jsonl)"
    )
    example_records = (
        {"id": "t0", "instruction": "Turn the sentence into a question.",
         "instances": [{"input": "The train leaves at noon.", "output": "Does the train leave at noon?"}]},
    )  # fmt: skip

    def parse_record(self, record: Mapping[str, Any], where: str, *, index: int) -> list[EvalExample]:
        instruction = self.require(record, "instruction", where)
        instances = self.instances(record, where, empty_hint=" (it needs one {input, output} object)")
        first = instances[0]
        if not isinstance(first, Mapping):
            raise self.format_error(f"{where}: instances[0] should be an object with 'input' and 'output'")
        output = self.require(first, "output", f"{where}, instances[0]")
        input_text = self.require(first, "input", f"{where}, instances[0]") if "input" in first else ""
        record_id = record.get("id")
        app = record.get("motivation_app")
        return [
            EvalExample(
                instruction=instruction,
                input=input_text.strip(),
                references=(output,),
                id=record_id if isinstance(record_id, str) else str(index),
                metadata={"motivation_app": app} if isinstance(app, str) else {},
            )
        ]
