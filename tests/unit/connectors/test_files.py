"""JSONL source and sink: Kafka-shaped messages, resume from a snapshot, blank lines."""

from __future__ import annotations

from pathlib import Path

import orjson

from fraudflow.connectors.files import JsonLinesSink, JsonLinesSource
from fraudflow.records import DeadLetter


def read_all(src: JsonLinesSource, resume: int | None = None) -> tuple[list[object], int]:
    (part_name,) = src.list_parts()
    part = src.build_part("in", part_name, resume)
    out: list[object] = []
    try:
        while True:
            out.extend(part.next_batch())
    except StopIteration:
        pass
    snap = part.snapshot()
    part.close()
    return out, snap


def test_lines_become_messages_with_offsets_and_resume(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_bytes(b'{"a":1}\n\n{"a":2}\r\n{"a":3}\n')
    msgs, snap = read_all(JsonLinesSource([f], batch_size=2))
    assert [m.value for m in msgs] == [b'{"a":1}', b'{"a":2}', b'{"a":3}']  # type: ignore[attr-defined]
    assert [m.offset for m in msgs] == [0, 2, 3]  # type: ignore[attr-defined]
    assert {m.topic for m in msgs} == {"in.jsonl"}  # type: ignore[attr-defined]
    assert snap == 4
    rest, _ = read_all(JsonLinesSource([f]), resume=2)
    assert [m.offset for m in rest] == [2, 3]  # type: ignore[attr-defined]


def test_sink_appends_json_lines_per_worker(tmp_path: Path) -> None:
    d = DeadLetter("bad_json", "value is not JSON", b"{x", b"u1", "t", 0, 5, 0.0)
    one = JsonLinesSink(tmp_path / "dead.jsonl").build("out", 0, 1)
    one.write_batch([d, d])
    one.close()
    lines = (tmp_path / "dead.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["error"]["code"] for x in lines] == ["bad_json", "bad_json"]
    two = JsonLinesSink(tmp_path / "dead.jsonl").build("out", 1, 2)
    two.write_batch([d])
    two.close()
    assert (tmp_path / "dead.1.jsonl").exists()
