"""Integration: events change what the very next request sees.

Over real sockets against the real daemon: a purchase removes the item
from that shopper's next list; an item sold out disappears from every
list, popular and similar ones included; views move an anonymous shopper
toward a category; carts are excluded; bad events get precise per-event
errors; a full queue answers 503 with Retry-After; a user can be
forgotten. The check always runs right after the 202: answers to events
are held until the events are applied, so no retry loop is needed.

Run: RECD_BUILD_DIR=build python3 tests/integration/test_events.py
"""

import collections
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recd_harness import Conn, Daemon, Dataset  # noqa: E402

DATA = None
DAEMON = None


def setUpModule():
    global DATA, DAEMON
    DATA = Dataset(items=3000, users=300, dim=32, seed=31)
    DAEMON = Daemon(DATA.snapshot)


def tearDownModule():
    if DAEMON:
        DAEMON.close()
    if DATA:
        DATA.cleanup()


class Base(unittest.TestCase):
    def setUp(self):
        self.c = Conn(DAEMON.port)

    def tearDown(self):
        self.c.close()

    def events(self, events, ndjson=False, conn=None):
        c = conn or self.c
        if ndjson:
            body = "\n".join(json.dumps(e) for e in events).encode()
            status, headers, raw = c.request("POST", "/v1/events", body,
                                             {"Content-Type": "application/x-ndjson"})
        else:
            status, headers, raw = c.request("POST", "/v1/events", events)
        return status, headers, json.loads(raw)

    def assertNonPersonal(self, body):
        """Nothing known about the shopper: the anonymous tier's lists."""
        self.assertEqual(body["tier"], "anonymous", body)
        self.assertIn(body["strategy"], ("trending", "popular"), body)

    def recs(self, query):
        status, body = self.c.get_json("/v1/recommendations?" + query)
        self.assertEqual(status, 200, body)
        return body


