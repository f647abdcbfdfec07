"""An EventSource for the harness: an SSE parser and a client that reconnects.

Why our own: the checker's verdicts are only as good as the client's behaviour, and a
browser's EventSource is what the server is built for. So this one does what the
WHATWG spec says EventSource does, and nothing more:
- the parser (SseParser) splits lines at CRLF, LF or CR, joins `data:` lines with LF,
  takes `event:`, `id:` (ignored when it holds a NUL) and `retry:` (digits only),
  ignores comments, and dispatches at a blank line; the last event id is updated at
  every dispatch, even one without data;
- the client (SseClient) reconnects after any drop (an error, an end of the stream, a
  non-200 answer) after the server's `retry:` delay, capped at 1 s for the harness,
  sending `Last-Event-ID` = the last id seen; on each reconnect it may move to another
  instance, as a client behind a load balancer would.
Every connection, event and drop is written to the history.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import random
import re
from dataclasses import dataclass
from typing import Callable

import aiohttp

from history import History

RETRY_CAP_S = 1.0
_EOL = re.compile("[\r\n]")


@dataclass
class SseEvent:
    event: str
    data: str
    id: str  # the last event id after this event (what a reconnect would send)


class SseParser:
    """Incremental SSE parser: feed() bytes as they come, get the dispatched events."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""
        self._first = True
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self.last_id = ""
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        text = self._decoder.decode(chunk)
        if self._first and text:
            if text.startswith("\ufeff"):
                text = text[1:]
            self._first = False
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across two chunks
        self._pending_cr = False
        self._buf += text
        out: list[SseEvent] = []
        while True:
            m = _EOL.search(self._buf)
            if m is None:
                break
            idx = m.start()
            line = self._buf[:idx]
            rest = self._buf[idx + 1 :]
            if self._buf[idx] == "\r":
                if rest.startswith("\n"):
                    rest = rest[1:]
                elif rest == "":
                    self._pending_cr = True
            self._buf = rest
            ev = self._line(line)
            if ev is not None:
                out.append(ev)
        return out

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        if ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self.last_id = value
        elif field == "retry":
            if value.isdigit():
                self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SseEvent(event=event or "message", data="\n".join(data), id=self.last_id)


class SseClient:
    """One logical stream (a browser tab): connects, reads, and reconnects until stop().

    `path` is the route with its query (e.g. `/v3/sse?username=u1`); `instances()`
    returns the base URLs of the instances to choose from; `on_event(client, ev, t)` is
    called for every event other than `reset` (which is recorded here)."""

    def __init__(
        self,
        name: str,
        api: str,
        user: str,
        path: str,
        instances: Callable[[], list[str]],
        session: aiohttp.ClientSession,
        history: History,
        rng: random.Random,
        on_event: Callable[["SseClient", SseEvent, float], None],
        switch_probability: float = 0.5,
    ):
        self.name, self.api, self.user, self.path = name, api, user, path
        self.instances, self.session, self.history, self.rng = instances, session, history, rng
        self.on_event = on_event
        self.switch_probability = switch_probability
        self.last_id = ""
        self.conn = 0
        self.connected = False
        self.first_connected_t: float | None = None
        self.instance: int | None = None
        self.resets = 0
        self.presence: str | None = None  # the last `presence` event's data
        self._stop = asyncio.Event()
        self._retry_s = RETRY_CAP_S

    def stop(self) -> None:
        self._stop.set()

    def _pick_instance(self) -> int:
        n = len(self.instances())
        if self.instance is None or self.instance >= n or self.rng.random() < self.switch_probability:
            self.instance = self.rng.randrange(n)
        return self.instance

    async def run(self) -> None:
        self.history.record("client_start", client=self.name, api=self.api, user=self.user)
        try:
            while not self._stop.is_set():
                await self._connect_once()
                if self._stop.is_set():
                    break
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=self._retry_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            self.connected = False
            self.history.record("client_stop", client=self.name, api=self.api, user=self.user)

    async def _connect_once(self) -> None:
        idx = self._pick_instance()
        base = self.instances()[idx]
        self.conn += 1
        conn = self.conn
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=3, sock_read=45)
        reason = "eof"
        stop_wait: asyncio.Task | None = None
        try:
            async with self.session.get(base + self.path, headers=headers, timeout=timeout) as resp:
                self.history.record(
                    "connect", client=self.name, api=self.api, user=self.user, instance=idx,
                    conn=conn, last_event_id=self.last_id, status=resp.status,
                )
                if resp.status != 200:
                    await resp.read()
                    return
                self.connected = True
                if self.first_connected_t is None:
                    self.first_connected_t = self.history.now()
                parser = SseParser()
                parser.last_id = self.last_id
                stop_wait = asyncio.ensure_future(self._stop.wait())
                while True:
                    read = asyncio.ensure_future(resp.content.readany())
                    done, _ = await asyncio.wait({read, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    if stop_wait in done:
                        read.cancel()
                        reason = "stopped"
                        return
                    chunk = read.result()
                    if not chunk:
                        return
                    for ev in parser.feed(chunk):
                        self._handle(ev, conn, idx)
                    self.last_id = parser.last_id
                    if parser.retry_ms is not None:
                        self._retry_s = min(parser.retry_ms / 1000.0, RETRY_CAP_S)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            reason = f"{type(e).__name__}: {e}"
            if not self.connected:
                self.history.record(
                    "connect", client=self.name, api=self.api, user=self.user, instance=idx,
                    conn=conn, last_event_id=self.last_id, status=None, error=reason,
                )
        finally:
            if stop_wait is not None and not stop_wait.done():
                stop_wait.cancel()
            if self.connected:
                self.connected = False
                self.history.record("disconnect", client=self.name, conn=conn, reason=reason)

    def _handle(self, ev: SseEvent, conn: int, idx: int) -> None:
        t = self.history.now()
        if ev.event == "presence":
            # A state the server tells (src/presence), not a message: kept apart.
            self.presence = ev.data
            return
        if ev.event == "reset":
            self.resets += 1
            try:
                data = json.loads(ev.data)
            except ValueError:
                data = ev.data
            self.history.record(
                "reset", t=t, client=self.name, api=self.api, user=self.user, conn=conn,
                instance=idx, id=ev.id, data=data,
            )
            return
        self.on_event(self, ev, t)
