#!/usr/bin/env python3
"""bench_report.py [--kafka-only] RESULTS_DIR DOCS_DIR — turn the JSON of scripts/bench.sh's
runs into DOCS_DIR/BENCHMARKS.md (sse-server and its peers Nchan, Centrifugo and Mercure
side by side, one table per scenario family, then the goals each marked met or not) and
copy the charts worth reading to DOCS_DIR/bench-*.png. Every figure comes from the JSON;
a run or peer that is missing renders as "not measured" with the reason bench.sh left.

Where the JSON is: sse-server's runs in RESULTS_DIR/*.json, each peer's under
RESULTS_DIR/peers/NAME/ with the same file names (or RESULTS_DIR/peers/NAME-skipped
holding why it was left out), and Nchan's other fan-out configurations, when measured,
in RESULTS_DIR/peers/nchan-CONFIG/ (`all`: subscribers on the `all` channel alone,
`1w`: one worker); a fan-out row shows the best of Nchan's configurations at that rate.

The Kafka part of the page sits between marker comments, `<!-- kafka:begin -->` …
`<!-- kafka:end -->` (the "Kafka ingest" section, its charts and commands) and
`<!-- kafka-goals:begin -->` … `<!-- kafka-goals:end -->` (the Kafka goals). With
--kafka-only (scripts/bench.sh --kafka) only those two blocks of the existing
DOCS_DIR/BENCHMARKS.md are rewritten, and only the Kafka charts; the rest stays.
Both modes render the blocks alike.

The page names no machine's directories: a path inside this checkout is written
relative to it, and an absolute path elsewhere in a command (a Python or a server
binary given by its full path) by its file name alone.

Only the standard library; called by scripts/bench.sh. Importing it does nothing:
the work is in main() (scripts/test_bench_report.py renders hand-made results)."""

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The checkout (as given and with its links resolved): its absolute path never reaches the page.
CHECKOUTS = sorted({os.path.dirname(HERE), os.path.dirname(os.path.realpath(HERE))}, key=len, reverse=True)
PAGE = "BENCHMARKS.md"
KAFKA_BLOCK, KAFKA_GOALS_BLOCK = "kafka", "kafka-goals"
# The peers bench.sh measures, in the order of their columns: (directory under
# peers/, name on the page, the `protocol` their runs' JSON carries).
PEERS = (("nchan", "Nchan", "nchan"), ("centrifugo", "Centrifugo", "centrifugo"), ("mercure", "Mercure", "mercure"))

# Set by load(): the results directories, the runs found in them, and the reasons
# bench.sh left for what it did not measure. SERVERS: sse-server, then the peers;
# SSE and NCHAN are the runs of the first two.
RESULTS = DOCS = None
SERVERS = []
SSE, NCHAN = {}, {}
NCHAN_REASON = KAFKA_REASON = IDLE_REASON = None


class Server:
    """One server measured (or not): its runs, and why there are none."""

    def __init__(self, key, name, protocol, directory, runs, reason=None, variants=()):
        self.key, self.name, self.protocol = key, name, protocol
        self.directory, self.runs, self.reason = directory, runs, reason
        # (configuration, directory, runs) of each configuration measured, the default
        # first (its configuration None unless there are others: Nchan's fan-out).
        self.variants = [(nchan_config("") if variants else None, directory, runs)] + list(variants)

    def chart_prefix(self):
        return "" if self.key == "sse-server" else self.key + "-"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001 - best effort
        return "?"


def relative_to_checkout(text):
    """TEXT with every absolute path inside this checkout made relative to it (the
    checkout itself becomes `.`)."""
    for root in CHECKOUTS:
        text = re.sub(re.escape(root) + r"(?:/|(?![^\s'\"`),;]))",
                      lambda m: "" if m.group(0).endswith("/") else ".", text)
    return text


# An absolute path of two or more parts standing as a word of a command (after a space,
# `=` or a quote, or first), up to the next space; a space escaped by `printf %q` ends
# it too, and its backslash stays.
ABSOLUTE_PATH = re.compile(r"(?<![^\s='\"])/(?:[^\s/]+/)+([^\s/]+)")


def portable(text):
    """TEXT (a command, a path) as any machine would read it: paths inside this checkout
    relative to it, any other absolute path as its file name alone."""
    return ABSOLUTE_PATH.sub(r"\1", relative_to_checkout(text))


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def load_runs(directory):
    runs = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        name = os.path.basename(path)[:-5]
        if name == "smoke":
            continue
        try:
            with open(path) as f:
                runs[name] = json.load(f)
        except (OSError, ValueError):
            runs[name] = {"failed_exit": "unreadable JSON"}
        if not isinstance(runs[name], dict):
            runs[name] = {"failed_exit": "not a JSON object"}
    return runs


def nchan_config(suffix):
    """What peers/nchan-SUFFIX/ measured, from its name ("" is peers/nchan/, bench/peers/nchan.conf's
    defaults): `all` → subscribers on the `all` channel alone (else multiplexed: their user's
    channel and `all`), `Nw` → N worker processes (else 2)."""
    tokens = [t for t in suffix.split("-") if t]
    workers = next((int(t[:-1]) for t in tokens if t[-1:] == "w" and t[:-1].isdigit()), 2)
    other = [t for t in tokens if t != "all" and not (t[-1:] == "w" and t[:-1].isdigit())]
    return ", ".join(["`all` alone" if "all" in tokens else "multiplexed",
                      "%d worker%s" % (workers, "" if workers == 1 else "s")] + ["`%s`" % t for t in other])


def load(results, docs):
    global RESULTS, DOCS, SERVERS, SSE, NCHAN, NCHAN_REASON, KAFKA_REASON, IDLE_REASON
    RESULTS, DOCS = results, docs
    SSE = load_runs(RESULTS)
    SERVERS = [Server("sse-server", "sse-server", "sse-server", RESULTS, SSE)]
    peers = os.path.join(RESULTS, "peers")
    for key, name, protocol in PEERS:
        directory = os.path.join(peers, key)
        runs = load_runs(directory)
        reason = None if runs else (read_text(os.path.join(peers, key + "-skipped"))
                                    or "no results in peers/%s/" % key)
        variants = []
        if key == "nchan":
            for vdir in sorted(glob.glob(os.path.join(peers, "nchan-*"))):
                vruns = {k: d for k, d in load_runs(vdir).items() if fanout_label(k)} if os.path.isdir(vdir) else {}
                if vruns:
                    variants.append((nchan_config(os.path.basename(vdir)[len("nchan-"):]), vdir, vruns))
        SERVERS.append(Server(key, name, protocol, directory, runs, reason, variants))
    NCHAN, NCHAN_REASON = SERVERS[1].runs, SERVERS[1].reason
    KAFKA_REASON = read_text(os.path.join(RESULTS, "kafka-skipped"))
    IDLE_REASON = read_text(os.path.join(RESULTS, "kafka-idle-skipped")) or KAFKA_REASON


def measured_servers():
    return [s for s in SERVERS if not s.reason]


def server_of(runs):
    return next((s for s in SERVERS if any(runs is r for _, _, r in s.variants)), None)


def is_kafka(name):
    return name.startswith("kafka-")


def get(d, path, default=None):
    """d["a"]["b"]... for path "a.b", or default when anything on the way is missing."""
    for key in path.split("."):
        if not isinstance(d, dict) or d.get(key) is None:
            return default
        d = d[key]
    return d


def ok(d):
    return isinstance(d, dict) and not d.get("failed_exit")


def clean(d):
    """A run that finished with every event it should have received."""
    return ok(d) and not d.get("frozen_after_s") and get(d, "lost", 1) == 0 and get(d, "duplicated", 1) == 0


# ----------------------------------------------------------------- formatting
def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def num(v):
    if v is None:
        return "–"
    if not number(v):
        return str(v)
    if v != v or v in (float("inf"), float("-inf")):
        return str(v)
    if isinstance(v, float) and not v.is_integer():
        return "%.2f" % v if abs(v) < 100 else "{:,.0f}".format(v)
    return "{:,}".format(int(v))


def ms(v):
    if v is None:
        return "–"
    if not number(v):
        return str(v)
    return "%.2f" % v if v < 10 else ("%.1f" % v if v < 1000 else "{:,.0f}".format(v))
