"""UnNI: Unnatural Instructions (core data), one example per instance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minillm_distill.api import Benchmark, EvalExample

NO_CONSTRAINTS = {"", "none", "none."}


class UnNIBenchmark(Benchmark):
    """Records of ``core_data.jsonl`` (or ``full_data.jsonl``; its ``reformulations`` are ignored): an
    ``instruction`` and ``instances``, each ``{input, instruction_with_input, constraints, output}``. Every
    instance is one example: instruction = the record's ``instruction`` followed, when the instance has
    constraints other than "None.", by its ``constraints`` (they define the output space); input = the
    instance ``input``; reference = its ``output``.

    Without ``--data``: the ``mrm8488/unnatural-instructions-core`` mirror of the core data (66,010 records,
    68,478 instances). MiniLLM evaluates on a random 10k-instance subset: use ``--limit`` or a local subset."""

    name = "unni"
    description = "UnNI: Unnatural Instructions core data (Rouge-L)"
    hub_id = "mrm8488/unnatural-instructions-core"
    hub_split = "train"
    data_format = (
        "a JSONL file (core_data.jsonl), one object a line with 'instruction' and 'instances': a list of objects "
        "with 'input', 'output' and optionally 'constraints' and 'instruction_with_input'"
    )
    example_records = (
        {"instruction": "Decide whether the sentence is a question.",
         "instances": [{"input": "Is it raining?", "constraints": "Answer Yes or No.", "output": "Yes"},
                       {"input": "It is raining.", "constraints": "None.", "output": "No"}]},
    )  # fmt: skip

    def parse_record(self, record: Mapping[str, Any], where: str, *, index: int) -> list[EvalExample]:
        instruction = self.require(record, "instruction", where)
        instances = self.instances(record, where)
        examples = []
        for i, instance in enumerate(instances):
            at = f"{where}, instances[{i}]"
            if not isinstance(instance, Mapping):
                raise self.format_error(f"{at}: expected an object with 'input' and 'output'")
            constraints = instance.get("constraints")
            text = instruction
            if isinstance(constraints, str) and constraints.strip().lower() not in NO_CONSTRAINTS:
                text = f"{instruction}\n{constraints.strip()}"
            examples.append(
                EvalExample(
                    instruction=text,
                    input=self.require(instance, "input", at),
                    references=(self.require(instance, "output", at),),
                    id=f"{index + i}",
                )
            )
        return examples
