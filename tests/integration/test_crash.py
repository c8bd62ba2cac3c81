"""Integration: acknowledged events survive a crash.

Over real sockets against the real daemon: with durability=always,
threads send purchases and add-to-carts in batches over several
connections and record every event that got a 202; recd is killed with
SIGKILL in mid-run and restarted on the same event log directory; every
acknowledged event must be in the recovered live state (GET
/admin/users/{id}). Then: garbage appended to the last log segment is cut
at the next start (the log says how many bytes) and the rest replays; a
forgotten user stays forgotten after a restart; durability=none still
replays after SIGKILL (a process crash keeps the page cache, so this test
cannot tell none from always: what it checks is that nothing is
acknowledged before it is written); under batch a 202 waits for the next
allowed fsync; event_log=false starts without a log. Everything is
bounded: at most MAX_BATCHES batches per thread and a few seconds of
sending.

Run: RECD_BUILD_DIR=build python3 tests/integration/test_crash.py
"""

import glob
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recd_harness import Conn, Daemon, Dataset  # noqa: E402

DATA = None
THREADS = 4
USERS_PER_THREAD = 5
MAX_BATCHES = 250        # per thread
MAX_CARTS = 25           # per user: stays below the 32-item cart
KILL_AFTER_EVENTS = 600  # acknowledged events before the kill (or KILL_AFTER_S)
KILL_AFTER_S = 8.0


def setUpModule():
    global DATA
    DATA = Dataset(items=1500, users=50, dim=16, seed=53)


def tearDownModule():
    if DATA:
        DATA.cleanup()


def recovered_count(log):
    m = re.findall(r"msg=recovered events=(\d+) ms=(\d+)", log)
    return int(m[-1][0]) if m else None


class Sender(threading.Thread):
    """One connection; batches of 1..6 events for this thread's users.
    Per user, cart items and purchased items come from disjoint ranges, so
    every acknowledged add_to_cart must still be in the cart afterwards."""

    def __init__(self, port, t, stop, lock, acked):
        super().__init__(daemon=True)
        self.port, self.t, self.stop_ev, self.lock, self.acked = port, t, stop, lock, acked
        self.sent_carts = {}
        self.sent_buys = {}
        self.error = None

    def user(self, k):
        return "crash-t%d-u%d" % (self.t, k)

    def next_event(self, n):
        k = n % USERS_PER_THREAD
        uid = self.user(k)
        g = self.t * USERS_PER_THREAD + k
        carts = self.sent_carts.get(uid, 0)
        if carts < MAX_CARTS and n % 3 == 0:
            self.sent_carts[uid] = carts + 1
            item = DATA.item_ids[(g * 11 + carts) % len(DATA.item_ids)]
            return {"type": "add_to_cart", "user_id": uid, "item_id": item}
        buys = self.sent_buys.get(uid, 0)
        self.sent_buys[uid] = buys + 1
        item = DATA.item_ids[(g * 11 + 100 + buys) % len(DATA.item_ids)]
        return {"type": "purchase", "user_id": uid, "item_id": item}

    def run(self):
        n = 0
        c = None
        try:
            c = Conn(self.port, timeout=5)
            for b in range(MAX_BATCHES):
                if self.stop_ev.is_set():
                    break
                batch = []
                for _ in range(1 + (b * 7 + self.t) % 6):
                    batch.append(self.next_event(n))
                    n += 1
                status, _, raw = c.request("POST", "/v1/events", batch)
                if status == 202:
                    body = json.loads(raw)
                    assert body == {"accepted": len(batch), "rejected": []}, body
                    with self.lock:
                        self.acked.extend(batch)
        except (OSError, ConnectionError):
            pass  # the daemon was killed under us: expected
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.error = e
        finally:
            if c:
                c.close()


