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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from fraudflow.connectors.files import FileSource, Values

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


class CsvSource(FileSource):
    """Read one or more CSV files with a header row; each file is one partition."""

    @staticmethod
    def open_values(path: Path) -> tuple[IO[Any], Values]:
        f = path.open(newline="", encoding="utf-8")
        return f, (orjson.dumps(row_to_record(row)) for row in csv.DictReader(f))


def read_csv_records(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a CSV file as typed transaction dicts (for reading labels)."""
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield row_to_record(row)


REQUIRED_COLUMNS = ("transaction_id", "user_id", "amount", "timestamp")


def missing_columns(path: Path) -> list[str]:
    """The required columns (those every transaction must have) absent from the header."""
    with path.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    present = {h.strip() for h in header}
    return [c for c in REQUIRED_COLUMNS if c not in present]
