#!/usr/bin/env python3
"""presence_churn.py — what stream churn costs the broker in presence records.

Opens and closes RATE /v3 streams a second on one sse-server instance (each lives
about a second, spread over USERS users) for SECONDS seconds, while a consumer of the
presence topic counts the records and bytes every instance publishes. src/presence
says a churn of 1,000 streams a second costs one record a second per instance (plus a
part per 2,000 connected users); this measures it.

Usage:
    presence_churn.py SERVER BROKERS [--topic presence] [--rate 1000] [--seconds 20]
                      [--users 1000]
SERVER is the instance's base URL (http://127.0.0.1:3000), BROKERS its Kafka.
Prints the streams opened per second, and records and bytes per second per instance.
Runs with .local/venv/bin/python (confluent-kafka).
"""

import argparse
import asyncio
import collections
import threading
import time
import urllib.parse
import uuid

from confluent_kafka import OFFSET_END, Consumer, TopicPartition


def count_records(brokers: str, topic: str, stop: threading.Event, out: dict) -> None:
    """Counts the topic's new records per key (instance) until `stop`."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"churn-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
    out["ready"].set()
    while not stop.is_set():
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        key = (msg.key() or b"").decode()
        out["records"][key] += 1
        out["bytes"][key] += len(msg.value() or b"")
    consumer.close()


async def one_stream(host: str, port: int, path: str, hold: float, opened: list) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if head.startswith(b"HTTP/1.1 200"):
            opened.append(1)
        await asyncio.sleep(hold)
        writer.close()
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        pass


async def churn(server: str, rate: int, seconds: float, users: int) -> int:
    url = urllib.parse.urlsplit(server)
    host, port = url.hostname, url.port or 80
    opened: list = []
    tasks = []
    tick = 0.01
    per_tick = rate * tick
    started = time.monotonic()
    due = 0.0
    n = 0
    while time.monotonic() - started < seconds:
        due += per_tick
        while due >= 1:
            due -= 1
            path = f"/v3/sse?username=churn{n % users}"
            tasks.append(asyncio.create_task(one_stream(host, port, path, 1.0, opened)))
            n += 1
        await asyncio.sleep(tick)
    await asyncio.gather(*tasks)
    return len(opened)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("server")
    parser.add_argument("brokers")
    parser.add_argument("--topic", default="presence")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()

    stop = threading.Event()
    out = {"ready": threading.Event(), "records": collections.Counter(), "bytes": collections.Counter()}
    counter = threading.Thread(target=count_records, args=(args.brokers, args.topic, stop, out))
    counter.start()
    out["ready"].wait(15)
    time.sleep(2)  # the consumer's first fetch positions it at the end
    before = dict(out["records"]), dict(out["bytes"])
    started = time.monotonic()
    opened = asyncio.run(churn(args.server, args.rate, args.seconds, args.users))
    elapsed = time.monotonic() - started
    stop.set()
    counter.join()
    print(f"streams opened and closed: {opened} in {elapsed:.1f} s ({opened / elapsed:.0f}/s)")
    for key in sorted(out["records"]):
        records = out["records"][key] - before[0].get(key, 0)
        size = out["bytes"][key] - before[1].get(key, 0)
        print(f"instance {key}: {records} records ({records / elapsed:.2f}/s), "
              f"{size} bytes ({size / elapsed / 1024:.1f} KiB/s)")


if __name__ == "__main__":
    main()
