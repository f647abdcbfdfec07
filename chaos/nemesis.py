"""nemesis: a seeded fault-injection run against a 3-node Kafka cluster, dynalite and
N sse-server instances, judged by chaos/check.py (issue 25, item 5).

Usage (from the repository root, after `source scripts/prereqs.sh && prereqs_python`):

    .local/venv/bin/python chaos/nemesis.py run --seed 7 --duration 600 --out .local/chaos/7
    .local/venv/bin/python chaos/nemesis.py run --seed 7 --quick --out .local/chaos/quick-7   # <= 2 min
    .local/venv/bin/python chaos/nemesis.py schedule --seed 7 [--quick]   # print the faults only
    .local/venv/bin/python chaos/check.py .local/chaos/7/history.jsonl    # judge a run again
    .local/venv/bin/python -m unittest discover -s chaos -p 'test_*.py'   # the checker's tests

A run: `scripts/services.sh up --kafka-nodes 3` and `up dynamodb` (a running service is
left alone); start --instances sse-server instances on free loopback ports (binary:
$SSE_SERVER_BIN, else the newer of target/{release,debug}/sse-server) and wait for
/readyz 200; connect the SSE clients; then for --duration seconds run the workloads
(workload.py) and the seed's fault schedule (faults.py) at once; heal everything; let
the clients catch up (at least 20 s, then until every client has every acknowledged
message, at most 90 s); read the final report table; stop the instances (SIGTERM); run
the checker. Exit code: the checker's (1 on any violation), 2 when the run could not
be carried out.

Output in --out: history.jsonl (every record), summary.json (the verdict),
instance-N.log (each instance's log), services.log (every services.sh call).

Cleanup always runs (finally, and on SIGINT/SIGTERM): paused brokers are resumed, every
cut is healed (`node heal all`), killed brokers are started again, and the harness's
instances are stopped. The services themselves are left up; `scripts/services.sh down`
stops them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aiohttp  # noqa: E402

import check  # noqa: E402
from cluster import DYNAMODB, Cluster, Services  # noqa: E402
from faults import Nemesis, schedule  # noqa: E402
from history import History  # noqa: E402
from workload import V3Workload, V4Workload, read_table  # noqa: E402

FULL = dict(v3_users=30, http_rate=20.0, kafka_rate=10.0, publishers=6, v4_users=4, v4_writers=2,
            v4_rate=1.0, v4_max_reports=12, settle_min=20.0, settle_max=90.0)
QUICK = dict(v3_users=8, http_rate=8.0, kafka_rate=4.0, publishers=2, v4_users=2, v4_writers=2,
             v4_rate=1.0, v4_max_reports=6, settle_min=8.0, settle_max=30.0)
QUICK_DURATION = 60.0


async def run(args: argparse.Namespace) -> int:
    os.makedirs(args.out, exist_ok=True)
    cfg = QUICK if args.quick else FULL
    duration = min(args.duration, QUICK_DURATION) if args.quick else args.duration
    history = History(os.path.join(args.out, "history.jsonl"))
    services = Services(os.path.join(args.out, "services.log"))
    faults = schedule(args.seed, duration, args.quick, args.instances)
    tag = f"{args.seed}-{int(time.time()) % 1_000_000}"
    history.record("run_start", seed=args.seed, duration=duration, quick=args.quick, instances=args.instances,
                   tag=tag, config=cfg, schedule=[f.__dict__ for f in faults])
    print(f"nemesis: seed {args.seed}, {duration:.0f} s, {len(faults)} faults: "
          f"{', '.join(f.kind for f in faults)}; out {args.out}", file=sys.stderr)

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    session = aiohttp.ClientSession(connector=connector)
    # aiohttp sends an idempotent request (the /v4 PUT) again, once, when its
    # connection drops before the answer (RFC 9112 §9.3.1.1); a retry refused at
    # connect then hides that the first one reached a draining instance, and the
    # history would call a change that was applied "surely not written". One send
    # per request, so each answer is what that request did.
    session._retry_connection = False
    cluster: Cluster | None = None
    clients = []
    client_tasks: list[asyncio.Task] = []
    background: list[asyncio.Task] = []  # publishers, writers, the nemesis
    try:
        print("nemesis: services up (3 Kafka nodes, dynalite) ...", file=sys.stderr)
        await services.up()
        cluster = Cluster(args.out, args.instances, services)
        print(f"nemesis: starting {args.instances} instances on ports "
              f"{[i.port for i in cluster.instances]} ...", file=sys.stderr)
        await cluster.start_all(session)
        history.record("instances", ports=[i.port for i in cluster.instances])

        v3 = V3Workload(args.seed, tag, cfg["v3_users"], history, session, cluster.urls,
                        cfg["http_rate"], cfg["kafka_rate"])
        v4 = V4Workload(args.seed, cfg["v4_users"], cfg["v4_writers"], history, session, cluster.urls,
                        cfg["v4_rate"], cfg["v4_max_reports"])
        clients = v3.make_clients() + v4.make_clients()
        client_tasks = [asyncio.create_task(c.run()) for c in clients]
        # Let every client connect before anything is published.
        for _ in range(100):
            if all(c.first_connected_t is not None for c in clients):
                break
            await asyncio.sleep(0.1)

        stop = asyncio.Event()
        nemesis = Nemesis(cluster, history, session)
        work = [asyncio.create_task(coro) for coro in v3.tasks(stop, cfg["publishers"]) + v4.tasks(stop)]
        nemesis_task = asyncio.create_task(nemesis.run(faults, stop))
        background = work + [nemesis_task]
        history.record("workload_start")
        await asyncio.sleep(duration)
        # Every scheduled fault runs, even when starting and healing took longer
        # than the schedule planned (a broker's start, a rolling restart).
        try:
            await asyncio.wait_for(asyncio.shield(nemesis_task), timeout=duration)
        except asyncio.TimeoutError:
            pass
        stop.set()  # no new fault; the one in progress heals, under load
        await nemesis_task
        history.record("workload_stop")
        await asyncio.gather(*work, return_exceptions=True)

        errors = await cluster.restore_brokers()
        await cluster.restart_dead_instances()
        history.record("healed", errors=errors)
        t0 = time.monotonic()
        await asyncio.sleep(cfg["settle_min"])
        while time.monotonic() - t0 < cfg["settle_max"] and v3.missing() > 0:
            await asyncio.sleep(1.0)
        history.record("quiescent", waited=round(time.monotonic() - t0, 3), missing=v3.missing())
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for c in clients:
            c.stop()
        if client_tasks:
            await asyncio.gather(*client_tasks, return_exceptions=True)
        if cluster is not None:
            errors = await cluster.restore_brokers()
            if errors:
                print(f"nemesis: cleanup errors: {errors}", file=sys.stderr)
            await cluster.stop_all()
        if "v4" in locals():
            try:
                items = await asyncio.to_thread(read_table, DYNAMODB, "report_status", set(v4.users))
                history.record("v4_table", reports=items)
            except Exception as e:  # noqa: BLE001 - the checker says the table was not read
                history.record("v4_table_error", error=f"{type(e).__name__}: {e}")
        await session.close()
        history.record("run_end")
        history.close()

    return check.main([os.path.join(args.out, "history.jsonl")])


def main() -> int:
    ap = argparse.ArgumentParser(prog="nemesis.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the workloads and the seed's faults, then check")
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--duration", type=float, default=600.0, help="seconds of workload and faults (quick: at most 60)")
    r.add_argument("--out", required=True, help="run directory (history.jsonl, summary.json, logs)")
    r.add_argument("--instances", type=int, default=3)
    r.add_argument("--quick", action="store_true", help="the <= 2 min version: fewer clients, every fault kind once, held shorter")
    s = sub.add_parser("schedule", help="print the seed's fault schedule and exit")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--duration", type=float, default=600.0)
    s.add_argument("--instances", type=int, default=3)
    s.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    if args.cmd == "schedule":
        duration = min(args.duration, QUICK_DURATION) if args.quick else args.duration
        for f in schedule(args.seed, duration, args.quick, args.instances):
            print(json.dumps(f.__dict__))
        return 0

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    task = loop.create_task(run(args))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)  # the finally of run() cleans up
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        print("nemesis: interrupted; cleaned up (brokers restored, instances stopped)", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001
        print(f"nemesis: the run could not be carried out: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
