"""The client scenario, timed: CreateStream, CreateRule, TailRule, 1,000 events
in one Publish, until the 1,000th result. Runs it ROUNDS times on one client
and prints the milliseconds of each round, one a line: the first is cold (it
connects, and loads the code paths), the others warm.
Usage: scenario.py ADDRESS NAME [ROUNDS] (NAME makes the streams and rules unique)."""

import sys
import time

from oort_client import Oort

EVENTS = 1000


def scenario(oort: Oort, name: str) -> float:
    started = time.perf_counter()
    oort.streams.create(f'CREATE STREAM {name} (t BIGINT) WITH (TYPE="grpc", DATASOURCE="{name}")')
    oort.rules.create(name, f"SELECT t FROM {name}", actions=["grpc"])
    tail = oort.rules.tail(name)
    oort.events.publish(name, [{"t": i} for i in range(EVENTS)])
    for i in range(EVENTS):
        row = next(tail)
        assert row["t"] == i, row
    elapsed = time.perf_counter() - started
    # Untimed: every round starts from the same catalog.
    tail.cancel()
    oort.rules.delete(name)
    oort.streams.delete(name)
    return elapsed


def main() -> None:
    address, name = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    with Oort(address) as oort:
        for round in range(rounds):
            print(f"{scenario(oort, f'{name}_{round}') * 1000:.1f}", flush=True)


if __name__ == "__main__":
    main()
