"""JSON-lines files in and out, sharing every operator with the Kafka path.

The source turns each line into the same message a Kafka partition would
give (value bytes, topic = file name, partition 0, offset = line number), so
parse/validate and dead-lettering behave identically. Its snapshot is the
next line to read, so a recovered run resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

Values = Iterator[bytes | None]  # one item per offset; None for an offset that is no record
_END: Any = object()


class FilePartition(StatefulSourcePartition[KafkaSourceMessage[None, bytes], int]):
    """A file read as one Kafka-like partition: offset = record number; resumable.

    ``open_values`` opens the file and yields one value per offset (``None``
    for an offset that holds no record, such as a blank line).
    """

    def __init__(
        self,
        path: Path,
        open_values: Callable[[Path], tuple[IO[Any], Values]],
        resume: int | None,
        batch_size: int,
    ) -> None:
        self._f, self._values = open_values(path)
        self._name = path.name
        self._next = 0
        self._batch = batch_size
        skip = resume or 0
        while self._next < skip and next(self._values, _END) is not _END:
            self._next += 1

    def next_batch(self) -> list[KafkaSourceMessage[None, bytes]]:
        out: list[KafkaSourceMessage[None, bytes]] = []
        for _ in range(self._batch):
            value = next(self._values, _END)
            if value is _END:
                if not out:
                    raise StopIteration
                break
            offset = self._next
            self._next += 1
            if value is None:
                continue
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


class FileSource(FixedPartitionedSource[KafkaSourceMessage[None, bytes], int]):
    """One partition per file; a subclass says how a file becomes values."""

    def __init__(self, paths: Sequence[Path], batch_size: int = 1000) -> None:
        self._paths = {f"{i}-{p.name}": p for i, p in enumerate(paths)}
        self._batch = batch_size

    @staticmethod
    def open_values(path: Path) -> tuple[IO[Any], Values]:
        raise NotImplementedError

    def list_parts(self) -> list[str]:
        return list(self._paths)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> FilePartition:
        return FilePartition(self._paths[for_part], self.open_values, resume_state, self._batch)


class JsonLinesSource(FileSource):
    """Read one or more JSONL files; each file is one partition, each line one offset."""

    @staticmethod
    def open_values(path: Path) -> tuple[IO[Any], Values]:
        f = path.open("rb")

        def values() -> Values:
            for line in f:
                value = line.rstrip(b"\r\n")
                yield value if value.strip() else None  # blank lines are not records

        return f, values()


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
