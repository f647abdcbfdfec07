#!/usr/bin/env python3
"""Checks of scripts/bench_report.py on hand-made results: `python3 scripts/test_bench_report.py`
(plain asserts, standard library only; exits non-zero on the first failure).

The results imitate a full scripts/bench.sh run: sse-server with every scenario, Nchan
with some runs and two more fan-out configurations (peers/nchan-all/, nchan-all-1w/),
Centrifugo with a resume that loses messages, Mercure left out (peers/mercure-skipped).
With --keep DIR the results and the rendered page stay in DIR to be read."""

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_report as br  # noqa: E402

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def summary(scenario, protocol, n, rate=None, per_s=0, p50=1.0, p99=2.0, lost=0, sent=None, users=None,
            stalled=0, rss=None, overflow=None, duration=4):
    d = {
        "scenario": scenario, "protocol": protocol,
        "connections": {"requested": n, "connected": n, "failed": 0, "stalled": stalled, "setup_per_s": 10000.0},
        "deliveries": {"expected": 1000, "received": 1000, "per_s": per_s},
        "lost": lost, "duplicated": 0, "late_or_duplicate": 0, "frozen_after_s": None,
        "latency": {"p50_ms": p50, "p99_ms": p99, "max_ms": p99 * 2},
        "server_rss_kib": rss or {"before": 10240, "full": 20480, "after_close": 11264, "per_stream_bytes": 2560},
        "server_metrics_delta": {"sse_connections_closed_overflow_total": overflow},
    }
    if rate is not None:
        d["users"] = users or n
        d["publish"] = {"target_rate": rate, "achieved_rate": rate if sent is None else sent, "duration_s": duration,
                        "pad_bytes": 0}
    return d


def idle(protocol, n, per_stream):
    before = 10240
    full = before + per_stream * n // 1024
    return summary("idle", protocol, n, rss={"before": before, "full": full, "after_close": before + 1000,
                                             "per_stream_bytes": per_stream})


def resume(protocol, missing=0, repeated=0, again=0, resets=0, exact=100):
    d = summary("resume", protocol, 100, rate=1000, per_s=2000, p50=0.8, p99=3.5, users=100)
    d["resume"] = {"subscribers": 100, "users": 100, "before_per_user": 3, "away_per_user": 20,
                   "live_per_user": 3, "broadcasts": {"before": 1, "away": 2, "live": 1}, "expected": 2500,
                   "missing": missing, "repeated": repeated, "replayed_before": again, "before_missing": 0,
                   "before_incomplete_subscribers": 0, "exact_subscribers": exact, "resets": resets,
                   "reconnect_failed": 0, "without_resume_point": 0, "unexpected_events": 0,
                   "reconnect_secs": 0.042}
    return d


def fanout(protocol, n, rate, p99, per_s=None, sent=None, lost=0):
    return summary("fanout", protocol, n, rate=rate, per_s=per_s if per_s is not None else (sent or rate) * n * 0.99,
                   p50=p99 / 3, p99=p99, sent=sent, lost=lost)


def write(directory, name, d):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name + ".json"), "w") as f:
        json.dump(d, f)


