"""JSON-lines files in and out, sharing every operator with the Kafka path.

The source turns each line into the same message a Kafka partition would
give (value bytes, topic = file name, partition 0, offset = line number), so
parse/validate and dead-lettering behave identically. Its snapshot is the
next line to read, so a recovered run resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition


class _LinesPartition(StatefulSourcePartition[KafkaSourceMessage[None, bytes], int]):
    def __init__(self, path: Path, resume: int | None, batch_size: int) -> None:
        self._f = path.open("rb")
        self._name = path.name
        self._next = 0
        self._batch = batch_size
        skip = resume or 0
        while self._next < skip and self._f.readline():
            self._next += 1

    def next_batch(self) -> list[KafkaSourceMessage[None, bytes]]:
        out: list[KafkaSourceMessage[None, bytes]] = []
        for _ in range(self._batch):
            line = self._f.readline()
            if not line:
                if not out:
                    raise StopIteration
                break
            value = line.rstrip(b"\r\n")
            offset = self._next
            self._next += 1
            if not value.strip():
                continue  # blank lines are not records
            out.append(
                KafkaSourceMessage(
                    key=None,
                    value=value,
                    topic=self._name,
                    partition=0,
                    offset=offset,
                    timestamp=(0, 0),
                )
            )
        return out

    def snapshot(self) -> int:
        return self._next

    def close(self) -> None:
        self._f.close()


class JsonLinesSource(FixedPartitionedSource[KafkaSourceMessage[None, bytes], int]):
    """Read one or more JSONL files; each file is one partition."""

    def __init__(self, paths: Sequence[Path], batch_size: int = 1000) -> None:
        self._paths = {f"{i}-{p.name}": p for i, p in enumerate(paths)}
        self._batch = batch_size

    def list_parts(self) -> list[str]:
        return list(self._paths)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LinesPartition:
        return _LinesPartition(self._paths[for_part], resume_state, self._batch)


class _JsonLinesPartition(StatelessSinkPartition[Any]):
    def __init__(self, path: Path) -> None:
        self._f = path.open("ab")

    def write_batch(self, items: list[Any]) -> None:
        self._f.write(b"".join(item.to_json() + b"\n" for item in items))
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class JsonLinesSink(DynamicSink[Any]):
    """Append records (anything with ``to_json()``) to a JSONL file.

    With several workers, worker ``i`` writes ``NAME.i.jsonl`` beside it.
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonLinesPartition:
        path = self._path
        if worker_count > 1:
            path = path.with_name(f"{path.stem}.{worker_index}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return _JsonLinesPartition(path)
