"""The header every results page opens with: the command, the machine, the date and the version."""

from __future__ import annotations

import datetime
import os

from minillm_distill.api import command_line, provenance_header, provenance_record
from minillm_distill.cli.state import state


def test_the_record_names_the_command_machine_date_and_version(monkeypatch):
    monkeypatch.setattr(state, "argv", ["reproduce", "--budget", "cpu", "--data-dir", "my data"])
    assert command_line() == "minillm reproduce --budget cpu --data-dir 'my data'"
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    rec = provenance_record(command_line())
    after = datetime.datetime.now(datetime.timezone.utc)
    assert rec["command"] == "minillm reproduce --budget cpu --data-dir 'my data'"
    assert before <= datetime.datetime.fromisoformat(rec["date"]) <= after
    assert f"{os.cpu_count()} cores visible" in rec["machine"] and "torch " in rec["machine"]
    import minillm_distill

    assert rec["version"] == minillm_distill.__version__
    (line, blank) = provenance_header(rec)
    assert (
        line
        == (
            f"_Written by `minillm reproduce --budget cpu --data-dir 'my data'` on {rec['machine']}, {rec['date']} "
            f"(minillm-distill {rec['version']})._"
        )
        and blank == ""
    )
    assert "without a provenance record" in provenance_header(None)[0]


def test_the_reproduce_page_opens_with_it():
    from minillm_distill.reproduce.report import markdown

    rec = {"command": "minillm reproduce --budget quick", "machine": "M", "date": "D", "version": "V"}
    results = {
        "settings": {"budget": {"name": "quick", "eval_seeds": [1], "eval_max_new_tokens": 8}},
        "rows": {"sft": {"dolly": {"n": 3, "rougeL": 1.0, "rougeL_std": 0.0}}},
        "verdicts": {},
        "side_by_side": [],
        "provenance": rec,
    }
    page = markdown(results, ["sft"], {"sft": "SFT"}, ["dolly"]).splitlines()
    assert page[:3] == ["# minillm reproduce: quick budget", "", provenance_header(rec)[0]]