class Crash(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="recd-crash-")
        self.logdir = os.path.join(self.tmp, "events")
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, *extra, durability="always", checkpoints=False):
        # The log-only cases turn checkpoints off (a clean stop would write
        # one and the next start would replay nothing); Checkpoints below
        # turns them on.
        if not checkpoints:
            extra = ("--checkpoint-interval-s", "0", "--checkpoint-log-bytes", "0") + tuple(extra)
        d = Daemon(DATA.snapshot, "--durability", durability, "--event-log-dir", self.logdir, *extra)
        self.daemons.append(d)
        return d

    def user_state(self, d, uid):
        a = Conn(d.admin_port)
        try:
            status, _, raw = a.request("GET", "/admin/users/%s" % uid)
        finally:
            a.close()
        return status, json.loads(raw)

    def check_acked(self, d, acked):
        by_user = {}
        for e in acked:
            by_user.setdefault(e["user_id"], []).append(e)
        for uid, evs in sorted(by_user.items()):
            status, st = self.user_state(d, uid)
            self.assertEqual(status, 200, (uid, st))
            purchased, cart = set(st["purchased"]), set(st["cart"])
            for e in evs:
                if e["type"] == "purchase":
                    self.assertIn(e["item_id"], purchased, (uid, e))
                else:
                    self.assertIn(e["item_id"], cart, (uid, e))
            self.assertGreaterEqual(st["interactions"], len(evs), uid)
        return len(by_user)

    def test_acknowledged_events_survive_kill9(self):
        d = self.start()
        self.assertIn("msg=recovered events=0 ", d.log())
        stop, lock, acked = threading.Event(), threading.Lock(), []
        senders = [Sender(d.port, t, stop, lock, acked) for t in range(THREADS)]
        for s in senders:
            s.start()
        deadline = time.time() + KILL_AFTER_S
        while time.time() < deadline:
            with lock:
                if len(acked) >= KILL_AFTER_EVENTS:
                    break
            if not any(s.is_alive() for s in senders):
                break
            time.sleep(0.01)
        alive = sum(s.is_alive() for s in senders)
        os.kill(d.proc.pid, signal.SIGKILL)   # mid-run: senders are still sending
        d.proc.wait(10)
        self.assertGreater(alive, 0, "every sender had finished before the kill")
        stop.set()
        for s in senders:
            s.join(15)
            self.assertFalse(s.is_alive())
            self.assertIsNone(s.error)
        with lock:
            acked = list(acked)
        self.assertGreater(len(acked), 50, "too few events acknowledged before the kill")

        d2 = self.start()
        n = recovered_count(d2.log())
        self.assertIsNotNone(n, d2.log())
        # Events can be durable without their 202 having left (killed in
        # between), never the other way round.
        self.assertGreaterEqual(n, len(acked))
        users = self.check_acked(d2, acked)
        self.assertEqual(users, THREADS * USERS_PER_THREAD)
        print("\n  %d events acknowledged before SIGKILL, %d recovered, %d users checked"
              % (len(acked), n, users), file=sys.stderr)

    def test_garbage_tail_is_cut_and_the_rest_replays(self):
        d = self.start()
        c = Conn(d.port)
        acked = []
        for i in range(40):
            batch = [{"type": "purchase", "user_id": "tail-u%d" % (i % 4), "item_id": DATA.item_ids[200 + i]},
                     {"type": "add_to_cart", "user_id": "tail-u%d" % (i % 4), "item_id": DATA.item_ids[600 + i]}]
            status, _, raw = c.request("POST", "/v1/events", batch)
            self.assertEqual(status, 202, raw)
            acked.extend(batch)
        c.close()
        self.assertEqual(d.stop(), 0)

        segs = sorted(glob.glob(os.path.join(self.logdir, "events-*.log")))
        self.assertEqual(len(segs), 1)
        size = os.path.getsize(segs[-1])
        junk = bytes((i * 131 + 7) % 256 for i in range(777))
        with open(segs[-1], "ab") as f:
            f.write(junk)

        d2 = self.start()
        log = d2.log()
        self.assertRegex(log, r"msg=event_log_tail_cut .*cut_bytes=777 ")
        self.assertIn("cut_bytes=777", re.search(r"msg=recovered .*", log).group(0))
        self.assertEqual(recovered_count(log), len(acked))
        self.assertEqual(os.path.getsize(segs[-1]), size)
        self.check_acked(d2, acked)

        # the log goes on after the cut: one more event, a clean restart
        c = Conn(d2.port)
        more = {"type": "purchase", "user_id": "tail-u0", "item_id": DATA.item_ids[999]}
        status, _, _ = c.request("POST", "/v1/events", [more])
        c.close()
        self.assertEqual(status, 202)
        self.assertEqual(d2.stop(), 0)
        d3 = self.start()
        self.assertEqual(recovered_count(d3.log()), len(acked) + 1)
        self.assertNotIn("event_log_tail_cut", d3.log())
        self.check_acked(d3, acked + [more])

    def test_none_still_logs_and_replays(self):
        # durability=none: no fsync, but a crash of recd itself loses
        # nothing that was acknowledged (it is in the page cache).
        d = self.start(durability="none")
        c = Conn(d.port)
        acked = [{"type": "purchase", "user_id": "none-u%d" % (i % 3), "item_id": DATA.item_ids[300 + i]}
                 for i in range(30)]
        for i in range(0, 30, 5):
            self.assertEqual(c.request("POST", "/v1/events", acked[i:i + 5])[0], 202)
        c.close()
        d.stop(signal.SIGKILL)
        d2 = self.start(durability="none")
        self.assertEqual(recovered_count(d2.log()), 30)
        self.check_acked(d2, acked)

    # ---- checkpoints (live/checkpoint.h) ----

    def metric(self, d, name):
        a = Conn(d.admin_port)
        try:
            _, _, raw = a.request("GET", "/metrics")
        finally:
            a.close()
        m = re.search(r"^%s (\S+)$" % re.escape(name), raw.decode(), re.M)
        return float(m.group(1)) if m else None

    def wait_checkpoints(self, d, n, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            if (self.metric(d, "recd_checkpoints_total") or 0) >= n:
                return
            time.sleep(0.05)
        self.fail("no checkpoint #%d: %s" % (n, d.log()))

    def force_checkpoint(self, d):
        before = self.metric(d, "recd_checkpoints_total") or 0
        a = Conn(d.admin_port)
        status, _, raw = a.request("POST", "/admin/checkpoint", {})
        a.close()
        self.assertEqual(status, 202, raw)
        self.wait_checkpoints(d, before + 1)

    def test_checkpoint_trim_kill9_replays_only_the_tail(self):
        d = self.start("--checkpoint-log-bytes", "4000", "--checkpoint-interval-s", "0", checkpoints=True)
        c = Conn(d.port)
        acked = []
        for i in range(120):
            batch = [{"type": "purchase", "user_id": "ck-u%d" % (i % 9), "item_id": DATA.item_ids[i]},
                     {"type": "add_to_cart", "user_id": "ck-u%d" % (i % 9), "item_id": DATA.item_ids[400 + i]}]
            status, _, raw = c.request("POST", "/v1/events", batch)
            self.assertEqual(status, 202, raw)
            acked.extend(batch)
        self.wait_checkpoints(d, 2)
        self.assertRegex(d.log(), r"msg=checkpoint file=checkpoint-\d+\.ckpt .*reason=log_bytes")
        segs = sorted(glob.glob(os.path.join(self.logdir, "events-*.log")))
        self.assertNotIn("events-00000000000000000000.log", [os.path.basename(x) for x in segs])
        ckpts = sorted(glob.glob(os.path.join(self.logdir, "checkpoint-*.ckpt")))
        self.assertLessEqual(len(ckpts), 2)
        # a tail after the last checkpoint, then a crash
        tail = [{"type": "purchase", "user_id": "ck-tail", "item_id": DATA.item_ids[900 + i]} for i in range(3)]
        self.assertEqual(c.request("POST", "/v1/events", tail)[0], 202)
        c.close()
        d.stop(signal.SIGKILL)
        d2 = self.start(checkpoints=True)
        m = re.search(r"msg=recovered events=(\d+) ms=\d+ checkpoint=(checkpoint-\d+\.ckpt) users=(\d+)", d2.log())
        self.assertIsNotNone(m, d2.log())
        self.assertLess(int(m.group(1)), len(acked) + len(tail))   # only the tail since that checkpoint
        self.assertGreaterEqual(int(m.group(1)), len(tail))
        self.check_acked(d2, acked + tail)
        # a clean stop writes one more: the next start replays nothing
        self.assertEqual(d2.stop(), 0)
        self.assertRegex(d2.log(), r"msg=checkpoint .*reason=shutdown")
        d3 = self.start(checkpoints=True)
        self.assertEqual(recovered_count(d3.log()), 0)
        self.check_acked(d3, acked + tail)

    def test_forgotten_user_leaves_the_disk(self):
        d = self.start(durability="batch", checkpoints=True)
        c = Conn(d.port)
        for uid in ("erase-me-7f3a", "stay-here"):
            self.assertEqual(c.request("POST", "/v1/events", [
                {"type": "purchase", "user_id": uid, "item_id": DATA.item_ids[5]},
                {"type": "add_to_cart", "user_id": uid, "item_id": DATA.item_ids[6]}])[0], 202)
        a = Conn(d.admin_port)
        self.assertEqual(a.request("DELETE", "/v1/users/erase-me-7f3a")[0], 202)
        a.close()
        self.force_checkpoint(d)
        # the older kept checkpoint still needs the log below it: one more
        # event and checkpoint, and the forget's segment is gone too
        self.assertEqual(c.request("POST", "/v1/events", [
            {"type": "view", "user_id": "stay-here", "item_id": DATA.item_ids[7]}])[0], 202)
        c.close()
        self.force_checkpoint(d)
        for f in os.listdir(self.logdir):
            with open(os.path.join(self.logdir, f), "rb") as fh:
                self.assertNotIn(b"erase-me-7f3a", fh.read(), f)
        d.stop(signal.SIGKILL)
        d2 = self.start(durability="batch", checkpoints=True)
        self.assertEqual(self.user_state(d2, "erase-me-7f3a")[0], 404)
        self.check_acked(d2, [{"type": "purchase", "user_id": "stay-here", "item_id": DATA.item_ids[5]},
                              {"type": "add_to_cart", "user_id": "stay-here", "item_id": DATA.item_ids[6]}])

    def test_bad_checkpoint_falls_back(self):
        d = self.start(checkpoints=True)
        c = Conn(d.port)
        acked = [{"type": "purchase", "user_id": "fb-u", "item_id": DATA.item_ids[i]} for i in range(4)]
        self.assertEqual(c.request("POST", "/v1/events", acked[:2])[0], 202)
        self.force_checkpoint(d)
        self.assertEqual(c.request("POST", "/v1/events", acked[2:])[0], 202)
        c.close()
        self.force_checkpoint(d)
        d.stop(signal.SIGKILL)
        newest = sorted(glob.glob(os.path.join(self.logdir, "checkpoint-*.ckpt")))[-1]
        with open(newest, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 0xff]))
        d2 = self.start(checkpoints=True)
        self.assertIn("msg=checkpoint_bad", d2.log())
        self.check_acked(d2, acked)

    def test_forgotten_user_stays_forgotten(self):
        d = self.start(durability="batch")
        c = Conn(d.port)
        for uid in ("forget-me", "keep-me"):
            status, _, _ = c.request("POST", "/v1/events", [
                {"type": "purchase", "user_id": uid, "item_id": DATA.item_ids[5]},
                {"type": "add_to_cart", "user_id": uid, "item_id": DATA.item_ids[6]}])
            self.assertEqual(status, 202)
        c.close()
        self.assertEqual(self.user_state(d, "forget-me")[0], 200)
        a = Conn(d.admin_port)
        status, _, _ = a.request("DELETE", "/v1/users/forget-me")
        a.close()
        self.assertEqual(status, 202)
        self.assertEqual(self.user_state(d, "forget-me")[0], 404)
        # a crash, not a clean stop: the forget must already be in the log
        d.stop(signal.SIGKILL)

        d2 = self.start(durability="batch")
        self.assertEqual(recovered_count(d2.log()), 5)
        status, body = self.user_state(d2, "forget-me")
        self.assertEqual(status, 404, body)
        self.check_acked(d2, [{"type": "purchase", "user_id": "keep-me", "item_id": DATA.item_ids[5]},
                              {"type": "add_to_cart", "user_id": "keep-me", "item_id": DATA.item_ids[6]}])


