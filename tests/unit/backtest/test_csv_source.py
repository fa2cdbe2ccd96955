"""CSV rows become the same transactions as JSON lines."""

from __future__ import annotations

from pathlib import Path

import orjson

from fraudflow.connectors.csv_source import CsvSource, row_to_record


def test_row_types_and_empty_cells() -> None:
    rec = row_to_record({"transaction_id": "t", "amount": "1.5", "lat": "", "lon": "x", "ip": ""})
    assert rec == {"transaction_id": "t", "amount": 1.5, "lon": "x"}


def test_source_offsets_and_resume(tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    p.write_text("transaction_id,amount\nt0,1\nt1,2\nt2,3\n", encoding="utf-8")
    src = CsvSource([p], batch_size=2)
    (part_name,) = src.list_parts()
    part = src.build_part("input", part_name, 1)
    batch = part.next_batch()
    assert [m.offset for m in batch] == [1, 2]
    assert [orjson.loads(m.value)["transaction_id"] for m in batch] == ["t1", "t2"]
    assert part.snapshot() == 3
    part.close()
