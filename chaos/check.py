"""The checker: judges a run from its history alone (DIR/history.jsonl).

    .local/venv/bin/python chaos/check.py DIR/history.jsonl     # prints the summary, writes DIR/summary.json

Exit code 1 on any violation, 0 otherwise. Every check is a pure function of the list of
records, so chaos/test_check.py tests each on small hand-made histories.

What is checked (docs/RELIABILITY.md says what this proves and what it does not):
- /v3 lost: an acknowledged publish (202, or a direct Kafka produce acknowledged) for
  user U, sent after a client of U first connected, that this client never got. A client
  resuming with Last-Event-ID stays subscribed; a `reset` breaks it: what was sent before
  the reset and is missing counts as `missing_after_reset`, and the reset itself is a
  violation (resume was not exact);
- /v3 duplicate: one payload delivered twice to one client (across its reconnects);
- /v3 order: per client, the acknowledged payloads of one sequential publisher for one
  user arrive in their publish order;
- /v3 phantom: a delivered payload that was not published to that user;
- written "no" that arrives anywhere; "maybe" delivered 0 or 1 time is fine (twice is a
  duplicate);
- /v4: every accepted change (202) announced once (as report_status_update or
  report_status_rejected of that report and status) on each client that saw the report
  from its creation, refusals never, "maybe" at most once (a per-report, per-status
  count bound); announced updates form a valid path of the state machine; the final
  table (version - 1 = applied changes, status = the fold of the updates) agrees; each
  client's board (snapshot + events) ends equal to the table; every 201 report is in it;
- recovery: for each fault's heal, the time until every /v3 client is connected and has
  every publish acknowledged before the heal; p50/p99/max over faults.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from history import read_history  # noqa: E402

TRANSITIONS = {
    "pending": {"queued", "canceled"},
    "queued": {"processing", "canceled"},
    "processing": {"completed", "failed"},
    "failed": {"pending"},
    "canceled": {"pending"},
    "completed": set(),
}
SAMPLE = 20  # violations listed in full, per kind; the counts are always complete


# ----------------------------------------------------------------------------- clients

def clients_of(records: list[dict]) -> dict[str, dict]:
    """Per client: api, user, first connection time, reset times, connected intervals,
    stop time."""
    clients: dict[str, dict] = {}
    end = records[-1]["t"] if records else 0.0

    def get(name: str, rec: dict) -> dict:
        if name not in clients:
            clients[name] = {"api": rec.get("api"), "user": rec.get("user"), "first": None,
                             "resets": [], "intervals": [], "stop": None, "open": None}
        return clients[name]

    for r in records:
        k = r["kind"]
        if k == "client_start":
            get(r["client"], r)
        elif k == "connect" and r.get("status") == 200:
            c = get(r["client"], r)
            if c["first"] is None:
                c["first"] = r["t"]
            c["open"] = r["t"]
        elif k == "disconnect":
            c = get(r["client"], r)
            if c["open"] is not None:
                c["intervals"].append((c["open"], r["t"]))
                c["open"] = None
        elif k == "reset":
            get(r["client"], r)["resets"].append(r["t"])
        elif k == "client_stop":
            c = get(r["client"], r)
            c["stop"] = r["t"]
    for c in clients.values():
        if c["open"] is not None:
            c["intervals"].append((c["open"], c["stop"] if c["stop"] is not None else end))
            c["open"] = None
        if c["stop"] is None:
            c["stop"] = end
    return clients


# ----------------------------------------------------------------------------- /v3

def v3_publishes(records: list[dict]) -> dict[str, dict]:
    return {r["payload"]: r for r in records if r["kind"] == "publish" and r.get("api", "v3") == "v3"}


def v3_deliveries(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r["kind"] == "deliver" and r.get("api", "v3") == "v3":
            out[r["client"]].append(r)
    return out


def check_v3(records: list[dict]) -> dict:
    pubs = v3_publishes(records)
    deliveries = v3_deliveries(records)
    clients = {n: c for n, c in clients_of(records).items() if c["api"] == "v3"}
    lost, missing_after_reset, dups, order, phantoms, no_arrived = [], [], [], [], [], []
    arrivals: Counter = Counter()  # payload -> clients that got it at least once

    for name, dl in deliveries.items():
        seen: Counter = Counter()
        last_seq: dict[tuple, int] = {}
        for d in dl:
            payload = d["data"]
            seen[payload] += 1
            p = pubs.get(payload)
            if p is None or p["user"] != d["user"]:
                phantoms.append({"client": name, "user": d["user"], "data": payload, "t": d["t"]})
                continue
            if seen[payload] > 1:
                continue  # counted as a duplicate below; not an order question
            arrivals[payload] += 1
            if p["written"] != "yes":
                continue
            key = (p["publisher"], p["user"])
            if key in last_seq and p["seq"] < last_seq[key]:
                order.append({"client": name, "user": p["user"], "publisher": p["publisher"],
                              "payload": payload, "seq": p["seq"], "after_seq": last_seq[key], "t": d["t"]})
            last_seq[key] = max(last_seq.get(key, p["seq"]), p["seq"])
        for payload, n in seen.items():
            if n > 1 and payload in pubs:
                dups.append({"client": name, "data": payload, "times": n, "written": pubs[payload]["written"]})

    for payload, p in pubs.items():
        if p["written"] == "no" and arrivals[payload]:
            no_arrived.append({"payload": payload, "user": p["user"], "clients": arrivals[payload]})

    by_user: dict[str, list[dict]] = defaultdict(list)
    for p in pubs.values():
        if p["written"] == "yes":
            by_user[p["user"]].append(p)
    for name, c in clients.items():
        if c["first"] is None:
            continue
        got = {d["data"] for d in deliveries.get(name, [])}
        last_reset = max(c["resets"]) if c["resets"] else None
        for p in by_user.get(c["user"], []):
            if p["t0"] <= c["first"] or p["t"] > c["stop"] or p["payload"] in got:
                continue
            miss = {"client": name, "user": c["user"], "payload": p["payload"], "via": p["via"],
                    "t0": p["t0"], "acked": p["t"]}
            if last_reset is not None and p["t0"] < last_reset:
                missing_after_reset.append(miss)
            else:
                lost.append(miss)

    maybe = [p for p in pubs.values() if p["written"] == "maybe"]
    resets = [r for r in records if r["kind"] == "reset" and r.get("api", "v3") == "v3"]
    return {
        "publishes": len(pubs),
        "acknowledged": sum(1 for p in pubs.values() if p["written"] == "yes"),
        "deliveries": sum(len(v) for v in deliveries.values()),
        "lost": len(lost), "lost_sample": lost[:SAMPLE],
        "missing_after_reset": len(missing_after_reset), "missing_after_reset_sample": missing_after_reset[:SAMPLE],
        "duplicates": len(dups), "duplicates_sample": dups[:SAMPLE],
        "order_violations": len(order), "order_sample": order[:SAMPLE],
        "phantoms": len(phantoms), "phantoms_sample": phantoms[:SAMPLE],
        "written_no_arrived": len(no_arrived), "written_no_arrived_sample": no_arrived[:SAMPLE],
        "resets": len(resets), "resets_sample": [{k: r.get(k) for k in ("client", "t", "data")} for r in resets[:SAMPLE]],
        "maybe": {"count": len(maybe), "arrived": sum(1 for p in maybe if arrivals[p["payload"]]),
                  "not_arrived": sum(1 for p in maybe if not arrivals[p["payload"]])},
        "written_no": sum(1 for p in pubs.values() if p["written"] == "no"),
    }


# ----------------------------------------------------------------------------- /v4

def fold_updates(statuses: list[str], start: str = "pending") -> tuple[str, list[tuple[str, str]]]:
    """Applies a report's announced statuses in order from `start`: (final, invalid steps)."""
    cur, bad = start, []
    for s in statuses:
        if s not in TRANSITIONS.get(cur, set()):
            bad.append((cur, s))
        cur = s
    return cur, bad