class Freshness(Base):
    def test_purchase_removes_item_for_that_user(self):
        uid = DATA.user_ids[4]
        before = self.recs("user_id=%s&n=10" % uid)
        top = before["items"][0]["id"]
        status, _, body = self.events([{"type": "purchase", "user_id": uid, "item_id": top}])
        self.assertEqual((status, body), (202, {"accepted": 1, "rejected": []}))
        after = self.recs("user_id=%s&n=10" % uid)
        self.assertNotIn(top, [i["id"] for i in after["items"]])
        self.assertEqual(len(after["items"]), 10)
        # other shoppers still get it
        other = DATA.user_ids[5]
        self.events([{"type": "view", "user_id": other, "item_id": DATA.item_ids[0]}])
        # (only checks the purchase did not leak to everyone: the item is
        # still servable in the popular list if it was there)
        pop = self.recs("n=200")
        if top in DATA.popular(200):
            self.assertIn(top, [i["id"] for i in pop["items"]])

    def test_sold_out_item_vanishes_everywhere(self):
        victim = DATA.popular(1)[0]
        self.assertIn(victim, [i["id"] for i in self.recs("n=5")["items"]])
        # a user whose personal list contains it
        holder = None
        for uid in DATA.user_ids[:100]:
            if victim in [i["id"] for i in self.recs("user_id=%s&n=50" % uid)["items"]]:
                holder = uid
                break
        status, _, body = self.events([{"type": "item_update", "item_id": victim, "stock": 0}])
        self.assertEqual(status, 202, body)
        self.assertNotIn(victim, [i["id"] for i in self.recs("n=200")["items"]])
        if holder:
            self.assertNotIn(victim, [i["id"] for i in self.recs("user_id=%s&n=50" % holder)["items"]])
        similar_to = DATA.item_ids[DATA.item_index[victim] + 1]
        self.assertNotIn(victim, [i["id"] for i in self.recs("item_id=%s&n=200" % similar_to)["items"]])
        # restocked: it may come back
        self.events([{"type": "item_update", "item_id": victim, "stock": 5}])
        self.assertIn(victim, [i["id"] for i in self.recs("n=5")["items"]])
        # unavailable works the same way
        self.events([{"type": "item_update", "item_id": victim, "available": False}])
        self.assertNotIn(victim, [i["id"] for i in self.recs("n=200")["items"]])
        self.events([{"type": "item_update", "item_id": victim, "available": True}])

    def test_views_move_an_anonymous_shopper_to_a_category(self):
        by_cat = collections.defaultdict(list)
        for it in DATA.items:
            if it["stock"] > 0:
                by_cat[it["category"]].append(it["id"])
        # a mid-sized category, not the most popular one
        cats = sorted(by_cat, key=lambda c: -len(by_cat[c]))
        cat = cats[len(cats) // 2]
        anon = "anon-session-1"
        self.assertNonPersonal(self.recs("user_id=%s&n=10" % anon))
        views = [{"type": "view", "user_id": anon, "item_id": iid} for iid in by_cat[cat][:5]]
        status, _, body = self.events(views, ndjson=True)
        self.assertEqual(body["accepted"], 5)
        after = self.recs("user_id=%s&n=10" % anon)
        # 1..9 interactions: the "new" tier, content-based sources
        self.assertEqual(after["tier"], "new")
        self.assertIn(after["strategy"], ("similar", "content"))
        cat_of = {it["id"]: it["category"] for it in DATA.items}
        in_cat = sum(1 for i in after["items"] if cat_of[i["id"]] == cat)
        self.assertGreaterEqual(in_cat, 7, [cat_of[i["id"]] for i in after["items"]])
        # what was viewed is not shown again
        self.assertFalse({i["id"] for i in after["items"]} & set(by_cat[cat][:5]))

    def test_cart_items_are_not_recommended(self):
        uid = DATA.user_ids[8]
        top = [i["id"] for i in self.recs("user_id=%s&n=5" % uid)["items"]]
        self.events([{"type": "add_to_cart", "user_id": uid, "item_id": top[0]},
                     {"type": "add_to_cart", "user_id": uid, "item_id": top[1]}])
        after = [i["id"] for i in self.recs("user_id=%s&n=5" % uid)["items"]]
        self.assertNotIn(top[0], after)
        self.assertNotIn(top[1], after)
        self.events([{"type": "remove_from_cart", "user_id": uid, "item_id": top[1]}])
        self.assertIn(top[1], [i["id"] for i in self.recs("user_id=%s&n=5" % uid)["items"]])

    def test_consent_withdrawn_and_forget(self):
        anon = "anon-forget-me"
        item = DATA.item_ids[10]
        self.events([{"type": "view", "user_id": anon, "item_id": item}])
        self.assertEqual(self.recs("user_id=%s" % anon)["tier"], "new")
        self.events([{"type": "view", "user_id": anon, "item_id": item, "personalize": False}])
        self.assertNonPersonal(self.recs("user_id=%s" % anon))
        # forget through the admin listener
        self.events([{"type": "view", "user_id": anon, "item_id": item}])
        self.assertEqual(self.recs("user_id=%s" % anon)["tier"], "new")
        a = Conn(DAEMON.admin_port)
        status, _, raw = a.request("DELETE", "/v1/users/%s" % anon)
        a.close()
        self.assertEqual(status, 202, raw)
        self.assertEqual(json.loads(raw), {"user_id": anon, "forgotten": True})
        self.assertNonPersonal(self.recs("user_id=%s" % anon))


class Precomputed(Base):
    """The per-user lists: a known shopper's first request searches on
    demand and asks for a list; the next ones are served from it (the
    same items); an event makes it stale until the background refresh
    has folded the event in."""

    def wait_for(self, query, want, timeout=5.0):
        deadline = time.time() + timeout
        while True:
            body = self.recs(query)
            if body.get("candidates") == want or time.time() > deadline:
                return body
            time.sleep(0.02)

    def test_lists_are_computed_and_served(self):
        uid = DATA.user_ids[17]
        q = "user_id=%s&n=10" % uid
        first = self.recs(q)
        self.assertIn(first["candidates"], ("miss", "fresh"))
        fresh = self.wait_for(q, "fresh")
        self.assertEqual(fresh["candidates"], "fresh")
        self.assertEqual([i["id"] for i in fresh["items"]], [i["id"] for i in first["items"]])
        # an event: the list is out of date until the refresh catches up,
        # and meanwhile the answer is searched on demand (never stale)
        viewed = fresh["items"][0]["id"]
        self.events([{"type": "view", "user_id": uid, "item_id": viewed}])
        after = self.recs(q)
        self.assertIn(after["candidates"], ("stale", "fresh"))
        self.assertNotIn(viewed, [i["id"] for i in after["items"]])
        again = self.wait_for(q, "fresh")
        self.assertEqual(again["candidates"], "fresh")
        self.assertNotIn(viewed, [i["id"] for i in again["items"]])
        # a purchase is never served, list or not
        bought = again["items"][0]["id"]
        self.events([{"type": "purchase", "user_id": uid, "item_id": bought}])
        self.assertNotIn(bought, [i["id"] for i in self.recs(q)["items"]])
        self.assertNotIn(bought, [i["id"] for i in self.wait_for(q, "fresh")["items"]])
        st, _, raw = self.c.request("GET", "/metrics")
        text = raw.decode()
        self.assertRegex(text, r'recd_personal_candidates_total\{source="fresh"\} [1-9]')
        self.assertRegex(text, r'recd_refresh_computed_total [1-9]')


class Validation(Base):
    def test_per_event_errors(self):
        status, _, body = self.events([
            {"type": "view", "user_id": "u", "item_id": "i"},
            {"type": "like", "user_id": "u", "item_id": "i"},
            {"type": "view", "item_id": "i"},
            {"type": "view", "user_id": "u", "item_id": "x" * 200},
            {"type": "rating", "user_id": "u", "item_id": "i", "value": "five"},
            "not an object",
        ])
        self.assertEqual(status, 202)
        self.assertEqual(body["accepted"], 1)
        self.assertEqual([(r["index"], r["error"]) for r in body["rejected"]], [
            (1, "unknown type 'like'"),
            (2, "missing field 'user_id'"),
            (3, "item_id longer than 127 bytes"),
            (4, "value must be a number between -1e+06 and 1e+06"),
            (5, "an event must be a JSON object"),
        ])

    def test_ndjson_with_a_bad_line(self):
        body = b'{"type":"view","user_id":"u","item_id":"i"}\n\n{oops}\n{"type":"click","user_id":"u","item_id":"j"}\n'
        status, _, raw = self.c.request("POST", "/v1/events", body, {"Content-Type": "application/x-ndjson"})
        self.assertEqual(status, 202)
        out = json.loads(raw)
        self.assertEqual(out["accepted"], 2)
        self.assertEqual(len(out["rejected"]), 1)
        self.assertEqual(out["rejected"][0]["index"], 1)
        self.assertIn("invalid JSON", out["rejected"][0]["error"])

    def test_whole_body_errors(self):
        status, _, raw = self.c.request("POST", "/v1/events", b"this is not json")
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(raw)["error"], "bad_json")
        status, _, raw = self.c.request("POST", "/v1/events", b"x\ny\n", {"Content-Type": "application/x-ndjson"})
        self.assertEqual(status, 400)
        status, _, raw = self.c.request("POST", "/v1/events", b"{}", {"Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        status, _, raw = self.c.request("POST", "/v1/events")
        self.assertEqual(status, 411)
        status, _, raw = self.c.request("POST", "/v1/events", b"[]")
        self.assertEqual(status, 400)
        many = [{"type": "view", "user_id": "u", "item_id": "i"}] * 1001
        status, _, raw = self.c.request("POST", "/v1/events", many)
        self.assertEqual(status, 413)
        status, _, raw = self.c.request("GET", "/v1/events")
        self.assertEqual(status, 405)

    def test_metrics_count_events(self):
        self.events([{"type": "click", "user_id": "m", "item_id": DATA.item_ids[3]}])
        _, _, raw = self.c.request("GET", "/metrics")
        text = raw.decode()
        line = [l for l in text.splitlines() if l.startswith('recd_events_applied_total{type="click"}')]
        self.assertTrue(line and int(line[0].split()[1]) >= 1, line)
        self.assertIn("recd_live_users ", text)


class QueueFull(unittest.TestCase):
    def test_full_queue_is_503_and_nothing_is_half_taken(self):
        data = Dataset(items=500, users=20, dim=8, seed=41)
        d = Daemon(data.snapshot, "--event-ring-size", "64", workers=1)
        try:
            c = Conn(d.port)
            batch = [{"type": "view", "user_id": "q%d" % i, "item_id": data.item_ids[i]} for i in range(100)]
            status, headers, raw = c.request("POST", "/v1/events", batch)
            self.assertEqual(status, 503)
            self.assertEqual(headers["retry-after"], "1")
            self.assertEqual(json.loads(raw)["error"], "overloaded")
            status, _, raw = c.request("POST", "/v1/events", batch[:60])
            self.assertEqual(status, 202)
            self.assertEqual(json.loads(raw)["accepted"], 60)
            _, _, raw = c.request("GET", "/metrics")
            self.assertIn("recd_events_queue_full_total 1", raw.decode())
            c.close()
        finally:
            d.close()
            data.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