def make_results(root):
    """A results directory like bench.sh's (sse-server, Nchan and its variants, Centrifugo;
    Mercure skipped)."""
    peers = os.path.join(root, "peers")
    sse, nchan, cf = root, os.path.join(peers, "nchan"), os.path.join(peers, "centrifugo")
    os.makedirs(peers, exist_ok=True)
    with open(os.path.join(root, "started"), "w") as f:
        f.write("2030-01-01T00:00:00Z\n")
    with open(os.path.join(root, "kafka-skipped"), "w") as f:
        f.write("left out: BENCH_SKIP_KAFKA=1\n")
    with open(os.path.join(peers, "mercure-skipped"), "w") as f:
        f.write("not built (bench/peers/build.sh mercure failed)\n")
    for directory, protocol, per in ((sse, "sse-server", 2560), (nchan, "nchan", 13200), (cf, "centrifugo", 9000)):
        for k in (1, 10, 19):
            write(directory, "idle-%dk" % k, idle(protocol, k * 1000, per))
    # sse-server: 1k fan-out up to 1,000/s (the publishers short of it), 10k up to 100/s.
    for rate, p99, sent in ((100, 20.0, None), (300, 30.0, None), (1000, 390.0, 950), (2000, 4100.0, 1500)):
        write(sse, "fanout-1k-%d" % rate, fanout("sse-server", 1000, rate, p99, sent=sent))
    for rate, p99 in ((10, 60.0), (50, 95.0), (100, 300.0)):
        write(sse, "fanout-10k-%d" % rate, fanout("sse-server", 10000, rate, p99))
    # Nchan: multiplexed stops at 100/s; `all` alone does better at 100/s and goes on.
    write(nchan, "fanout-1k-100", fanout("nchan", 1000, 100, 4000.0, per_s=49000))
    write(nchan, "fanout-10k-10", fanout("nchan", 10000, 10, 3800.0, per_s=53000))
    write(os.path.join(peers, "nchan-all"), "fanout-1k-100", fanout("nchan-all", 1000, 100, 80.0))
    write(os.path.join(peers, "nchan-all"), "fanout-1k-300", fanout("nchan-all", 1000, 300, 1200.0))
    write(os.path.join(peers, "nchan-all-1w"), "fanout-1k-100", fanout("nchan-all", 1000, 100, 90.0, per_s=99500))
    # Centrifugo: fan-out to 1k only.
    write(cf, "fanout-1k-100", fanout("centrifugo", 1000, 100, 50.0))
    write(cf, "fanout-1k-300", fanout("centrifugo", 1000, 300, 2000.0))
    for directory, protocol, mx, p99 in ((sse, "sse-server", 28000, 0.7), (nchan, "nchan", 10000, 4.6),
                                         (cf, "centrifugo", 15000, 2.0)):
        write(directory, "unicast-1000-r5000", summary("unicast", protocol, 1000, rate=5000, per_s=4990, p99=p99 * 3))
        for r in (1, 2, 3):
            write(directory, "unicast-1000-max-r%d" % r,
                  summary("unicast", protocol, 1000, rate=0, sent=mx + r * 100, per_s=mx + r * 100, p99=p99))
            write(directory, "stalled-1pct-max-r%d" % r,
                  summary("stalled", protocol, 1000, rate=0, sent=mx, per_s=mx * 0.9, p99=p99, stalled=10,
                          overflow=0 if protocol == "sse-server" else None))
    # The stalled fan-out pair, sse-server only.
    for r in (1, 2):
        base = summary("fanout", "sse-server", 1000, rate=500, per_s=190000, p99=8000.0)
        base["publish"]["pad_bytes"] = 2000
        write(sse, "fanout-1k-1000-base-r%d" % r, base)
        write(sse, "fanout-1k-1000-stalled-r%d" % r,
              dict(base, connections=dict(base["connections"], stalled=10), server_metrics_delta={
                  "sse_connections_closed_overflow_total": 10}))
    # Charts of some runs.
    for directory, name in ((sse, "fanout-1k-300"), (sse, "resume"), (nchan, "resume"), (cf, "unicast-1000-r5000")):
        with open(os.path.join(directory, name + ".png"), "wb") as f:
            f.write(b"\x89PNG")
    # Nchan's resume repeats; Centrifugo's loses messages; sse-server's is exact.
    write(sse, "resume", resume("sse-server"))
    write(nchan, "resume", resume("nchan", repeated=40, exact=90))
    write(cf, "resume", resume("centrifugo", missing=12, resets=3, exact=97))
    with open(os.path.join(root, "commands.tsv"), "w") as f:
        f.write("idle-1k\tbench/target/release/sse-bench idle -n 1000 --server-pid $SERVER_PID\n")
        f.write("nchan:idle-1k\tbench/target/release/sse-bench idle -n 1000 --protocol nchan\n")
        # Commands naming this checkout's Python and a server built elsewhere by their full paths.
        f.write("kafka-1k\tbench/target/release/sse-bench kafka --kafka-produce %s\\ tests/kafka_tool.py\\ produce "
                "--url http://127.0.0.1:3990/v3/sse\n" % os.path.join(CHECKOUT, ".local", "venv", "bin", "python"))
        f.write("unicast-1000-r5000\t/opt/build/release/sse-server --bind 127.0.0.1:3990 & cd %s\n" % CHECKOUT)


