#!/usr/bin/env python3
"""kafka_tool.py — a small Kafka client for scripts and tests, from *outside* sse-server.

Why: scripts/services.sh needs to wait for the broker, and the tests and scripts/bench.sh
inject records (including invalid UTF-8) the way another producer would. The topics are
not created here: sse-server creates them (`sse-server init`, or at start-up). This tool
uses confluent-kafka (librdkafka 2.x), which scripts/prereqs.sh installs into .local/venv
(scripts/requirements.txt).

Usage:
    kafka_tool.py wait BROKERS [TIMEOUT_S]
        Exit 0 as soon as the broker answers a metadata request (default timeout 30 s),
        1 on timeout.
    kafka_tool.py produce BROKERS TOPIC [--key KEY] [--timeout S]
        Each stdin line becomes one record; the value is the raw bytes of the line
        without its trailing "\\n" (a "\\r" is kept, invalid UTF-8 is sent as is, an
        empty line is an empty record). Waits for every delivery report; exit 1 if any
        record was not acknowledged.
    kafka_tool.py consume BROKERS TOPIC [--count N] [--timeout S] [--group G]
                          [--from-beginning|--from-end] [--keys]
        Print records (value bytes, then "\\n"; with --keys "KEY<TAB>VALUE") until N
        records were read (default: until TIMEOUT_S, default 10 s, passes without a new
        record). Exit 1 if fewer than N records arrived.
    kafka_tool.py topics BROKERS
        Print "TOPIC PARTITIONS" for every topic.
    kafka_tool.py brokers BROKERS [--timeout S]
        Print how many brokers the cluster's metadata lists (the registered, unfenced
        ones); scripts/services.sh waits for 3 after starting its three-node cluster.
    kafka_tool.py leader BROKERS TOPIC PARTITION [--timeout S]
        Print the node id that leads the partition now (-1: none); exit 1 when the
        topic or partition does not exist.

BROKERS is a comma-separated bootstrap list such as 127.0.0.1:9092.
"""

import argparse
import logging
import sys
import time
import uuid

try:
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
    from confluent_kafka.admin import AdminClient
except ImportError:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        "kafka_tool.py: the Python package confluent-kafka is missing; install it with\n"
        "    python3 -m pip install 'confluent-kafka>=2.3'\n"
    )
    sys.exit(2)

# librdkafka logs every refused connection to stderr; while waiting for a broker
# that is still starting this is noise, so it goes to a silent logger.
_QUIET = logging.getLogger("kafka_tool.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def _err(msg):
    sys.stderr.write("kafka_tool.py: %s\n" % msg)


def _admin(brokers):
    return AdminClient({"bootstrap.servers": brokers}, logger=_QUIET)


def _metadata(admin, timeout):
    return admin.list_topics(timeout=timeout)


def cmd_wait(args):
    deadline = time.monotonic() + args.timeout
    admin = _admin(args.brokers)
    last = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _err("no metadata answer from %s within %gs (%s)" % (args.brokers, args.timeout, last))
            return 1
        try:
            md = _metadata(admin, min(left, 3.0))
            if md.brokers:
                return 0
            last = "metadata without brokers"
        except KafkaException as e:
            last = e.args[0] if e.args else e
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def cmd_produce(args):
    producer = Producer(
        {
            "bootstrap.servers": args.brokers,
            "acks": "all",
            "message.timeout.ms": int(args.timeout * 1000),
            "linger.ms": 5,
        },
        logger=_QUIET,
    )
    key = args.key.encode("utf-8") if args.key is not None else None
    state = {"ok": 0, "failed": 0}
    # Connected and the topic's metadata known: a caller that schedules records
    # (the load tool) starts its clock at this line, not at the process start.
    producer.list_topics(args.topic, timeout=args.timeout)
    print("ready", flush=True)

    def on_delivery(err, _msg):
        if err is not None:
            state["failed"] += 1
            _err("delivery failed: %s" % err)
        else:
            state["ok"] += 1

    sent = 0
    for line in sys.stdin.buffer:
        value = line[:-1] if line.endswith(b"\n") else line
        while True:
            try:
                producer.produce(args.topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        sent += 1
        producer.poll(0)
    remaining = producer.flush(args.timeout + 5)
    if remaining:
        _err("%d record(s) still unacknowledged after the timeout" % remaining)
    if remaining or state["failed"] or state["ok"] != sent:
        _err("produced %d of %d record(s) to %s" % (state["ok"], sent, args.topic))
        return 1
    return 0


def cmd_consume(args):
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": args.group or "kafka-tool-%s" % uuid.uuid4(),
            "auto.offset.reset": "latest" if args.from_end else "earliest",
            "enable.auto.commit": bool(args.group),
        },
        logger=_QUIET,
    )
    consumer.subscribe([args.topic])
    got = 0
    out = sys.stdout.buffer
    last = time.monotonic()
    try:
        while args.count is None or got < args.count:
            if time.monotonic() - last > args.timeout:
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                _err("consume error: %s" % msg.error())
                continue
            last = time.monotonic()
            if args.keys:
                out.write((msg.key() or b"") + b"\t")
            out.write((msg.value() or b"") + b"\n")
            out.flush()
            got += 1
    finally:
        consumer.close()
    if args.count is not None and got < args.count:
        _err("read %d of %d record(s) from %s before the timeout" % (got, args.count, args.topic))
        return 1
    return 0


