"""Read an offline W&B run back from its transaction log (``run-<id>.wandb``), for the tests.

The file is a sequence of ``wandb.proto.wandb_internal_pb2.Record`` protobufs framed like a leveldb
log: a 7-byte file header (``:W&B``, magic, version), then 32 KiB blocks of chunks, each chunk
``crc32 (4) | length (2, little-endian) | type (1) | data``, type FULL=1 or FIRST=2 / MIDDLE=3 /
LAST=4 for a record split across blocks; a block's last < 7 bytes are zero padding. wandb 0.31
has no Python reader of its own (its Go core reads the file), so the framing is undone here and
every record is parsed with wandb's own protobuf type.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

_FILE_HEADER = 7
_BLOCK = 32 * 1024
_CHUNK_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """Every record of a ``.wandb`` file, in the order written."""
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pending = _FILE_HEADER, b""
    while pos + _CHUNK_HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _CHUNK_HEADER:  # zero padding at the end of a block
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + _CHUNK_HEADER])
        if pos + _CHUNK_HEADER + length > len(data):  # still being written
            break
        chunk = data[pos + _CHUNK_HEADER:pos + _CHUNK_HEADER + length]
        pos += _CHUNK_HEADER + length
        if kind == 0 and length == 0:  # unwritten tail of a preallocated block
            break
        if kind in (_FULL, _FIRST):
            pending = chunk
        else:
            pending += chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def _value(item: Any) -> Any:
    if item.value_json:
        return json.loads(item.value_json)
    kind = item.WhichOneof("value") if hasattr(item, "WhichOneof") else None
    return None if kind in (None, "none") else getattr(item, kind)


@dataclass
class WandbRun:
    """What an offline run recorded: run identity, config, history rows and the final summary."""

    run_id: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    step_metrics: dict[str, str] = field(default_factory=dict)  # metric name or glob -> x-axis
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # (type, name)
    exit_code: int | None = None

    def keys(self) -> set[str]:
        return {k for row in self.history for k in row}

    def column(self, key: str) -> list[Any]:
        return [row[key] for row in self.history if key in row]


def read_run(path: Path, timeout_s: float = 60.0) -> WandbRun:
    """Fold the records of a ``.wandb`` file into a :class:`WandbRun`.

    wandb's service process writes the file asynchronously: ``run.finish()`` can return before the
    last records (up to the exit record) are on disk, so this waits for the exit record.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        run = _fold(path)
        if run.exit_code is not None or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def _fold(path: Path) -> WandbRun:
    run = WandbRun()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.group = r.run_id, r.project, r.run_group
            run.job_type, run.name, run.tags = r.job_type, r.display_name, list(r.tags)
            run.config.update({_key(i): _value(i) for i in r.config.update})
        elif kind == "config":
            run.config.update({_key(i): _value(i) for i in record.config.update})
        elif kind == "history":
            run.history.append({_key(i): _value(i) for i in record.history.item})
        elif kind == "summary":
            run.summary.update({_key(i): _value(i) for i in record.summary.update})
            for item in record.summary.remove:
                run.summary.pop(_key(item), None)
        elif kind == "metric":
            m = record.metric
            if m.step_metric:
                run.step_metrics[m.name or m.glob_name] = m.step_metric
        elif kind == "artifact":
            run.artifacts.append((record.artifact.type, record.artifact.name))
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def run_files(run_dir: Path) -> list[Path]:
    """The ``.wandb`` files under a run directory (one per W&B run it logged)."""
    return sorted(Path(run_dir).glob("wandb/*run-*/run-*.wandb"))
