#!/usr/bin/env python3
"""scripts/guide_test.py — the guide's pages (docs/v1.md … v4.md) against a live server.

Runs the commands each page shows and compares what they print with what the page
says they print, so a page cannot drift from the server. scripts/test.sh runs it
after the contract step, where Kafka and DynamoDB are up:

    $SSE_TEST_PYTHON scripts/guide_test.py [-v] [docs/v3.md …]     (default: the four pages)

-v prints what every checked command and stream printed (with the page's ports and
names), for writing a page's blocks.

Environment: SSE_SERVER_BIN (default target/debug/sse-server), SSE_TEST_KAFKA and
SSE_TEST_DYNAMODB (the services a page's `127.0.0.1:9092` and `http://127.0.0.1:8111`
stand for; needed only by a page whose servers use them). Exit 0 when every check of
every page passed, 1 otherwise (each difference printed as a diff, with the servers'
logs). The pages run in parallel, each with its own servers.

Markers. An HTML comment `<!-- guide-test: OP ARGS -->` (invisible on the rendered
page) on the line before a fenced block says what the block is; unmarked blocks are
not run. The operations, in the page's order:

  servers           each line starts a server in the background (`scripts/run.sh`
                    becomes `$SSE_SERVER_BIN --bind 127.0.0.1:3000`, which is what it
                    execs, `target/release/sse-server` becomes $SSE_SERVER_BIN); it is
                    known by its port in the page (3000, or its `--bind`'s). Lines
                    running `scripts/services.sh` stand for the test's services; for
                    `up`, the test runs `sse-server init` as that script does, which
                    creates the run's topics and table. The test waits for `/healthz`
                    and `/readyz` to answer 200.
                    A server gets no environment variable of the test's but the
                    run's names below: only what the line itself sets configures it,
                    so a page that forgets to point an instance at Kafka fails.
  run NAME…         each line is a command. `VAR=value` alone sets VAR for the page's
                    later commands. A `curl -N` line is a stream: it runs in the
                    background (with `-sS --max-time 60` added), named by the next
                    NAME of the marker, and the test waits for its first frame (it is
                    then registered) before the next line. Any other line runs to its
                    end (`curl` gets `-sS`: no progress meter, as on a terminal); its
                    output (stdout and stderr) is kept for `output`.
  output            the block is the output of the previous `run` block's commands,
                    one after the other (each ended by a newline when it did not end
                    with one); compared line by line.
  stream NAME…      the block is the frames each named stream printed so far
                    (blank-line separated). The test waits until the stream has that
                    many frames (10 s at most), waits 0.3 s more, and compares every
                    frame it has.
  log PORT…         every line of the block is in the log of each server named.
  stop NAME…        (no block) stops the streams, as Ctrl-C in their terminal would;
                    the last `id:` the last one printed becomes `<the id>`.

In commands, `<the id>` is that id and `<KEY>` (e.g. `<reportId>`) the last value of
the JSON key KEY printed by a command or a stream. Ports 3000 and 3001 become free
ports; the topics and the table (v3_messages, v4_messages, v4_events, report_status)
become names unique to the run (given to the servers as SSE_V3_TOPIC,
SSE_V4_COMMAND_TOPIC, SSE_V4_EVENT_TOPIC, SSE_TABLE, with a unique
SSE_V4_WRITERS_GROUP and SSE_PRESENCE_TOPIC; deleted at the end), so reruns on the
same broker never see each other's records. scripts/update_report_status.sh gets
SSE_URL, since its line names no port.

Comparison. A stream's `presence` frames (`event: presence`) and keep-alive comments
(`: …`) are left out of its frames unless the page's block shows one of that kind:
they come when they come. Before comparing, the run's ports and names are put back to
the page's, and only what must vary is replaced on both sides, by pattern:
  * UUIDs → `<uuid>`
  * RFC 3339 timestamps (`2026-01-01T10:00:00.123Z`, log lines' too) → `<time>`
  * an event id (an `id:` line's value, and the JSON values of "id" and
    "lastEventId"): each number of a Kafka cursor (`232.10280.266`) → `<n>`
    (`<n>.<n>.<n>`: the shape stays, one number per partition); an in-process id
    (`k3x9a-41`, epoch-sequence) → `<epoch>-<n>`; a record's place
    (`v3_messages/0/231`, topic/partition/offset) → `v3_messages/0/<n>` (the partition
    stays: a username's records always go to the same one).
Everything else, the JSON's key order and spacing included, must be as the page shows.
"""