def secs(v):
    return "–" if v is None else ("%.2f" % v if v < 10 else "%.1f" % v)


def mib(kib):
    return "–" if kib is None else "%.1f" % (kib / 1024)


def kib(nbytes):
    return "–" if nbytes is None else "%.1f KiB" % (nbytes / 1024)


def pct(v):
    return "–" if v is None else "%.1f %%" % v


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values, fmt):
    """median (min–max) of a repeated measurement, or the one value."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return fmt(values[0])
    return "%s (%s … %s)" % (fmt(statistics.median(values)), fmt(min(values)), fmt(max(values)))


def why_not(runs, names, what="run"):
    """Why there is no figure: a skipped peer (with the reason bench.sh left), a failed
    run, or absence."""
    srv = server_of(runs)
    if srv is not None and srv.reason:
        return "not measured (%s)" % srv.reason
    for n in names:
        d = runs.get(n)
        if isinstance(d, dict) and d.get("failed_exit"):
            return "%s failed (exit %s)" % (n, d["failed_exit"])
    return "not measured (no %s %s)" % (what, " / ".join(names))


def frozen_note(d):
    return " (frozen after %s s)" % num(d["frozen_after_s"]) if ok(d) and d.get("frozen_after_s") else ""


def repeats(runs, base):
    """The runs of a repeated scenario (BASE-r1, -r2, ...; a single BASE from an older run)."""
    reps = sorted((k for k in runs if k.startswith(base + "-r") and k[len(base) + 2:].isdigit()),
                  key=lambda k: int(k[len(base) + 2:]))
    return reps or ([base] if base in runs else [])


# The page being written: w() appends a line; render() collects a section's lines apart.
out = []


def w(line):
    out.append(relative_to_checkout(line))


def render(section, *args):
    """The lines section(*args) writes, without adding them to the page."""
    global out
    saved, out = out, []
    try:
        section(*args)
        return out
    finally:
        out = saved


def table(header, align, rows):
    w("| " + " | ".join(header) + " |")
    w("| " + " | ".join(align) + " |")
    for r in rows:
        w("| " + " | ".join(r) + " |")
    w("")


def begin(block):
    w("<!-- %s:begin -->" % block)


def end(block):
    w("<!-- %s:end -->" % block)


def commit():
    return sh("git rev-parse --short HEAD") + (
        " (with uncommitted changes)" if sh("git status --porcelain -- src Cargo.toml Cargo.lock") else "")


def copy_chart(directory, name, prefix):
    src = os.path.join(directory, name + ".png")
    if not os.path.exists(src):
        return None
    dst = "bench-%s%s.png" % (prefix, name)
    shutil.copy(src, os.path.join(DOCS, dst))
    return dst


def read_commands():
    """(name, command) per line of commands.tsv, in the order bench.sh ran them."""
    tsv = os.path.join(RESULTS, "commands.tsv")
    if not os.path.exists(tsv):
        return []
    with open(tsv) as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if "\t" in line]
    return [[name, portable(cmd)] for name, cmd in rows]


# ----------------------------------------------------------------- header
PEER_SETUP = {
    "nchan": "Nchan (nginx + `libnginx-mod-nchan`, `bench/peers/nchan.conf`)",
    "centrifugo": "Centrifugo (`bench/peers/centrifugo.json`)",
    "mercure": "Mercure (Caddy with the Mercure module, `bench/peers/Caddyfile`)",
}


def header():
    started = read_text(os.path.join(RESULTS, "started")) or "?"
    peers = [PEER_SETUP.get(s.key, s.name) for s in SERVERS[1:]]
    skipped = ["%s (%s)" % (s.name, s.reason) for s in SERVERS[1:] if s.reason]
    w("# Benchmarks\n")
    w("Generated by `scripts/bench.sh` (load tool: `bench/`, `sse-bench`) on %s, sse-server at commit %s, "
      "beside %s.%s Client, servers and broker share one machine (loopback), so every figure is what one "
      "box does while also running the load generator.\n" % (
          started, commit(), ", ".join(peers[:-1]) + " and " + peers[-1] if len(peers) > 1 else "".join(peers),
          " Not measured: %s." % "; ".join(skipped) if skipped else ""))


# ----------------------------------------------------------------- side by side
def skipped_rows(lead, width, shown=()):
    """One row per peer left out altogether (and not among SHOWN): LEAD empty cells, its name,
    the reason, then empty cells up to WIDTH columns."""
    return [[""] * lead + [s.name, "not measured (%s)" % s.reason] + [""] * (width - lead - 2)
            for s in SERVERS if s.reason and s not in shown]


def idle_cells(runs, name):
    d = runs.get(name)
    if not ok(d):
        return [why_not(runs, [name])] + [""] * 3
    c, r = d.get("connections") or {}, d.get("server_rss_kib") or {}
    failed = " (%s failed)" % num(c["failed"]) if c.get("failed") else ""
    return [kib(r.get("per_stream_bytes")) + failed, "%s → %s" % (mib(r.get("before")), mib(r.get("full"))),
            mib(r.get("after_close")), num(c.get("setup_per_s"))]


def rate_of(name):
    tail = name.split("-")[-1]
    return int(tail) if tail.isdigit() else None


def fanout_label(name):
    """"1k" for fanout-1k-RATE (a fan-out series at a rising rate), else None."""
    parts = name.split("-")
    return parts[1] if len(parts) == 3 and parts[0] == "fanout" and parts[2].isdigit() else None


def variant_key(d):
    """Which of two runs of a configuration at the same rate is the better: one that finished,
    with nothing lost, with p99 ≤ 100 ms, with most deliveries/s, with the lower p99."""
    p99 = get(d, "latency.p99_ms")
    return (ok(d), clean(d), p99 is not None and p99 <= 100, get(d, "deliveries.per_s", 0) if ok(d) else 0,
            -(p99 if p99 is not None else float("inf")))


def fanout_series(srv, label):
    """{name: (run, configuration)} of srv's fan-out series to LABEL subscribers: at each rate the
    best of its configurations (the configuration is None when it has only one)."""
    series = {}
    for cfg, _, runs in srv.variants:
        for k, d in runs.items():
            if fanout_label(k) == label and (k not in series or variant_key(d) > variant_key(series[k][0])):
                series[k] = (d, cfg)
    return series


def series_runs(srv, label):
    return {k: d for k, (d, _) in fanout_series(srv, label).items()}


def with_config(name, cfg):
    return "%s (%s)" % (name, cfg) if cfg else name


def fanout_cells(runs, name):
    d = runs.get(name)
    if not ok(d):
        return [why_not(runs, [name])] + [""] * 4
    return [num(get(d, "publish.achieved_rate")), num(get(d, "deliveries.per_s")) + frozen_note(d),
            ms(get(d, "latency.p50_ms")), ms(get(d, "latency.p99_ms")), num(get(d, "lost"))]


def stop_reason(d):
    """Why bench.sh's fan-out series stopped after this run (its conditions), or that the list ended."""
    if not ok(d):
        return "failed (exit %s)" % (d.get("failed_exit") if isinstance(d, dict) else "?")
    p99, asked, sent = get(d, "latency.p99_ms"), get(d, "publish.target_rate"), get(d, "publish.achieved_rate")
    why = []
    if d.get("frozen_after_s"):
        why.append("frozen after %s s" % num(d["frozen_after_s"]))
    if p99 is not None and p99 > 1000:
        why.append("p99 %s ms" % ms(p99))
    if get(d, "lost", 0):
        why.append("lost %s" % num(get(d, "lost")))
    if number(asked) and number(sent) and sent < 0.8 * asked:
        why.append("publishers at %s of %s/s" % (num(sent), num(asked)))
    return ", ".join(why) or "the last rate of the list"


