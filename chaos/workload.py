"""The workloads: what users and publishers do while the nemesis breaks things.

Why these: they are the traffic whose guarantees the server states (docs/v3.md,
docs/v4.md) — every acknowledged /v3 message reaches every open stream of its user once
and in order, across reconnects to any instance; every accepted /v4 change is applied
and announced exactly once. Every request and answer, and every event a client gets,
is recorded; the checker judges them afterwards.

- /v3: users; per user two SSE clients (on different instances to start with) that
  resume with Last-Event-ID and may change instance on a reconnect; one sequential HTTP
  publisher per user (POST /v3/message, unique payloads `p-<seed>-<n>`, through a
  random instance); one Kafka producer (acks=all, idempotent) writing `U:k-<seed>-<n>`
  into v3_messages with key U.
- /v4: users (UUIDs); per user two SSE clients and two concurrent writers that create
  reports and move them along the state machine (their changes race: that is the point).

Decisions come from generators seeded from the run's seed (one per actor), so a seed
replays the same intentions; what the system answers, and so the exact history, still
depends on timing. User names and UUIDs carry a per-run tag (not from the seed) so that
a rerun never reads an earlier run's records from Kafka's retained history.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Callable

import aiohttp

from cluster import BROKERS
from history import History
from sse_client import SseClient, SseEvent

V3_TOPIC = "v3_messages"
TRANSITIONS = {
    "pending": ["queued", "canceled"],
    "queued": ["processing", "canceled"],
    "processing": ["completed", "failed"],
    "failed": ["pending"],
    "canceled": ["pending"],
    "completed": [],
}


def classify(status: int | None, body) -> str:
    """What an answer says about a write: "yes" (acknowledged), "no" (surely not
    written: a 4xx, or a 503 saying `written: "no"`, or no connection at all), or
    "maybe" (a timeout, a 503 saying `maybe`, any other 5xx or a broken connection)."""
    if status is None:
        return "maybe"
    if 200 <= status < 300:
        return "yes"
    if 400 <= status < 500:
        return "no"
    if status == 503 and isinstance(body, dict) and body.get("written") == "no":
        return "no"
    return "maybe"


async def http_call(session: aiohttp.ClientSession, method: str, url: str, **kw) -> tuple[int | None, object, str | None]:
    """One request: (status, JSON body or text, error). A connection refused is status
    None with error "connect: …" (nothing was sent); other failures are status None."""
    try:
        async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=15), **kw) as r:
            text = await r.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
            return r.status, body, None
    except aiohttp.ClientConnectorError as e:
        return None, None, f"connect: {e}"
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
        return None, None, f"{type(e).__name__}: {e}"


def written_of(status, body, error) -> str:
    if status is None and error and error.startswith("connect:"):
        return "no"  # the connection was refused: the request never reached a server
    return classify(status, body)


class V3Workload:
    def __init__(self, seed: int, tag: str, users: int, history: History, session: aiohttp.ClientSession,
                 urls: Callable[[], list[str]], http_rate: float, kafka_rate: float):
        self.seed, self.history, self.session, self.urls = seed, history, session, urls
        self.users = [f"chaos-{tag}-u{i:02d}" for i in range(users)]
        self.http_rate, self.kafka_rate = http_rate, kafka_rate
        self.clients: list[SseClient] = []
        self.acked: dict[str, dict[str, float]] = {u: {} for u in self.users}  # user -> payload -> t0
        self.delivered: dict[str, set[str]] = {}  # client -> payloads
        self._n = 0
        self._producer = None
        self._kafka_pending = 0

    def _payload(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self.seed}-{self._n}"

    def make_clients(self) -> list[SseClient]:
        n = max(1, len(self.urls()))
        for ui, user in enumerate(self.users):
            for k in range(2):
                name = f"v3-{user}-c{k}"
                rng = random.Random(f"{self.seed}-{name}")
                c = SseClient(name, "v3", user, f"/v3/sse?username={user}", self.urls, self.session,
                              self.history, rng, self._on_event)
                c.instance = (ui + k) % n  # the two clients of a user start on different instances
                self.clients.append(c)
                self.delivered[name] = set()
        return self.clients

    def _on_event(self, client: SseClient, ev: SseEvent, t: float) -> None:
        self.delivered[client.name].add(ev.data)
        self.history.record("deliver", t=t, api="v3", client=client.name, user=client.user,
                            conn=client.conn, instance=client.instance, id=ev.id, event=ev.event, data=ev.data)

    async def http_publisher(self, index: int, users: list[str], per_task: float, stop: asyncio.Event) -> None:
        """Sequential: one POST at a time, for its own users (so per user, one order)."""
        rng = random.Random(f"{self.seed}-http-{index}")
        seqs = {u: 0 for u in users}
        while not stop.is_set():
            user = rng.choice(users)
            seqs[user] += 1
            payload = self._payload("p")
            urls = self.urls()
            inst = rng.randrange(len(urls))
            t0 = self.history.now()
            status, body, error = await http_call(
                self.session, "POST", f"{urls[inst]}/v3/message", params={"username": user},
                data=payload.encode(), headers={"Content-Type": "text/plain"})
            written = written_of(status, body, error)
            if written == "yes":
                self.acked[user][payload] = t0
            self.history.record("publish", api="v3", via="http", publisher=f"http-{index}", user=user,
                                seq=seqs[user], payload=payload, instance=inst, t0=t0, status=status,
                                written=written, body=body, error=error)
            await asyncio.sleep(rng.expovariate(per_task) if per_task > 0 else 1.0)

    async def kafka_publisher(self, stop: asyncio.Event) -> None:
        """One idempotent producer (acks=all): per key, Kafka keeps its order."""
        from confluent_kafka import Producer

        rng = random.Random(f"{self.seed}-kafka")
        self._producer = Producer({
            "bootstrap.servers": BROKERS, "acks": "all", "enable.idempotence": True,
            "message.timeout.ms": 15000, "linger.ms": 5,
        })
        seqs = {u: 0 for u in self.users}

        def on_delivery(user, seq, payload, t0):
            def cb(err, msg):
                self._kafka_pending -= 1
                written = "yes" if err is None else "maybe"
                if written == "yes":
                    self.acked[user][payload] = t0
                self.history.record(
                    "publish", api="v3", via="kafka", publisher="kafka", user=user, seq=seq,
                    payload=payload, t0=t0, status=None, written=written,
                    error=None if err is None else str(err),
                    partition=None if err is not None else msg.partition(),
                    offset=None if err is not None else msg.offset())
            return cb

        try:
            while not stop.is_set():
                user = rng.choice(self.users)
                seqs[user] += 1
                payload = self._payload("k")
                t0 = self.history.now()
                try:
                    self._producer.produce(V3_TOPIC, key=user.encode(), value=f"{user}:{payload}".encode(),
                                           on_delivery=on_delivery(user, seqs[user], payload, t0))
                    self._kafka_pending += 1
                except BufferError as e:
                    self.history.record("publish", api="v3", via="kafka", publisher="kafka", user=user,
                                        seq=seqs[user], payload=payload, t0=t0, status=None, written="no",
                                        error=f"BufferError: {e}")
                self._producer.poll(0)
                await asyncio.sleep(rng.expovariate(self.kafka_rate) if self.kafka_rate > 0 else 1.0)
            # Wait for the outstanding deliveries (at most message.timeout.ms).
            for _ in range(200):
                if self._kafka_pending <= 0:
                    break
                self._producer.poll(0)
                await asyncio.sleep(0.1)
        finally:
            self._producer.poll(0)

    async def kafka_poller(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self._producer is not None:
                self._producer.poll(0)
            await asyncio.sleep(0.05)

    def tasks(self, stop: asyncio.Event, publishers: int) -> list:
        groups = [self.users[i::publishers] for i in range(publishers)]
        groups = [g for g in groups if g]
        out = [self.http_publisher(i, g, self.http_rate / len(groups), stop) for i, g in enumerate(groups)]
        if self.kafka_rate > 0:
            out.append(self.kafka_publisher(stop))
            out.append(self.kafka_poller(stop))
        return out

    def missing(self) -> int:
        """How many (client, acknowledged payload) pairs are still to arrive, counting
        publishes sent after the client's first connection only."""
        n = 0
        for c in self.clients:
            if c.first_connected_t is None:
                continue
            got = self.delivered[c.name]
            for payload, t0 in self.acked[c.user].items():
                if t0 > c.first_connected_t and payload not in got:
                    n += 1
        return n