def check_v4(records: list[dict]) -> dict:
    reqs = [r for r in records if r["kind"] == "v4_request"]
    events = [r for r in records if r["kind"] == "v4_event"]
    table_rec = next((r for r in reversed(records) if r["kind"] == "v4_table"), None)
    table = {it["report_id"]: it for it in table_rec["reports"]} if table_rec else None
    clients = {n: c for n, c in clients_of(records).items() if c["api"] == "v4"}

    created: dict[str, dict] = {}  # report -> the 201 request
    maybe_creates: Counter = Counter()  # user -> creates that may have landed
    accepted: dict[str, Counter] = defaultdict(Counter)  # report -> to-status -> 202s
    maybe: dict[str, Counter] = defaultdict(Counter)
    asked: dict[str, set] = defaultdict(set)  # report -> every status asked for, any answer
    for r in reqs:
        if r["op"] == "create":
            if r["written"] == "yes" and r.get("report"):
                created[r["report"]] = r
            elif r["written"] == "maybe":
                maybe_creates[r["user"]] += 1
        else:
            asked[r["report"]].add(r["to"])
            if r["written"] == "yes":
                accepted[r["report"]][r["to"]] += 1
            elif r["written"] == "maybe":
                maybe[r["report"]][r["to"]] += 1

    v: dict[str, list] = defaultdict(list)  # violation kind -> samples
    per_client: dict[str, list] = defaultdict(list)
    for e in events:
        per_client[e["client"]].append(e)

    known = set(created) | (set(table) if table is not None else set())
    full_view_updates: dict[str, list[str]] = {}  # report -> updates seen by a client that saw it all

    for name, c in clients.items():
        evs = per_client.get(name, [])
        board: dict[str, str] = {}
        updates: dict[str, list[str]] = defaultdict(list)
        outcomes: dict[str, Counter] = defaultdict(Counter)
        new_reports: Counter = Counter()
        for e in evs:
            kind, data = e["event"], e["data"]
            if kind == "snapshot" and isinstance(data, list):
                board = {rep["reportId"]: rep["reportStatus"] for rep in data}
            elif kind == "new_report" and isinstance(data, dict):
                board[data["reportId"]] = data["reportStatus"]
                new_reports[data["reportId"]] += 1
                if data["reportId"] not in known:
                    v["phantom"].append({"client": name, "event": kind, "report": data["reportId"]})
            elif kind in ("report_status_update", "report_status_rejected") and isinstance(data, dict):
                rid, status = data.get("id"), data.get("status")
                if rid not in known or status not in asked.get(rid, set()):
                    v["phantom"].append({"client": name, "event": kind, "report": rid, "status": status})
                outcomes[rid][status] += 1
                if kind == "report_status_update":
                    updates[rid].append(status)
                    board[rid] = status
        if table is not None and c["first"] is not None:
            want = {rid: it["status"] for rid, it in table.items() if it["user_id"] == c["user"]}
            if board != want:
                diff = {rid: [board.get(rid), want.get(rid)] for rid in set(board) | set(want)
                        if board.get(rid) != want.get(rid)}
                v["board_mismatch"].append({"client": name, "diff(board,table)": diff})
        if c["first"] is None or c["resets"]:
            continue  # a client without a full view of its user's reports: its board only
        for rid, req in created.items():
            if req["user"] != c["user"] or req["t0"] <= c["first"] or req["t"] > c["stop"]:
                continue
            if new_reports[rid] != 1:
                v["new_report_count"].append({"client": name, "report": rid, "times": new_reports[rid]})
            for status in set(accepted[rid]) | set(maybe[rid]) | set(outcomes[rid]):
                n, lo = outcomes[rid][status], accepted[rid][status]
                hi = lo + maybe[rid][status]
                if n < lo:
                    v["announce_missing"].append({"client": name, "report": rid, "status": status, "announced": n, "accepted": lo})
                elif n > hi:
                    v["announce_extra"].append({"client": name, "report": rid, "status": status, "announced": n, "accepted": lo, "maybe": hi - lo})
            final, bad = fold_updates(updates[rid])
            if bad:
                v["invalid_transition"].append({"client": name, "report": rid, "steps": bad})
            full_view_updates.setdefault(rid, updates[rid])

    if table is not None:
        for rid, req in created.items():
            if rid not in table:
                v["created_missing_from_table"].append({"report": rid, "user": req["user"]})
        extra = Counter(it["user_id"] for rid, it in table.items() if rid not in created)
        for user, n in extra.items():
            if n > maybe_creates[user]:
                v["phantom_report_in_table"].append({"user": user, "unknown": n, "maybe_creates": maybe_creates[user]})
        for rid, it in table.items():
            applied = (it["version"] or 1) - 1
            if rid in full_view_updates:
                ups = full_view_updates[rid]
                final, _ = fold_updates(ups)
                if applied != len(ups) or it["status"] != final:
                    v["table_vs_stream"].append({"report": rid, "table": [it["status"], applied], "stream": [final, len(ups)]})
            else:
                bound = sum(accepted[rid].values()) + sum(maybe[rid].values())
                if applied > bound:
                    v["applied_beyond_requests"].append({"report": rid, "applied": applied, "bound": bound})

    return {
        "requests": dict(Counter(f"{r['op']}:{r['written']}" for r in reqs)),
        "events": dict(Counter(e["event"] for e in events)),
        "table_read": table is not None,
        "reports_in_table": len(table) if table is not None else None,
        "reports_fully_viewed": len(full_view_updates),
        "resets": sum(1 for r in records if r["kind"] == "reset" and r.get("api") == "v4"),
        "violations": {k: len(s) for k, s in v.items()},
        "samples": {k: s[:SAMPLE] for k, s in v.items()},
    }


