"""The nemesis: a schedule of faults drawn from the seed, and how each is done and undone.

Why a schedule drawn up front: the same seed gives the same faults, in the same order,
with the same gaps and lengths, whatever the timing of the run (the workload draws from
its own generators), so a failing seed can be rerun. Only targets that depend on the
cluster's state (which node leads a partition) are looked up when the fault starts, and
recorded. Faults never overlap (one at a time; "two_brokers_down" is the one fault with
two nodes down).

Kinds (docs/RELIABILITY.md says what each does on loopback and why):
  kill_leader        kill -9 the broker leading a partition of v3_messages; start it after 10-20 s
  pause_broker       SIGSTOP a broker for 15 s, then SIGCONT
  cut_broker         cut a broker off the others and the clients for 20 s, then heal
  kill_instance      kill -9 an sse-server instance; restart it on its port after 2-5 s
  rolling_restart    SIGTERM each instance in turn, restart it, wait for /readyz 200 before the next
  two_brokers_down   kill -9 two brokers at once for 15 s, then start both
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import aiohttp

from cluster import KAFKA_NODES, Cluster
from history import History

ALL_KINDS = ["kill_leader", "pause_broker", "cut_broker", "kill_instance", "rolling_restart", "two_brokers_down"]
V3_PARTITIONS = 3


# Seconds a fault takes beyond its hold, measured here: a broker's start (about 8 s),
# a rolling restart of three instances (about 20 s).
OVERHEAD = {"kill_leader": 8.0, "two_brokers_down": 9.0, "rolling_restart": 20.0, "kill_instance": 1.0}


@dataclass
class Fault:
    kind: str
    gap: float  # seconds of calm before it starts
    hold: float  # seconds it lasts before the heal (0 for rolling_restart)
    params: dict = field(default_factory=dict)


def schedule(seed: int, duration: float, quick: bool, instances: int) -> list[Fault]:
    """The faults of a run, in order: every kind once first (shuffled), then random
    kinds while the gaps and holds fit in `duration` seconds."""
    rng = random.Random(f"faults-{seed}")
    kinds = list(ALL_KINDS)
    rng.shuffle(kinds)
    faults: list[Fault] = []
    used = 0.0
    i = 0
    while True:
        kind = kinds[i] if i < len(kinds) else rng.choice(ALL_KINDS)
        gap = rng.uniform(3, 6) if quick else rng.uniform(1, 4)
        f = _fault(rng, kind, gap, quick, instances)
        cost = gap + f.hold + OVERHEAD.get(kind, 0.0)
        # Every kind runs at least once, whatever the duration.
        if used + cost > duration and i >= len(kinds):
            break
        faults.append(f)
        used += cost
        i += 1
    return faults


def _fault(rng: random.Random, kind: str, gap: float, quick: bool, instances: int) -> Fault:
    short = 0.5 if quick else 1.0  # quick runs hold each fault about half as long
    if kind == "kill_leader":
        return Fault(kind, gap, rng.uniform(8, 12) * short, {"partition": rng.randrange(V3_PARTITIONS)})
    if kind == "pause_broker":
        return Fault(kind, gap, 15 * short, {"node": rng.randint(1, KAFKA_NODES)})
    if kind == "cut_broker":
        return Fault(kind, gap, 20 * short, {"node": rng.randint(1, KAFKA_NODES)})
    if kind == "kill_instance":
        return Fault(kind, gap, rng.uniform(2, 5), {"instance": rng.randrange(instances)})
    if kind == "rolling_restart":
        return Fault(kind, gap, 0.0, {"order": rng.sample(range(instances), instances)})
    if kind == "two_brokers_down":
        return Fault(kind, gap, 15 * short, {"nodes": sorted(rng.sample(range(1, KAFKA_NODES + 1), 2))})
    raise ValueError(kind)


class Nemesis:
    """Runs a schedule against a cluster, recording `fault` start/heal records."""

    def __init__(self, cluster: Cluster, history: History, session: aiohttp.ClientSession, ready_bound: float = 90.0):
        self.cluster, self.history, self.session = cluster, history, session
        self.ready_bound = ready_bound

    async def run(self, faults: list[Fault], stop: asyncio.Event) -> None:
        for fid, f in enumerate(faults):
            try:
                await asyncio.wait_for(stop.wait(), timeout=f.gap)
                return
            except asyncio.TimeoutError:
                pass
            await self.one(fid, f)

    async def _hold(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def one(self, fid: int, f: Fault) -> None:
        rec = dict(fid=fid, fault=f.kind, hold=round(f.hold, 3), params=f.params)
        try:
            target = await getattr(self, "_" + f.kind)(fid, f, rec)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a fault that cannot be done is recorded, the run goes on
            self.history.record("fault", phase="error", error=f"{type(e).__name__}: {e}", **rec)
            errors = await self.cluster.restore_brokers()
            await self.cluster.restart_dead_instances()
            self.history.record("fault", phase="heal", target=None, restore_errors=errors, **rec)
            return
        self.history.record("fault", phase="heal", target=target, **rec)

    async def _kill_leader(self, fid, f, rec):
        node = await self.cluster.services.leader("v3_messages", f.params["partition"])
        target = {"node": node, "partition": f.params["partition"]}
        self.history.record("fault", phase="start", target=target, **rec)
        self.cluster.killed_nodes.add(node)
        await self.cluster.services.node("kill", node)
        await self._hold(f.hold)
        await self.cluster.services.node("start", node)
        self.cluster.killed_nodes.discard(node)
        return target

    async def _pause_broker(self, fid, f, rec):
        node = f.params["node"]
        self.history.record("fault", phase="start", target={"node": node}, **rec)
        self.cluster.paused_nodes.add(node)
        await self.cluster.services.node("pause", node)
        await self._hold(f.hold)
        await self.cluster.services.node("resume", node)
        self.cluster.paused_nodes.discard(node)
        return {"node": node}

    async def _cut_broker(self, fid, f, rec):
        node = f.params["node"]
        self.history.record("fault", phase="start", target={"node": node}, **rec)
        self.cluster.cut_nodes.add(node)
        await self.cluster.services.node("cut", node)
        await self._hold(f.hold)
        await self.cluster.services.node("heal", node)
        self.cluster.cut_nodes.discard(node)
        return {"node": node}

    async def _two_brokers_down(self, fid, f, rec):
        nodes = f.params["nodes"]
        self.history.record("fault", phase="start", target={"nodes": nodes}, **rec)
        self.cluster.killed_nodes.update(nodes)
        await asyncio.gather(*(self.cluster.services.node("kill", n) for n in nodes))
        await self._hold(f.hold)
        for n in nodes:
            await self.cluster.services.node("start", n)
            self.cluster.killed_nodes.discard(n)
        return {"nodes": nodes}

    async def _kill_instance(self, fid, f, rec):
        inst = self.cluster.instances[f.params["instance"] % len(self.cluster.instances)]
        target = {"instance": inst.index, "port": inst.port}
        self.history.record("fault", phase="start", target=target, **rec)
        await inst.kill9()
        await self._hold(f.hold)
        await inst.start()
        target["ready"] = await inst.wait_ready(self.session, self.ready_bound)
        return target

    async def _rolling_restart(self, fid, f, rec):
        order = [i % len(self.cluster.instances) for i in f.params["order"]]
        self.history.record("fault", phase="start", target={"order": order}, **rec)
        steps = []
        for i in order:
            inst = self.cluster.instances[i]
            t0 = self.history.now()
            clean = await inst.terminate(grace=30.0)
            await inst.start()
            ready = await inst.wait_ready(self.session, self.ready_bound)
            steps.append({"instance": i, "clean_exit": clean, "ready": ready, "took": round(self.history.now() - t0, 3)})
            self.history.record("fault_step", fid=fid, fault=f.kind, instance=i, clean_exit=clean, ready=ready)
        return {"order": order, "steps": steps}