class V4Workload:
    def __init__(self, seed: int, users: int, writers_per_user: int, history: History,
                 session: aiohttp.ClientSession, urls: Callable[[], list[str]], rate: float,
                 max_reports: int):
        self.seed, self.history, self.session, self.urls = seed, history, session, urls
        self.users = [str(uuid.uuid4()) for _ in range(users)]
        self.writers_per_user, self.rate, self.max_reports = writers_per_user, rate, max_reports
        self.clients: list[SseClient] = []
        # What the writers believe: report -> status (from 201/202/409 answers and events).
        self.believed: dict[str, dict[str, str]] = {u: {} for u in self.users}

    def make_clients(self) -> list[SseClient]:
        n = max(1, len(self.urls()))
        for ui, user in enumerate(self.users):
            for k in range(2):
                name = f"v4-{user[:8]}-c{k}"
                rng = random.Random(f"{self.seed}-{name}")
                c = SseClient(name, "v4", user, f"/v4/sse?user_id={user}", self.urls, self.session,
                              self.history, rng, self._on_event)
                c.instance = (ui + k) % n
                self.clients.append(c)
        return self.clients

    def _on_event(self, client: SseClient, ev: SseEvent, t: float) -> None:
        try:
            data = json.loads(ev.data)
        except ValueError:
            data = ev.data
        self.history.record("v4_event", t=t, client=client.name, user=client.user, conn=client.conn,
                            instance=client.instance, id=ev.id, event=ev.event, data=data)
        if ev.event == "report_status_update" and isinstance(data, dict):
            self.believed[client.user][data.get("id")] = data.get("status")

    async def writer(self, user: str, index: int, stop: asyncio.Event) -> None:
        rng = random.Random(f"{self.seed}-v4-{user[:8]}-w{index}")
        # Each user's writers share a `writer` label for the record, not a report list.
        while not stop.is_set():
            urls = self.urls()
            inst = rng.randrange(len(urls))
            reports = self.believed[user]
            movable = [r for r, s in sorted(reports.items()) if TRANSITIONS.get(s)]
            t0 = self.history.now()
            if not movable or (len(reports) < self.max_reports and rng.random() < 0.15):
                status, body, error = await http_call(
                    self.session, "POST", f"{urls[inst]}/v4/new/report", params={"user_id": user})
                written = written_of(status, body, error)
                report = body.get("reportId") if status == 201 and isinstance(body, dict) else None
                if report:
                    reports.setdefault(report, "pending")
                self.history.record("v4_request", op="create", user=user, writer=index, instance=inst,
                                    t0=t0, status=status, written=written, report=report, body=body, error=error)
            else:
                report = rng.choice(movable)
                frm = reports[report]
                to = rng.choice(TRANSITIONS[frm])
                status, body, error = await http_call(
                    self.session, "PUT", f"{urls[inst]}/v4/report", params={"user_id": user},
                    json={"id": report, "status": to})
                written = written_of(status, body, error)
                if status == 202 and isinstance(body, dict):
                    reports[report] = body.get("status", to)
                elif status == 409 and isinstance(body, dict) and body.get("current"):
                    reports[report] = body["current"]
                self.history.record("v4_request", op="change", user=user, writer=index, instance=inst,
                                    t0=t0, report=report, believed_from=frm, to=to, status=status,
                                    written=written, command_id=body.get("commandId") if isinstance(body, dict) else None,
                                    from_status=body.get("from") if isinstance(body, dict) else None,
                                    body=body, error=error)
            await asyncio.sleep(rng.expovariate(self.rate) if self.rate > 0 else 1.0)

    def tasks(self, stop: asyncio.Event) -> list:
        return [self.writer(u, w, stop) for u in self.users for w in range(self.writers_per_user)]


def read_table(endpoint: str, table: str, users: set[str]) -> list[dict]:
    """The final report_status items of `users` (a Scan: the harness's users only)."""
    import boto3

    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="chaos", aws_secret_access_key="chaos")
    out = []
    kwargs = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        for item in page.get("Items", []):
            user = item.get("user_id", {}).get("S")
            if user not in users:
                continue
            out.append({
                "report_id": item.get("report_id", {}).get("S"),
                "user_id": user,
                "status": item.get("status", {}).get("S"),
                "version": int(item["version"]["N"]) if "version" in item else None,
                "applied_commands": [v.get("S") for v in item.get("applied_commands", {}).get("L", [])],
            })
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