def render_page(results, docs):
    br.main([results, docs])
    with open(os.path.join(docs, "BENCHMARKS.md")) as f:
        return f.read()


def section(page, title):
    """The lines of PAGE from the heading TITLE up to the next heading of any level."""
    lines = page.split("\n")
    start = lines.index(title)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("#", "<!--"))), len(lines))
    return "\n".join(lines[start:end]).strip("\n")


GOLDEN_RESUME = """\
### Resume: 100 subscribers leave and come back (`Last-Event-ID`; Centrifugo: its recovery by offset and epoch)

Each of 100 subscribers (100 users) gets 3 messages and a broadcast, disconnects, misses 20 messages per user and 2 broadcasts, reconnects from the last event it had, then gets 3 more. Counted over the messages after it left (away and live) that the server accepted.

| server | subscribers back | messages expected after leaving | missing | repeated | before-messages again | exact subscribers | resume refused (resets) | reconnect ms | p50 / p99 ms (before and live) |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| sse-server | 100 of 100 | 2,500 | 0 | 0 | 0 | 100 of 100 | 0 | 42.0 | 0.80 / 3.50 |
| Nchan | 100 of 100 | 2,500 | 0 | 40 | 0 | 90 of 100 | 0 | 42.0 | 0.80 / 3.50 |
| Centrifugo | 100 of 100 | 2,500 | 12 | 0 | 0 | 97 of 100 | 3 | 42.0 | 0.80 / 3.50 |
| Mercure | not measured (not built (bench/peers/build.sh mercure failed)) |  |  |  |  |  |  |  |  |

Missing: never came; repeated: came more than once; before-messages again: one it had before leaving came again; exact: a subscriber with none of these. Resets: the server said it could not resume from there (sse-server's `event: reset`; a Centrifugo subscription recovering but not recovered). The away messages wait for the reconnection by design, so latency counts the others only."""


