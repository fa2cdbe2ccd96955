"""CSV files in, as the same messages a Kafka partition would give.

Each data row becomes one JSON object (value bytes, topic = file name,
partition 0, offset = row number counting from 0 after the header), so
parse/validate and dead-lettering treat it exactly like a JSON line.
``amount``, ``lat`` and ``lon`` become numbers when they parse as numbers
(otherwise they stay text and validation rejects them); an empty cell is an
absent field.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

NUMERIC_COLUMNS = frozenset({"amount", "lat", "lon"})


def row_to_record(row: Mapping[str, str | None]) -> dict[str, Any]:
    """A CSV row as a transaction dict: typed numbers, empty cells dropped.

    >>> row_to_record({"transaction_id": "t1", "amount": "12.5", "lat": "", "ip": None})
    {'transaction_id': 't1', 'amount': 12.5}
    """
    out: dict[str, Any] = {}
    for name, cell in row.items():
        if name is None or cell is None or cell == "":
            continue
        if name in NUMERIC_COLUMNS:
            try:
                out[name] = float(cell)
            except ValueError:
                out[name] = cell
        else:
            out[name] = cell
    return out


class _CsvPartition(StatefulSourcePartition[KafkaSourceMessage[None, bytes], int]):
    def __init__(self, path: Path, resume: int | None, batch_size: int) -> None:
        self._f = path.open(newline="", encoding="utf-8")
        self._rows: Iterator[dict[str, str | None]] = csv.DictReader(self._f)
        self._name = path.name
        self._next = 0
        self._batch = batch_size
        skip = resume or 0
        while self._next < skip and next(self._rows, None) is not None:
            self._next += 1

    def next_batch(self) -> list[KafkaSourceMessage[None, bytes]]:
        out: list[KafkaSourceMessage[None, bytes]] = []
        for _ in range(self._batch):
            row = next(self._rows, None)
            if row is None:
                if not out:
                    raise StopIteration
                break
            offset = self._next
            self._next += 1
            out.append(
                KafkaSourceMessage(
                    key=None,
                    value=orjson.dumps(row_to_record(row)),
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


class CsvSource(FixedPartitionedSource[KafkaSourceMessage[None, bytes], int]):
    """Read one or more CSV files with a header row; each file is one partition."""

    def __init__(self, paths: Sequence[Path], batch_size: int = 1000) -> None:
        self._paths = {f"{i}-{p.name}": p for i, p in enumerate(paths)}
        self._batch = batch_size

    def list_parts(self) -> list[str]:
        return list(self._paths)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _CsvPartition:
        return _CsvPartition(self._paths[for_part], resume_state, self._batch)


def read_csv_records(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a CSV file as typed transaction dicts (for reading labels)."""
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield row_to_record(row)
