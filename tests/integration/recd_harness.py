"""Shared pieces of the integration tests: build a data set with the real
tools, start the real daemon on ephemeral loopback ports, and talk raw
HTTP/1.1 to it over real sockets (no client library between the test and
the bytes on the wire)."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import numpy as np

BUILD = os.environ.get("RECD_BUILD_DIR", "build")
RECD = os.path.join(BUILD, "engine", "recd")
GEN = os.path.join(BUILD, "tools", "recd-gen")
SNAPSHOT_TOOL = os.path.join(BUILD, "tools", "recd-snapshot")

WEIGHTS = {"view": 1.0, "click": 1.0, "rating": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


class Dataset:
    """recd-gen output plus an independent (numpy) model of what recd
    must answer for it."""

    def __init__(self, items=3000, users=300, dim=32, seed=7):
        self.dir = tempfile.mkdtemp(prefix="recd-it-")
        subprocess.run([GEN, "--out", self.dir, "--items", str(items), "--users", str(users),
                        "--dim", str(dim), "--seed", str(seed)], check=True,
                       stdout=subprocess.DEVNULL)
        self.snapshot = os.path.join(self.dir, "snap.recd")
        subprocess.run([SNAPSHOT_TOOL, "build",
                        "--items", os.path.join(self.dir, "items.jsonl"),
                        "--item-embeddings", os.path.join(self.dir, "item_embeddings.npy"),
                        "--users", os.path.join(self.dir, "users.txt"),
                        "--user-embeddings", os.path.join(self.dir, "user_embeddings.npy"),
                        "--interactions", os.path.join(self.dir, "interactions.csv"),
                        "--model-version", "it-%d" % seed,
                        "-o", self.snapshot], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(self.dir, "items.jsonl")) as f:
            self.items = [json.loads(line) for line in f]
        self.item_ids = [it["id"] for it in self.items]
        self.item_index = {iid: i for i, iid in enumerate(self.item_ids)}
        self.servable = np.array([it["stock"] > 0 and it.get("available", True) for it in self.items])
        self.item_emb = np.load(os.path.join(self.dir, "item_embeddings.npy")).astype(np.float64)
        self.user_emb = np.load(os.path.join(self.dir, "user_embeddings.npy")).astype(np.float64)
        with open(os.path.join(self.dir, "users.txt")) as f:
            self.user_ids = [line.strip() for line in f if line.strip()]
        self.popularity = np.zeros(len(self.items))
        with open(os.path.join(self.dir, "interactions.csv")) as f:
            next(f)
            for line in f:
                user, item, typ = line.rstrip("\n").split(",")[:3]
                self.popularity[self.item_index[item]] += WEIGHTS[typ]

    def exact_scores(self, query):
        scores = self.item_emb @ query
        scores[~self.servable] = -np.inf
        return scores

    def covisit_counts(self, lookback=10, window_ms=3600000):
        """{a: {b: n}}: how often b came within `lookback` events and
        `window_ms` of a in one user's history (both directions)."""
        by_user = {}
        with open(os.path.join(self.dir, "interactions.csv")) as f:
            next(f)
            for line in f:
                user, item, _typ, ts = line.rstrip("\n").split(",")[:4]
                by_user.setdefault(user, []).append((int(ts), self.item_index[item]))
        counts = {}
        for evs in by_user.values():
            evs.sort()
            for j in range(1, len(evs)):
                for i in range(j - 1, max(-1, j - 1 - lookback), -1):
                    if evs[j][0] - evs[i][0] > window_ms:
                        break
                    a, b = evs[i][1], evs[j][1]
                    if a == b:
                        continue
                    counts.setdefault(a, {}).setdefault(b, 0)
                    counts[a][b] += 1
                    counts.setdefault(b, {}).setdefault(a, 0)
                    counts[b][a] += 1
        return counts

    def popular(self, n):
        order = sorted(range(len(self.items)), key=lambda i: (-self.popularity[i], i))
        return [self.item_ids[i] for i in order if self.servable[i]][:n]

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Daemon:
    """The real recd on 127.0.0.1:0 (main and admin); addresses read from its log.
    Unless `extra` says where state and the event log go, each daemon gets
    a fresh temp state_dir (its event log starts empty, removed on close)."""

    def __init__(self, snapshot, *extra, workers=2, env=None):
        self.stderr_path = tempfile.mktemp(prefix="recd-it-log-")
        self.stderr = open(self.stderr_path, "w+")
        self.state_dir = None
        if not any(re.match(r"--(state|event)[-_](dir|log)", a) for a in extra):
            self.state_dir = tempfile.mkdtemp(prefix="recd-it-state-")
            extra = ("--state-dir", self.state_dir) + tuple(extra)
        args = [RECD, "--snapshot", snapshot, "--listen", "127.0.0.1:0",
                "--admin-listen", "127.0.0.1:0", "--workers", str(workers)] + list(extra)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.stderr, env=full_env)
        deadline = time.time() + 20
        self.port = self.admin_port = None
        while time.time() < deadline:
            self.stderr.seek(0)
            m = re.search(r"msg=listening addr=127\.0\.0\.1:(\d+) admin=127\.0\.0\.1:(\d+)", self.stderr.read())
            if m:
                self.port, self.admin_port = int(m.group(1)), int(m.group(2))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        if self.state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        raise RuntimeError("recd did not start: " + self.log())

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def close(self):
        self.stop()
        self.stderr.close()
        os.unlink(self.stderr_path)
        if self.state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)


class Conn:
    """One keep-alive HTTP/1.1 connection with a response reader."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by server")
        self.buf += chunk

    def read_response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        assert lines[0].startswith("HTTP/1.1 "), lines[0]
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        length = int(headers["content-length"])
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def request(self, method, path, body=None, headers=None):
        hdrs = {"Host": "test"}
        hdrs.update(headers or {})
        data = "%s %s HTTP/1.1\r\n" % (method, path)
        payload = b""
        if body is not None:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
            hdrs["Content-Length"] = str(len(payload))
        data += "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
        self.send(data.encode() + payload)
        return self.read_response()

    def get_json(self, path):
        status, headers, body = self.request("GET", path)
        return status, json.loads(body)

    def closed_by_peer(self, wait=5.0):
        """True when the server closes the connection (EOF) within `wait`."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()
