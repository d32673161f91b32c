"""VicunaEval: the 80 Vicuna questions (FastChat ``question.jsonl``), references from ``answer_gpt35.jsonl``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from minillm_distill.api import Benchmark, EvalExample, PluginParams, RawRecord, fetch_jsonl, read_records

# The files at the last commit of https://github.com/lm-sys/FastChat (Apache-2.0) that had the old
# `fastchat/eval` package (it was removed in the next commit, a0ba8c97).
FASTCHAT_EVAL = (
    "https://raw.githubusercontent.com/lm-sys/FastChat/69d085eadab8e9fcf831a97e17e132658c3d2272/fastchat/eval/table/"
)
QUESTIONS_URL = FASTCHAT_EVAL + "question.jsonl"
ANSWERS_URL = FASTCHAT_EVAL + "answer/answer_gpt35.jsonl"
QUESTION_FILES = ("question.jsonl", "llm_judge_vicuna_bench_question.jsonl")


class VicunaParams(PluginParams):
    answers_file: str = Field(
        "answer_gpt35.jsonl", description="file of reference answers, next to the questions (joined on question_id)"
    )


class VicunaBenchmark(Benchmark):
    """Prompt: the question ``text`` (or ``turns[0]`` in the newer MT-bench layout), no input. Reference: the
    ``text`` of the answer with the same ``question_id`` in ``answer_gpt35.jsonl`` (gpt-3.5-turbo answers
    shipped with FastChat; not necessarily the references of the MiniLLM paper).

    ``--data`` takes the folder holding both files, or the questions file with the answers file beside it."""

    name = "vicuna"
    description = "VicunaEval: 80 Vicuna questions, gpt-3.5 answers as references (Rouge-L)"
    Params = VicunaParams
    source_url = QUESTIONS_URL
    data_format = (
        "a folder with question.jsonl ('question_id', 'text') and answer_gpt35.jsonl ('question_id', 'text'), "
        "or the question file with the answer file next to it"
    )

    @property
    def answers_file(self) -> str:
        return self.params.answers_file  # type: ignore[attr-defined]

    # -- sources -----------------------------------------------------------------------------------------
    def load_hub(self) -> list[EvalExample]:
        questions = fetch_jsonl(QUESTIONS_URL, benchmark=self.name, data_format=self.data_format)
        answers = fetch_jsonl(ANSWERS_URL, benchmark=self.name, data_format=self.data_format)
        return self._join(
            [RawRecord(row, f"{QUESTIONS_URL} line {i + 1}") for i, row in enumerate(questions)],
            [RawRecord(row, f"{ANSWERS_URL} line {i + 1}") for i, row in enumerate(answers)],
            answers_name=ANSWERS_URL,
        )

    def load_local(self, path: Path) -> list[EvalExample]:
        if path.is_dir():
            questions = next((path / n for n in QUESTION_FILES if (path / n).is_file()), None)
            if questions is None:
                raise self.format_error(f"folder {path} has no {' or '.join(QUESTION_FILES)}")
        else:
            questions = path
        answers = questions.parent / self.answers_file
        if not answers.is_file() or answers.resolve() == questions.resolve():
            raise self.format_error(
                f"no reference answers for {questions.name}: {self.answers_file} is not in {questions.parent}",
                hint=f"put {self.answers_file} (objects with 'question_id' and 'text') next to the questions file, "
                "or give the folder holding both with --data",
            )
        return self._join(list(read_records(questions)), list(read_records(answers)), answers_name=answers.name)

    # -- records ------------------------------------------------------------------------------------------
    def _join(self, questions: list[RawRecord], answers: list[RawRecord], *, answers_name: str) -> list[EvalExample]:
        by_id: dict[Any, str] = {}
        for record in answers:
            data = self._object(record)
            qid = self.require(data, "question_id", record.where, types=(int, str))
            by_id[qid] = self.require(data, "text", record.where)
        examples = []
        for record in questions:
            data = self._object(record)
            qid = self.require(data, "question_id", record.where, types=(int, str))
            if qid not in by_id:
                raise self.format_error(f"{record.where}: no answer with question_id {qid!r} in {answers_name}")
            question = self._question_text(data, record.where)
            category = data.get("category")
            examples.append(
                EvalExample(
                    instruction=question,
                    input="",
                    references=(by_id[qid],),
                    id=str(qid),
                    metadata={"category": category} if isinstance(category, str) else {},
                )
            )
        return examples

    def _object(self, record: RawRecord) -> Mapping[str, Any]:
        if not isinstance(record.data, Mapping):
            raise self.format_error(f"{record.where}: expected a JSON object, found {type(record.data).__name__}")
        return record.data

    def _question_text(self, data: Mapping[str, Any], where: str) -> str:
        if "text" not in data and "turns" in data:  # the llm_judge / MT-bench layout
            turns = self.require(data, "turns", where, types=(list,))
            if not turns or not isinstance(turns[0], str):
                raise self.format_error(f"{where}: field 'turns' should be a non-empty list of strings")
            return turns[0]
        return self.require(data, "text", where)

    def parse_record(self, record: Mapping[str, Any], where: str, *, index: int) -> list[EvalExample]:
        raise NotImplementedError("VicunaBenchmark joins two files; see load_local")
