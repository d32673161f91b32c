"""The one reader of local JSON / JSON-lines files (training data, benchmarks, generate's prompts)."""

from __future__ import annotations

import warnings

import pytest

from minillm_distill.json_rows import RawRecord, RowsError, json_rows


def rows(path, **kw):
    return [(r.data, r.number, r.line) for r in json_rows(path, **kw)]


def test_json_lines_skip_blanks_and_count_records_and_lines(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"a": 1}\n\n  \n[2]\n"x"\n', encoding="utf-8")
    assert rows(f) == [({"a": 1}, 1, 1), ([2], 2, 4), ("x", 3, 5)]


def test_a_bad_line_names_its_line_and_record(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"a": 1}\n\n{oops\n', encoding="utf-8")
    with pytest.raises(RowsError) as info:
        rows(f)
    assert (info.value.line, info.value.number) == (3, 2) and info.value.problem.startswith("not valid JSON")


def test_json_files_list_single_value_and_json_lines_under_a_json_name(tmp_path):
    f = tmp_path / "d.json"
    f.write_text('[{"a": 1}, {"b": 2}]', encoding="utf-8")
    assert rows(f) == [({"a": 1}, 1, None), ({"b": 2}, 2, None)]
    f.write_text('{"a": 1}', encoding="utf-8")
    assert rows(f) == [({"a": 1}, 1, None)]
    with pytest.raises(RowsError, match="expected a list of records, found a JSON dict"):
        rows(f, single=False)
    f.write_text('{"a": 1}\n{"b": 2}\n', encoding="utf-8")  # JSON lines named .json (datasets reads them too)
    assert rows(f, single=False) == [({"a": 1}, 1, 1), ({"b": 2}, 2, 2)]


def test_unreadable_files(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(RowsError, match="not a UTF-8 text file") as info:
        rows(f)
    assert info.value.line is None
    with pytest.raises(RowsError, match="cannot read it"):
        rows(tmp_path / "missing.jsonl")


def test_the_old_api_name_of_raw_record_warns_and_is_the_same_class():
    import minillm_distill.api as api

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = api.Record
    assert old is RawRecord
    assert any(issubclass(w.category, DeprecationWarning) and "RawRecord" in str(w.message) for w in caught)