# ----------------------------------------------------------------------------- recovery

def percentile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q% of the values at or below it."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def connected_at_or_after(intervals: list[tuple[float, float]], h: float) -> float | None:
    starts = []
    for a, b in intervals:
        if a <= h < b:
            return h
        if a >= h:
            starts.append(a)
    return min(starts) if starts else None


def recovery(records: list[dict]) -> dict:
    pubs = [p for p in v3_publishes(records).values() if p["written"] == "yes"]
    first_delivery: dict[str, dict[str, float]] = defaultdict(dict)
    for name, dl in v3_deliveries(records).items():
        for d in dl:
            first_delivery[name].setdefault(d["data"], d["t"])
    clients = {n: c for n, c in clients_of(records).items() if c["api"] == "v3" and c["first"] is not None}
    by_user: dict[str, list[dict]] = defaultdict(list)
    for p in pubs:
        by_user[p["user"]].append(p)
    heals = [r for r in records if r["kind"] == "fault" and r.get("phase") == "heal"]
    per_fault, per_client_values = [], []
    for h in heals:
        ht, worst, unrecovered = h["t"], 0.0, 0
        for name, c in clients.items():
            if c["stop"] <= ht:
                continue
            back = connected_at_or_after(c["intervals"], ht)
            if back is None:
                unrecovered += 1
                continue
            got = first_delivery[name]
            for p in by_user.get(c["user"], []):
                if p["t"] < ht and p["t0"] > c["first"]:
                    t = got.get(p["payload"])
                    if t is None:
                        back = None
                        break
                    back = max(back, t)
            if back is None:
                unrecovered += 1
                continue
            per_client_values.append(back - ht)
            worst = max(worst, back - ht)
        per_fault.append({"fid": h.get("fid"), "fault": h.get("fault"), "recovery_s": None if unrecovered else round(worst, 3),
                          "clients_unrecovered": unrecovered})
    values = [f["recovery_s"] for f in per_fault if f["recovery_s"] is not None]
    rnd = lambda x: None if x is None else round(x, 3)  # noqa: E731
    return {
        "per_fault": per_fault,
        "p50_s": rnd(percentile(values, 50)), "p99_s": rnd(percentile(values, 99)), "max_s": rnd(max(values) if values else None),
        "per_client_p50_s": rnd(percentile(per_client_values, 50)), "per_client_p99_s": rnd(percentile(per_client_values, 99)),
        "unrecovered_faults": sum(1 for f in per_fault if f["recovery_s"] is None),
    }