def test_full_page(tmp):
    results, docs = os.path.join(tmp, "results"), os.path.join(tmp, "docs")
    make_results(results)
    page = render_page(results, docs)

    assert section(page, GOLDEN_RESUME.split("\n")[0]) == GOLDEN_RESUME, section(page, GOLDEN_RESUME.split("\n")[0])

    # Every family has a table with a row per server; Mercure says why it is missing.
    for title in ("### Idle streams", "### Fan-out to 1,000 subscribers", "### Fan-out to 10,000 subscribers",
                  "### Unicast to 1,000 users", "### Stalled readers", "### Resume"):
        line = next((x for x in page.split("\n") if x.startswith(title)), None)
        assert line, title
        text = section(page, line)
        assert "| Mercure | not measured (not built (bench/peers/build.sh mercure failed))" in text, text
        for name in ("sse-server", "Nchan"):
            assert "| %s" % name in text, (title, name)

    idle = section(page, next(x for x in page.split("\n") if x.startswith("### Idle streams")))
    assert "| 10,000 | Centrifugo | 8.8 KiB | 10.0 → 95.8 | 11.0 | 10,000 |" in idle, idle

    # Nchan's best configuration per rate, named; its series ends; the configurations listed.
    fan1k = section(page, next(x for x in page.split("\n") if x.startswith("### Fan-out to 1,000")))
    assert "| 100 | Nchan (`all` alone, 1 worker) | 100 | 99,500 | 30.0 | 90.0 | 0 |" in fan1k, fan1k
    assert "| 300 | Nchan (`all` alone, 2 workers) |" in fan1k, fan1k
    assert "| 1,000 | Nchan" not in fan1k, fan1k
    assert "Nchan (multiplexed, 2 workers) after 100/s (p99 4,000 ms)" in fan1k, fan1k
    assert "sse-server after 2,000/s (p99 4,100 ms, publishers at 1,500 of 2,000/s)" in fan1k, fan1k
    fan10k = section(page, next(x for x in page.split("\n") if x.startswith("### Fan-out to 10,000")))
    assert "| | Centrifugo | not measured (no run fanout-10k-*) |" in fan10k.replace("|  |", "| |"), fan10k

    goals = section(page, "## Goals (issue 19)")
    rows = {r.split(" | ")[0].lstrip("| "): r for r in goals.split("\n") if r.startswith("| ")}
    assert rows["Lowest server RSS per idle stream at 10k streams"].endswith(
        "| **met** against the peers measured (Mercure: not measured) |"), rows
    fan = rows["Most deliveries/s with p99 ≤ 100 ms (nothing lost), 1k-subscriber fan-out"]
    assert "297,000 deliveries/s, p99 30.0 ms, lost 0 (300 broadcasts/s asked)" in fan, fan
    assert "99,500 deliveries/s, p99 90.0 ms, lost 0 (100 broadcasts/s asked); `all` alone, 1 worker" in fan, fan
    assert fan.endswith("**met** against the peers measured (Mercure: not measured) |"), fan
    assert rows["Most unicast deliveries/s flat out (1,000 users)"].endswith("(Mercure: not measured) |")
    exact = rows["Exact resume: nothing missing, repeated or sent again, every subscriber exact, no peer better"]
    assert "| missing 0, repeated 0, before-messages again 0; 100 of 100 subscribers exact" in exact, exact
    assert exact.endswith("| **met** |"), exact
    g10k = rows["10k-subscriber fan-out: p99 ≤ 100 ms (nothing lost) at ≥ 500,000 deliveries/s"]
    assert "495,000 deliveries/s, p99 95.0 ms" in g10k and g10k.endswith("| **not met** |"), g10k
    g1m = next(r for k, r in rows.items() if k.startswith("1k-subscriber fan-out: ≥ 1 M"))
    assert ("at 1,000 broadcasts/s asked (1,000,000 deliveries/s) the publishers sent 950/s "
            "(950,000 deliveries/s offered)") in g1m, g1m
    assert g1m.endswith("| **not met** (the publishers did not offer 1,000,000 deliveries/s) |"), g1m
    assert "- Mercure: not measured (not built (bench/peers/build.sh mercure failed))." in goals, goals
    assert "Runs whose JSON names another protocol" not in goals, goals

    stalled = section(page, next(x for x in page.split("\n") if x.startswith("### Stalled readers")))
    assert ("| fan-out 500/s × 2,000 B padding (median of 2, range) | sse-server | 190.0 (190.0 … 190.0) | "
            "191.9 (191.9 … 191.9) | -1.0 % (-1.0 % … -1.0 %) |") in stalled, stalled
    assert ("| fan-out 500/s × 2,000 B padding | Centrifugo | not measured (no run fanout-1k-1000-base / "
            "fanout-1k-1000-stalled) |") in stalled, stalled

    charts = section(page, "## Charts")
    assert "| run | sse-server | Nchan | Centrifugo |" in charts, charts
    assert "| resume | ![resume](bench-resume.png) | ![Nchan resume](bench-nchan-resume.png) | – |" in charts, charts
    assert "| unicast-1000-r5000 | – | – | ![Centrifugo unicast-1000-r5000](bench-centrifugo-unicast-1000-r5000.png) |" \
        in charts, charts
    assert os.path.exists(os.path.join(docs, "bench-centrifugo-unicast-1000-r5000.png"))
    assert "Not measured: Mercure (not built (bench/peers/build.sh mercure failed))." in page

    # No machine's directories: the checkout's paths relative to it, others by their file name.
    assert ("bench/target/release/sse-bench kafka --kafka-produce .local/venv/bin/python\\ tests/kafka_tool.py\\ "
            "produce --url http://127.0.0.1:3990/v3/sse\n") in page, section(page, "```sh")
    assert "\nsse-server --bind 127.0.0.1:3990 & cd .\n" in page, page[page.index("## How to run"):]
    for machine_path in (CHECKOUT, os.path.realpath(CHECKOUT), "/opt/"):
        assert machine_path not in page, machine_path

    # The issue-12 table is still there, and the Kafka markers.
    assert "| goal | sse-server | Nchan (same run) | verdict |" in page
    for marker in ("kafka:begin", "kafka:end", "kafka-goals:begin", "kafka-goals:end"):
        assert page.count("<!-- %s -->" % marker) == 1, marker
    assert "Traceback" not in page
    return results, docs, page