def cmd_topics(args):
    md = _metadata(_admin(args.brokers), args.timeout)
    for name in sorted(md.topics):
        print("%s %d" % (name, len(md.topics[name].partitions)))
    return 0


def cmd_brokers(args):
    md = _metadata(_admin(args.brokers), args.timeout)
    print(len(md.brokers))
    return 0


def cmd_leader(args):
    md = _metadata(_admin(args.brokers), args.timeout)
    topic = md.topics.get(args.topic)
    if topic is None or topic.error is not None:
        _err("no topic %s (%s)" % (args.topic, topic.error if topic else "not in the metadata"))
        return 1
    partition = topic.partitions.get(args.partition)
    if partition is None:
        _err("topic %s has no partition %d" % (args.topic, args.partition))
        return 1
    print(partition.leader)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="kafka_tool.py",
        description="Outside Kafka client for sse-server scripts and tests (confluent-kafka).",
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("wait", help="exit 0 once the broker answers a metadata request")
    s.add_argument("brokers")
    s.add_argument("timeout", nargs="?", type=float, default=30.0)
    s.set_defaults(fn=cmd_wait)

    s = sub.add_parser("produce", help="one record per stdin line")
    s.add_argument("brokers")
    s.add_argument("topic")
    s.add_argument("--key")
    s.add_argument("--timeout", type=float, default=15.0, help="delivery timeout, seconds")
    s.set_defaults(fn=cmd_produce)

    s = sub.add_parser("consume", help="print records, one per line")
    s.add_argument("brokers")
    s.add_argument("topic")
    s.add_argument("--count", type=int)
    s.add_argument("--timeout", type=float, default=10.0, help="give up after this many idle seconds")
    s.add_argument("--group", help="consumer group (default: a fresh one, no commits)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--from-beginning", action="store_true", help="default")
    g.add_argument("--from-end", action="store_true")
    s.add_argument("--keys", action="store_true", help='print "KEY<TAB>VALUE"')
    s.set_defaults(fn=cmd_consume)

    s = sub.add_parser("topics", help="list topics and partition counts")
    s.add_argument("brokers")
    s.add_argument("--timeout", type=float, default=10.0)
    s.set_defaults(fn=cmd_topics)

    s = sub.add_parser("brokers", help="print how many brokers the metadata lists")
    s.add_argument("brokers")
    s.add_argument("--timeout", type=float, default=10.0)
    s.set_defaults(fn=cmd_brokers)

    s = sub.add_parser("leader", help="print the node id leading a partition")
    s.add_argument("brokers")
    s.add_argument("topic")
    s.add_argument("partition", type=int)
    s.add_argument("--timeout", type=float, default=10.0)
    s.set_defaults(fn=cmd_leader)

    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except KafkaException as e:
        _err(str(e.args[0] if e.args else e))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
