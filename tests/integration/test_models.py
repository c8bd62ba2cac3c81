"""Integration: several models served at once (`models`), over real sockets.

The daemon serves a main snapshot and a challenger (`--models`), each in
its own directory. Replacing the challenger's file by rename reloads the
challenger only; a corrupt or wrong-dimension challenger is refused (its
generation stays, its failure counter and the log say so) while both keep
serving; SIGHUP with nothing changed changes nothing; a reload can be
limited to one model. At start, a model that cannot be loaded, a bad model
name, or the main model's name reused stop the start with a message
naming it.

Run: RECD_BUILD_DIR=build python3 tests/integration/test_models.py
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recd_harness import BUILD, RECD, Conn, Daemon, Dataset  # noqa: E402


def wait_until(pred, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Models(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.main = Dataset(items=2000, users=200, dim=32, seed=21)
        cls.chal = Dataset(items=1500, users=100, dim=32, seed=22)
        cls.chal2 = Dataset(items=1600, users=100, dim=32, seed=23)
        cls.other_dim = Dataset(items=500, users=20, dim=16, seed=24)
        cls.main2 = Dataset(items=2100, users=200, dim=32, seed=25)
        cls.dir = tempfile.mkdtemp(prefix="recd-it-models-")
        os.mkdir(os.path.join(cls.dir, "main"))
        os.mkdir(os.path.join(cls.dir, "chal"))
        cls.main_path = os.path.join(cls.dir, "main", "live.recd")
        cls.chal_path = os.path.join(cls.dir, "chal", "challenger.recd")

    @classmethod
    def tearDownClass(cls):
        for d in (cls.main, cls.chal, cls.chal2, cls.other_dim, cls.main2):
            d.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @staticmethod
    def install(src, dst):
        """Replace a served file the way operators should: copy, then rename."""
        shutil.copyfile(src, dst + ".new")
        os.rename(dst + ".new", dst)

    def admin(self, d, method, path):
        c = Conn(d.admin_port)
        try:
            status, _, raw = c.request(method, path)
            return status, json.loads(raw)
        finally:
            c.close()

    def status(self, d):
        st, body = self.admin(d, "GET", "/admin/status")
        self.assertEqual(st, 200, body)
        return body

    def models(self, d):
        return {m["name"]: m for m in self.status(d)["models"]}

    def metrics(self, d):
        c = Conn(d.port)
        try:
            st, _, raw = c.request("GET", "/metrics")
            self.assertEqual(st, 200)
            return raw.decode()
        finally:
            c.close()

    def metric(self, d, series):
        m = re.search(r"^%s (\d+)$" % re.escape(series), self.metrics(d), re.M)
        self.assertTrue(m, series)
        return int(m.group(1))

    def serves(self, d, want):
        """A few recommendations, all 200 and from snapshot `want`."""
        c = Conn(d.port)
        try:
            for uid in self.main.user_ids[:5]:
                st, _, raw = c.request("GET", "/v1/recommendations?user_id=%s&n=5" % uid)
                self.assertEqual(st, 200, raw)
                body = json.loads(raw)
                self.assertEqual(body["snapshot"], want, body)
                self.assertEqual(len(body["items"]), 5)
        finally:
            c.close()

    def test_models_reload_independently(self):
        shutil.copyfile(self.main.snapshot, self.main_path)
        shutil.copyfile(self.chal.snapshot, self.chal_path)
        d = Daemon(self.main_path, "--models=challenger=" + self.chal_path)
        try:
            # Both listed, slot 0 first, distinct generations (one counter).
            body = self.status(d)
            self.assertEqual([m["name"] for m in body["models"]], ["default", "challenger"])
            m = {x["name"]: x for x in body["models"]}
            self.assertEqual(m["default"]["generation"], 1)
            self.assertEqual(m["default"]["model_version"], "it-21")
            self.assertEqual(m["default"]["path"], self.main_path)
            self.assertEqual(m["default"]["items"], 2000)
            self.assertEqual(m["challenger"]["generation"], 2)
            self.assertEqual(m["challenger"]["model_version"], "it-22")
            self.assertEqual(m["challenger"]["path"], self.chal_path)
            self.assertEqual(m["challenger"]["items"], 1500)
            self.assertEqual(m["challenger"]["dim"], 32)
            self.assertGreater(m["challenger"]["loaded_at_ms"], 0)
            self.assertEqual(m["challenger"]["load_failures"], 0)
            # the historical "snapshot" object is the main one, unchanged
            self.assertEqual(body["snapshot"]["generation"], 1)
            self.assertEqual(body["snapshot"]["model_version"], "it-21")
            self.assertEqual(body["config"]["models"], "challenger=" + self.chal_path)
            self.serves(d, "it-21@1")

            text = self.metrics(d)
            self.assertIn('recd_model_generation{model="default"} 1\n', text)
            self.assertIn('recd_model_generation{model="challenger"} 2\n', text)
            self.assertIn('recd_model_load_failures_total{model="default"} 0\n', text)
            self.assertIn('recd_model_load_failures_total{model="challenger"} 0\n', text)
            self.assertIn("recd_snapshot_generation 1\n", text)
            promtool = shutil.which("promtool")
            if promtool:
                p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            elif os.environ.get("CI"):
                self.fail("promtool missing in CI")

            # 1. the challenger's file replaced by rename: only it reloads
            self.install(self.chal2.snapshot, self.chal_path)
            self.assertTrue(wait_until(lambda: self.models(d)["challenger"]["generation"] == 3), d.log())
            m = self.models(d)
            self.assertEqual(m["challenger"]["model_version"], "it-23")
            self.assertEqual(m["challenger"]["items"], 1600)
            self.assertEqual(m["default"]["generation"], 1)
            self.assertIn("msg=snapshot_published model=challenger path=%s model_version=it-23 generation=3"
                          % self.chal_path, d.log())
            self.assertIn("msg=reload source=file_change what=snapshot models=challenger", d.log())
            self.serves(d, "it-21@1")
            # the old challenger is unmapped after its grace period
            self.assertTrue(wait_until(lambda: "msg=snapshot_unmapped model=challenger generation=2" in d.log()),
                            d.log())

            # 2. a corrupt challenger (a truncated copy) is refused
            with open(self.chal.snapshot, "rb") as f:
                data = f.read()
            with open(self.chal_path + ".new", "wb") as f:
                f.write(data[: len(data) * 2 // 3])
            os.rename(self.chal_path + ".new", self.chal_path)
            fail_series = 'recd_model_load_failures_total{model="challenger"}'
            self.assertTrue(wait_until(lambda: self.metric(d, fail_series) == 1), d.log())
            self.assertRegex(d.log(), r"msg=snapshot_refused model=challenger path=%s err=\"[^\"]+\" "
                             r"serving_generation=3" % re.escape(self.chal_path))
            m = self.models(d)
            self.assertEqual((m["challenger"]["generation"], m["challenger"]["model_version"]), (3, "it-23"))
            self.assertEqual(m["challenger"]["load_failures"], 1)
            self.assertEqual(m["default"]["generation"], 1)
            self.assertEqual(self.metric(d, 'recd_model_load_failures_total{model="default"}'), 0)
            self.assertEqual(self.metric(d, "recd_snapshot_load_failures_total"), 0)
            self.serves(d, "it-21@1")

            # 3. one of another dimension is refused too, naming both
            self.install(self.other_dim.snapshot, self.chal_path)
            self.assertTrue(wait_until(lambda: self.metric(d, fail_series) == 2), d.log())
            self.assertIn("dimension 16 differs from the main snapshot's 32", d.log())
            st, body = self.admin(d, "POST", "/admin/reload?what=snapshot")
            self.assertEqual(st, 422, body)
            self.assertEqual(body["error"], "snapshot_refused")
            self.assertTrue(body["detail"].startswith("model challenger: dimension 16 differs from the main "
                                                      "snapshot's 32"), body)
            self.assertEqual(body["generation"], 1)
            self.assertEqual(body["snapshot"]["generation"], 1)
            by_name = {x["name"]: x for x in body["models"]}
            self.assertEqual(by_name["default"]["status"], "unchanged")
            self.assertEqual(by_name["challenger"]["status"], "refused")
            self.assertEqual(by_name["challenger"]["generation"], 3)
            self.assertIn("dimension 16", by_name["challenger"]["detail"])
            self.assertEqual(self.models(d)["challenger"]["generation"], 3)
            self.assertEqual(self.metric(d, 'recd_model_generation{model="challenger"}'), 3)
            self.serves(d, "it-21@1")

            # 4. a good file, reloaded by name only (no file watch needed)
            shutil.copyfile(self.chal.snapshot, self.chal_path + ".new")
            st, body = self.admin(d, "POST", "/admin/reload?what=snapshot&model=nope")
            self.assertEqual(st, 404, body)
            self.assertIn("nope", body["detail"])
            st, body = self.admin(d, "POST", "/admin/reload?what=policies&model=challenger")
            self.assertEqual(st, 400, body)
            os.rename(self.chal_path + ".new", self.chal_path)
            st, body = self.admin(d, "POST", "/admin/reload?what=snapshot&model=challenger")
            self.assertEqual(st, 200, body)
            by_name = {x["name"]: x for x in body["models"]}
            # the file watch may have taken it a moment before us
            if by_name["challenger"]["status"] == "reloaded":
                self.assertEqual(body["snapshot"]["status"], "reloaded")
            self.assertEqual(by_name["default"]["status"], "unchanged")
            self.assertTrue(wait_until(lambda: self.models(d)["challenger"]["generation"] == 4), d.log())
            self.assertEqual(self.models(d)["challenger"]["model_version"], "it-22")
            self.assertEqual(self.models(d)["default"]["generation"], 1)
            time.sleep(0.5)   # let a file-watch reload of that rename come and go (unchanged)

            # 5. SIGHUP with nothing changed changes nothing
            before = self.models(d)
            published = d.log().count("msg=snapshot_published")
            hups = d.log().count("msg=reload source=sighup")
            d.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_until(lambda: d.log().count("msg=reload source=sighup") > hups), d.log())
            time.sleep(0.3)
            after = self.models(d)
            for name in ("default", "challenger"):
                self.assertEqual(after[name]["generation"], before[name]["generation"])
                self.assertEqual(after[name]["load_failures"], before[name]["load_failures"])
            self.assertEqual(d.log().count("msg=snapshot_published"), published)
            self.serves(d, "it-21@1")

            # 6. the main file replaced: only the main model moves on
            self.install(self.main2.snapshot, self.main_path)
            self.assertTrue(wait_until(lambda: self.models(d)["default"]["generation"] == 5), d.log())
            m = self.models(d)
            self.assertEqual(m["default"]["model_version"], "it-25")
            self.assertEqual(m["challenger"]["generation"], 4)
            self.serves(d, "it-25@5")
            text = self.metrics(d)
            self.assertIn('recd_model_generation{model="default"} 5\n', text)
            self.assertIn('recd_model_generation{model="challenger"} 4\n', text)
            self.assertIn('recd_model_load_failures_total{model="challenger"} 3\n', text)
            self.assertIn("recd_snapshot_generation 5\n", text)
            self.assertEqual(d.stop(), 0)
        finally:
            d.close()

    def test_models_need_a_restart(self):
        """`models` is not reloadable: a settings reload reports it."""
        conf = os.path.join(self.dir, "recd.conf")
        with open(conf, "w") as f:
            f.write("models = challenger=%s\n" % self.chal.snapshot)
        d = Daemon(self.main.snapshot, "--config", conf, "--model-name", "champion")
        try:
            self.assertEqual([m["name"] for m in self.status(d)["models"]], ["champion", "challenger"])
            with open(conf, "w") as f:
                f.write("models = challenger=%s, c2=%s\n" % (self.chal.snapshot, self.chal2.snapshot))
            st, body = self.admin(d, "POST", "/admin/reload?what=settings")
            self.assertEqual(st, 200, body)
            self.assertIn("models", body["settings"]["need_restart"])
            self.assertEqual([m["name"] for m in self.status(d)["models"]], ["champion", "challenger"])
            self.assertIn('recd_model_generation{model="champion"} 1\n', self.metrics(d))
        finally:
            d.close()
            os.unlink(conf)

    def start_fails(self, *args):
        p = subprocess.run([RECD, "--snapshot", self.main.snapshot, "--listen", "127.0.0.1:0",
                            "--admin-listen", "", "--event-log=false"] + list(args),
                           capture_output=True, text=True, timeout=30)
        return p.returncode, p.stderr

    def test_start_fails_for_a_bad_model(self):
        missing = os.path.join(self.dir, "nowhere", "c.recd")
        rc, err = self.start_fails("--models=challenger=" + missing)
        self.assertEqual(rc, 1, err)
        self.assertIn("msg=snapshot_refused model=challenger path=%s" % missing, err)
        self.assertIn("model challenger (%s): %s: No such file or directory" % (missing, missing), err)

        rc, err = self.start_fails("--models=challenger=" + self.other_dim.snapshot)
        self.assertEqual(rc, 1, err)
        self.assertIn("model challenger (%s): dimension 16 differs from the main snapshot's 32"
                      % self.other_dim.snapshot, err)

        rc, err = self.start_fails("--models=chall enger=" + self.chal.snapshot)
        self.assertEqual(rc, 2, err)
        self.assertIn("models: 'chall enger' is not a model name", err)

        rc, err = self.start_fails("--models=default=" + self.chal.snapshot)
        self.assertEqual(rc, 2, err)
        self.assertIn("models: default is the name of the main snapshot (model_name)", err)

        rc, err = self.start_fails("--models=a=%s,a=%s" % (self.chal.snapshot, self.chal2.snapshot))
        self.assertEqual(rc, 2, err)
        self.assertIn("models: a is named twice", err)


if __name__ == "__main__":
    if not os.path.exists(os.path.join(BUILD, "engine", "recd")):
        print("recd not built in %s" % BUILD)
        sys.exit(77)
    unittest.main(verbosity=2)
