#!/usr/bin/env python3
"""kafka_catchup.py — the pieces of scripts/bench.sh's kafka-catchup scenario: how long a
starting sse-server stays not ready while it re-reads the history of its v3 topic, and
how long a plain consumer (the broker floor) takes to read the same records.

Usage (each prints one JSON object on stdout and exits 1 on failure):
    kafka_catchup.py produce BROKERS TOPIC --records N
        Writes N v3 records `user-<i % 1000>:seq=<i> t=<unix nanos>` (about 40 bytes,
        keyed by user) as fast as a batching producer goes; any record not acknowledged
        fails the command.
    kafka_catchup.py floor BROKERS TOPIC --records N [--fetch-wait-ms MS]
        A plain consumer assigned every partition of TOPIC (the v3 topic has one) from
        offset 0, no group membership; the time from its creation to its Nth record.
    kafka_catchup.py ready URL PID --since-ns T0 [--topic TOPIC] [--interval S]
        Polls URL/readyz every S seconds (default 0.05) until it answers 200, then reads
        the VmRSS of PID and, with --topic, the server's kafka_records_consumed_total of
        that topic. Times count from T0 (unix nanos: when bench.sh spawned PID). Fails
        when PID exits or --timeout passes first.
    kafka_catchup.py delete BROKERS TOPIC...
        Deletes the topics (best effort: a failure is reported, the exit code stays 0).

The Kafka commands need confluent-kafka: run this with the project's .local/venv Python
($SSE_PYTHON, see scripts/prereqs.sh); `ready` needs only the standard library.
"""

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
import uuid


def _emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _client():
    import confluent_kafka

    return "confluent-kafka %s, librdkafka %s" % (confluent_kafka.__version__, confluent_kafka.libversion()[0])


def cmd_produce(args):
    from confluent_kafka import Producer

    config = {
        "bootstrap.servers": args.brokers,
        "enable.idempotence": True,  # acks=all, no duplicates on a retry
        "linger.ms": 50,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "message.timeout.ms": int(args.timeout * 1000),
        # Only failures come back as delivery reports: a callback per record would
        # cost more than producing it.
        "delivery.report.only.error": True,
    }
    failed = []

    def on_error(err, _msg):
        failed.append(str(err))

    producer = Producer(dict(config, on_delivery=on_error))

    t0 = time.monotonic()
    value_bytes = 0
    for i in range(args.records):
        user = "user-%d" % (i % 1000)
        value = ("%s:seq=%d t=%d" % (user, i, time.time_ns())).encode()
        value_bytes += len(value)
        while True:
            try:
                producer.produce(args.topic, value=value, key=user.encode())
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(args.timeout + 5)
    seconds = time.monotonic() - t0
    delivered = args.records - len(failed) - remaining
    result = {
        "records": args.records,
        "delivered": delivered,
        "failed": len(failed) + remaining,
        "seconds": round(seconds, 3),
        "records_per_s": round(delivered / seconds) if seconds > 0 else None,
        "value_bytes_avg": round(value_bytes / args.records, 1) if args.records else None,
        "client": _client(),
        "config": {k: v for k, v in config.items() if k != "bootstrap.servers"},
    }
    if failed:
        result["first_error"] = failed[0]
    _emit(result)
    if result["failed"]:
        sys.stderr.write("kafka_catchup.py: %d of %d record(s) not acknowledged%s\n" % (
            result["failed"], args.records, " (%s)" % failed[0] if failed else ""))
        return 1
    return 0


def cmd_floor(args):
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    config = {
        "bootstrap.servers": args.brokers,
        # Required by the client; with assign() and no commits the group is never joined.
        "group.id": "sse-bench-catchup-floor-%s" % uuid.uuid4(),
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": args.fetch_wait_ms,
    }
    t0 = time.monotonic()
    consumer = Consumer(config)
    md = consumer.list_topics(args.topic, timeout=10)
    topic = md.topics.get(args.topic)
    if topic is None or topic.error is not None:
        sys.stderr.write("kafka_catchup.py: topic %s: %s\n" % (args.topic, topic and topic.error))
        return 1
    parts = sorted(topic.partitions)
    consumer.assign([TopicPartition(args.topic, p, 0) for p in parts])
    read, first, eof, errors = 0, None, set(), []
    deadline = t0 + args.timeout
    while read < args.records and len(eof) < len(parts) and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=10_000, timeout=0.5):
            err = msg.error()
            if err is None:
                read += 1
            elif err.code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
            else:
                errors.append(str(err))
        if read and first is None:
            first = time.monotonic() - t0
    seconds = time.monotonic() - t0
    consumer.close()
    result = {
        "records_read": read,
        "seconds": round(seconds, 3),
        "first_record_s": None if first is None else round(first, 3),
        "records_per_s": round(read / seconds) if seconds > 0 else None,
        "partitions": len(parts),
        "client": _client(),
        "config": {k: v for k, v in config.items() if k not in ("bootstrap.servers", "group.id")},
    }
    if errors:
        result["errors"] = errors[:5]
    _emit(result)
    if read < args.records:
        sys.stderr.write("kafka_catchup.py: the floor consumer read %d of %d record(s)%s\n" % (
            read, args.records, " before the timeout" if len(eof) < len(parts) else ""))
        return 1
    return 0


