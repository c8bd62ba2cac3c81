"""Integration: snapshot swaps while serving, over real sockets.

A bounded loopback load runs while the snapshot is replaced by rename
(file watch), by SIGHUP and by POST /admin/reload; corrupt and
wrong-dimension files are refused while the old snapshot keeps serving.
Every response must be a 200 naming exactly one snapshot, with items that
exist in that snapshot's catalogue.

Run: RECD_BUILD_DIR=build python3 tests/integration/test_swap.py
"""

import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recd_harness import Conn, Daemon, Dataset  # noqa: E402


class Load:
    """Client threads sending recommendations until stopped (bounded by
    max_seconds and max_requests), recording every answer."""

    def __init__(self, port, users, threads=3, max_seconds=60, max_requests=200000):
        self.port, self.users = port, users
        self.stop_at = time.time() + max_seconds
        self.max_requests = max_requests
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.results = []   # (status, snapshot, item ids)
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, i):
        c = Conn(self.port)
        n = 0
        try:
            while not self.stopped.is_set() and time.time() < self.stop_at and n < self.max_requests:
                uid = self.users[(i * 7919 + n) % len(self.users)]
                status, _, raw = c.request("GET", "/v1/recommendations?user_id=%s&n=5" % uid)
                body = json.loads(raw)
                with self.lock:
                    self.results.append((status, body.get("snapshot"), [it["id"] for it in body.get("items", [])]))
                n += 1
        except Exception as e:  # noqa: BLE001 - every failure is recorded and asserted on
            with self.lock:
                self.errors.append(repr(e))
        finally:
            c.close()

    def snapshots_seen(self):
        with self.lock:
            return {r[1] for r in self.results}

    def finish(self):
        self.stopped.set()
        for t in self.threads:
            t.join()
        return self.results, self.errors