def fanout_family(label):
    series = [(s, fanout_series(s, label)) for s in SERVERS]
    names = sorted({k for _, f in series for k in f}, key=rate_of)
    if not names:
        return
    runs = [d for _, f in series for d, _ in f.values()]
    subscribers = next((get(d, "connections.requested") for d in runs if get(d, "connections.requested")), None)
    duration = next((get(d, "publish.duration_s") for d in runs if get(d, "publish.duration_s")), None)
    w("### Fan-out to %s subscribers (one broadcast channel, %s s per rate)\n" % (num(subscribers), num(duration)))
    rows = []
    for k in names:
        for s, f in series:
            if k in f:
                d, cfg = f[k]
                rows.append([num(rate_of(k)), with_config(s.name, cfg)] + fanout_cells({k: d}, k))
            elif f and rate_of(k) < max(rate_of(n) for n in f):
                rows.append([num(rate_of(k)), s.name, "not run"] + [""] * 4)
    rows += [["", s.name, why_not(s.runs, ["fanout-%s-*" % label])] + [""] * 4
             for s, f in series if not f and not s.reason]
    rows += skipped_rows(1, 7, [s for s, f in series if f])
    table(["broadcasts/s asked", "server", "broadcasts/s sent", "deliveries/s", "p50 ms", "p99 ms", "lost"],
          ["---:", "---"] + ["---:"] * 5, rows)
    stops = []
    for s in SERVERS:
        for cfg, _, vruns in s.variants:
            mine = [k for k in vruns if fanout_label(k) == label]
            if mine:
                last = max(mine, key=rate_of)
                stops.append("%s after %s/s (%s)" % (with_config(s.name, cfg), num(rate_of(last)),
                                                     stop_reason(vruns[last])))
    w("Each server's rates rise until p99 passes 1 s, an event is lost or the publishers fall below 80 %% of "
      "the rate; rates past that point are not run. Series ended: %s.\n" % "; ".join(stops))
    configs = [(s, [cfg for cfg, _, vruns in s.variants if any(fanout_label(k) == label for k in vruns)])
               for s in SERVERS if len(s.variants) > 1]
    for s, cfgs in configs:
        if len(cfgs) > 1:
            w("%s: at each rate the best of its configurations measured (%s): a run that lost nothing first, "
              "then p99 ≤ 100 ms, then most deliveries/s. Multiplexed: each subscriber on its user's channel "
              "and `all` (`/v2/sse?username=U`, what unicast needs); `all` alone: `/v2/sse/all`.\n" % (
                  s.name, "; ".join(cfgs)))


def multi_cells(runs, names):
    """accepted msgs/s, deliveries/s, p50, p99, lost over repeated runs (median, range)."""
    ds = [runs[n] for n in names if ok(runs.get(n))]
    if not ds:
        return [why_not(runs, names or ["?"])] + [""] * 4
    frozen = "".join(frozen_note(d) for d in ds[:1] if d.get("frozen_after_s"))
    return [spread([get(d, "publish.achieved_rate") for d in ds], num) + frozen,
            spread([get(d, "deliveries.per_s") for d in ds], num),
            spread([get(d, "latency.p50_ms") for d in ds], ms),
            spread([get(d, "latency.p99_ms") for d in ds], ms),
            num(sum(get(d, "lost", 0) for d in ds))]


def per_reader(d):
    connected, stalled = get(d, "connections.connected", 0), get(d, "connections.stalled", 0)
    return get(d, "deliveries.per_s", 0) / max(connected - stalled, 1)


def first(base, path):
    """A setting of a scenario, from the first of its runs (any server) that has it."""
    for s in SERVERS:
        for n in repeats(s.runs, base):
            if get(s.runs.get(n), path) is not None:
                return get(s.runs[n], path)
    return None


def rate_title(base):
    rate = first(base, "publish.target_rate")
    return "?" if rate is None else ("flat out" if rate == 0 else "at %s msgs/s" % num(rate))


UNICAST = ["unicast-1000-r5000", "unicast-1000-max"]
# Stalled readers: pairs run 3 times, fresh server per pair.
PAIRS = [("unicast-1000-max", "stalled-1pct-max"), ("fanout-1k-1000-base", "fanout-1k-1000-stalled")]


def pair_title(base):
    kind = "fan-out" if base.startswith("fanout") else "unicast"
    rate, pad = first(base, "publish.target_rate"), first(base, "publish.pad_bytes")
    return "%s %s%s" % (kind, "flat out" if not rate else "%s/s" % num(rate),
                        " × %s B padding" % num(pad) if pad else "")


def pair_stats(runs, base, stalled):
    """Per reading stream/s and p99 of each side, the cost within each pair, overflow closes."""
    def by_rep(name):
        return {n[len(name):]: runs[n] for n in repeats(runs, name) if ok(runs.get(n))}
    bs, ss = by_rep(base), by_rep(stalled)
    if not bs or not ss:
        return None
    b, s = list(bs.values()), list(ss.values())
    both = sorted(set(bs) & set(ss))
    costs = [(1 - per_reader(ss[r]) / per_reader(bs[r])) * 100 for r in both if per_reader(bs[r])]
    return {
        "n": len(both),
        "base_rate": [per_reader(d) for d in b], "stalled_rate": [per_reader(d) for d in s],
        "base_p99": [get(d, "latency.p99_ms") for d in b], "stalled_p99": [get(d, "latency.p99_ms") for d in s],
        "cost": costs,
        "overflow": [get(d, "server_metrics_delta.sse_connections_closed_overflow_total") for d in s],
        "lost": sum(get(d, "lost", 0) for d in b + s),
    }


def f1(v):
    return "%.1f" % v


def signed(v):
    return "%+.1f %%" % v


def idle_section():
    names = sorted({k for s in SERVERS for k in s.runs if k.startswith("idle-")},
                   key=lambda k: next((get(s.runs[k], "connections.requested") for s in SERVERS
                                       if get(s.runs.get(k), "connections.requested")), 0))
    if not names:
        return
    w("### Idle streams (one stream per user; RSS of the server process, Nchan: its one worker)\n")
    rows = []
    for k in names:
        n = next((get(s.runs[k], "connections.requested") for s in SERVERS
                  if get(s.runs.get(k), "connections.requested")), None)
        for s in measured_servers():
            rows.append([num(n) if n is not None else k, s.name] + idle_cells(s.runs, k))
    rows += skipped_rows(1, 6)
    table(["streams", "server", "RSS per stream", "RSS MiB start → open", "RSS MiB after close", "set-up/s"],
          ["---:", "---", "---:", "---:", "---:", "---:"], rows)


def unicast_section():
    if not any(repeats(s.runs, n) for s in SERVERS for n in UNICAST):
        return
    w("### Unicast to %s users (one channel per user, round robin from %s s of publishing)\n" % (
        num(first(UNICAST[1], "users") or first(UNICAST[0], "users")),
        num(first(UNICAST[1], "publish.duration_s") or first(UNICAST[0], "publish.duration_s"))))
    rows = []
    for base in UNICAST:
        for s in measured_servers():
            reps = len(repeats(s.runs, base))
            rows.append([rate_title(base) + (" (median of %d, range)" % reps if reps > 1 else ""), s.name]
                        + multi_cells(s.runs, repeats(s.runs, base) or [base]))
    rows += skipped_rows(1, 7)
    table(["run", "server", "msgs/s accepted", "deliveries/s", "p50 ms", "p99 ms", "lost"],
          ["---", "---"] + ["---:"] * 5, rows)


def stalled_section():
    if not any(repeats(s.runs, x) for s in SERVERS for x, _ in PAIRS):
        return
    n_streams = first(PAIRS[0][1], "connections.requested") or first(PAIRS[1][1], "connections.requested")
    n_stalled = first(PAIRS[0][1], "connections.stalled") or first(PAIRS[1][1], "connections.stalled")
    w("### Stalled readers: %s of %s streams never read after the headers, each pair on a fresh server\n" % (
        num(n_stalled), num(n_streams)))
    rows = []
    for base, stalled in PAIRS:
        title = pair_title(base)
        for s in measured_servers():
            p = pair_stats(s.runs, base, stalled)
            if p is None:
                rows.append([title, s.name, why_not(s.runs, [base, stalled])] + [""] * 5)
                continue
            rows.append(["%s (median of %d, range)" % (title, p["n"]) if p["n"] > 1 else title, s.name,
                         spread(p["base_rate"], f1), spread(p["stalled_rate"], f1), spread(p["cost"], signed),
                         "%s → %s" % (spread(p["base_p99"], ms), spread(p["stalled_p99"], ms)),
                         spread(p["overflow"], num), num(p["lost"])])
    rows += skipped_rows(1, 8)
    table(["pair", "server", "events/s per reading stream: all read", "some stalled",
           "cost to the others (per pair)", "p99 ms all read → stalled", "stalled closed for overflow",
           "lost"], ["---", "---", "---:", "---:", "---:", "---:", "---:", "---:"], rows)
    w("Cost is 1 − (stalled ÷ all-read) of the reading streams' rate within each pair (negative: the "
      "stalled run was faster). \"Closed for overflow\" is sse-server's "
      "`sse_connections_closed_overflow_total` (the peers have no such counter: –).\n")