def _status(url, timeout):
    """The HTTP status of a GET (None when nothing answers) and the body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return None, b""


def _proc_kib(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _alive(pid):
    # A zombie (exited, not yet reaped by bench.sh) still has /proc/PID.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmd_ready(args):
    url = args.url.rstrip("/")
    since = args.since_ns
    polls, first_answer, last_body = 0, None, b""
    result = {"poll_interval_s": args.interval}
    start = time.monotonic()
    while True:
        if not _alive(args.pid):
            result.update(error="the server (pid %d) exited before it was ready" % args.pid, polls=polls)
            _emit(result)
            return 1
        status, body = _status(url + "/readyz", timeout=max(args.interval, 1.0))
        polls += 1
        now = time.time_ns()
        if status is not None and first_answer is None:
            first_answer = now
        if status == 200:
            break
        if status is not None:
            last_body = body
        if time.monotonic() - start > args.timeout:
            result.update(error="not ready after %g s; last /readyz body: %s" % (
                args.timeout, last_body.decode("utf-8", "replace")[:300]), polls=polls)
            _emit(result)
            return 1
        # A fixed cadence: the next poll is due one interval after the last was due.
        time.sleep(max(0.0, args.interval - (time.monotonic() - start) % args.interval))
    result.update(
        not_ready_s=round((now - since) / 1e9, 3),
        first_answer_s=round((first_answer - since) / 1e9, 3),
        polls=polls,
        server_rss_kib=_proc_kib(args.pid, "VmRSS"),
        server_rss_peak_kib=_proc_kib(args.pid, "VmHWM"),
    )
    if args.topic:
        status, body = _status(url + "/metrics", timeout=5)
        pattern = r'^kafka_records_consumed_total\{topic="%s"\} (\S+)$' % re.escape(args.topic)
        m = re.search(pattern, body.decode("utf-8", "replace"), re.M) if status == 200 else None
        result["server_records_read"] = int(float(m.group(1))) if m else None
    _emit(result)
    return 0


def cmd_delete(args):
    import logging

    from confluent_kafka.admin import AdminClient

    # librdkafka's log lines (e.g. unserved events purged at exit) are noise here.
    quiet = logging.getLogger("kafka_catchup.librdkafka")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    admin = AdminClient({"bootstrap.servers": args.brokers}, logger=quiet)
    for topic, fut in admin.delete_topics(args.topics, operation_timeout=30).items():
        try:
            fut.result(timeout=40)
        except Exception as e:  # noqa: BLE001 - best effort, reported
            sys.stderr.write("kafka_catchup.py: could not delete topic %s: %s\n" % (topic, e))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="kafka_catchup.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("produce", help="write N v3 records as fast as a batching producer goes")
    s.add_argument("brokers")
    s.add_argument("topic")
    s.add_argument("--records", type=int, required=True)
    s.add_argument("--timeout", type=float, default=60.0, help="delivery timeout, seconds")
    s.set_defaults(fn=cmd_produce)

    s = sub.add_parser("floor", help="read N records from offset 0 with a plain consumer")
    s.add_argument("brokers")
    s.add_argument("topic")
    s.add_argument("--records", type=int, required=True)
    s.add_argument("--fetch-wait-ms", type=int, default=500, help="fetch.wait.max.ms (default 500)")
    s.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    s.set_defaults(fn=cmd_floor)

    s = sub.add_parser("ready", help="poll /readyz until 200; then RSS and records read")
    s.add_argument("url")
    s.add_argument("pid", type=int)
    s.add_argument("--since-ns", type=int, default=None, help="unix nanos the times count from (default: now)")
    s.add_argument("--topic", help="report kafka_records_consumed_total of this topic")
    s.add_argument("--interval", type=float, default=0.05, help="seconds between polls (default 0.05)")
    s.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    s.set_defaults(fn=cmd_ready)

    s = sub.add_parser("delete", help="delete topics (best effort)")
    s.add_argument("brokers")
    s.add_argument("topics", nargs="+")
    s.set_defaults(fn=cmd_delete)

    args = p.parse_args(argv)
    if getattr(args, "since_ns", 0) is None:
        args.since_ns = time.time_ns()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