class Swap(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Dataset(items=2000, users=200, dim=32, seed=11)
        cls.b = Dataset(items=2500, users=200, dim=32, seed=12)   # more items: ids differ
        cls.other_dim = Dataset(items=500, users=20, dim=16, seed=13)
        cls.retrained = Dataset(items=2000, users=200, dim=32, seed=14)   # a's ids, new vectors
        cls.dir = cls.a.dir
        cls.live = os.path.join(cls.dir, "live.recd")

    @classmethod
    def tearDownClass(cls):
        for d in (cls.a, cls.b, cls.other_dim, cls.retrained):
            d.cleanup()

    def install(self, src):
        """Replace the served file the way operators should: copy, then rename."""
        tmp = self.live + ".new"
        shutil.copyfile(src, tmp)
        os.rename(tmp, self.live)

    def wait_for(self, load, name, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(s and s.startswith(name) for s in load.snapshots_seen()):
                return True
            time.sleep(0.02)
        return False

    def admin(self, d, method, path):
        c = Conn(d.admin_port)
        try:
            status, _, raw = c.request(method, path)
            return status, json.loads(raw)
        finally:
            c.close()

    def test_swaps_under_load(self):
        shutil.copyfile(self.a.snapshot, self.live)
        d = Daemon(self.live)
        try:
            load = Load(d.port, self.a.user_ids)
            try:
                time.sleep(0.3)
                # 1. rename into place -> the file watch reloads
                self.install(self.b.snapshot)
                self.assertTrue(self.wait_for(load, "it-12@2"), d.log())
                # 2. SIGHUP after the file changed back
                shutil.copyfile(self.a.snapshot, self.live + ".new")
                d.proc.send_signal(signal.SIGHUP)   # nothing changed yet: unchanged
                time.sleep(0.3)
                os.rename(self.live + ".new", self.live)
                self.assertTrue(self.wait_for(load, "it-11@3"), d.log())
                # 3. admin reload: unchanged file -> "unchanged"
                status, body = self.admin(d, "POST", "/admin/reload?what=snapshot")
                self.assertEqual(status, 200, body)
                self.assertEqual(body["snapshot"]["status"], "unchanged")
                self.assertEqual(body["snapshot"]["generation"], 3)
                # 4. a corrupt file is refused; generation 3 keeps serving
                with open(self.b.snapshot, "rb") as f:
                    data = bytearray(f.read())
                data[len(data) // 3] ^= 0x55
                tmp = self.live + ".new"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.rename(tmp, self.live)
                time.sleep(0.6)     # let the watcher try (and refuse) first
                status, body = self.admin(d, "POST", "/admin/reload")
                self.assertIn(status, (200, 422), body)
                if status == 422:
                    self.assertEqual(body["error"], "snapshot_refused")
                    self.assertIn("checksum", body["detail"])
                self.assertIn("snapshot_refused", d.log())
                # 5. a snapshot of another dimension is refused too
                self.install(self.other_dim.snapshot)
                time.sleep(0.6)
                status, body = self.admin(d, "POST", "/admin/reload?what=snapshot")
                self.assertEqual(status, 422, body)
                self.assertIn("dimension 16 differs", body["detail"])
                self.assertEqual(body["generation"], 3)
                # 6. and a good one after all that is taken
                self.install(self.b.snapshot)
                status, body = self.admin(d, "POST", "/admin/reload?what=snapshot")
                self.assertEqual(status, 200, body)
                self.assertIn(body["snapshot"]["status"], ("reloaded", "unchanged"))
                self.assertTrue(self.wait_for(load, "it-12@4"), d.log())
                time.sleep(0.2)
            finally:
                results, errors = load.finish()

            self.assertEqual(errors, [])
            self.assertGreater(len(results), 100)
            catalogues = {"it-11": set(self.a.item_ids), "it-12": set(self.b.item_ids)}
            for status, snap, items in results:
                self.assertEqual(status, 200)
                model = snap.split("@")[0]
                self.assertIn(model, catalogues)
                self.assertEqual(len(items), 5)
                self.assertTrue(set(items) <= catalogues[model], (snap, items))
            seen = {r[1] for r in results}
            self.assertTrue({"it-11@1", "it-12@2", "it-11@3", "it-12@4"} <= seen, seen)

            # refusals are counted; the old mappings were unmapped after their grace period
            c = Conn(d.port)
            _, _, raw = c.request("GET", "/metrics")
            c.close()
            metrics = raw.decode()
            failures = [l for l in metrics.splitlines() if l.startswith("recd_snapshot_load_failures_total ")]
            self.assertTrue(failures and int(failures[0].split()[1]) >= 2, failures)
            self.assertIn("recd_snapshot_generation 4", metrics)
            deadline = time.time() + 5
            while d.log().count("msg=snapshot_unmapped") < 3 and time.time() < deadline:
                time.sleep(0.1)
            self.assertEqual(d.log().count("msg=snapshot_unmapped"), 3, d.log())
            self.assertEqual(d.stop(), 0)
        finally:
            d.close()

    def test_lists_survive_swaps(self):
        """A shopper's precomputed list outlives a swap: the first answer
        on the new snapshot comes from it, translated by item key
        ("carried"), or from the list the rebuild pass already recomputed
        ("fresh") -- never a search on demand ("stale"/"miss")."""
        live = os.path.join(self.dir, "carry.recd")
        shutil.copyfile(self.a.snapshot, live)
        d = Daemon(live)
        c = Conn(d.port)
        try:
            def recs(uid):
                st, _, raw = c.request("GET", "/v1/recommendations?user_id=%s&n=10" % uid)
                self.assertEqual(st, 200, raw)
                return json.loads(raw)

            def metric(name):
                st, _, raw = c.request("GET", "/metrics")
                m = re.search(r"^%s (\d+)$" % re.escape(name), raw.decode(), re.M)
                self.assertTrue(m, name)
                return int(m.group(1))

            def all_fresh(users):
                return all(recs(u)["candidates"] == "fresh" for u in users)

            back = self.a.user_ids[:20]        # come back right after the swap
            away = self.a.user_ids[20:40]      # do not: only the rebuild pass touches their lists
            deadline = time.time() + 10
            while time.time() < deadline and not all_fresh(back + away):
                time.sleep(0.02)
            self.assertTrue(all_fresh(back + away))
            old = recs(back[0])["snapshot"]
            rebuilt = metric("recd_refresh_rebuilt_total")
            shutil.copyfile(self.retrained.snapshot, live + ".new")
            os.rename(live + ".new", live)
            deadline = time.time() + 10
            while time.time() < deadline and recs(back[0])["snapshot"] == old:
                time.sleep(0.01)
            after = {u: recs(u) for u in back}
            self.assertTrue(all(a["snapshot"].startswith("it-14@") for a in after.values()), after)
            for u, a in after.items():
                self.assertIn(a["candidates"], ("carried", "fresh"), (u, a))
                self.assertEqual(len(a["items"]), 10)
            # the pass puts every list on the new snapshot, those of the
            # shoppers who stayed away too
            deadline = time.time() + 10
            while time.time() < deadline and (metric("recd_refresh_rebuild_backlog") or
                                              metric("recd_refresh_rebuilt_total") < rebuilt + len(away)):
                time.sleep(0.02)
            self.assertGreaterEqual(metric("recd_refresh_rebuilt_total"), rebuilt + len(away))
            for u in away + back:
                got = recs(u)
                self.assertEqual(got["candidates"], "fresh", (u, got, metric("recd_refresh_rebuild_backlog"),
                                                              d.log()[-3000:]))
        finally:
            c.close()
            d.close()

    def test_sighup_reloads_without_file_watch(self):
        live = os.path.join(self.dir, "hup.recd")
        shutil.copyfile(self.a.snapshot, live)
        d = Daemon(live, "--snapshot-watch=false")
        try:
            load = Load(d.port, self.a.user_ids, threads=2)
            try:
                shutil.copyfile(self.b.snapshot, live + ".new")
                os.rename(live + ".new", live)
                time.sleep(0.6)
                self.assertEqual(load.snapshots_seen(), {"it-11@1"}, "no watch: nothing reloads by itself")
                d.proc.send_signal(signal.SIGHUP)
                self.assertTrue(self.wait_for(load, "it-12@2"), d.log())
                self.assertIn("msg=reload source=sighup", d.log())
            finally:
                results, errors = load.finish()
            self.assertEqual(errors, [])
            self.assertTrue(all(r[0] == 200 for r in results))
        finally:
            d.close()

    def test_status_names_the_snapshot(self):
        d = Daemon(self.a.snapshot)
        try:
            status, body = self.admin(d, "GET", "/admin/status")
            self.assertEqual(status, 200)
            self.assertEqual(body["snapshot"]["model_version"], "it-11")
            self.assertEqual(body["snapshot"]["generation"], 1)
            self.assertEqual(body["snapshot"]["path"], self.a.snapshot)
            status, body = self.admin(d, "GET", "/admin/reload")
            self.assertEqual(status, 405)
            status, body = self.admin(d, "POST", "/admin/reload?what=everything")
            self.assertEqual(status, 400)
        finally:
            d.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