def resume_cells(runs):
    """Subscribers back, expected, missing, repeated, before-messages again, exact subscribers,
    resets, reconnect ms (all of them), p50 / p99 ms of the resume run."""
    d = runs.get("resume")
    if not ok(d):
        return [why_not(runs, ["resume"])] + [""] * 8
    r = d.get("resume")
    if not isinstance(r, dict) or r.get("missing") is None:
        return ["not measured (resume.json has no `resume` summary)"] + [""] * 8
    subs = r.get("subscribers", get(d, "connections.requested"))
    back = get(d, "connections.connected", 0) - (r.get("reconnect_failed") or 0)
    return ["%s of %s" % (num(back), num(subs)), num(r.get("expected")), num(r.get("missing")),
            num(r.get("repeated")), num(r.get("replayed_before")),
            "%s of %s" % (num(r.get("exact_subscribers")), num(subs)), num(r.get("resets")),
            ms(r.get("reconnect_secs") * 1000 if number(r.get("reconnect_secs")) else None), "%s / %s" % (ms(get(d, "latency.p50_ms")), ms(get(d, "latency.p99_ms")))]


def resume_notes(d):
    """What else went wrong in a resume run, beyond the table's columns."""
    r = d.get("resume") if ok(d) else None
    if not isinstance(r, dict):
        return []
    notes = [(r.get("reconnect_failed"), "reconnections failed"),
             (get(d, "connections.failed"), "first connections failed"),
             (r.get("without_resume_point"), "subscribers left without a resume point"),
             (r.get("before_missing"), "messages before leaving never came"),
             (r.get("unexpected_events"), "events not meant for their subscriber")]
    return ["%s %s" % (num(n), what) for n, what in notes if n]


def resume_section():
    found = [s.runs["resume"] for s in SERVERS if isinstance(s.runs.get("resume"), dict)]
    if not found:
        return
    r = next((d["resume"] for d in found if isinstance(d.get("resume"), dict)), {})
    subs = r.get("subscribers", next((get(d, "connections.requested") for d in found
                                      if get(d, "connections.requested")), None))
    away_bc = get(r, "broadcasts.away")
    w("### Resume: %s subscribers leave and come back (`Last-Event-ID`; Centrifugo: its recovery by offset "
      "and epoch)\n" % num(subs))
    w("Each of %s subscribers (%s users) gets %s messages%s, disconnects, misses %s messages per user%s, "
      "reconnects from the last event it had, then gets %s more. Counted over the messages after it left "
      "(away and live) that the server accepted.\n" % (
          num(subs), num(r.get("users")), num(r.get("before_per_user")),
          " and a broadcast" if get(r, "broadcasts.before") else "", num(r.get("away_per_user")),
          " and %s broadcasts" % num(away_bc) if away_bc else "", num(r.get("live_per_user"))))
    rows = [[s.name] + resume_cells(s.runs) for s in SERVERS]
    table(["server", "subscribers back", "messages expected after leaving", "missing", "repeated",
           "before-messages again", "exact subscribers", "resume refused (resets)", "reconnect ms",
           "p50 / p99 ms (before and live)"], ["---"] + ["---:"] * 9, rows)
    notes = ["%s: %s" % (s.name, ", ".join(resume_notes(s.runs["resume"]))) for s in SERVERS
             if isinstance(s.runs.get("resume"), dict) and resume_notes(s.runs["resume"])]
    w("Missing: never came; repeated: came more than once; before-messages again: one it had before leaving "
      "came again; exact: a subscriber with none of these. Resets: the server said it could not resume from "
      "there (sse-server's `event: reset`; a Centrifugo subscription recovering but not recovered). The away "
      "messages wait for the reconnection by design, so latency counts the others only.%s\n" % (
          " " + "; ".join(notes) + "." if notes else ""))


def side_by_side():
    w("## sse-server, %s side by side\n" % ", ".join(s.name for s in SERVERS[1:]))
    if not any(not is_kafka(k) for s in SERVERS for _, _, runs in s.variants for k in runs):
        w("Not measured: no HTTP results in %s.\n" % portable(RESULTS))
    idle_section()
    for label in ("1k", "10k"):
        fanout_family(label)
    unicast_section()
    stalled_section()
    resume_section()


# ----------------------------------------------------------------- Kafka
KAFKA_RUNS = ("kafka-1k", "kafka-10k")
KAFKA_CHARTS = ("kafka-1k", "kafka-10k")


def config_text(cfg):
    """`key` value, ... of a client's config, without the broker address."""
    return ", ".join("`%s` %s" % (k, v) for k, v in sorted((cfg or {}).items()) if k != "bootstrap.servers")


def catchup_reason():
    return (read_text(os.path.join(RESULTS, "kafka-catchup-skipped")) or KAFKA_REASON
            or "no kafka-catchup results")


def failed_text(d, name):
    """name failed (exit N[, at STEP][: error])."""
    return "%s failed (exit %s%s%s)" % (name, d.get("failed_exit"),
                                        ", at %s" % d["failed_step"] if d.get("failed_step") else "",
                                        ": %s" % d["error"] if d.get("error") else "")


def kafka_section(kept):
    """The "Kafka ingest" section with its charts and commands, between the kafka markers;
    the charts it shows are copied to DOCS and added to kept."""
    begin(KAFKA_BLOCK)
    w("### Kafka ingest (`/v3/sse`, sse-server only) and the broker floor\n")
    started = read_text(os.path.join(RESULTS, "kafka-started"))
    if started:
        w("Kafka runs of %s, sse-server at commit %s; broker on the same machine.\n" % (started, commit()))
    runs = [k for k in KAFKA_RUNS if k in SSE]
    if not runs:
        w("Not measured: %s.\n" % (KAFKA_REASON or "no kafka-1k / kafka-10k results"))
    else:
        floor_cfg = next((get(SSE[k], "broker_floor.consumer") for k in runs
                          if get(SSE[k], "broker_floor.consumer")), None)
        rows = []
        for k in runs:
            d = SSE[k]
            if not ok(d):
                rows.append([k, why_not(SSE, [k])] + [""] * 8)
                continue
            fl = get(d, "broker_floor") or {}
            floor = (["not measured (%s)" % (fl.get("error") or "no --kafka-floor"), "", ""]
                     if "latency" not in fl else
                     [ms(get(fl, "latency.p50_ms")), ms(get(fl, "latency.p99_ms")), num(fl.get("lost"))])
            rows.append([k, num(get(d, "publish.target_rate")), num(get(d, "publish.achieved_rate")) + frozen_note(d),
                         num(get(d, "deliveries.per_s")), ms(get(d, "latency.p50_ms")), ms(get(d, "latency.p99_ms")),
                         num(get(d, "lost"))] + floor)
        table(["run", "records/s asked", "written/s", "SSE deliveries/s", "record → SSE p50 ms", "p99 ms", "lost",
               "broker floor p50 ms", "floor p99 ms", "floor lost"], ["---"] + ["---:"] * 9, rows)
        if floor_cfg:
            w("Broker floor: `bench/kafka_floor.py`, a plain consumer (%s; %s) on the same topic, from the "
              "topic's end, measured from the same scheduled times.\n" % (
                  floor_cfg.get("client", "?"), config_text(floor_cfg.get("config"))))

    idle = SSE.get("kafka-idle")
    if ok(idle):
        w("Idle instance (`kafka-idle`): the broker's CPU over %s s without sse-server, then with an idle "
          "`sse-server --kafka-brokers`:\n" % " / ".join(num(x) for x in (idle.get("window_s") or [])))
        table(["broker CPU without sse-server", "with an idle sse-server", "added by sse-server",
               "sse-server's own CPU"], ["---:"] * 4,
              [[pct(idle.get("broker_cpu_pct_without_server")), pct(idle.get("broker_cpu_pct_with_server")),
                pct(idle.get("broker_cpu_pct_added")), pct(idle.get("server_cpu_pct"))]])
    elif isinstance(idle, dict):
        w("Idle instance: %s.\n" % why_not(SSE, ["kafka-idle"]))
    elif runs:
        w("Idle instance: not measured (%s).\n" % (IDLE_REASON or "no kafka-idle results"))

    catchup_section()

    charts = []
    for name in KAFKA_CHARTS:
        if ok(SSE.get(name)):
            png = copy_chart(RESULTS, name, "")
            if png:
                kept.add(png)
                charts.append((name, png))
    if charts:
        w("Deliveries per second, latency per second (p50, p99, max; log scale) and the latency "
          "distribution of the whole run:\n")
        table(["run", "sse-server"], ["---", "---"], [[n, "![%s](%s)" % (n, png)] for n, png in charts])
    commands = [cmd for name, cmd in read_commands() if is_kafka(name)]
    if commands:
        w("Exact commands of the Kafka runs (`$SERVER_PID`: the server bench.sh started):\n")
        w("```sh")
        for cmd in commands:
            w(cmd)
        w("```\n")
    end(KAFKA_BLOCK)
    w("")


