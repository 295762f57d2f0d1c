"""An edge process for the fault tests: the real store and publisher, recording readings at a steady rate.

    python tests/fault/fault_edge.py --db E.db --edge-id edge-a --port 1883 --events 400 --rate 100

It records until the store holds ``--events`` events (after a restart it carries
on from what the database already holds), keeps publishing until SIGTERM, and
can be killed with SIGKILL at any moment: what was committed stays in the
outbox until the hub acknowledges it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from edge.outbox import StoreOutbox
from edge.store import Store
from edge.store.records import reading_payload
from sync.publisher import BrokerSettings, Publisher


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, type=Path)
    ap.add_argument("--edge-id", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--events", required=True, type=int)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--ack-timeout", type=float, default=2.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s edge %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = Store(args.db, args.db.parent / f"{args.edge_id}-evidence", args.edge_id).open()
    outbox = StoreOutbox(store)
    publisher = Publisher(outbox, BrokerSettings("127.0.0.1", args.port), window=50, ack_timeout_s=args.ack_timeout,
                          backoff_initial=0.1, backoff_max=1.0, status_every_s=2.0)
    publisher.start()
    print("ready", flush=True)
    done = store.stats.last_seq
    started, first = time.monotonic(), done
    futures = []
    while done < args.events and not stop.is_set():
        due = min(args.events, first + int((time.monotonic() - started) * args.rate) + 1)
        while done < due:
            futures.append(store.submit("reading", reading_payload(
                device_id="plate-1", protocol="plate", ts="2026-11-28T12:00:00.000Z",
                raw=f"A{done:06d}\r\n".encode(), valid=True, fields={"n": done}, error=None,
            )))
            done += 1
        stop.wait(0.05)
    for future in futures:
        future.result(60)
    print("recorded", flush=True)
    while not stop.wait(0.2):
        pass
    publisher.stop()
    publisher.join(5)
    outbox.close()
    store.close()


if __name__ == "__main__":
    main()