def test_kafka_only(results, docs, page):
    """--kafka-only rewrites the Kafka blocks alone."""
    with open(os.path.join(results, "kafka-skipped"), "w") as f:
        f.write("no broker answered on 127.0.0.1:9092\n")
    br.main(["--kafka-only", results, docs])
    with open(os.path.join(docs, "BENCHMARKS.md")) as f:
        after = f.read()
    assert "no broker answered on 127.0.0.1:9092" in after
    cut = page.index("<!-- kafka:begin -->")
    assert after[:cut] == page[:cut]
    assert after[after.index("## Goals (issue 19)"):] == page[page.index("## Goals (issue 19)"):]


def test_missing_files(tmp):
    """Any one result missing, or all of them: still a page, no traceback."""
    base = os.path.join(tmp, "base")
    make_results(base)
    files = sorted(os.path.relpath(os.path.join(d, f), base) for d, _, fs in os.walk(base) for f in fs)
    docs = os.path.join(tmp, "docs-missing")
    for i, rel in enumerate(files):
        results = os.path.join(tmp, "r%d" % i)
        shutil.copytree(base, results)
        os.remove(os.path.join(results, rel))
        br.load(results, docs)
        for part in (br.side_by_side, br.goals_section):
            br.render(part)
        shutil.rmtree(results)
    # Whole peers gone, without a -skipped file; then nothing at all.
    results = os.path.join(tmp, "nopeers")
    shutil.copytree(base, results)
    shutil.rmtree(os.path.join(results, "peers"))
    page = render_page(results, docs)
    assert "| Nchan | not measured (no results in peers/nchan/) |" in page, page
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty)
    page = render_page(empty, docs)
    assert "## Goals (issue 19)" in page and "<!-- kafka:begin -->" in page
    # A run that failed and an unreadable file.
    results = os.path.join(tmp, "failed")
    shutil.copytree(base, results)
    write(results, "resume", {"label": "resume", "failed_exit": 1})
    with open(os.path.join(results, "peers", "nchan", "fanout-1k-100.json"), "w") as f:
        f.write("{")
    page = render_page(results, docs)
    assert "| sse-server | resume failed (exit 1) |" in page, section(page, "### Resume")
    assert "Runs that did not finish: resume, Nchan (multiplexed, 2 workers) fanout-1k-100" in page


def main():
    keep = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--keep" else None
    tmp = keep or tempfile.mkdtemp(prefix="bench-report-test-")
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            results, docs, page = test_full_page(tmp)
            test_kafka_only(results, docs, page)
            test_missing_files(tmp)
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print("bench_report.py: all checks passed")


if __name__ == "__main__":
    main()
