"""Produce -> consume latency on the embedded Tansu broker, without the flow.

Isolates the broker from the flow (issue 15 item 3): a paced producer
(``linger.ms=1``, ``acks=all``, as ``fraudflow bench``'s latency section) sends
small JSON records stamped with their send time to a fresh topic; the reader
polls one ``confluent_kafka.Consumer`` per partition, each ``assign``ed to its
partition, with ``consume(batch, 0.001)`` round-robin in one thread: exactly
what Bytewax's ``KafkaSource`` does in a worker. Latency = receive time - send
time, per record. Prints latency percentiles per second of the run (a stall
shows as seconds whose median climbs) and one JSON line.

    python benchmarks/bench_broker_latency.py [--rate 2000] [--seconds 30] \
        [--fetch-wait-ms 10] [--linger-ms 1] [--partitions 4] \
        [--consumer-config k=v,k=v] [--brokers HOST:PORT]

Without ``--brokers`` a Tansu broker is started as the tests and ``fraudflow
bench`` start it (memory storage, a free loopback port).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.topics import ensure_topic
from fraudflow.observability.measure import latency_summary


def _pairs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        k, _, v = item.partition("=")
        out[k.strip()] = v.strip()
    return out


def proc_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0.0 when not ours to read)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(args: argparse.Namespace, bootstrap: str, broker_pid: int | None) -> dict[str, Any]:
    topic = f"broker-lat-{uuid.uuid4().hex[:8]}"
    ensure_topic(bootstrap, topic, args.partitions)
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "fetch.wait.max.ms": args.fetch_wait_ms,
        "enable.auto.commit": False,
        "group.id": f"bench-{uuid.uuid4().hex[:8]}",
        "log_level": 2,
        **_pairs(args.consumer_config),
    }
    consumers = []
    for p in range(args.partitions):
        c = Consumer(dict(conf))
        c.assign([TopicPartition(topic, p, 0)])
        consumers.append(c)
    lat: list[tuple[float, float]] = []  # (sent offset s, latency s)
    acked: list[tuple[float, float]] = []  # (sent offset s, produce -> delivery report s)
    stop = threading.Event()
    t_base = time.time()
    polls = [0]

    def read() -> None:
        while not stop.is_set():
            for c in consumers:
                msgs = c.consume(args.batch, 0.001)
                polls[0] += 1
                now = time.time()
                for m in msgs:
                    if m.error() is None and (v := m.value()):
                        sent = orjson.loads(v)["s"]
                        lat.append((sent - t_base, now - sent))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(2.0)  # consumers connected and fetching
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": args.linger_ms, "acks": "all", "log_level": 2}
    )
    count = int(args.rate * args.seconds)
    pad = "x" * 250  # about the size of a transaction
    broker_cpu: list[float] = []  # the broker's CPU seconds at each second of production
    next_mark = 0.0
    cpu0 = os.times()
    t0 = time.perf_counter()
    t_base = time.time()
    i = 0
    while i < count:
        due = min(count, int((time.perf_counter() - t0) * args.rate) + 1)
        while i < due:
            sent_at = time.time()
            body = orjson.dumps({"s": sent_at, "i": i, "pad": pad})

            def delivered(_err: Any, _msg: Any, at: float = sent_at) -> None:
                acked.append((at - t_base, time.time() - at))

            while True:
                try:
                    producer.produce(
                        topic, value=body, key=str(i % 20000).encode(), on_delivery=delivered
                    )
                    break
                except BufferError:
                    producer.poll(0.01)
            i += 1
        producer.poll(0)
        if time.perf_counter() - t0 >= next_mark:
            broker_cpu.append(proc_cpu_s(broker_pid))
            next_mark += 1.0
        time.sleep(0.0005)
    broker_cpu.append(proc_cpu_s(broker_pid))
    send_s = time.perf_counter() - t0
    producer.flush(30)
    deadline = time.time() + 60
    while len(lat) < count and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    reader.join()
    cpu1 = os.times()
    for c in consumers:
        c.close()
    by_second: list[dict[str, Any]] = []
    for sec in range(int(args.seconds) + 1):
        xs = [x for t, x in lat if sec <= t < sec + 1]
        if xs:
            s = latency_summary(xs)
            a = latency_summary(x for t, x in acked if sec <= t < sec + 1)
            by_second.append({"s": sec, "n": s["count"], "p50": s["p50_ms"], "p99": s["p99_ms"],
                              "ack_p50": a.get("p50_ms"), "ack_p99": a.get("p99_ms"),
                              "broker_cpu_s": round(broker_cpu[sec + 1] - broker_cpu[sec], 2)
                              if sec + 1 < len(broker_cpu) else None})  # fmt: skip
    stalls = [b["s"] for b in by_second if b["p50"] > 100.0]
    return {
        "bench": "broker_latency",
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
        "rate": args.rate,
        "seconds": round(send_s, 2),
        "partitions": args.partitions,
        "producer_linger_ms": args.linger_ms,
        "consumer_config": {k: v for k, v in conf.items() if k != "bootstrap.servers"},
        "received": len(lat),
        "sent": count,
        "polls": polls[0],
        "bench_cpu_s": round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 2),
        "broker_cpu_s": round(broker_cpu[-1] - broker_cpu[0], 2),
        **latency_summary(x for _t, x in lat),
        "produce_ack": latency_summary(x for _t, x in acked),
        "seconds_with_p50_over_100ms": stalls,
        "by_second": by_second,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", help="an existing broker [start Tansu]")
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1000, help="consume(batch, 0.001)")
    ap.add_argument("--linger-ms", type=float, default=1.0, help="producer linger.ms [1]")
    ap.add_argument("--fetch-wait-ms", type=int, default=10)
    ap.add_argument("--consumer-config", default="", help="more consumer settings, k=v,k=v")
    ap.add_argument("--broker-log", type=Path, help="Tansu's log file [none]")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        bootstrap, pid = args.brokers, None
        if bootstrap is None:
            broker = EmbeddedBroker(log_path=args.broker_log).start()
            stack.callback(broker.stop)
            bootstrap, pid = broker.bootstrap, broker.pid
        res = run(args, bootstrap, pid)
    for b in res["by_second"]:
        print(f"  t={b['s']:>3}s  n={b['n']:>6}  p50={b['p50']:>9.1f} ms  p99={b['p99']:>9.1f} ms"
              f"  produce->ack p50={b['ack_p50']} ms p99={b['ack_p99']} ms"
              f"  broker CPU {b['broker_cpu_s']} s",
              file=sys.stderr)  # fmt: skip
    line = orjson.dumps(
        {k: v for k, v in res.items() if k != "by_second"} | {"by_second": res["by_second"]}
    ).decode()
    print(line)
    if args.json_out is not None:
        with args.json_out.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
