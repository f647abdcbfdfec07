#!/usr/bin/env python3
"""bench_report.py [--kafka-only] RESULTS_DIR DOCS_DIR — turn the JSON of scripts/bench.sh's
runs into DOCS_DIR/BENCHMARKS.md (sse-server and the Nchan peer side by side, one table
per scenario family, then the goals each marked met or not) and copy the charts worth
reading to DOCS_DIR/bench-*.png. Every figure comes from the JSON; a run or peer that is
missing renders as "not measured" with the reason bench.sh left.

The Kafka part of the page sits between marker comments, `<!-- kafka:begin -->` …
`<!-- kafka:end -->` (the "Kafka ingest" section, its charts and commands) and
`<!-- kafka-goals:begin -->` … `<!-- kafka-goals:end -->` (the Kafka goals). With
--kafka-only (scripts/bench.sh --kafka) only those two blocks of the existing
DOCS_DIR/BENCHMARKS.md are rewritten, and only the Kafka charts; the rest stays.
Both modes render the blocks alike.

Only the standard library; called by scripts/bench.sh. Importing it does nothing:
the work is in main()."""

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = "BENCHMARKS.md"
KAFKA_BLOCK, KAFKA_GOALS_BLOCK = "kafka", "kafka-goals"

# Set by load(): the results directories, the runs found in them, and the reasons
# bench.sh left for what it did not measure.
RESULTS = DOCS = PEER_DIR = None
SSE, NCHAN = {}, {}
NCHAN_REASON = KAFKA_REASON = IDLE_REASON = None


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001 - best effort
        return "?"


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
    return runs


def load(results, docs):
    global RESULTS, DOCS, PEER_DIR, SSE, NCHAN, NCHAN_REASON, KAFKA_REASON, IDLE_REASON
    RESULTS, DOCS = results, docs
    PEER_DIR = os.path.join(RESULTS, "peers", "nchan")
    SSE = load_runs(RESULTS)
    NCHAN = load_runs(PEER_DIR)
    NCHAN_REASON = (read_text(os.path.join(RESULTS, "peers", "nchan-skipped"))
                    or ("no results" if not NCHAN else None))
    KAFKA_REASON = read_text(os.path.join(RESULTS, "kafka-skipped"))
    IDLE_REASON = read_text(os.path.join(RESULTS, "kafka-idle-skipped")) or KAFKA_REASON


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
def num(v):
    if v is None:
        return "–"
    if isinstance(v, float) and not v.is_integer():
        return "%.2f" % v if abs(v) < 100 else "{:,.0f}".format(v)
    return "{:,}".format(int(v))


def ms(v):
    if v is None:
        return "–"
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
    """Why there is no figure: a skipped peer (its reason is given once, above the tables),
    a failed run, or absence."""
    if runs is NCHAN and NCHAN_REASON:
        return "not measured"
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
    out.append(line)


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
        return [line.rstrip("\n").split("\t", 1) for line in f if "\t" in line]


# ----------------------------------------------------------------- header
def header():
    started = read_text(os.path.join(RESULTS, "started")) or "?"
    w("# Benchmarks\n")
    w("Generated by `scripts/bench.sh` (load tool: `bench/`, `sse-bench`) on %s, sse-server at commit %s, "
      "beside Nchan (nginx + `libnginx-mod-nchan`, `bench/peers/nchan.conf`)%s. Client, servers and "
      "broker share one machine (loopback), so every figure is what one box does while also running "
      "the load generator.\n" % (started, commit(), "" if not NCHAN_REASON else " — Nchan not measured"))


# ----------------------------------------------------------------- side by side
def idle_cells(runs, name):
    d = runs.get(name)
    if not ok(d):
        return [why_not(runs, [name])] + [""] * 3
    c, r = d["connections"], d["server_rss_kib"]
    failed = " (%s failed)" % num(c["failed"]) if c.get("failed") else ""
    return [kib(r.get("per_stream_bytes")) + failed, "%s → %s" % (mib(r.get("before")), mib(r.get("full"))),
            mib(r.get("after_close")), num(c.get("setup_per_s"))]


def rate_of(name):
    tail = name.split("-")[-1]
    return int(tail) if tail.isdigit() else None


def fanout_cells(runs, name):
    d = runs.get(name)
    if d is None:
        return [why_not(runs, [name]) if runs is NCHAN and NCHAN_REASON else "not run"] + [""] * 3
    if not ok(d):
        return [why_not(runs, [name])] + [""] * 3
    return [num(get(d, "deliveries.per_s")) + frozen_note(d), ms(get(d, "latency.p50_ms")),
            ms(get(d, "latency.p99_ms")), num(get(d, "lost"))]


