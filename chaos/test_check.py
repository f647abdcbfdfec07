"""Unit tests of the checker (check.py) over small hand-made histories, and of the SSE
parser (sse_client.SseParser), which the verdicts rest on.

    .local/venv/bin/python -m unittest discover -s chaos -p 'test_*.py'
    .local/venv/bin/python -m pytest chaos/test_check.py
"""

from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import check  # noqa: E402
from faults import ALL_KINDS, schedule  # noqa: E402
from sse_client import SseParser  # noqa: E402


class H:
    """Builds a history: one method per record kind, times given explicitly."""

    def __init__(self):
        self.r = [{"t": 0.0, "kind": "run_start", "seed": 1, "duration": 10}]

    def add(self, t, kind, **kw):
        self.r.append({"t": t, "kind": kind, **kw})
        return self

    def client(self, name, user, t=1.0, api="v3"):
        self.add(t, "client_start", client=name, api=api, user=user)
        return self.add(t + 0.1, "connect", client=name, api=api, user=user, status=200, conn=1)

    def pub(self, t0, t, user, payload, seq, written="yes", publisher="http-0"):
        return self.add(t, "publish", api="v3", via="http", publisher=publisher, user=user, seq=seq,
                        payload=payload, t0=t0, written=written)

    def deliver(self, t, client, user, data):
        return self.add(t, "deliver", api="v3", client=client, user=user, data=data)

    def stop(self, t, *clients):
        for c in clients:
            self.add(t, "client_stop", client=c)
        return self.add(t + 0.1, "run_end")


def ok_history() -> H:
    h = H().client("a", "u1").client("b", "u1")
    h.pub(2, 2.1, "u1", "p1", 1).pub(3, 3.1, "u1", "p2", 2)
    for c in ("a", "b"):
        h.deliver(2.2, c, "u1", "p1").deliver(3.2, c, "u1", "p2")
    return h.stop(10, "a", "b")


class V3(unittest.TestCase):
    def test_clean_history_has_no_violation(self):
        s = check.summarize(ok_history().r)
        self.assertTrue(s["ok"], s["violations"])
        self.assertEqual(s["v3"]["acknowledged"], 2)

    def test_lost_when_a_subscribed_client_misses_an_acknowledged_publish(self):
        h = H().client("a", "u1").pub(2, 2.1, "u1", "p1", 1).stop(10, "a")
        v = check.check_v3(h.r)
        self.assertEqual(v["lost"], 1)
        self.assertEqual(v["lost_sample"][0]["payload"], "p1")

    def test_not_lost_when_sent_before_the_client_subscribed(self):
        h = H().pub(0.5, 0.6, "u1", "p1", 1).client("a", "u1", t=1.0).stop(10, "a")
        self.assertEqual(check.check_v3(h.r)["lost"], 0)

    def test_reconnect_keeps_the_subscription(self):
        h = H().client("a", "u1").add(1.5, "disconnect", client="a", conn=1, reason="eof")
        h.add(2.5, "connect", client="a", api="v3", user="u1", status=200, conn=2, last_event_id="1")
        h.pub(2, 2.1, "u1", "p1", 1).stop(10, "a")
        self.assertEqual(check.check_v3(h.r)["lost"], 1)  # missed while reconnecting: still lost

    def test_reset_breaks_the_subscription_and_is_reported(self):
        h = H().client("a", "u1").pub(2, 2.1, "u1", "p1", 1)
        h.add(3, "reset", client="a", api="v3", user="u1", data={"reason": "unknown_id"})
        h.pub(4, 4.1, "u1", "p2", 2).stop(10, "a")
        v = check.check_v3(h.r)
        self.assertEqual((v["lost"], v["missing_after_reset"], v["resets"]), (1, 1, 1))
        self.assertEqual(v["lost_sample"][0]["payload"], "p2")
        self.assertFalse(check.summarize(h.r)["ok"])

    def test_unacknowledged_publishes_are_not_lost(self):
        h = H().client("a", "u1").pub(2, 7, "u1", "p1", 1, written="maybe").pub(3, 3.1, "u1", "p2", 2, written="no")
        self.assertEqual(check.check_v3(h.stop(10, "a").r)["lost"], 0)

    def test_duplicate_across_reconnects(self):
        h = ok_history()
        h.r.insert(-2, {"t": 4, "kind": "deliver", "api": "v3", "client": "a", "user": "u1", "data": "p1"})
        v = check.check_v3(h.r)
        self.assertEqual(v["duplicates"], 1)
        self.assertEqual(v["order_violations"], 0)  # a repeat is a duplicate, not an order problem

    def test_order_of_one_publisher(self):
        h = H().client("a", "u1").pub(2, 2.1, "u1", "p1", 1).pub(3, 3.1, "u1", "p2", 2)
        h.deliver(3.2, "a", "u1", "p2").deliver(3.3, "a", "u1", "p1").stop(10, "a")
        self.assertEqual(check.check_v3(h.r)["order_violations"], 1)

    def test_two_publishers_are_not_ordered_together(self):
        h = H().client("a", "u1").pub(2, 2.1, "u1", "p1", 1).pub(3, 3.1, "u1", "k1", 1, publisher="kafka")
        h.deliver(3.2, "a", "u1", "k1").deliver(3.3, "a", "u1", "p1").stop(10, "a")
        self.assertEqual(check.check_v3(h.r)["order_violations"], 0)

    def test_phantom_and_misrouted(self):
        h = H().client("a", "u1").pub(2, 2.1, "u2", "p1", 1, written="maybe")
        h.deliver(3, "a", "u1", "nobody-sent-this").deliver(3.1, "a", "u1", "p1").stop(10, "a")
        self.assertEqual(check.check_v3(h.r)["phantoms"], 2)

    def test_written_no_that_arrives(self):
        h = H().client("a", "u1").pub(2, 2.1, "u1", "p1", 1, written="no").deliver(3, "a", "u1", "p1").stop(10, "a")
        v = check.check_v3(h.r)
        self.assertEqual(v["written_no_arrived"], 1)

    def test_maybe_once_is_fine_twice_is_a_duplicate(self):
        h = H().client("a", "u1").pub(2, 7, "u1", "p1", 1, written="maybe").deliver(8, "a", "u1", "p1")
        self.assertTrue(check.summarize(h.stop(10, "a").r)["ok"])
        h = H().client("a", "u1").pub(2, 7, "u1", "p1", 1, written="maybe")
        h.deliver(8, "a", "u1", "p1").deliver(8.5, "a", "u1", "p1").stop(10, "a")
        s = check.summarize(h.r)
        self.assertEqual((s["duplicates"], s["maybe_written"]["v3"]["arrived"]), (1, 1))


