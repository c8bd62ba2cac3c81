"""Integration: the real recd over real loopback sockets.

Recommendations are checked against an independent exact computation in
numpy from the files recd-gen wrote (not from recd's snapshot), protocol
behaviour against raw bytes on the wire.

Run: RECD_BUILD_DIR=build python3 tests/integration/test_server.py
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recd_harness import Conn, Daemon, Dataset  # noqa: E402

DATA = None
DAEMON = None


def setUpModule():
    global DATA, DAEMON
    DATA = Dataset()
    DAEMON = Daemon(DATA.snapshot)


def tearDownModule():
    if DAEMON:
        DAEMON.close()
    if DATA:
        DATA.cleanup()


class Base(unittest.TestCase):
    def conn(self, port, **kw):
        c = Conn(port, **kw)
        self.addCleanup(c.close)
        return c


class Recommendations(Base):
    def setUp(self):
        self.c = Conn(DAEMON.port)

    def tearDown(self):
        self.c.close()

    def check_against_exact(self, items, query, n, exclude=None):
        scores = DATA.exact_scores(query)
        if exclude is not None:
            scores[exclude] = -np.inf
        nth_best = np.sort(scores)[::-1][n - 1]
        self.assertEqual(len(items), n)
        got = [it["score"] for it in items]
        self.assertEqual(got, sorted(got, reverse=True), "scores must descend")
        self.assertEqual(len({it["id"] for it in items}), n, "no duplicates")
        exact = [scores[DATA.item_index[it["id"]]] for it in items]
        for it in items:
            idx = DATA.item_index[it["id"]]
            self.assertTrue(DATA.servable[idx], "%s is out of stock" % it["id"])
            self.assertNotEqual(idx, exclude)
            # Every returned item belongs to the exact top n (up to float ties).
            self.assertGreaterEqual(scores[idx], nth_best - 1e-5)
        # Served in the order of the exact inner products (the response's
        # score is the ranking score on the engine's common scale).
        for a, b in zip(exact, exact[1:]):
            self.assertGreaterEqual(a, b - 1e-5)

    def test_known_users_match_exact_scan(self):
        for u in range(0, len(DATA.user_ids), 15):
            uid = DATA.user_ids[u]
            status, body = self.c.get_json("/v1/recommendations?user_id=%s&n=10" % uid)
            self.assertEqual(status, 200, body)
            self.assertEqual(body["strategy"], "personalized")
            self.assertEqual(body["user_id"], uid)
            self.assertTrue(body["snapshot"].startswith("it-7@"))
            self.assertIsInstance(body["took_us"], int)
            self.assertTrue(body["request_id"])
            self.check_against_exact(body["items"], DATA.user_emb[u], 10)
            self.assertTrue(all(it["reason"] == "personalized" for it in body["items"]))

    def test_n_bounds_and_default(self):
        uid = DATA.user_ids[3]
        status, body = self.c.get_json("/v1/recommendations?user_id=%s" % uid)
        self.assertEqual(status, 200)
        self.assertEqual(len(body["items"]), 10)
        status, body = self.c.get_json("/v1/recommendations?user_id=%s&n=200" % uid)
        self.assertEqual(status, 200)
        self.check_against_exact(body["items"], DATA.user_emb[3], 200)
        for bad in ("0", "201", "-1", "abc", "1.5", ""):
            status, body = self.c.get_json("/v1/recommendations?user_id=%s&n=%s" % (uid, bad))
            self.assertEqual(status, 400, bad)
            self.assertEqual(body["error"], "bad_request")
            self.assertIn("n must be", body["detail"])

    def test_unknown_user_gets_popular(self):
        status, body = self.c.get_json("/v1/recommendations?user_id=never-seen-before&n=10")
        self.assertEqual(status, 200)
        self.assertEqual(body["strategy"], "popular")
        self.assertEqual([it["id"] for it in body["items"]], DATA.popular(10))
        self.assertEqual(body["tier"], "anonymous")
        got = [it["score"] for it in body["items"]]
        self.assertEqual(got, sorted(got, reverse=True))
        for it in body["items"]:
            self.assertEqual(it["reason"], "popular")
        status, body = self.c.get_json("/v1/recommendations?n=7")
        self.assertEqual(status, 200)
        self.assertIsNone(body["user_id"])
        self.assertEqual([it["id"] for it in body["items"]], DATA.popular(7))

    def test_similar_items(self):
        # The ITEM_NEIGHBORS row leads: items co-visited with the context
        # item (same user, <= 10 events and 1 h apart), most co-visits
        # first, counted here independently of the builder; the row and
        # then the index fill the rest with embedding neighbours.
        covisits = DATA.covisit_counts()
        tail_hits = tail_total = 0
        for item in (42, 7, 1234, 2999, 0):
            status, body = self.c.get_json("/v1/recommendations?item_id=%s&n=10" % DATA.item_ids[item])
            self.assertEqual(status, 200, body)
            self.assertEqual(body["strategy"], "similar")
            got = [DATA.item_index[it["id"]] for it in body["items"]]
            self.assertEqual(len(got), 10)
            self.assertEqual(len(set(got)), 10, "no duplicates")
            self.assertNotIn(item, got)
            self.assertTrue(all(DATA.servable[i] for i in got))
            row = sorted(covisits.get(item, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:20]
            prefix = [b for b, _ in row if DATA.servable[b]][:10]
            self.assertEqual(got[:len(prefix)], prefix, "co-visited items first, most co-visits first")
            scores = DATA.exact_scores(DATA.item_emb[item])
            tail = got[len(prefix):]
            if tail:
                scores[item] = -np.inf
                scores[prefix] = -np.inf
                best = set(np.argsort(-scores)[:len(tail)].tolist())
                tail_hits += len(best & set(tail))
                tail_total += len(tail)
        if tail_total:
            self.assertGreaterEqual(tail_hits / tail_total, 0.9, "embedding neighbours recall")

    def test_unknown_item_is_400(self):
        status, body = self.c.get_json("/v1/recommendations?item_id=no-such-item")
        self.assertEqual(status, 400)
        self.assertIn("unknown item_id 'no-such-item'", body["detail"])

    def test_percent_encoded_ids(self):
        status, body = self.c.get_json("/v1/recommendations?user_id=%s&n=3&placement=home" %
                                       DATA.user_ids[5].replace("u", "%75"))
        self.assertEqual(status, 200)
        self.assertEqual(body["user_id"], DATA.user_ids[5])
        self.assertEqual(body["placement"], "home")
        self.assertEqual(body["strategy"], "personalized")

    def test_post_matches_get(self):
        uid = DATA.user_ids[9]
        _, get = self.c.get_json("/v1/recommendations?user_id=%s&n=5" % uid)
        in_cart = get["items"][2]["id"]
        status, _, raw = self.c.request("POST", "/v1/recommendations",
                                        {"user_id": uid, "n": 5, "placement": "home",
                                         "context": {"cart": [in_cart], "device": "mobile",
                                                     "region": "UK"}})
        post = json.loads(raw)
        self.assertEqual(status, 200, post)
        # the same list, but what is in the cart is never recommended
        want = [i["id"] for i in get["items"] if i["id"] != in_cart]
        self.assertEqual([i["id"] for i in post["items"]][:4], want)
        self.assertNotIn(in_cart, [i["id"] for i in post["items"]])
        # on the cart page: items that go with the cart (the built-in route)
        status, _, raw = self.c.request("POST", "/v1/recommendations",
                                        {"user_id": uid, "n": 5, "placement": "cart",
                                         "context": {"cart": [in_cart]}})
        post = json.loads(raw)
        self.assertEqual(post["route"], "complete_the_cart")
        self.assertNotIn(in_cart, [i["id"] for i in post["items"]])

    def test_post_errors(self):
        cases = [
            (b"{not json", 400, "bad_json"),
            (b"[1,2]", 400, "bad_request"),
            (b'{"userid": "u1"}', 400, "bad_request"),
            (b'{"user_id": 5}', 400, "bad_request"),
            (b'{"n": "ten"}', 400, "bad_request"),
            (b'{"n": 1000}', 400, "bad_request"),
            (b'{"context": {"cart": [1]}}', 400, "bad_request"),
            (b'{"item_id": "nope"}', 400, "bad_request"),
        ]
        for body, code, err in cases:
            status, _, raw = self.c.request("POST", "/v1/recommendations", body)
            self.assertEqual(status, code, body)
            self.assertEqual(json.loads(raw)["error"], err, body)
        status, _, raw = self.c.request("POST", "/v1/recommendations", b"{}",
                                        {"Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        status, _, raw = self.c.request("POST", "/v1/recommendations")
        self.assertEqual(status, 411)
        self.assertEqual(json.loads(raw)["error"], "length_required")


class Protocol(Base):
    def test_health_ready_metrics(self):
        c = self.conn(DAEMON.port)
        self.assertEqual(c.get_json("/health"), (200, {"status": "ok"}))
        status, body = c.get_json("/ready")
        self.assertEqual(status, 200)
        self.assertTrue(body["ready"])
        status, headers, raw = c.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        text = raw.decode()
        self.assertIn('recd_http_requests_total{endpoint="health",code="200"}', text)
        self.assertIn("recd_snapshot_items 3000", text)
        # The real exposition passes Prometheus' own linter.
        promtool = shutil.which("promtool")
        if promtool is None:
            if os.environ.get("CI"):
                self.fail("promtool missing in CI")
            self.skipTest("promtool not installed")
        p = subprocess.run([promtool, "check", "metrics"], input=raw, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        c.close()

    def test_method_and_path_errors(self):
        c = self.conn(DAEMON.port)
        status, headers, raw = c.request("DELETE", "/v1/recommendations")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET, POST")
        self.assertEqual(json.loads(raw)["error"], "method_not_allowed")
        status, _, raw = c.request("GET", "/nope")
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(raw)["error"], "not_found")
        # the connection is still usable after 4xx answers
        self.assertEqual(c.get_json("/health")[0], 200)
        c.close()

    def malformed(self, raw, code):
        c = self.conn(DAEMON.port)
        c.send(raw)
        status, headers, body = c.read_response()
        self.assertEqual(status, code, raw[:80])
        err = json.loads(body)
        self.assertIn("error", err)
        self.assertIn("detail", err)
        self.assertEqual(headers.get("connection"), "close")
        self.assertTrue(c.closed_by_peer())
        c.close()

    def test_malformed_requests(self):
        self.malformed(b"GET / HTTP/1.1\nHost: x\n\n", 400)
        self.malformed(b"G@T / HTTP/1.1\r\n\r\n", 400)
        self.malformed(b"GET / HTTP/2.0\r\n\r\n", 505)
        self.malformed(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400)
        self.malformed(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400)
        self.malformed(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414)
        self.malformed(b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(70)) + b"\r\n", 431)
        self.malformed(b"GET / HTTP/1.1\r\nX-Big: " + b"v" * 17000 + b"\r\n\r\n", 431)
        self.malformed(b"POST /v1/recommendations HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413)
        self.malformed(b"POST /v1/recommendations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501)
        self.malformed(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400)

    def test_keep_alive_and_pipelining(self):
        c = self.conn(DAEMON.port)
        for _ in range(20):
            self.assertEqual(c.get_json("/health")[0], 200)
        uid = DATA.user_ids[1]
        reqs = ["/v1/recommendations?user_id=%s&n=3" % uid, "/health", "/v1/recommendations?n=2", "/nope"]
        c.send("".join("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p for p in reqs))
        statuses = []
        bodies = []
        for _ in reqs:
            s, _, b = c.read_response()
            statuses.append(s)
            bodies.append(json.loads(b))
        self.assertEqual(statuses, [200, 200, 200, 404])
        self.assertEqual(len(bodies[0]["items"]), 3)
        self.assertEqual(bodies[1], {"status": "ok"})
        self.assertEqual(len(bodies[2]["items"]), 2)
        c.close()

    def test_request_split_across_writes(self):
        c = self.conn(DAEMON.port)
        body = json.dumps({"user_id": DATA.user_ids[2], "n": 4}).encode()
        raw = (b"POST /v1/recommendations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
        for i in range(0, len(raw), 7):
            c.send(raw[i:i + 7])
            time.sleep(0.002)
        status, _, resp = c.read_response()
        self.assertEqual(status, 200)
        self.assertEqual(len(json.loads(resp)["items"]), 4)
        c.close()

    def test_connection_close_honoured(self):
        c = self.conn(DAEMON.port)
        status, headers, _ = c.request("GET", "/health", headers={"Connection": "close"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["connection"], "close")
        self.assertTrue(c.closed_by_peer())
        c.close()
        # HTTP/1.0 closes by default
        c = self.conn(DAEMON.port)
        c.send(b"GET /health HTTP/1.0\r\n\r\n")
        status, headers, _ = c.read_response()
        self.assertEqual(status, 200)
        self.assertTrue(c.closed_by_peer())
        c.close()

    def test_admin_listener(self):
        c = self.conn(DAEMON.admin_port)
        status, body = c.get_json("/admin/status")
        self.assertEqual(status, 200)
        self.assertEqual(body["snapshot"]["items"], 3000)
        self.assertEqual(body["snapshot"]["model_version"], "it-7")
        self.assertEqual(body["workers"], 2)
        self.assertEqual(body["config"]["max_n"], 200)
        # recommendations are not served on the admin listener, status not on the main one
        self.assertEqual(c.get_json("/v1/recommendations?n=1")[0], 404)
        c.close()
        c = self.conn(DAEMON.port)
        self.assertEqual(c.get_json("/admin/status")[0], 404)
        c.close()


class Lifecycle(Base):
    """Each test starts a daemon of its own with the settings it needs."""

    def test_connection_cap_refuses_cleanly(self):
        d = Daemon(DATA.snapshot, "--max-connections", "2")
        try:
            a, b = self.conn(d.port), self.conn(d.port)
            self.assertEqual(a.get_json("/health")[0], 200)
            self.assertEqual(b.get_json("/health")[0], 200)
            c = self.conn(d.port)
            status, headers, body = c.read_response()
            self.assertEqual(status, 503)
            self.assertEqual(json.loads(body)["error"], "overloaded")
            self.assertEqual(headers["retry-after"], "1")
            self.assertTrue(c.closed_by_peer())
            a.close()
            time.sleep(0.2)
            e = self.conn(d.port)
            self.assertEqual(e.get_json("/health")[0], 200)
            e.close()
            b.close()
        finally:
            d.close()

    def test_idle_and_header_timeouts(self):
        d = Daemon(DATA.snapshot, "--idle-timeout-ms", "300", "--header-timeout-ms", "300")
        try:
            idle = self.conn(d.port)
            self.assertEqual(idle.get_json("/health")[0], 200)
            slow = self.conn(d.port)
            slow.send(b"GET /health HTTP/1.1\r\nHo")
            self.assertTrue(idle.closed_by_peer(wait=3))
            status, _, body = slow.read_response()
            self.assertEqual(status, 408)
            self.assertEqual(json.loads(body)["error"], "request_timeout")
            self.assertTrue(slow.closed_by_peer())
        finally:
            d.close()

    def test_sigterm_drains_in_flight_and_exits_zero(self):
        d = Daemon(DATA.snapshot)
        try:
            idle = self.conn(d.port)
            self.assertEqual(idle.get_json("/health")[0], 200)
            busy = self.conn(d.port)
            # a request whose head is complete but whose body is still coming
            body = json.dumps({"user_id": DATA.user_ids[0], "n": 5}).encode()
            busy.send(b"POST /v1/recommendations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
            time.sleep(0.1)
            d.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            self.assertTrue(idle.closed_by_peer(wait=3), "idle connections close on drain")
            busy.send(body[5:])
            status, headers, raw = busy.read_response()
            self.assertEqual(status, 200)
            self.assertEqual(headers["connection"], "close")
            self.assertEqual(len(json.loads(raw)["items"]), 5)
            self.assertEqual(d.proc.wait(10), 0)
            with self.assertRaises(OSError):
                Conn(d.port, timeout=1).get_json("/health")
            self.assertIn("msg=stopped", d.log())
        finally:
            d.close()

    def test_bad_snapshot_refused_at_start(self):
        bad = tempfile.mktemp(prefix="recd-bad-")
        with open(DATA.snapshot, "rb") as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        with open(bad, "wb") as f:
            f.write(data)
        try:
            p = subprocess.run([os.path.join(os.environ.get("RECD_BUILD_DIR", "build"), "engine", "recd"),
                                "--snapshot", bad, "--listen", "127.0.0.1:0", "--admin-listen", ""],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 1)
            self.assertIn("msg=snapshot_refused", p.stderr)
            self.assertIn("checksum", p.stderr)
        finally:
            os.unlink(bad)


if __name__ == "__main__":
    unittest.main(verbosity=2)