def catchup_section():
    d = SSE.get("kafka-catchup")
    if d is None:
        if SSE.get("kafka-1k") or SSE.get("kafka-idle"):
            w("Catch-up: not measured (%s).\n" % catchup_reason())
        return
    if not ok(d):
        w("Catch-up: %s.\n" % failed_text(d, "kafka-catchup"))
        return
    n, prod, fl = d.get("records"), d.get("produce") or {}, d.get("broker_floor") or {}
    not_ready = d.get("not_ready_s")
    w("Catch-up (`kafka-catchup`): %s v3 records of about %s bytes (%s at 1,000 records/s), written "
      "just before (in %s s) to a fresh topic, so all are within `--history-window`; then a fresh "
      "`sse-server --kafka-brokers` on that topic (its v4 topics empty), `/readyz` polled every %s ms "
      "from its spawn until it answers 200. `/readyz` reuses an answer for up to %s s, so the time not "
      "ready can come out up to that much too long.\n" % (
          num(n), "–" if prod.get("value_bytes_avg") is None else "%.0f" % prod["value_bytes_avg"],
          "10 minutes" if n == 600_000 else "%s s" % num(n / 1000) if n else "?",
          secs(prod.get("seconds")), num(round((d.get("poll_interval_s") or 0) * 1000)),
          num(d.get("readyz_reuse_s"))))
    floor = ([secs(fl.get("seconds")), num(fl.get("records_per_s"))] if "seconds" in fl and not fl.get("error")
             else ["not measured (%s)" % (fl.get("error") or "no floor"), ""])
    table(["records", "not ready s: sse-server", "records/s while not ready", "first HTTP answer s",
           "RSS MiB once ready (peak)", "records read by sse-server", "broker floor s", "floor records/s"],
          ["---:"] * 8,
          [[num(n), secs(not_ready), num(round(n / not_ready)) if n and not_ready else "–",
            secs(d.get("first_answer_s")),
            "%s (%s)" % (mib(d.get("server_rss_kib")), mib(d.get("server_rss_peak_kib"))),
            num(d.get("server_records_read"))] + floor])
    if fl.get("config"):
        w("Broker floor: `bench/kafka_catchup.py floor`, a plain consumer (%s; %s) assigned the topic from "
          "offset 0, timed from its creation to its last record.\n" % (fl.get("client", "?"),
                                                                        config_text(fl.get("config"))))


# ----------------------------------------------------------------- goals
MET, NOT_MET, UNKNOWN, MEASURED = "**met**", "**not met**", "not measured", "measured"


def idle_fig(runs, n):
    d = runs.get("idle-%dk" % n)
    if not ok(d):
        return None, why_not(runs, ["idle-%dk" % n])
    per = get(d, "server_rss_kib.per_stream_bytes")
    c = d.get("connections") or {}
    fig = "%s (%s of %s open)" % (kib(per), num(c.get("connected")), num(c.get("requested")))
    # Streams that failed to open count as not held at all.
    return (per if not c.get("failed") else float("inf")), fig


def after_close(runs):
    """Worst of the 10k/19k idle runs: what stays after closing, against what the streams added."""
    figs, fine, seen = [], True, False
    for n in (10, 19):
        d = runs.get("idle-%dk" % n)
        if not ok(d):
            continue
        r = d.get("server_rss_kib") or {}
        if None in (r.get("before"), r.get("full"), r.get("after_close")):
            continue
        seen = True
        grew, left = r["full"] - r["before"], r["after_close"] - r["before"]
        figs.append("%dk: %s MiB after close (start %s, open %s)" % (n, mib(r["after_close"]), mib(r["before"]),
                                                                   mib(r["full"])))
        fine = fine and left <= max(grew * 0.10, 1024)
    if not seen:
        return None, why_not(runs, ["idle-10k", "idle-19k"])
    return fine, "; ".join(figs)


def best_fanout(runs, label):
    """The fan-out run with most deliveries/s among those with p99 ≤ 100 ms and nothing lost."""
    rs = [(k, d) for k, d in runs.items() if k.startswith("fanout-%s-" % label) and rate_of(k) and ok(d)]
    good = [(k, d) for k, d in rs if clean(d) and get(d, "latency.p99_ms", 1e9) <= 100]
    best = max(good, key=lambda kd: get(kd[1], "deliveries.per_s", 0), default=None)
    if best:
        name, d = best
        return name, d, "%s deliveries/s, p99 %s ms, lost 0 (%s broadcasts/s asked)" % (
            num(get(d, "deliveries.per_s")), ms(get(d, "latency.p99_ms")), num(rate_of(name)))
    if rs:
        low = min(rs, key=lambda kd: rate_of(kd[0]))[1]
        most = max(rs, key=lambda kd: get(kd[1], "deliveries.per_s", 0))
        return None, None, ("no run with p99 ≤ 100 ms and nothing lost (lowest rate: p99 %s ms, lost %s); "
                            "most: %s deliveries/s at %s broadcasts/s, p99 %s ms, lost %s") % (
            ms(get(low, "latency.p99_ms")), num(get(low, "lost")), num(get(most[1], "deliveries.per_s")),
            num(rate_of(most[0])), ms(get(most[1], "latency.p99_ms")), num(get(most[1], "lost")))
    return None, None, why_not(runs, ["fanout-%s-*" % label])


def unicast_fig(runs):
    mx = [runs[n] for n in repeats(runs, "unicast-1000-max") if ok(runs.get(n))]
    r5 = runs.get("unicast-1000-r5000")
    if not mx or not ok(r5):
        return None, why_not(runs, ["unicast-1000-max", "unicast-1000-r5000"])
    v = (med([get(d, "publish.achieved_rate") for d in mx]), med([get(d, "latency.p99_ms") for d in mx]),
         get(r5, "latency.p99_ms"))
    return v, "flat out %s msgs/s, p99 %s ms; at 5,000/s p99 %s ms" % (num(v[0]), ms(v[1]), ms(v[2]))