class Recovery(unittest.TestCase):
    def test_time_until_connected_and_caught_up(self):
        h = H().client("a", "u1").pub(2, 2.1, "u1", "p1", 1)
        h.add(2.5, "disconnect", client="a", conn=1, reason="eof")
        h.add(3, "fault", phase="heal", fid=0, fault="kill_instance")
        h.add(4, "connect", client="a", api="v3", user="u1", status=200, conn=2)
        h.deliver(5.5, "a", "u1", "p1").stop(10, "a")
        rec = check.recovery(h.r)
        self.assertEqual(rec["per_fault"][0]["recovery_s"], 2.5)
        self.assertEqual(rec["max_s"], 2.5)

    def test_unrecovered_when_a_payload_never_arrives(self):
        h = H().client("a", "u1").pub(2, 2.1, "u1", "p1", 1).add(3, "fault", phase="heal", fid=0, fault="cut_broker")
        rec = check.recovery(h.stop(10, "a").r)
        self.assertIsNone(rec["per_fault"][0]["recovery_s"])
        self.assertEqual(rec["unrecovered_faults"], 1)

    def test_percentile_nearest_rank(self):
        self.assertEqual(check.percentile([1, 2, 3, 4], 50), 2)
        self.assertEqual(check.percentile(list(range(1, 101)), 99), 99)
        self.assertIsNone(check.percentile([], 50))


R = "11111111-1111-4111-8111-111111111111"
U = "22222222-2222-4222-8222-222222222222"


def v4_history(updates=("queued",), table_status="queued", version=2, accepted=("queued",), extra=()):
    h = H().client("w", U, api="v4")
    h.add(1.2, "v4_event", client="w", user=U, event="snapshot", data=[])
    h.add(2.1, "v4_request", op="create", user=U, t0=2, written="yes", status=201, report=R)
    h.add(2.2, "v4_event", client="w", user=U, event="new_report", data={"reportId": R, "reportStatus": "pending"})
    t = 3.0
    for to in accepted:
        h.add(t + 0.1, "v4_request", op="change", user=U, t0=t, report=R, to=to, written="yes", status=202)
        t += 1
    for to, written in extra:
        h.add(t + 0.1, "v4_request", op="change", user=U, t0=t, report=R, to=to, written=written, status=409)
        t += 1
    for s in updates:
        h.add(t, "v4_event", client="w", user=U, event="report_status_update", data={"id": R, "status": s})
        t += 0.1
    h.add(20, "client_stop", client="w")
    h.add(21, "v4_table", reports=[{"report_id": R, "user_id": U, "status": table_status, "version": version}])
    return h.add(22, "run_end")