import concurrent.futures
import difflib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["docs/v1.md", "docs/v2.md", "docs/v3.md", "docs/v4.md"]

PAGE_KAFKA = "127.0.0.1:9092"
PAGE_DYNAMODB = "http://127.0.0.1:8111"
PAGE_PORTS = ("3000", "3001")
# The page's names, and the server setting that names each.
PAGE_NAMES = {
    "v3_messages": "SSE_V3_TOPIC",
    "v4_messages": "SSE_V4_COMMAND_TOPIC",
    "v4_events": "SSE_V4_EVENT_TOPIC",
    "report_status": "SSE_TABLE",
}

STREAM_WAIT = 10.0  # seconds a stream may take to print what its block shows
STREAM_GRACE = 0.3  # then this long for frames the page does not show
COMMAND_TIMEOUT = 20.0
SERVER_WAIT = 40.0

MARKER = re.compile(r"^\s*<!--\s*guide-test:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^\s*(```+|~~~+)")
UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
ID_LINE = re.compile(r"^(id: ?)(.*)$")
ID_JSON = re.compile(r'("(?:id|lastEventId)":\s*")([^"]*)(")')
LOCAL_ID = re.compile(r"^[0-9a-z]+-(?:-?\d+)$")
CURSOR = re.compile(r"^\d+(?:\.\d+)*$")
PLACE = re.compile(r"^([A-Za-z0-9._-]+)/(\d+)/(\d+)$")
JSON_VALUE = re.compile(r'"(\w+)":\s*"([^"]*)"')
PLACEHOLDER = re.compile(r"<([A-Za-z][A-Za-z ]*)>")


def normalize_id(value):
    if value.startswith("<uuid>"):
        return value
    if LOCAL_ID.match(value) and not CURSOR.match(value):
        return "<epoch>-<n>"
    if CURSOR.match(value):
        return re.sub(r"\d+", "<n>", value)
    place = PLACE.match(value)
    if place:
        return "%s/%s/<n>" % (place.group(1), place.group(2))
    return value


def normalize(line):
    """One line with what must vary replaced by placeholders (see the module's doc)."""
    line = UUID.sub("<uuid>", line)
    line = TIME.sub("<time>", line)
    m = ID_LINE.match(line)
    if m:
        line = m.group(1) + normalize_id(m.group(2))
    return ID_JSON.sub(lambda j: j.group(1) + normalize_id(j.group(2)) + j.group(3), line)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def clean_environment():
    """The test's environment without any SSE_ setting: a server is configured only by
    what the page's line says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSE_")}
    env["NO_COLOR"] = "1"
    return env


def frames_of(text):
    """The complete frames (blank-line separated blocks) of a stream's output."""
    end = text.rfind("\n\n")
    if end < 0:
        return []
    return [f for f in text[:end].split("\n\n") if f != ""]


def block_frames(lines):
    frames, current = [], []
    for line in lines:
        if line.strip() == "":
            if current:
                frames.append("\n".join(current))
                current = []
        else:
            current.append(line.rstrip())
    if current:
        frames.append("\n".join(current))
    return frames


def is_presence(frame):
    return "event: presence" in frame.split("\n")


def is_comment(frame):
    return all(line.startswith(":") for line in frame.split("\n"))


def shown_frames(expected, frames):
    """The frames a page's block is compared with: without `presence` frames and
    comments, unless the block shows one of that kind."""
    keep_presence = any(is_presence(f) for f in expected)
    keep_comments = any(is_comment(f) for f in expected)
    return [
        f
        for f in frames
        if (keep_presence or not is_presence(f)) and (keep_comments or not is_comment(f))
    ]


def frame_lines(frames):
    """Frames as normalised lines, each frame followed by its blank line."""
    return [normalize(l) for f in frames for l in f.split("\n") + [""]]