def http_goals():
    """(goal, sse-server, Nchan, verdict) of the HTTP goals."""
    goals = []
    for n in (10, 19):
        per, fig = idle_fig(SSE, n)
        goals.append(("≤ 10 KiB server RSS per idle stream at %dk streams" % n, fig, idle_fig(NCHAN, n)[1],
                      UNKNOWN if per is None else (MET if per <= 10240 else NOT_MET)))

    pairs = [(idle_fig(SSE, n)[0], idle_fig(NCHAN, n)[0]) for n in (10, 19)]
    goals.append(("… and below Nchan's at 10k and 19k",
                  " / ".join(idle_fig(SSE, n)[1] for n in (10, 19)),
                  " / ".join(idle_fig(NCHAN, n)[1] for n in (10, 19)),
                  UNKNOWN if any(a is None or b is None for a, b in pairs) else
                  (MET if all(a < b for a, b in pairs) else NOT_MET)))

    back, fig = after_close(SSE)
    goals.append(("RSS back near its start after the streams close (within 10 % of what they added, or 1 MiB)",
                  fig, after_close(NCHAN)[1], UNKNOWN if back is None else (MET if back else NOT_MET)))

    for label, floor, text in (("10k", 500_000, "10k-subscriber fan-out: ≥ 500,000 deliveries/s with p99 ≤ 100 ms, "
                                                  "nothing lost"),
                               ("1k", 1_100_000, "1k-subscriber fan-out: ≥ 1.1 M deliveries/s (p99 ≤ 100 ms, "
                                                 "nothing lost)")):
        _, d, fig = best_fanout(SSE, label)
        measured = any(k.startswith("fanout-%s-" % label) and ok(v) for k, v in SSE.items())
        goals.append((text, fig, best_fanout(NCHAN, label)[2],
                      UNKNOWN if not measured else (MET if get(d, "deliveries.per_s", 0) >= floor else NOT_MET)))

    us, ufig = unicast_fig(SSE)
    un, nfig = unicast_fig(NCHAN)
    goals.append(("Unicast ahead of Nchan: more msgs/s flat out (median), lower p99 flat out and at 5,000/s",
                  ufig, nfig,
                  UNKNOWN if us is None or un is None or None in us + un else
                  (MET if us[0] > un[0] and us[1] < un[1] and us[2] < un[2] else NOT_MET)))
    return goals


KAFKA_P99_GOAL_MS = 20
KAFKA_IDLE_GOAL_PCT = 2
CATCHUP_GOAL_RECORDS = 600_000  # 10 minutes at 1,000 records/s


def kafka_goals():
    """(goal, sse-server, broker floor, verdict) of the Kafka goals."""
    goals = []
    text = "Kafka record → SSE p99 ≤ %d ms at 1,000 records/s" % KAFKA_P99_GOAL_MS
    k1 = SSE.get("kafka-1k")
    if ok(k1):
        fl = get(k1, "broker_floor") or {}
        p99 = get(k1, "latency.p99_ms")
        floor = ("p50 %s / p99 %s ms, lost %s" % (ms(get(fl, "latency.p50_ms")), ms(get(fl, "latency.p99_ms")),
                                                   num(fl.get("lost")))
                 if get(fl, "latency.p99_ms") is not None else
                 "not measured (%s)" % (fl.get("error") or "no --kafka-floor"))
        goals.append((text, "p50 %s / p99 %s ms, lost %s%s" % (ms(get(k1, "latency.p50_ms")), ms(p99),
                                                                num(get(k1, "lost")), frozen_note(k1)),
                      floor, MET if p99 is not None and p99 <= KAFKA_P99_GOAL_MS and clean(k1) else NOT_MET))
    else:
        goals.append((text, "not measured (%s)" % KAFKA_REASON if KAFKA_REASON else why_not(SSE, ["kafka-1k"]),
                      "–", UNKNOWN))

    text = "An idle instance costs the broker ≤ %d %% of a core" % KAFKA_IDLE_GOAL_PCT
    idle = SSE.get("kafka-idle")
    if ok(idle) and idle.get("broker_cpu_pct_added") is not None:
        added = idle["broker_cpu_pct_added"]
        goals.append((text, "%s of a core (broker %s without → %s with an idle sse-server)" % (
            pct(added), pct(idle.get("broker_cpu_pct_without_server")), pct(idle.get("broker_cpu_pct_with_server"))),
            "broker alone: %s" % pct(idle.get("broker_cpu_pct_without_server")),
            MET if added <= KAFKA_IDLE_GOAL_PCT else NOT_MET))
    else:
        goals.append((text, why_not(SSE, ["kafka-idle"]) if isinstance(idle, dict) else
                      "not measured (%s)" % (IDLE_REASON or "no kafka-idle results"), "–", UNKNOWN))

    text = "Catch-up with 10 min of history at 1,000 records/s"
    d = SSE.get("kafka-catchup")
    if ok(d) and d.get("not_ready_s") is not None:
        n, fl = d.get("records"), d.get("broker_floor") or {}
        if n != CATCHUP_GOAL_RECORDS:
            text += " (this run: %s records)" % num(n)
        read = d.get("server_records_read")
        goals.append((text, "%s s not ready for %s records%s; RSS %s MiB once ready" % (
            secs(d["not_ready_s"]), num(n),
            " (read %s)" % num(read) if read is not None and read != n else "", mib(d.get("server_rss_kib"))),
            "%s s (%s records/s)" % (secs(fl["seconds"]), num(fl.get("records_per_s")))
            if "seconds" in fl and not fl.get("error") else "not measured (%s)" % (fl.get("error") or "no floor"),
            MEASURED))
    else:
        goals.append((text, failed_text(d, "kafka-catchup") if isinstance(d, dict) and not ok(d) else
                      "not measured (%s)" % catchup_reason(), "–", UNKNOWN))
    return goals



def losses(runs):
    return ["%s: lost %s, duplicated %s" % (k, num(d.get("lost")), num(d.get("duplicated")))
            for k, d in sorted(runs.items())
            if ok(d) and (d.get("lost") or d.get("duplicated") or d.get("late_or_duplicate"))]


def received(who, runs):
    """WHO: N events received over M runs; what was lost or duplicated."""
    streamed = [d for d in runs.values() if ok(d) and "deliveries" in d]
    return "%s: %s events received over %d runs; %s." % (
        who, num(sum(get(d, "deliveries.received", 0) for d in streamed)), len(streamed),
        "; ".join(losses(runs)) or "none lost or duplicated")


def unfinished(runs_by_who):
    failed = ["%s%s" % (who, k) for who, runs in runs_by_who for k, d in sorted(runs.items()) if not ok(d)]
    if failed:
        w("Runs that did not finish: %s (see bench/target/results/)." % ", ".join(failed))


def goals_section():
    w("## Goals (issue 12)\n")
    if NCHAN_REASON:
        w("Nchan not measured: %s.\n" % NCHAN_REASON)
    table(["goal", "sse-server", "Nchan (same run)", "verdict"], ["---", "---", "---", "---"],
          [list(g) for g in http_goals()])
    kafka_goals_block()
    issue19_section()


def kafka_goals_block():
    begin(KAFKA_GOALS_BLOCK)
    w("Kafka (sse-server only), beside the broker floor of the same run: a plain consumer of the same "
      "records (see Kafka ingest).\n")
    table(["goal", "sse-server", "broker floor", "verdict"], ["---", "---", "---", "---"],
          [list(g) for g in kafka_goals()])
    kafka = {k: d for k, d in SSE.items() if is_kafka(k)}
    if any(ok(d) and "deliveries" in d for d in kafka.values()):
        w(received("Kafka", kafka))
    unfinished((("", kafka),))
    end(KAFKA_GOALS_BLOCK)
    w("")


# ----------------------------------------------------------------- goals of issue 19
FANOUT_10K_GOAL = 500_000
FANOUT_1K_GOAL = 1_000_000


def ahead(values, better):
    """Verdict of "sse-server ahead of every peer": values[i] is SERVERS[i]'s figure (None:
    not measured), better(a, b) whether a beats b."""
    mine, peers = values[0], list(zip(SERVERS[1:], values[1:]))
    if mine is None:
        return UNKNOWN
    measured = [v for _, v in peers if v is not None]
    if not all(better(mine, v) for v in measured):
        return NOT_MET
    if not measured:
        return "%s (no peer measured)" % UNKNOWN
    missing = [s.name for s, v in peers if v is None]
    return MET + (" against the peers measured (%s: not measured)" % ", ".join(missing) if missing else "")


def fanout_goal_fig(srv, label):
    """(most deliveries/s with p99 ≤ 100 ms and nothing lost, or 0 when no run had that; its
    run; the figure) of srv's fan-out series to LABEL subscribers (None, None, why: not measured)."""
    series = fanout_series(srv, label)
    runs = {k: d for k, (d, _) in series.items()}
    if not any(ok(d) for d in runs.values()):
        return None, None, why_not(srv.runs if not runs else runs, sorted(runs, key=rate_of) or ["fanout-%s-*" % label])
    name, d, fig = best_fanout(runs, label)
    if name and series[name][1]:
        fig += "; %s" % series[name][1]
    return (get(d, "deliveries.per_s", 0) if d else 0), name, fig


