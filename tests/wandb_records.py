"""Reading back a wandb offline run file (``run-ID.wandb``): wandb >= 0.19 no longer ships its Python reader
(the Go core reads them), so this parses the documented framing (a 7-byte ``:W&B`` header, then LevelDB-log
style records in 32 KiB blocks: crc32, little-endian length, type) and decodes each record with wandb's own
protobuf classes (``wandb.proto.wandb_internal_pb2.Record``)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

HEADER = 7
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def raw_records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a wandb run file"
    out, pending, pos = [], b"", HEADER
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pending + chunk)
    return out


def read_run(path: Path) -> dict[str, Any]:
    """``{"run_id", "config": {key: value}, "history": [{"_step": n, key: value, ...}]}`` of one run file."""
    from wandb.proto import wandb_internal_pb2 as pb

    run: dict[str, Any] = {"run_id": None, "config": {}, "history": []}
    for raw in raw_records(path):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["run_id"] = record.run.run_id
            run["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            run["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item}
            row["_step"] = record.history.step.num
            run["history"].append(row)
    return run
