"""Seconds from SIGTERM to exit for `fraudflow run` mid-stream (docs/operations.md#stopping).

python -m tests.support.stop_time  (embedded broker, 200,000 records, 2 partitions, 3 runs)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.generator.stream import produce_to_kafka


def main() -> None:
    with tempfile.TemporaryDirectory() as d, EmbeddedBroker(log_path=Path(d) / "b.log") as b:
        produce_to_kafka(b.bootstrap, "tx", 200_000, users=2000, seed=3, partitions=2)
        times = []
        for i in range(3):
            cmd = [
                sys.executable, "-m", "fraudflow", "run", "--brokers", b.bootstrap,
                "--input-topic", "tx", "--from-beginning", "--quiet",
                "--recovery-dir", f"{d}/rec{i}", "--snapshot-interval", "10s",
            ]  # fmt: skip
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(25)
            t0 = time.monotonic()
            p.send_signal(signal.SIGTERM)
            p.communicate()
            times.append(time.monotonic() - t0)
            print(f"exit {p.returncode}, stopped in {times[-1]:.2f} s", flush=True)
        print(f"max {max(times):.2f} s")


if __name__ == "__main__":
    main()