class V4(unittest.TestCase):
    def test_clean(self):
        v = check.check_v4(v4_history().r)
        self.assertEqual(v["violations"], {}, v["samples"])
        self.assertEqual(v["reports_fully_viewed"], 1)

    def test_accepted_change_never_announced(self):
        v = check.check_v4(v4_history(updates=(), table_status="pending", version=1).r)
        self.assertEqual(v["violations"].get("announce_missing"), 1)

    def test_announced_twice(self):
        v = check.check_v4(v4_history(updates=("queued", "queued"), version=3).r)
        self.assertEqual(v["violations"].get("announce_extra"), 1)

    def test_refused_change_that_is_applied(self):
        v = check.check_v4(v4_history(updates=("queued", "processing"), table_status="processing", version=3,
                                      extra=(("processing", "no"),)).r)
        self.assertEqual(v["violations"].get("announce_extra"), 1)

    def test_maybe_change_applied_once_is_fine(self):
        v = check.check_v4(v4_history(updates=("queued", "processing"), table_status="processing", version=3,
                                      extra=(("processing", "maybe"),)).r)
        self.assertEqual(v["violations"], {}, v["samples"])

    def test_table_disagrees_with_the_stream(self):
        v = check.check_v4(v4_history(table_status="canceled").r)
        self.assertEqual(v["violations"].get("table_vs_stream"), 1)
        self.assertEqual(v["violations"].get("board_mismatch"), 1)

    def test_invalid_path(self):
        v = check.check_v4(v4_history(updates=("processing",), accepted=("processing",), table_status="processing").r)
        self.assertEqual(v["violations"].get("invalid_transition"), 1)

    def test_phantom_update(self):
        h = v4_history()
        h.r.insert(-2, {"t": 9, "kind": "v4_event", "client": "w", "user": U, "event": "report_status_update",
                        "data": {"id": "33333333-3333-4333-8333-333333333333", "status": "queued"}})
        self.assertEqual(check.check_v4(h.r)["violations"].get("phantom"), 1)

    def test_created_report_missing_from_table(self):
        h = v4_history()
        h.r[-2] = {"t": 21, "kind": "v4_table", "reports": []}
        v = check.check_v4(h.r)
        self.assertEqual(v["violations"].get("created_missing_from_table"), 1)


class Parser(unittest.TestCase):
    def test_fields_ids_and_split_chunks(self):
        p = SseParser()
        evs = p.feed(b"retry: 2000\n\n: keep-alive\nid: 5\nda")
        self.assertEqual(evs, [])
        evs = p.feed(b"ta: a\r\ndata: b\r")
        evs += p.feed(b"\n\r\nevent: reset\ndata: {}\nid: 9\n\n")
        self.assertEqual([(e.event, e.data, e.id) for e in evs], [("message", "a\nb", "5"), ("reset", "{}", "9")])
        self.assertEqual(p.retry_ms, 2000)

    def test_id_without_data_moves_the_cursor(self):
        p = SseParser()
        self.assertEqual(p.feed(b"id: 7\n\n"), [])
        self.assertEqual(p.last_id, "7")

    def test_utf8_split_across_chunks(self):
        p = SseParser()
        data = "data: é\n\n".encode()
        self.assertEqual(p.feed(data[:7]), [])
        self.assertEqual(p.feed(data[7:])[0].data, "é")


class Schedule(unittest.TestCase):
    def test_same_seed_same_schedule_and_every_kind(self):
        a = [f.__dict__ for f in schedule(7, 600, False, 3)]
        self.assertEqual(a, [f.__dict__ for f in schedule(7, 600, False, 3)])
        self.assertEqual({f["kind"] for f in a}, set(ALL_KINDS))
        q = schedule(7, 50, True, 3)
        self.assertEqual({f.kind for f in q}, set(ALL_KINDS))


if __name__ == "__main__":
    unittest.main()