def self_test():
    """The comparison's own rules, on made-up frames (no server needed)."""
    page = block_frames("retry: 2000\n\nid: 232.10280.266\ndata: via the bus\n".split("\n"))
    wire = frames_of(
        "retry: 2000\n\nevent: presence\ndata: {\"connections\":1,\"instances\":2}\n\n"
        ": keep-alive-text\n\nid: 5.0.17\ndata: via the bus\n\nid: 6.0"
    )
    assert frame_lines(shown_frames(page, wire)) == frame_lines(page), "presence/comments not ignored"
    assert len(shown_frames(page + ["event: presence\ndata: {}"], wire)) == 3, "a shown presence dropped"
    assert normalize("id: 1042") != normalize("id: 232.10280.266"), "an id's shape is lost"
    assert normalize("id: 1x2k9f-41") == normalize("id: p6fxwm-0") == "id: <epoch>-<n>"
    assert normalize('{"delivered":0,"id":"v3_messages/0/231"}') == '{"delivered":0,"id":"v3_messages/0/<n>"}'
    assert normalize('{"delivered":0,"id":"v3_messages/1/231"}') != normalize('{"delivered":0,"id":"v3_messages/0/2"}')
    assert normalize('{"reason":"unknown_id","lastEventId":"x"}') != normalize('{"lastEventId":"x","reason":"unknown_id"}')
    assert normalize('"createdAt":"2026-12-06T22:01:20.292339877Z"') == '"createdAt":"<time>"'


class Failure(Exception):
    """A step that leaves the rest of the page nothing to run against."""


class Stream:
    """A `curl -N` running in the background, its output collected as it arrives."""

    def __init__(self, name, command, env, log):
        self.name, self.command = name, command
        self.proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        self.data = bytearray()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            with self.lock:
                self.data.extend(chunk)

    def text(self):
        with self.lock:
            return self.data.decode("utf-8", "replace")

    def frames(self):
        return frames_of(self.text())

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        if self.running():
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.reader.join(timeout=3)