def offered(srv, label, floor, best):
    """Whether the publishers offered FLOOR deliveries/s: the broadcasts/s asked and sent of the
    best run (BEST, when it reached FLOOR), else of the slowest run that asked for FLOOR."""
    runs = series_runs(srv, label)

    def subscribers(d, which="connected"):
        return get(d, "connections." + which) or get(d, "connections.requested") or 0

    def sent(d):
        return (get(d, "publish.achieved_rate") or 0) * subscribers(d)

    if best and get(runs.get(best), "deliveries.per_s", 0) >= floor:
        d = runs[best]
        return "publishers asked %s broadcasts/s, sent %s/s" % (num(rate_of(best)), num(get(d, "publish.achieved_rate"))), True
    asked = sorted((k for k, d in runs.items() if ok(d) and rate_of(k) * subscribers(d, "requested") >= floor),
                   key=rate_of)
    if not asked:
        top = max(runs, key=rate_of, default=None)
        return ("no run asked for %s deliveries/s%s" % (
            num(floor), " (the series ended at %s broadcasts/s)" % num(rate_of(top)) if top else "")), False
    k = asked[0]
    d = runs[k]
    return ("at %s broadcasts/s asked (%s deliveries/s) the publishers sent %s/s (%s deliveries/s offered): "
            "%s deliveries/s, p99 %s ms, lost %s" % (
                num(rate_of(k)), num(rate_of(k) * subscribers(d, "requested")), num(get(d, "publish.achieved_rate")),
                num(sent(d)), num(get(d, "deliveries.per_s")), ms(get(d, "latency.p99_ms")),
                num(get(d, "lost")))), sent(d) >= floor


def unicast_max_fig(runs):
    """(median deliveries/s flat out, figure) over the unicast-1000-max runs."""
    names = repeats(runs, "unicast-1000-max")
    ds = [runs[n] for n in names if ok(runs.get(n))]
    v = med([get(d, "deliveries.per_s") for d in ds])
    if v is None:
        return None, why_not(runs, names or ["unicast-1000-max"])
    return v, "%s deliveries/s%s, p99 %s ms, lost %s" % (
        num(v), " (median of %d)" % len(ds) if len(ds) > 1 else "", ms(med([get(d, "latency.p99_ms") for d in ds])),
        num(sum(get(d, "lost", 0) for d in ds)))


def resume_fig(runs):
    """((messages missing, repeated or again; share of subscribers exact), figure) of the resume run."""
    d = runs.get("resume")
    r = d.get("resume") if ok(d) else None
    if not isinstance(r, dict) or r.get("missing") is None:
        return None, why_not(runs, ["resume"]) if not ok(d) else "not measured (no `resume` summary)"
    # Nothing accepted after leaving proves nothing.
    bad = sum(r.get(k) or 0 for k in ("missing", "repeated", "replayed_before")) if r.get("expected") else float("inf")
    subs = r.get("subscribers") or get(d, "connections.requested") or 0
    exact = r.get("exact_subscribers") or 0
    return (bad, exact / subs if subs else 0), "missing %s, repeated %s, before-messages again %s; %s of %s " \
        "subscribers exact (of %s messages expected)" % (
            num(r.get("missing")), num(r.get("repeated")), num(r.get("replayed_before")), num(exact), num(subs),
            num(r.get("expected")))


def issue19_goals():
    """(goal, a figure per server, verdict) of issue 19's goals."""
    goals = []
    figs = [idle_fig(s.runs, 10) for s in SERVERS]
    goals.append(["Lowest server RSS per idle stream at 10k streams"] + [f for _, f in figs]
                 + [ahead([v for v, _ in figs], lambda a, b: a < b)])

    for label in ("1k", "10k"):
        figs = [fanout_goal_fig(s, label) for s in SERVERS]
        goals.append(["Most deliveries/s with p99 ≤ 100 ms (nothing lost), %s-subscriber fan-out" % label]
                      + [f for _, _, f in figs] + [ahead([v for v, _, _ in figs], lambda a, b: a > b)])

    figs = [unicast_max_fig(s.runs) for s in SERVERS]
    goals.append(["Most unicast deliveries/s flat out (1,000 users)"] + [f for _, f in figs]
                 + [ahead([v for v, _ in figs], lambda a, b: a > b)])

    figs = [resume_fig(s.runs) for s in SERVERS]
    mine = figs[0][0]
    if mine is None:
        verdict = UNKNOWN
    else:
        better = [s.name for s, (v, _) in zip(SERVERS[1:], figs[1:]) if v is not None and (v[0], -v[1]) < (mine[0], -mine[1])]
        verdict = (MET if mine[0] == 0 and mine[1] == 1 and not better else
                   NOT_MET + (" (%s better)" % ", ".join(better) if better else ""))
    goals.append(["Exact resume: nothing missing, repeated or sent again, every subscriber exact, no peer better"]
                 + [f for _, f in figs] + [verdict])

    rest = ["–"] * (len(SERVERS) - 1)
    v, _, fig = fanout_goal_fig(SERVERS[0], "10k")
    goals.append(["10k-subscriber fan-out: p99 ≤ 100 ms (nothing lost) at ≥ %s deliveries/s" % num(FANOUT_10K_GOAL),
                  fig] + rest + [UNKNOWN if v is None else MET if v >= FANOUT_10K_GOAL else NOT_MET])

    v, best, fig = fanout_goal_fig(SERVERS[0], "1k")
    if v is None:
        verdict = UNKNOWN
    else:
        note, enough = offered(SERVERS[0], "1k", FANOUT_1K_GOAL, best)
        fig += "; " + note
        verdict = MET if v >= FANOUT_1K_GOAL else NOT_MET + (
            "" if enough else " (the publishers did not offer %s deliveries/s)" % num(FANOUT_1K_GOAL))
    goals.append(["1k-subscriber fan-out: ≥ 1 M deliveries/s with p99 ≤ 100 ms (nothing lost), and whether the "
                  "publishers offered that rate (broadcasts/s asked, sent)", fig] + rest + [verdict])
    return goals


def protocol_mismatches():
    """Runs whose JSON names another protocol than their server speaks (older JSON names none;
    Nchan's `all`-alone runs say nchan-all)."""
    return ["%s %s (%s)" % (s.name, k, d["protocol"]) for s in SERVERS for _, _, runs in s.variants
            for k, d in sorted(runs.items()) if isinstance(d, dict) and d.get("protocol")
            and not is_kafka(k) and not str(d["protocol"]).startswith(s.protocol)]


def issue19_section():
    w("## Goals (issue 19)\n")
    w("sse-server ahead of every peer, all measured in the same run on the same machine (the peers' best "
      "configuration where there are several: see the fan-out tables), and sse-server's own fan-out "
      "targets.\n")
    table(["goal"] + [s.name for s in SERVERS] + ["verdict"], ["---"] * (len(SERVERS) + 2), issue19_goals())
    for s in SERVERS:
        if s.reason:
            w("- %s: not measured (%s)." % (s.name, s.reason))
            continue
        for cfg, _, runs in s.variants:
            http = {k: d for k, d in runs.items() if not is_kafka(k)}
            w("- " + received(with_config(s.name, cfg), http))
    unfinished([("%s " % with_config(s.name, cfg) if s.key != "sse-server" else "",
                 {k: d for k, d in runs.items() if not is_kafka(k)})
                for s in SERVERS for cfg, _, runs in s.variants])
    mismatched = protocol_mismatches()
    if mismatched:
        w("Runs whose JSON names another protocol than their server's: %s." % ", ".join(mismatched))
    w("")


