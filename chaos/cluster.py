"""The system under test: the Kafka nodes and dynalite (through scripts/services.sh
only) and the sse-server instances the harness starts itself.

Why through services.sh: it owns the brokers' processes, pid files and network cuts;
the harness never signals a broker itself, so a fault here is exactly what
`scripts/services.sh node kill|pause|resume|start|cut|heal N` does by hand.
The instances are the harness's own children: each on a free loopback port (a socket
bound to port 0 picks it), each with its own log file in the run directory, and a
killed one comes back on the same port (clients and proxies keep their address).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from dataclasses import dataclass, field

import aiohttp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = os.path.join(ROOT, "scripts", "services.sh")
BROKERS = "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
DYNAMODB = "http://127.0.0.1:8111"
KAFKA_NODES = 3


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_binary() -> str:
    """$SSE_SERVER_BIN, else the newer of target/release and target/debug sse-server."""
    env = os.environ.get("SSE_SERVER_BIN")
    if env:
        return env
    found = [
        os.path.join(ROOT, "target", kind, "sse-server")
        for kind in ("release", "debug")
        if os.access(os.path.join(ROOT, "target", kind, "sse-server"), os.X_OK)
    ]
    if not found:
        raise SystemExit("nemesis: no sse-server binary: build it (cargo build --release) or set SSE_SERVER_BIN")
    return max(found, key=os.path.getmtime)


class Services:
    """scripts/services.sh, every call logged (command, exit code, output) to services.log."""

    def __init__(self, log_path: str):
        self.log_path = log_path

    async def run(self, *args: str, timeout: float = 180.0) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            SERVICES, *args, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout)
        except asyncio.TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
            rc = -1
        else:
            rc = proc.returncode if proc.returncode is not None else -1
        text = out.decode("utf-8", "replace")
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"--- {time.strftime('%H:%M:%S')} services.sh {' '.join(args)} -> {rc}\n{text}")
        return rc, text

    async def must(self, *args: str, timeout: float = 180.0) -> str:
        rc, out = await self.run(*args, timeout=timeout)
        if rc != 0:
            raise RuntimeError(f"scripts/services.sh {' '.join(args)} failed ({rc}): {out.strip()[-400:]}")
        return out

    async def up(self) -> None:
        await self.must("up", "--kafka-nodes", str(KAFKA_NODES), timeout=600)
        await self.must("up", "dynamodb", timeout=300)

    async def leader(self, topic: str, partition: int) -> int:
        out = await self.must("node", "leader", topic, str(partition), timeout=60)
        words = out.split()
        for word in reversed(words):
            if word.isdigit():
                return int(word)
        raise RuntimeError(f"services.sh node leader {topic} {partition}: no node id in {out!r}")

    async def controller(self) -> int:
        """The node id of the active controller (-1: an election is under way)."""
        out = await self.must("node", "controller", timeout=60)
        return int(out.split()[-1])

    async def node(self, action: str, node: int | str) -> None:
        await self.must("node", action, str(node), timeout=120)


@dataclass
class Instance:
    """One sse-server process on a fixed port."""

    index: int
    port: int
    log_path: str
    binary: str
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = dict(os.environ, SSE_LOG=os.environ.get("SSE_LOG", "info"), NO_COLOR="1")
        log = open(self.log_path, "ab")
        log.write(f"=== start #{self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "--bind", f"127.0.0.1:{self.port}", "--kafka-brokers", BROKERS,
            "--dynamodb-endpoint", DYNAMODB, *self.extra_args,
            cwd=ROOT, env=env, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL,
        )
        log.close()
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def terminate(self, grace: float = 30.0) -> bool:
        """SIGTERM, wait up to `grace` s for the drain, then SIGKILL. True when it left by itself."""
        if not self.alive():
            return True
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=grace)
            return True
        except asyncio.TimeoutError:
            await self.kill9()
            return False

    async def ready(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(self.url + "/readyz", timeout=aiohttp.ClientTimeout(total=3)) as r:
                await r.read()
                return r.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return False

    async def wait_ready(self, session: aiohttp.ClientSession, bound: float) -> bool:
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if await self.ready(session):
                return True
            await asyncio.sleep(0.5)
        return False


class Cluster:
    """The instances, plus what a fault left broken, so that cleanup() can undo it."""

    def __init__(self, run_dir: str, count: int, services: Services):
        binary = server_binary()
        self.services = services
        self.instances = [
            # A short drain: a rolling restart still drains, in seconds, not tens.
            Instance(i, free_port(), os.path.join(run_dir, f"instance-{i}.log"), binary,
                     extra_args=["--drain-grace", "2s"])
            for i in range(count)
        ]
        # Broker state a fault changed and has not yet restored.
        self.killed_nodes: set[int] = set()
        self.paused_nodes: set[int] = set()
        self.cut_nodes: set[int] = set()

    def urls(self) -> list[str]:
        return [i.url for i in self.instances]

    async def start_all(self, session: aiohttp.ClientSession, bound: float = 180.0) -> None:
        for inst in self.instances:
            await inst.start()
        for inst in self.instances:
            if not await inst.wait_ready(session, bound):
                raise RuntimeError(f"instance {inst.index} ({inst.url}) not ready within {bound:.0f} s; see {inst.log_path}")

    async def stop_all(self) -> None:
        await asyncio.gather(*(inst.terminate() for inst in self.instances), return_exceptions=True)

    async def restore_brokers(self) -> list[str]:
        """Resume paused nodes, heal every cut, start killed nodes. Returns the errors."""
        errors = []
        for node in sorted(self.paused_nodes):
            try:
                await self.services.node("resume", node)
            except Exception as e:  # noqa: BLE001 - cleanup goes on whatever fails
                errors.append(str(e))
        self.paused_nodes.clear()
        try:
            await self.services.node("heal", "all")
        except Exception as e:  # noqa: BLE001
            errors.append(str(e))
        self.cut_nodes.clear()
        for node in sorted(self.killed_nodes):
            try:
                await self.services.node("start", node)
            except Exception as e:  # noqa: BLE001
                errors.append(str(e))
        self.killed_nodes.clear()
        return errors

    async def restart_dead_instances(self) -> None:
        for inst in self.instances:
            if not inst.alive():
                await inst.start()