def fanout_family(label, subscribers):
    names = sorted({k for k in set(SSE) | set(NCHAN) if k.startswith("fanout-%s-" % label) and rate_of(k)},
                   key=rate_of)
    if not names:
        return
    duration = next((get(r[k], "publish.duration_s") for r in (SSE, NCHAN) for k in names
                     if get(r.get(k), "publish.duration_s")), None)
    w("### Fan-out to %s subscribers (`POST /v2/broadcast`, %s s per rate)\n" % (subscribers, num(duration)))
    rows = []
    for k in names:
        a, b = fanout_cells(SSE, k), fanout_cells(NCHAN, k)
        rows.append([num(rate_of(k))] + [x for pair in zip(a, b) for x in pair])
    table(["broadcasts/s asked", "deliveries/s: sse-server", "Nchan", "p50 ms: sse-server", "Nchan",
           "p99 ms: sse-server", "Nchan", "lost: sse-server", "Nchan"], ["---:"] * 9, rows)
    w("Each target's rates rise until p99 passes 1 s, an event is lost or the publishers fall "
      "below 80 % of the rate; \"not run\" is a rate past that point.\n")


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
    c = d["connections"]
    return get(d, "deliveries.per_s", 0) / max(c["connected"] - c["stalled"], 1)


def first(base, path):
    """A setting of a scenario, from the first of its runs (either target) that has it."""
    for runs in (SSE, NCHAN):
        for n in repeats(runs, base):
            if get(runs.get(n), path) is not None:
                return get(runs[n], path)
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


def side_by_side():
    w("## sse-server and Nchan side by side\n")
    if NCHAN_REASON:
        w("**Nchan: not measured** (`bench/target/results/peers/`): %s.\n" % NCHAN_REASON)

    # Idle streams.
    idle_names = sorted((k for k in set(SSE) | set(NCHAN) if k.startswith("idle-")),
                        key=lambda k: get(SSE.get(k) or NCHAN.get(k), "connections.requested", 0))
    if idle_names:
        w("### Idle streams (`/v2/sse`, one user each; RSS of the server process, Nchan: its worker)\n")
        rows = []
        for k in idle_names:
            n = get(SSE.get(k), "connections.requested") or get(NCHAN.get(k), "connections.requested")
            a, b = idle_cells(SSE, k), idle_cells(NCHAN, k)
            rows.append([num(n)] + [x for pair in zip(a, b) for x in pair])
        table(["streams", "RSS per stream: sse-server", "Nchan", "RSS MiB start → open: sse-server", "Nchan",
               "RSS MiB after close: sse-server", "Nchan", "set-up/s: sse-server", "Nchan"],
              ["---:"] + ["---:"] * 8, rows)

    for label in ("1k", "10k"):
        fanout_family(label, num(next((get(r[k], "connections.requested") for r in (SSE, NCHAN) for k in r
                                       if k.startswith("fanout-%s-" % label) and rate_of(k)
                                       and get(r[k], "connections.requested")), None)))

    if any(repeats(SSE, n) or repeats(NCHAN, n) for n in UNICAST):
        w("### Unicast to %s users (`POST /v2/message`, round robin from %s s of publishing)\n" % (
            num(first(UNICAST[1], "users") or first(UNICAST[0], "users")),
            num(first(UNICAST[1], "publish.duration_s") or first(UNICAST[0], "publish.duration_s"))))
        rows = []
        for base in UNICAST:
            a, b = multi_cells(SSE, repeats(SSE, base)), multi_cells(NCHAN, repeats(NCHAN, base))
            reps = max(len(repeats(SSE, base)), len(repeats(NCHAN, base)))
            rows.append([rate_title(base) + (" (median of %d, range)" % reps if reps > 1 else "")]
                        + [x for pair in zip(a, b) for x in pair])
        table(["run", "msgs/s accepted: sse-server", "Nchan", "deliveries/s: sse-server", "Nchan",
               "p50 ms: sse-server", "Nchan", "p99 ms: sse-server", "Nchan", "lost: sse-server", "Nchan"],
              ["---"] + ["---:"] * 10, rows)

    if any(repeats(SSE, x) or repeats(NCHAN, x) for x, _ in PAIRS):
        n_streams = first(PAIRS[0][1], "connections.requested") or first(PAIRS[1][1], "connections.requested")
        n_stalled = first(PAIRS[0][1], "connections.stalled") or first(PAIRS[1][1], "connections.stalled")
        w("### Stalled readers: %s of %s streams never read after the headers, each pair on a fresh server\n" % (
            num(n_stalled), num(n_streams)))
        rows = []
        for base, stalled in PAIRS:
            title = pair_title(base)
            for runs, who in ((SSE, "sse-server"), (NCHAN, "Nchan")):
                p = pair_stats(runs, base, stalled)
                if p is None:
                    rows.append([title, who, why_not(runs, [base, stalled])] + [""] * 5)
                    continue
                rows.append(["%s (median of %d, range)" % (title, p["n"]) if p["n"] > 1 else title, who,
                             spread(p["base_rate"], f1), spread(p["stalled_rate"], f1), spread(p["cost"], signed),
                             "%s → %s" % (spread(p["base_p99"], ms), spread(p["stalled_p99"], ms)),
                             spread(p["overflow"], num), num(p["lost"])])
        table(["pair", "server", "events/s per reading stream: all read", "some stalled",
               "cost to the others (per pair)", "p99 ms all read → stalled", "stalled closed for overflow",
               "lost"], ["---", "---", "---:", "---:", "---:", "---:", "---:", "---:"], rows)
        w("Cost is 1 − (stalled ÷ all-read) of the reading streams' rate within each pair (negative: the "
          "stalled run was faster). \"Closed for overflow\" is the server's "
          "`sse_connections_closed_overflow_total` (Nchan has no such counter: –).\n")


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
    c = d["connections"]
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
        r = d["server_rss_kib"]
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
    http = {k: d for k, d in SSE.items() if not is_kafka(k)}
    w(received("sse-server", http))
    if losses(NCHAN):
        w("Nchan: %s." % "; ".join(losses(NCHAN)))
    unfinished((("", http), ("Nchan ", NCHAN)))
    w("")
    kafka_goals_block()


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


