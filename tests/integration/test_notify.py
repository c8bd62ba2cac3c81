"""Integration: the sd_notify protocol, for real.

The test plays systemd: it binds a NOTIFY_SOCKET datagram socket, starts
recd with WATCHDOG_USEC set, and checks READY=1 only once /ready answers
200, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP,
watchdog pings that stop while a worker is stalled (debug endpoint) and
resume after, and STOPPING=1 on SIGTERM.

Run: RECD_BUILD_DIR=build python3 tests/integration/test_notify.py
"""

import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recd_harness import Conn, Daemon, Dataset  # noqa: E402


class Notify(unittest.TestCase):
    def setUp(self):
        self.data = Dataset(items=1000, users=50, dim=16, seed=21)
        self.sock_path = tempfile.mktemp(prefix="recd-notify-")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.sock.settimeout(0.2)
        self.messages = []   # (monotonic time, {key: value})
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.reader = threading.Thread(target=self.read_loop)
        self.reader.start()

    def tearDown(self):
        self.done.set()
        self.reader.join()
        self.sock.close()
        os.unlink(self.sock_path)
        self.data.cleanup()

    def read_loop(self):
        while not self.done.is_set():
            try:
                raw = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1) for line in raw.decode().split("\n") if "=" in line)
            with self.lock:
                self.messages.append((time.monotonic(), fields))

    def wait_for(self, key, value=None, after=0.0, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for t, f in self.messages:
                    if t >= after and key in f and (value is None or f[key] == value):
                        return t, f
            time.sleep(0.01)
        self.fail("no %s=%s from recd; got %r" % (key, value, self.messages))

    def pings_between(self, t0, t1):
        with self.lock:
            return [t for t, f in self.messages if f.get("WATCHDOG") == "1" and t0 <= t <= t1]

    def test_protocol(self):
        d = Daemon(self.data.snapshot, "--debug-endpoints=true", workers=2,
                   env={"NOTIFY_SOCKET": self.sock_path, "WATCHDOG_USEC": "1000000"})
        try:
            t_ready, _ = self.wait_for("READY", "1")
            c = Conn(d.port)
            status, body = c.get_json("/ready")
            self.assertEqual(status, 200, "READY=1 was sent before /ready was true")
            c.close()
            _, f = self.wait_for("STATUS")
            self.assertIn("serving it-21@1", f["STATUS"])

            # reload: RELOADING=1 with a monotonic timestamp, then READY=1
            t_hup = time.monotonic()
            d.proc.send_signal(signal.SIGHUP)
            t_rel, f = self.wait_for("RELOADING", "1", after=t_hup)
            self.assertTrue(int(f["MONOTONIC_USEC"]) > 0)
            t_ready2, _ = self.wait_for("READY", "1", after=t_rel)
            self.assertGreaterEqual(t_ready2, t_rel)

            # watchdog: pings every ~0.5 s while the workers turn ...
            time.sleep(1.6)
            now = time.monotonic()
            self.assertGreaterEqual(len(self.pings_between(now - 1.5, now)), 2, self.messages[-10:])
            # ... none while worker 0 is stalled for 3 s ...
            a = Conn(d.admin_port)
            status, _, raw = a.request("POST", "/admin/debug/stall?worker=0&ms=3000")
            self.assertEqual(status, 200, raw)
            a.close()
            t_stall = time.monotonic()
            time.sleep(3.2)
            self.assertEqual(self.pings_between(t_stall + 1.1, t_stall + 2.9), [], "pings during a stall")
            self.assertIn("msg=worker_stalled", d.log())
            # ... and again after it
            time.sleep(1.5)
            now = time.monotonic()
            self.assertGreaterEqual(len(self.pings_between(now - 1.4, now)), 1, "pings did not resume")

            t_term = time.monotonic()
            d.proc.send_signal(signal.SIGTERM)
            self.wait_for("STOPPING", "1", after=t_term)
            self.assertEqual(d.proc.wait(10), 0)
        finally:
            d.close()

    def test_debug_endpoint_off_by_default(self):
        d = Daemon(self.data.snapshot)
        try:
            a = Conn(d.admin_port)
            status, _, raw = a.request("POST", "/admin/debug/stall?worker=0&ms=10")
            self.assertEqual(status, 404)
            self.assertEqual(json.loads(raw)["error"], "not_found")
            a.close()
        finally:
            d.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