class BatchWaitsForTheSync(unittest.TestCase):
    def test_answer_waits_for_the_fsync_interval(self):
        # At most one fdatasync per 300 ms: right after one, the next
        # event's 202 must wait for the next.
        d = Daemon(DATA.snapshot, "--durability", "batch", "--durability-batch-ms", "300")
        try:
            c = Conn(d.port)
            ev = {"type": "view", "user_id": "batch-u", "item_id": DATA.item_ids[3]}
            self.assertEqual(c.request("POST", "/v1/events", [ev])[0], 202)
            t0 = time.monotonic()
            self.assertEqual(c.request("POST", "/v1/events", [ev])[0], 202)
            waited = time.monotonic() - t0
            c.close()
            self.assertGreater(waited, 0.1)
            self.assertLess(waited, 5.0)
        finally:
            d.close()


class LogOff(unittest.TestCase):
    def test_event_log_false_starts_empty(self):
        d = Daemon(DATA.snapshot, "--event-log=false")
        try:
            self.assertIn("msg=event_log_off", d.log())
            self.assertNotIn("msg=recovered", d.log())
            c = Conn(d.port)
            status, _, _ = c.request("POST", "/v1/events",
                                     [{"type": "purchase", "user_id": "off-u", "item_id": DATA.item_ids[1]}])
            c.close()
            self.assertEqual(status, 202)
        finally:
            d.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
