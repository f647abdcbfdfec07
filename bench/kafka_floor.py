#!/usr/bin/env python3
"""kafka_floor.py BROKERS TOPIC [--fetch-wait-ms MS] — the broker floor of sse-bench's
kafka scenario: a plain librdkafka consumer (confluent-kafka) reading the same topic as
sse-server, so record → consumer latency can be set beside record → SSE latency.

sse-bench starts it with `--kafka-floor "PYTHON bench/kafka_floor.py ..."`. It takes
every partition of TOPIC from its current end (assign, no group membership, no commits),
then prints on stdout:
    one JSON line {"ready": true, "client": ..., "config": {...}} once it reads from the end;
    one line "RECV_UNIX_NANOS VALUE" per record, RECV stamped when poll() returned it.
It exits when its stdin closes (or on SIGTERM). Needs confluent-kafka: run it with the
project's .local/venv Python ($SSE_PYTHON, see scripts/prereqs.sh).
"""

import argparse
import json
import signal
import sys
import threading
import time
import uuid

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, TopicPartition, libversion


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("brokers")
    p.add_argument("topic")
    p.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=500,
        help="fetch.wait.max.ms (default 500, the wait of sse-server's readers); the "
        "longest a fetch waits at the broker when it has no records to return",
    )
    args = p.parse_args()

    config = {
        "bootstrap.servers": args.brokers,
        # Required by the client; with assign() and no commits the group is never joined.
        "group.id": "sse-bench-floor-%s" % uuid.uuid4(),
        "enable.auto.commit": False,
        "fetch.wait.max.ms": args.fetch_wait_ms,
    }
    consumer = Consumer(config)
    md = consumer.list_topics(args.topic, timeout=10)
    topic = md.topics.get(args.topic)
    if topic is None or topic.error is not None:
        sys.exit("kafka_floor.py: topic %s: %s" % (args.topic, topic and topic.error))
    start = []
    for part in sorted(topic.partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(args.topic, part), timeout=10)
        start.append(TopicPartition(args.topic, part, high))
    consumer.assign(start)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    out = sys.stdout.buffer
    shown = {k: v for k, v in config.items() if k != "group.id"}
    ready = {
        "ready": True,
        "client": "confluent-kafka %s, librdkafka %s" % (confluent_kafka.__version__, libversion()[0]),
        "config": shown,
        "partitions": len(start),
    }
    out.write(json.dumps(ready).encode() + b"\n")
    out.flush()
    pending = []
    while not stop.is_set():
        msg = consumer.poll(0 if pending else 0.1)
        now = time.time_ns()
        if msg is not None:
            if not msg.error():
                pending.append(b"%d %s\n" % (now, msg.value() or b""))
            elif msg.error().code() != KafkaError._PARTITION_EOF:
                sys.stderr.write("kafka_floor.py: %s\n" % msg.error())
        # Written whenever nothing more is waiting (the stamps are already taken).
        if pending and (msg is None or len(pending) >= 1000):
            out.write(b"".join(pending))
            out.flush()
            pending.clear()
    consumer.close()


if __name__ == "__main__":
    main()
