"""The client scenario, timed: CreateStream, CreateRule, TailRule, 1,000 events
in one Publish, until the 1,000th result. Prints the milliseconds it took.
Usage: scenario.py ADDRESS NAME (NAME makes the stream and rule unique)."""

import sys
import time

from oort_client import Oort

EVENTS = 1000


def main() -> None:
    address, name = sys.argv[1], sys.argv[2]
    with Oort(address) as oort:
        started = time.perf_counter()
        oort.streams.create(f'CREATE STREAM {name} (t BIGINT) WITH (TYPE="grpc", DATASOURCE="{name}")')
        oort.rules.create(name, f"SELECT t FROM {name}", actions=["grpc"])
        tail = oort.rules.tail(name)
        oort.events.publish(name, [{"t": i} for i in range(EVENTS)])
        for i in range(EVENTS):
            row = next(tail)
            assert row["t"] == i, row
        elapsed = time.perf_counter() - started
        tail.cancel()
    print(f"{elapsed * 1000:.1f}")


if __name__ == "__main__":
    main()