# ----------------------------------------------------------------- method
def method():
    from_sent = sorted(k for k, d in SSE.items() if ok(d) and d.get("latency_from") == "sent")
    w("## Method\n")
    w("- **Servers.** `sse-server --bind 127.0.0.1:PORT --queue 1024` (embedded bus; Kafka runs add "
      "`--kafka-brokers`); Nchan per `bench/peers/nchan.conf` (1 worker for the idle runs so one process "
      "holds every stream, 2 otherwise; message buffer 1,000 for 5 min); Centrifugo v6 per "
      "`bench/peers/centrifugo.json` (unidirectional SSE, memory engine, history of 1,000 per channel for "
      "10 min, recovery forced on); Mercure, a Caddy hub per `bench/peers/Caddyfile` (Bolt transport, which "
      "keeps the history Last-Event-ID needs). Centrifugo and Mercure are built by `bench/peers/build.sh` "
      "at pinned versions and run as one process. A fresh process per idle run, per fan-out series, per "
      "stalled-reader pair and for the resume run. RSS is VmRSS from `/proc/PID/status` (Nchan: the sum of "
      "its workers).")
    w("- **Protocols.** The load tool speaks each server's own (`--protocol`, recorded as `protocol` in "
      "each run's JSON): sse-server and Nchan the same `/v2` API (`GET /v2/sse?username=U`, "
      "`POST /v2/message`, `POST /v2/broadcast`); Centrifugo a stream on channels `user-U` and `all` "
      "published through its HTTP API; Mercure a stream on topics `user/U` and `all` published with a JWT. "
      "A broadcast is one message to `all`, which every stream also follows.")
    w("- **Latency** is publish → receipt. Each message carries `seq=N t=<unix nanos>`; the receiving "
      "connection subtracts `t` from its clock when the bytes arrive. At a fixed rate `t` is the time "
      "message N was *scheduled* for (start + N/rate), so a publisher held up by a slow answer adds its "
      "delay instead of hiding it (no coordinated omission); flat-out runs have no schedule and count from "
      "the actual send%s. The Kafka broker floor is measured the same way by a plain consumer." % (
          " (here: %s)" % ", ".join(from_sent) if from_sent else ""))
    w("- **Lost** is a sequence number a reading connection should have received (every accepted broadcast; "
      "every accepted message for its user) that had not arrived 5 s (Kafka: 10 s) after publishing stopped. "
      "Any 2xx from a POST counts as accepted; a request without an answer within its timeout ends the run "
      "as \"frozen after N s\".")
    w("- **Resume.** A single run per server (`resume`): subscribers receive some messages, all disconnect, "
      "more are published, and each reconnects from where it was: `Last-Event-ID` (sse-server, Nchan, "
      "Mercure), or Centrifugo's recovery with each channel's offset and epoch. Every message after leaving "
      "must come exactly once.")
    w("- **Repeats.** The stalled-reader pairs run 3 times each (`NAME-r1..r3`), the order within a pair "
      "alternating; tables give the median and the range.")
    w("")
    w("Machine: %s, `nproc` = %s, %s, %s memory; open files (hard) %s, ephemeral ports %s.\n" % (
        sh("lscpu | sed -n 's/^Model name:[ \\t]*//p' | head -1") or "?", sh("nproc"), sh("uname -sr"),
        sh("free -h | awk '/^Mem:/ {print $2}'"), sh("ulimit -Hn"),
        sh("cat /proc/sys/net/ipv4/ip_local_port_range | tr '\\t' '-'")))


# ----------------------------------------------------------------- charts
def charts_section(kept):
    """The HTTP runs' charts (the Kafka ones are in the Kafka section), a column per server measured."""
    chart_names = [best_fanout(SSE, "10k")[0], best_fanout(SSE, "1k")[0]] + [
        "unicast-1000-r5000", (repeats(SSE, "stalled-1pct-max") or [None])[0],
        (repeats(SSE, "fanout-1k-1000-stalled") or [None])[0], "resume"]
    servers = measured_servers()
    charts = []
    for name in [n for n in chart_names if n]:
        pngs = [copy_chart(s.directory, name, s.chart_prefix()) if ok(s.runs.get(name)) else None
                for s in servers]
        kept.update(x for x in pngs if x)
        if any(pngs):
            charts.append((name, pngs))
    if charts:
        w("## Charts\n")
        w("Deliveries per second, latency per second (p50, p99, max; log scale) and the latency distribution "
          "of the whole run.\n")
        table(["run"] + [s.name for s in servers], ["---"] * (len(servers) + 1),
              [[name] + ["![%s](%s)" % (("%s %s" % (s.name, name)) if s.chart_prefix() else name, png)
                         if png else "–" for s, png in zip(servers, pngs)] for name, pngs in charts])


def remove_stale_charts(kept, pattern):
    for old in glob.glob(os.path.join(DOCS, pattern)):
        if os.path.basename(old) not in kept:
            os.remove(old)


# ----------------------------------------------------------------- analysis
def analysis_section():
    # Hand-written (bench/ANALYSIS.md), included verbatim; under its own heading when it
    # opens with one.
    analysis = read_text(os.path.join(HERE, "..", "bench", "ANALYSIS.md"))
    if analysis:
        if not analysis.startswith("#"):
            w("## Where the time and memory go\n")
        w(analysis + "\n")


# ----------------------------------------------------------------- how
def how_to_run():
    commands = [(name, cmd) for name, cmd in read_commands() if not is_kafka(name)]
    w("## How to run\n")
    w("```sh\nscripts/bench.sh            # everything above; rewrites this page\n"
      "scripts/bench.sh --kafka    # only the Kafka scenarios; rewrites only the Kafka parts of this page\n"
      "scripts/bench.sh --quick    # every scenario once, small, against every server; a check of the tables\n"
      "scripts/bench.sh --smoke    # 300 streams, 3 s of unicast; exit 1 on loss or duplicates\n"
      "bench/target/release/sse-bench --help\n```\n")
    w("`sse-bench` (`bench/`, its own `Cargo.lock` and `bench/target`) speaks HTTP/1.1 over raw sockets, spreads "
      "streams over source addresses 127.0.0.2–17, and above 19,000 streams re-executes itself with N/W "
      "streams per process. Raw JSON per run: `bench/target/results/` (each peer: `peers/NAME/`, same names; Nchan's other "
      "fan-out configurations, when measured: `peers/nchan-CONFIG/`).\n")
    if commands:
        w("Exact commands of this run (`$SERVER_PID`: the server bench.sh started; `$NGINX_WORKER_PIDS`: "
          "Nchan's workers; a peer's runs carry its `--protocol`; the Kafka runs' are in their section):\n")
        w("```sh")
        for _, cmd in commands:
            w(cmd)
        w("```\n")


# ----------------------------------------------------------------- the page
def full_page():
    global out
    out, kept = [], set()
    header()
    side_by_side()
    kafka_section(kept)
    goals_section()
    method()
    charts_section(kept)
    analysis_section()
    how_to_run()
    remove_stale_charts(kept, "bench-*.png")
    return "\n".join(out)


def splice(page, block, lines):
    """page with its BLOCK markers and what lies between replaced by lines (which carry
    the markers themselves)."""
    first_line, last_line = "<!-- %s:begin -->" % block, "<!-- %s:end -->" % block
    i = page.find(first_line)
    j = page.find(last_line, i + 1) if i >= 0 else -1
    if i < 0 or j < 0 or page.count(first_line) != 1 or page.count(last_line) != 1:
        sys.exit("bench_report.py: %s has no single %s … %s pair; write the whole page once "
                 "(scripts/bench.sh) or add the markers" % (os.path.join(DOCS, PAGE), first_line, last_line))
    block_text = "\n".join(lines).rstrip("\n")
    assert block_text.startswith(first_line) and block_text.endswith(last_line)
    return page[:i] + block_text + page[j + len(last_line):]


def kafka_only_page():
    path = os.path.join(DOCS, PAGE)
    if not os.path.exists(path):
        sys.exit("bench_report.py: %s does not exist; write the whole page once (scripts/bench.sh)" % path)
    with open(path) as f:
        page = f.read()
    kept = set()
    page = splice(page, KAFKA_BLOCK, render(kafka_section, kept))
    page = splice(page, KAFKA_GOALS_BLOCK, render(kafka_goals_block))
    remove_stale_charts(kept, "bench-kafka-*.png")
    return page


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench_report.py", description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="bench.sh's results directory (bench/target/results)")
    p.add_argument("docs", help="where BENCHMARKS.md and the charts go (docs)")
    p.add_argument("--kafka-only", action="store_true",
                   help="rewrite only the Kafka blocks of the existing DOCS/BENCHMARKS.md")
    args = p.parse_args(argv)
    load(args.results, args.docs)
    os.makedirs(DOCS, exist_ok=True)
    page = kafka_only_page() if args.kafka_only else full_page()
    with open(os.path.join(DOCS, PAGE), "w") as f:
        f.write(page)


if __name__ == "__main__":
    main()