# ----------------------------------------------------------------- method
def method():
    from_sent = sorted(k for k, d in SSE.items() if ok(d) and d.get("latency_from") == "sent")
    w("## Method\n")
    w("- **Servers.** `sse-server --bind 127.0.0.1:PORT --queue 1024` (embedded bus; Kafka runs add "
      "`--kafka-brokers`), and Nchan per `bench/peers/nchan.conf` (1 worker for the idle runs so one process "
      "holds every stream, 2 otherwise; message buffer 1,000 for 5 min). A fresh process per idle run, per "
      "fan-out series and per stalled-reader pair. RSS is VmRSS from `/proc/PID/status` (Nchan: the sum of "
      "its workers).")
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
    w("- **Repeats.** The stalled-reader pairs run 3 times each (`NAME-r1..r3`), the order within a pair "
      "alternating; tables give the median and the range.")
    w("")
    w("Machine: %s, `nproc` = %s, %s, %s memory; open files (hard) %s, ephemeral ports %s.\n" % (
        sh("lscpu | sed -n 's/^Model name:[ \\t]*//p' | head -1") or "?", sh("nproc"), sh("uname -sr"),
        sh("free -h | awk '/^Mem:/ {print $2}'"), sh("ulimit -Hn"),
        sh("cat /proc/sys/net/ipv4/ip_local_port_range | tr '\\t' '-'")))


# ----------------------------------------------------------------- charts
def charts_section(kept):
    """The HTTP runs' charts (the Kafka ones are in the Kafka section)."""
    chart_names = [best_fanout(SSE, "10k")[0], best_fanout(SSE, "1k")[0]] + [
        "unicast-1000-r5000", (repeats(SSE, "stalled-1pct-max") or [None])[0],
        (repeats(SSE, "fanout-1k-1000-stalled") or [None])[0]]
    charts = []
    for name in [n for n in chart_names if n]:
        if not ok(SSE.get(name)) and not ok(NCHAN.get(name)):
            continue
        a = copy_chart(RESULTS, name, "") if ok(SSE.get(name)) else None
        b = copy_chart(PEER_DIR, name, "nchan-") if ok(NCHAN.get(name)) else None
        kept.update(x for x in (a, b) if x)
        if a or b:
            charts.append((name, a, b))
    if charts:
        w("## Charts\n")
        w("Deliveries per second, latency per second (p50, p99, max; log scale) and the latency distribution "
          "of the whole run.\n")
        w("| run | sse-server | Nchan |")
        w("| --- | --- | --- |")
        for name, a, b in charts:
            w("| %s | %s | %s |" % (name, "![%s](%s)" % (name, a) if a else "–",
                                    "![Nchan %s](%s)" % (name, b) if b else "–"))
        w("")


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
      "scripts/bench.sh --smoke    # 300 streams, 3 s of unicast; exit 1 on loss or duplicates\n"
      "bench/target/release/sse-bench --help\n```\n")
    w("`sse-bench` (`bench/`, its own `Cargo.lock` and `bench/target`) speaks HTTP/1.1 over raw sockets, spreads "
      "streams over source addresses 127.0.0.2–17, and above 19,000 streams re-executes itself with N/W "
      "streams per process. Raw JSON per run: `bench/target/results/` (Nchan: `peers/nchan/`, same names).\n")
    if commands:
        w("Exact commands of this run (`$SERVER_PID`: the server bench.sh started; `$NGINX_WORKER_PIDS`: "
          "Nchan's workers; the Kafka runs' are in their section):\n")
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
