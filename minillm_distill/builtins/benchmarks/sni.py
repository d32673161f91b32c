"""S-NI: the test split of Super-NaturalInstructions (119 tasks), several references per instance."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from minillm_distill.api import Benchmark, EvalExample, PluginParams, load_hub_rows, read_records


class SNIParams(PluginParams):
    max_instances_per_task: int | None = Field(
        100,
        ge=1,
        description="read at most this many instances of each task file (the S-NI evaluation uses 100); "
        "None = all. Flattened JSONL files are read whole",
    )


class SNIBenchmark(Benchmark):
    """Prompt: the task ``definition`` as the instruction and the instance ``input`` as the input; references:
    every acceptable ``output`` (Rouge-L takes the best).

    ``--data`` takes:

    * a flattened JSONL file: one instance a line with ``task``, ``definition``, ``input`` and ``output`` (a
      list of strings, or one string);
    * an upstream task file ``taskNNN_*.json`` (``Definition``: a string or a list of one; ``Instances``: a
      list of ``{input, output: [..]}``);
    * a folder of task files (or with a ``tasks/`` subfolder, as the upstream repository): when it holds a
      ``test_tasks.txt`` (or ``splits/default/test_tasks.txt``) only the tasks it names are read.

    Without ``--data``: the ``Muennighoff/natural-instructions`` test split (one row per instance and target,
    grouped back into one example with all its targets)."""

    name = "sni"
    description = "S-NI: Super-NaturalInstructions test tasks, several references per instance (Rouge-L)"
    Params = SNIParams
    hub_id = "Muennighoff/natural-instructions"
    hub_split = "test"
    data_format = (
        "a JSONL file with 'definition', 'input' and 'output' (a list of strings) a line, an upstream task .json "
        "file ('Definition', 'Instances'), or a folder of task files"
    )
    example_records = (
        {"task": "task1_opposites", "definition": "Give the opposite of the word.", "input": "hot", "output": ["cold"]},
        {"task": "task2_plurals", "definition": "Write the plural.", "input": "mouse", "output": ["mice", "mouses"]},
    )

    @property
    def max_per_task(self) -> int | None:
        return self.params.max_instances_per_task  # type: ignore[attr-defined]

    # -- local data ---------------------------------------------------------------------------------------
    def load_local(self, path: Path) -> list[EvalExample]:
        if path.is_dir():
            return self._load_folder(path)
        if path.suffix.lower() == ".json":
            return self._load_task_file(path)
        return self.parse_records(read_records(path))

    def _load_folder(self, folder: Path) -> list[EvalExample]:
        task_dir = folder / "tasks" if (folder / "tasks").is_dir() else folder
        files = {p.stem: p for p in sorted(task_dir.glob("task*.json"))}
        if not files:
            raise self.format_error(
                f"folder {folder} holds no S-NI task file (task*.json)",
                hint="give a task folder, one task .json file, or a flattened .jsonl file with --data",
            )
        listing = next(
            (p for p in (folder / "test_tasks.txt", folder / "splits" / "default" / "test_tasks.txt") if p.is_file()),
            None,
        )
        names = list(files)
        if listing is not None:
            wanted = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
            names = [name for name in wanted if name in files]
            if not names:
                raise self.format_error(
                    f"none of the {len(wanted)} tasks named in {listing} has a task file in {task_dir}"
                )
        examples: list[EvalExample] = []
        for name in names:
            examples.extend(self._load_task_file(files[name], first_index=len(examples)))
        return examples

    def _load_task_file(self, path: Path, *, first_index: int = 0) -> list[EvalExample]:
        records = list(read_records(path))
        if len(records) != 1 or not isinstance(records[0].data, Mapping):
            raise self.format_error(f"{path.name}: an S-NI task file is one JSON object ('Definition', 'Instances')")
        task, where = records[0].data, records[0].where
        definition = self._definition(task, "Definition", where)
        instances = self.require(task, "Instances", where, types=(list,))
        if self.max_per_task is not None:
            instances = instances[: self.max_per_task]
        examples = []
        for i, instance in enumerate(instances):
            at = f"{where}, Instances[{i}]"
            if not isinstance(instance, Mapping):
                raise self.format_error(f"{at}: expected an object with 'input' and 'output'")
            instance_id = instance.get("id")
            examples.append(
                EvalExample(
                    instruction=definition,
                    input=self.require(instance, "input", at),
                    references=self.references(instance, "output", at),
                    id=instance_id if isinstance(instance_id, str) else f"{path.stem}-{i}",
                    metadata={"task": path.stem},
                )
            )
        return examples

    def parse_record(self, record: Mapping[str, Any], where: str, *, index: int) -> list[EvalExample]:
        task = record.get("task")
        record_id = record.get("id")
        return [
            EvalExample(
                instruction=self._definition(record, "definition", where),
                input=self.require(record, "input", where),
                references=self.references(record, "output", where),
                id=record_id if isinstance(record_id, str) else str(index),
                metadata={"task": task} if isinstance(task, str) else {},
            )
        ]

    def _definition(self, record: Mapping[str, Any], key: str, where: str) -> str:
        value = self.require(record, key, where, types=(str, list))
        if isinstance(value, list):  # newer task files: a list holding one string
            if not value or not all(isinstance(v, str) for v in value):
                raise self.format_error(f"{where}: field {key!r} should be a string or a list of strings")
            value = "\n".join(value)
        return value

    # -- the hub ------------------------------------------------------------------------------------------
    def load_hub(self) -> list[EvalExample]:
        rows = load_hub_rows(self.hub_id, benchmark=self.name, split=self.hub_split, data_format=self.data_format)
        grouped: dict[str, dict[str, Any]] = {}
        per_task: dict[str, int] = defaultdict(int)
        for i, row in enumerate(rows):
            where = f"hub dataset {self.hub_id} row {i}"
            for key in ("task_name", "id", "definition", "inputs", "targets"):
                self.require(row, key, where)
            entry = grouped.get(row["id"])
            if entry is None:
                if self.max_per_task is not None and per_task[row["task_name"]] >= self.max_per_task:
                    continue
                per_task[row["task_name"]] += 1
                entry = grouped[row["id"]] = {"row": row, "targets": []}
            if row["targets"] not in entry["targets"]:
                entry["targets"].append(row["targets"])
        return [
            EvalExample(
                instruction=entry["row"]["definition"],
                input=entry["row"]["inputs"],
                references=tuple(entry["targets"]),
                id=instance_id,
                metadata={"task": entry["row"]["task_name"]},
            )
            for instance_id, entry in grouped.items()
        ]
