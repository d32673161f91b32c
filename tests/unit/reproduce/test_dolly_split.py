"""The seeded Dolly split of ``minillm reproduce``: deterministic, disjoint, complete, recorded by hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import write_dolly

from minillm_distill.errors import ResourceError
from minillm_distill.reproduce.split import SPLIT_FILE, split_dolly


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_same_seed_same_split_other_seed_other_split(tmp_path):
    source = write_dolly(tmp_path / "dolly.jsonl")
    a = split_dolly(source, tmp_path / "a", seed=3)
    b = split_dolly(source, tmp_path / "b", seed=3)
    c = split_dolly(source, tmp_path / "c", seed=4)
    assert a.sha256 == b.sha256
    assert a.sha256["test"] != c.sha256["test"]
    for part in ("train", "valid", "test"):
        assert (tmp_path / "a" / f"{part}.jsonl").read_bytes() == (tmp_path / "b" / f"{part}.jsonl").read_bytes()


def test_parts_are_disjoint_complete_and_sized_like_the_paper(tmp_path):
    source = write_dolly(tmp_path / "dolly.jsonl")
    split = split_dolly(source, tmp_path / "s", seed=0)
    parts = {p: _lines(tmp_path / "s" / f"{p}.jsonl") for p in ("train", "valid", "test")}
    assert [len(parts[p]) for p in ("test", "valid", "train")] == [500, 500, 100]
    assert split.records == {"train": 100, "valid": 500, "test": 500}
    every = parts["train"] + parts["valid"] + parts["test"]
    assert sorted(every) == sorted(_lines(source))  # each record once, byte for byte
    # a permutation, not the file's order: the test part is not the file's head
    assert parts["test"] != _lines(source)[:500]
    # the independent recomputation of the recorded hashes
    recorded = json.loads((tmp_path / "s" / SPLIT_FILE).read_text())
    for p in ("train", "valid", "test"):
        digest = hashlib.sha256((tmp_path / "s" / f"{p}.jsonl").read_bytes()).hexdigest()
        assert recorded["sha256"][p] == digest
    assert recorded["seed"] == 0
    assert recorded["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def test_an_intact_split_is_kept_and_a_changed_one_rewritten(tmp_path):
    source = write_dolly(tmp_path / "dolly.jsonl")
    folder = tmp_path / "s"
    first = split_dolly(source, folder, seed=0)
    test_file = folder / "test.jsonl"
    stamp = test_file.stat().st_mtime_ns
    assert split_dolly(source, folder, seed=0) == first
    assert test_file.stat().st_mtime_ns == stamp  # not written again
    test_file.write_text("tampered\n")
    again = split_dolly(source, folder, seed=0)
    assert again == first and hashlib.sha256(test_file.read_bytes()).hexdigest() == first.sha256["test"]


def test_too_few_or_malformed_records_are_errors(tmp_path):
    with pytest.raises(ResourceError, match="too few"):
        split_dolly(write_dolly(tmp_path / "small.jsonl", n=1000), tmp_path / "s", seed=0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "response": "y"}\n[1, 2]\n')
    with pytest.raises(ResourceError, match="line 2 is not a Dolly record"):
        split_dolly(bad, tmp_path / "t", seed=0)
