"""The start-up banner of ``run``: what this process is about to read, write and resume.

One block on stderr before the flow starts (``--quiet`` leaves it out): brokers, each topic
with its partition count as the broker reports it, the rules and model versions, and the
recovery state. The recovery state is read from Bytewax's SQLite partitions without writing
to them: ``exs`` holds one row per earlier execution and ``commits`` the epoch each partition
has committed its snapshots through; the oldest of these is the epoch shown (the flow cannot
resume past it).
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from fraudflow.config.settings import Settings, masked
from fraudflow.connectors.kafka import client_config
from fraudflow.flows.recovery_dir import PART_GLOB


def topic_partitions(
    settings: Settings, topics: Sequence[str], timeout: float = 5.0
) -> dict[str, str]:
    """``topic -> "N partitions"`` (or why not known) from one metadata request."""
    try:
        admin = AdminClient({"log_level": 2, **client_config(settings.kafka)})
        meta = admin.list_topics(timeout=timeout)
    except KafkaException as exc:  # a banner line, not a failure: the flow reports it
        return dict.fromkeys(topics, f"unknown (broker did not answer: {type(exc).__name__})")
    out = {}
    for t in topics:
        tm = meta.topics.get(t)
        if tm is None:
            out[t] = "not found (created on first write, if the broker allows it)"
        elif tm.error is not None:
            out[t] = f"unknown ({tm.error.str()})"
        else:
            n = len(tm.partitions)
            out[t] = f"{n} partition{'s' if n != 1 else ''}"
    return out


def recovery_state(directory: Path | None) -> str:
    """``off``, ``fresh ...`` or ``restored from snapshot ... epoch N``."""
    if directory is None:
        return "off (no recovery_dir): state starts empty"
    parts = sorted(directory.glob(PART_GLOB)) if directory.is_dir() else []
    epochs: list[int] = []
    executions = 0
    for p in parts:
        try:
            con = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error:
            continue
        try:
            row = con.execute("SELECT MIN(commit_epoch) FROM commits").fetchone()
            if row is not None and row[0] is not None:
                epochs.append(int(row[0]))
            executions = max(executions, con.execute("SELECT COUNT(*) FROM exs").fetchone()[0])
        except sqlite3.Error:
            continue
        finally:
            con.close()
    if not epochs:
        return f"fresh: no snapshot in {directory}"
    return (
        f"restored from snapshot in {directory}: epoch {min(epochs)} "
        f"({len(parts)} partition{'s' if len(parts) != 1 else ''}, "
        f"{executions} earlier execution{'s' if executions != 1 else ''})"
    )


def banner_lines(
    settings: Settings, rules_version: str, model_version: str, partitions: dict[str, str]
) -> list[str]:
    k = settings.kafka
    lines = [
        "fraudflow run",
        f"  brokers         {masked(','.join(k.brokers))}",
        f"  input           {k.input_topic} ({partitions.get(k.input_topic, '?')})",
    ]
    if settings.feedback.label_store:
        lines.append(f"  labels          {k.labels_topic} ({partitions.get(k.labels_topic, '?')})")
    lines += [
        f"  alerts          {k.alerts_topic} ({partitions.get(k.alerts_topic, '?')})",
        f"  dead letters    {k.dlq_topic} ({partitions.get(k.dlq_topic, '?')})",
        f"  rules           {rules_version} ({settings.rules.rules})",
        f"  model           {model_version}",
        f"  recovery        {recovery_state(settings.recovery.recovery_dir)}",
    ]
    return lines


def print_banner(
    settings: Settings, rules_version: str, model_version: str, out: TextIO = sys.stderr
) -> None:
    k = settings.kafka
    topics = [k.input_topic, k.alerts_topic, k.dlq_topic]
    if settings.feedback.label_store:
        topics.append(k.labels_topic)
    lines = banner_lines(settings, rules_version, model_version, topic_partitions(settings, topics))
    print("\n".join(lines), file=out, flush=True)