class Page:
    def __init__(self, path, work):
        self.path = path
        self.name = os.path.relpath(path, ROOT)
        self.work = work
        self.bin = os.environ.get("SSE_SERVER_BIN") or os.path.join(ROOT, "target/debug/sse-server")
        self.kafka = os.environ.get("SSE_TEST_KAFKA")
        self.dynamodb = os.environ.get("SSE_TEST_DYNAMODB")
        run = uuid.uuid4().hex[:12]
        # The run's names, made for this page: topics and the table (unique per run).
        self.names = {
            "v3_messages": "guide-v3-messages-" + run,
            "v4_messages": "guide-v4-messages-" + run,
            "v4_events": "guide-v4-events-" + run,
            "report_status": "guide-report-status-" + run,
        }
        self.writers_group = "guide-v4-writers-" + run
        self.presence_topic = "guide-presence-" + run
        self.ports = {}  # the page's port → the run's
        self.servers = {}  # the page's port → (Popen, log path)
        self.streams = {}
        self.vars = {}
        self.values = {}  # JSON key → the last value printed
        self.the_id = None
        self.outputs = None  # the last `run` block's commands' output
        self.used_kafka = self.used_dynamodb = False
        self.checks = 0
        self.failures = []
        self.shown = []  # -v: what each check saw
        self.notes = []
        self.log = open(os.path.join(work, "stderr.log"), "wb")

    # --- substitutions ------------------------------------------------------------

    def port(self, page_port):
        if page_port not in self.ports:
            self.ports[page_port] = free_port()
        return self.ports[page_port]

    def to_run(self, line):
        """A page's command as this run executes it."""
        def placeholder(m):
            key = m.group(1)
            if key == "the id":
                if self.the_id is None:
                    raise Failure("`<the id>` before any stopped stream printed an id")
                return self.the_id
            if key in self.values:
                return self.values[key]
            raise Failure("`<%s>`: no command or stream printed a %r yet" % (key, key))

        line = PLACEHOLDER.sub(placeholder, line)
        line = re.sub(r"(?<=:)(%s)\b" % "|".join(PAGE_PORTS), lambda m: self.port(m.group(1)), line)
        if PAGE_KAFKA in line:
            self.used_kafka = True
            line = line.replace(PAGE_KAFKA, self.need("kafka"))
        if PAGE_DYNAMODB in line:
            self.used_dynamodb = True
            line = line.replace(PAGE_DYNAMODB, self.need("dynamodb"))
        for page_name, run_name in self.names.items():
            line = re.sub(r"\b%s\b" % page_name, run_name, line)
        line = line.replace("target/release/sse-server", shlex.quote(self.bin))
        return line

    def need(self, service):
        address = self.kafka if service == "kafka" else self.dynamodb
        if not address:
            raise Failure(
                "the page's servers use %s: set %s (scripts/test.sh does, after scripts/services.sh up)"
                % (service, "SSE_TEST_KAFKA" if service == "kafka" else "SSE_TEST_DYNAMODB")
            )
        return address

    def to_page(self, text):
        """What the run printed, with the run's ports and names put back to the page's."""
        for page_port, run_port in self.ports.items():
            text = re.sub(r"(?<=:)%s\b" % run_port, page_port, text)
        for page_name, run_name in self.names.items():
            text = text.replace(run_name, page_name)
        if self.kafka and self.kafka != PAGE_KAFKA:
            text = text.replace(self.kafka, PAGE_KAFKA)
        if self.dynamodb and self.dynamodb != PAGE_DYNAMODB:
            text = text.replace(self.dynamodb, PAGE_DYNAMODB)
        return text

    def command_env(self):
        env = clean_environment()
        env.update(self.vars)
        if "3000" in self.ports:
            env["SSE_URL"] = "http://localhost:" + self.ports["3000"]
        if self.kafka and self.kafka != PAGE_KAFKA:
            env["SSE_KAFKA_BROKERS"] = self.kafka  # `sse-server produce`'s default broker
        return env

    def remember_values(self, text):
        for key, value in JSON_VALUE.findall(text):
            self.values[key] = value

    # --- the operations ---------------------------------------------------------------

    def fail(self, what, expected, actual):
        diff = "\n".join(
            difflib.unified_diff(expected, actual, "the page", "the server", lineterm="")
        )
        self.failures.append("%s:\n%s" % (what, diff or "(%r != %r)" % (expected, actual)))

    def op_servers(self, lines, where):
        started = []
        for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if "scripts/services.sh" in line:
                if re.search(r"scripts/services\.sh\s+up\b", line):
                    self.init_services(where)
                continue
            bind = re.search(r"--bind[ =]\S*:(\d+)", line)
            page_port = bind.group(1) if bind else "3000"
            command = line.replace(
                "scripts/run.sh", "target/release/sse-server --bind 127.0.0.1:%s" % page_port, 1
            )
            command = self.to_run(command)
            env = self.server_env()
            log_path = os.path.join(self.work, "server-%s.log" % page_port)
            log = open(log_path, "wb")
            proc = subprocess.Popen(
                ["bash", "-c", command],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.servers[page_port] = (proc, log_path)
            started.append(page_port)
        for page_port in started:
            base = "http://127.0.0.1:%s" % self.ports[page_port]
            deadline = time.monotonic() + SERVER_WAIT
            for path in ("/healthz", "/readyz"):
                while http_status(base + path) != 200:
                    if self.servers[page_port][0].poll() is not None:
                        raise Failure("%s: the server on :%s exited" % (where, page_port))
                    if time.monotonic() > deadline:
                        raise Failure("%s: the server on :%s never answered %s with 200" % (where, page_port, path))
                    time.sleep(0.1)

    def server_env(self):
        env = clean_environment()
        for page_name, setting in PAGE_NAMES.items():
            env[setting] = self.names[page_name]
        env["SSE_V4_WRITERS_GROUP"] = self.writers_group
        env["SSE_PRESENCE_TOPIC"] = self.presence_topic  # ignored by a server without it
        return env

    def init_services(self, where):
        """What `scripts/services.sh up` does once the services answer: `sse-server
        init`, here for the run's topics and table."""
        env = self.server_env()
        env["SSE_KAFKA_BROKERS"] = self.need("kafka")
        env["SSE_DYNAMODB_ENDPOINT"] = self.need("dynamodb")
        env["SSE_LOG"] = "warn"
        self.used_kafka = self.used_dynamodb = True
        done = subprocess.run(
            [self.bin, "init"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=60,
        )
        if done.returncode != 0:
            raise Failure("%s: sse-server init failed:\n%s" % (where, done.stdout.decode("utf-8", "replace")))

    def op_run(self, lines, names, where):
        names = list(names)
        outputs = []
        for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            assignment = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*(#.*)?$", line)
            if assignment:
                self.vars[assignment.group(1)] = self.to_run(assignment.group(2))
                continue
            command = self.to_run(line)
            if re.match(r"^\s*curl\b", command) and re.search(r"\s-N\b", command):
                if not names:
                    raise Failure("%s: a stream with no name in the marker: %s" % (where, line.strip()))
                name = names.pop(0)
                command = re.sub(r"^(\s*curl)\b", r"\1 -sS --max-time 60", command, count=1)
                stream = Stream(name, command, self.command_env(), self.log)
                self.streams[name] = stream
                deadline = time.monotonic() + STREAM_WAIT
                while not stream.frames():
                    if not stream.running() or time.monotonic() > deadline:
                        raise Failure(
                            "%s: stream %s printed no frame: %s\n%s"
                            % (where, name, line.strip(), stream.text())
                        )
                    time.sleep(0.02)
                continue
            command = re.sub(r"^(\s*curl)\b", r"\1 -sS", command, count=1)
            try:
                done = subprocess.run(
                    ["bash", "-c", command],
                    cwd=ROOT,
                    env=self.command_env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=COMMAND_TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                raise Failure("%s: did not end within %d s: %s" % (where, COMMAND_TIMEOUT, line.strip()))
            out = done.stdout.decode("utf-8", "replace")
            if out and not out.endswith("\n"):
                out += "\n"
            self.remember_values(out)
            outputs.append(out)
        self.outputs = "".join(outputs)

    def op_output(self, lines, where):
        if self.outputs is None:
            raise Failure("%s: an output block with no run block before it" % where)
        expected = [normalize(l.rstrip()) for l in lines]
        actual = [normalize(l.rstrip()) for l in self.to_page(self.outputs).split("\n")]
        while expected and expected[-1] == "":
            expected.pop()
        while actual and actual[-1] == "":
            actual.pop()
        self.checks += 1
        self.shown.append(("%s: output" % where, self.to_page(self.outputs)))
        if expected != actual:
            self.fail("%s: the commands' output" % where, expected, actual)

    def op_stream(self, lines, names, where):
        expected = block_frames(lines)

        def shown(stream):
            return shown_frames(expected, [self.to_page(f) for f in stream.frames()])

        for name in names:
            stream = self.streams.get(name)
            if stream is None:
                raise Failure("%s: no stream named %s" % (where, name))
            deadline = time.monotonic() + STREAM_WAIT
            while len(shown(stream)) < len(expected) and stream.running() and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(STREAM_GRACE)
            actual = shown(stream)
            for frame in stream.frames():
                self.remember_values(frame)
            self.checks += 1
            self.shown.append(("%s: stream %s" % (where, name), "\n\n".join(actual)))
            want, got = frame_lines(expected), frame_lines(actual)
            if want != got:
                self.fail("%s: stream %s (%s)" % (where, name, stream.command), want, got)

    def op_stop(self, names, where):
        for name in names:
            stream = self.streams.get(name)
            if stream is None:
                raise Failure("%s: no stream named %s" % (where, name))
            stream.stop()
            ids = [l[3:].strip() for f in stream.frames() for l in f.split("\n") if l.startswith("id:")]
            if ids:
                self.the_id = ids[-1]

    def op_log(self, lines, ports, where):
        for page_port in ports:
            if page_port not in self.servers:
                raise Failure("%s: no server on :%s" % (where, page_port))
            with open(self.servers[page_port][1], encoding="utf-8", errors="replace") as log:
                logged = [normalize(self.to_page(l.rstrip("\n"))) for l in log]
            for line in lines:
                if not line.strip():
                    continue
                self.checks += 1
                if normalize(line.rstrip()) not in logged:
                    near = difflib.get_close_matches(normalize(line.rstrip()), logged, 3, 0.3) or logged[:12]
                    self.fail(
                        "%s: a line the log of :%s does not have" % (where, page_port),
                        [normalize(line.rstrip())],
                        near,
                    )

    # --- the page -----------------------------------------------------------------------

    def steps(self):
        """(line number, operation, arguments, the block's lines or None) in page order."""
        with open(self.path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        i = 0
        while i < len(lines):
            m = MARKER.match(lines[i])
            if not m:
                i += 1
                continue
            words = m.group(1).split()
            op, args, where = words[0], words[1:], "%s:%d" % (self.name, i + 1)
            if op == "stop":
                yield where, op, args, None
                i += 1
                continue
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            fence = FENCE.match(lines[j]) if j < len(lines) else None
            if not fence:
                raise Failure("%s: `%s` must be followed by a fenced block" % (where, op))
            k = j + 1
            while k < len(lines) and not lines[k].strip().startswith(fence.group(1)):
                k += 1
            yield where, op, args, lines[j + 1 : k]
            i = k + 1

    def run(self):
        started = time.monotonic()
        try:
            for where, op, args, block in self.steps():
                if op == "servers":
                    self.op_servers(block, where)
                elif op == "run":
                    self.op_run(block, args, where)
                elif op == "output":
                    self.op_output(block, where)
                elif op == "stream":
                    self.op_stream(block, args, where)
                elif op == "stop":
                    self.op_stop(args, where)
                elif op == "log":
                    self.op_log(block, args, where)
                else:
                    raise Failure("%s: unknown guide-test operation %r" % (where, op))
        except Failure as e:
            self.failures.append(str(e))
        finally:
            for stream in self.streams.values():
                stream.stop()
            for proc, _ in self.servers.values():
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            self.log.close()
        if self.checks == 0 and not self.failures:
            self.failures.append("no guide-test marker: nothing of the page was checked")
        self.seconds = time.monotonic() - started
        return self

    def cleanup(self):
        """Deletes the run's topics and table (best effort: they are unique to it)."""
        if self.used_kafka:
            try:
                from confluent_kafka.admin import AdminClient

                admin = AdminClient({"bootstrap.servers": self.kafka})
                topics = [self.names[t] for t in ("v3_messages", "v4_messages", "v4_events")]
                topics.append(self.presence_topic)
                existing = admin.list_topics(timeout=5).topics
                doomed = [t for t in topics if t in existing]
                for future in admin.delete_topics(doomed, operation_timeout=10).values():
                    future.result(timeout=15)
            except Exception as e:  # noqa: BLE001 - best effort
                self.notes.append("could not delete the run's topics: %s" % e)
        if self.used_dynamodb:
            try:
                import boto3

                client = boto3.client(
                    "dynamodb",
                    endpoint_url=self.dynamodb,
                    region_name="us-east-1",
                    aws_access_key_id="guide",
                    aws_secret_access_key="guide",
                )
                client.delete_table(TableName=self.names["report_status"])
            except Exception as e:  # noqa: BLE001 - best effort
                if "ResourceNotFound" not in str(e):
                    self.notes.append("could not delete the run's table: %s" % e)

    def report(self):
        out = []
        if self.failures:
            out.append("FAIL %s (%.1f s): %d of %d checks failed" % (
                self.name, self.seconds, len(self.failures), max(self.checks, len(self.failures))))
            for failure in self.failures:
                out.append("  " + failure.replace("\n", "\n  "))
            for page_port, (_, log_path) in sorted(self.servers.items()):
                with open(log_path, encoding="utf-8", errors="replace") as log:
                    tail = log.read().splitlines()[-15:]
                out.append("  the server on :%s (run port %s), its log's last lines:" % (page_port, self.ports[page_port]))
                out.extend("    | " + l for l in tail)
            with open(self.log.name, encoding="utf-8", errors="replace") as log:
                errors = log.read().strip()
            if errors:
                out.append("  the commands' stderr:")
                out.extend("    | " + l for l in errors.splitlines()[-15:])
        else:
            out.append("ok   %s (%.1f s): %d checks" % (self.name, self.seconds, self.checks))
        out.extend("  note: " + n for n in self.notes)
        if VERBOSE:
            for what, text in self.shown:
                out.append("  %s printed:" % what)
                out.extend("    | " + l for l in text.rstrip("\n").split("\n"))
        return "\n".join(out)


VERBOSE = False


def main(argv):
    global VERBOSE
    if argv[:1] == ["-v"]:
        VERBOSE, argv = True, argv[1:]
    self_test()
    pages = [os.path.join(ROOT, p) for p in (argv or PAGES)]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="guide-test-") as work:
        runs = []
        for page in pages:
            page_work = os.path.join(work, os.path.basename(page))
            os.mkdir(page_work)
            runs.append(Page(page, page_work))
        with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
            done = list(pool.map(Page.run, runs))
            list(pool.map(Page.cleanup, done))
        for page in done:
            print(page.report())
    failed = [p.name for p in done if p.failures]
    print(
        "guide: %d pages, %d checks, %s (%.1f s)"
        % (len(done), sum(p.checks for p in done),
           "failed: " + ", ".join(failed) if failed else "all passed", time.monotonic() - started)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
