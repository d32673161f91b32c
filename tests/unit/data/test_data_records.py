"""The one training-record reader: conversations, and values of the wrong type rejected with file and line."""

from __future__ import annotations

import json

import pytest
from helpers import run_minillm
from recipe_cases import VALID, assert_reported

from minillm_distill.data.records import DataRecordError, Record, load_records
from minillm_distill.errors import ExitCode, ResourceError

GOOD = {"instruction": "a", "response": "b"}


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"instruction": 5, "response": "b"}, "field 'instruction' must be a string, found a number (5)"),
        ({"instruction": "a", "response": ["a"]}, "field 'response' must be a string, found a list ([\"a\"])"),
        ({"instruction": "a", "output": {"x": 1}}, "field 'output' must be a string, found an object"),
        ({"instruction": "a", "input": True, "response": "b"}, "field 'input' must be a string, found a boolean"),
        ({"prompt": 1.5, "response": "b"}, "field 'prompt' must be a string, found a number"),
        ({"messages": "hi"}, "field 'messages' must be a non-empty list of {role, content} turns, found a string"),
        ({"messages": []}, "field 'messages' must be a non-empty list"),
        ({"messages": ["hi"]}, "field 'messages' turn 1 must be an object with 'role' and 'content'"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "turn 1: role must be one of system, user, assistant"),
        ({"messages": [{"role": "user", "content": 3}]}, "turn 1: content must be a string, found a number"),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}, "turn 1: content must be a string"),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}]},
            "turn 2: a system turn may only come first",
        ),
        ({"messages": [{"role": "user", "content": "q"}]}, "must end with the assistant's response"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "has no user turn before the response"),
        ([1, 2], "expected a JSON object, found a list"),
    ],
)
def test_wrong_types_are_rejected_with_file_and_line(tmp_path, bad, message):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, "", bad])
    with pytest.raises(DataRecordError) as info:
        load_records(path)
    assert f"{path}, record 2 (line 3): " in info.value.message
    assert message in info.value.message
    assert info.value.exit_code == ExitCode.RECIPE


def test_json_list_file_reports_the_record(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([GOOD, {"instruction": ["x"], "response": "y"}]))
    with pytest.raises(DataRecordError, match=r"d.json, record 2: field 'instruction' must be a string"):
        load_records(str(path))
    path.write_text(json.dumps([GOOD, {"instruction": "x", "context": "c", "output": "y"}]))
    assert load_records(str(path)) == [Record("a", "", "b"), Record("x", "c", "y")]
    path.write_text(json.dumps({"instruction": "x"}))
    with pytest.raises(ResourceError, match="expected a list of records, found a JSON dict"):
        load_records(str(path))


def test_not_json_line_and_limit(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, GOOD, "{not json"])
    with pytest.raises(ResourceError, match=r"record 3 \(line 3\): not valid JSON"):
        load_records(path)
    # the first records only (what `recipes validate` reads): the broken line is not reached
    assert len(load_records(path, limit=2)) == 2


def test_conversation_records(tmp_path):
    conversation = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2"},
        ],
        "prompt": "ignored when messages are given",
    }
    prompt_only = {"messages": [{"role": "user", "content": "Q"}]}
    path = write_jsonl(tmp_path / "d.jsonl", [conversation, prompt_only])
    first, second = load_records(path, require_response=False)
    assert first.response == "A2" and first.instruction == "Q2"
    assert first.messages == (("system", "S"), ("user", "Q1"), ("assistant", "A1"), ("user", "Q2"))
    assert first.chat_messages()[0] == {"role": "system", "content": "S"}
    assert second.response is None and second.messages == (("user", "Q"),)


@pytest.mark.slow
def test_distill_rejects_a_mistyped_record_with_exit_3(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [GOOD, {"instruction": "x", "response": ["a"]}])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(VALID.replace(VALID.split("train: ", 1)[1].split("\n", 1)[0], data, 1))
    res = run_minillm("distill", str(recipe), "--output-dir", str(tmp_path / "run"), env={"OMP_NUM_THREADS": "1"})
    assert res.code == 3, res.output
    assert_reported(res.output, f"{data}, record 2 (line 2): field 'response' must be a string, found a list")