# ----------------------------------------------------------------------------- summary

def summarize(records: list[dict]) -> dict:
    run = next((r for r in records if r["kind"] == "run_start"), {})
    end = next((r for r in reversed(records) if r["kind"] == "run_end"), None)
    faults = [r for r in records if r["kind"] == "fault"]
    v3 = check_v3(records)
    v4 = check_v4(records)
    rec = recovery(records)
    ops = Counter()
    for r in records:
        if r["kind"] == "publish":
            ops[f"publish:{r.get('via')}:{r.get('written')}"] += 1
        elif r["kind"] == "v4_request":
            ops[f"v4_{r['op']}:{r['written']}"] += 1
        elif r["kind"] in ("deliver", "v4_event", "connect", "disconnect", "reset"):
            ops[r["kind"]] += 1
    violations = {
        "v3_lost": v3["lost"], "v3_duplicates": v3["duplicates"], "v3_order": v3["order_violations"],
        "v3_phantoms": v3["phantoms"], "v3_written_no_arrived": v3["written_no_arrived"],
        "resets": v3["resets"] + v4["resets"],
        "fault_errors": sum(1 for f in faults if f.get("phase") == "error"),
        **{f"v4_{k}": n for k, n in v4["violations"].items()},
    }
    total = sum(violations.values())
    return {
        "seed": run.get("seed"), "quick": run.get("quick"),
        "duration_s": round(end["t"] - records[0]["t"], 3) if end and records else None,
        "workload_s": run.get("duration"),
        "faults_by_kind": dict(Counter(f["fault"] for f in faults if f.get("phase") == "start")),
        "fault_errors": [{k: f.get(k) for k in ("fid", "fault", "error")} for f in faults if f.get("phase") == "error"],
        "operations_by_kind": dict(sorted(ops.items())),
        "lost": v3["lost"], "duplicates": v3["duplicates"], "order_violations": v3["order_violations"],
        "phantoms": v3["phantoms"], "resets": v3["resets"] + v4["resets"],
        "maybe_written": {"v3": v3["maybe"], "v4": {k: n for k, n in v4["requests"].items() if k.endswith(":maybe")}},
        "recovery": rec,
        "v3": v3, "v4": v4,
        "violations": violations, "violations_total": total, "ok": total == 0,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check.py DIR/history.jsonl", file=sys.stderr)
        return 2
    path = argv[0]
    summary = summarize(read_history(path))
    text = json.dumps(summary, indent=2, sort_keys=False, default=str)
    print(text)
    with open(os.path.join(os.path.dirname(os.path.abspath(path)), "summary.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(f"check: {'OK' if summary['ok'] else 'VIOLATIONS'}: {summary['violations_total']} violation(s) "
          f"{ {k: n for k, n in summary['violations'].items() if n} }", file=sys.stderr)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
