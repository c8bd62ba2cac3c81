"""rb_procs.py: starting and stopping the servers a benchmark talks to —
recd itself and the peers (nginx static, FastAPI + Redis, Redis, nginx +
Lua) — on loopback ports, with every config file in a temp dir and
nothing installed or changed system-wide. Each start returns a Server or
raises Skip with the reason (a package that is not there)."""

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PEERS = os.path.join(os.path.dirname(HERE), "peers")


class Skip(Exception):
    """A peer that cannot run here; the message says why."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def http_get(port, path, timeout=10.0, method="GET"):
    """One raw HTTP/1.1 exchange: (status, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("%s %s HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                   % (method, path)).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


class Server:
    """A started server: name, port, the processes to stop, a temp dir."""

    def __init__(self, name, port, procs, tmp, info=""):
        self.name, self.port, self.procs, self.tmp, self.info = name, port, procs, tmp, info
        self.admin_port = None

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


# Set by the driver: how servers and generator are scheduled. "fifo"
# (chrt -f 1, root only) keeps background jobs on a shared machine from
# preempting them: with EEVDF a woken task otherwise waits for the running
# one's slice, milliseconds that land in every tail (nice does not help).
# They block when idle, and the kernel's RT throttling leaves others 5%.
SCHED = "none"


def pin(cpu):
    pre = {"fifo": ["chrt", "-f", "1"], "nice": ["nice", "-n", "-10"]}.get(SCHED, [])
    return pre + (["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else [])


def start_recd(build, snapshot, tmp, cpu, workers, extra=()):
    log = os.path.join(tmp, "recd.log")
    # The event log (default durability) goes to the run's temp dir.
    args = pin(cpu) + [os.path.join(build, "engine", "recd"), "--snapshot", snapshot,
                       "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                       "--workers", str(workers), "--state-dir", tmp,
                       # the default policies, as a deployment runs them
                       "--plugins-dir", os.path.join(ROOT, "plugins"), "--lua-dir", os.path.join(ROOT, "lua")] + list(extra)
    err = open(log, "w+")
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 20
    while time.time() < deadline:
        err.seek(0)
        m = re.search(r"msg=listening addr=127\.0\.0\.1:(\d+) admin=127\.0\.0\.1:(\d+)", err.read())
        if m:
            s = Server("recd", int(m.group(1)), [p], None, "recd, %d worker(s)" % workers)
            s.admin_port = int(m.group(2))
            s.log = log
            return s
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    err.seek(0)
    raise RuntimeError("recd did not start: " + err.read()[-2000:])


def start_builtin(build, cpu, body_len):
    """recd-bench's own responder: the load generator's ceiling."""
    tmp = _tmpdir("builtin")
    log = open(os.path.join(tmp, "log"), "w+")
    p = subprocess.Popen(pin(cpu) + [os.path.join(build, "bench", "recd-bench"), "serve",
                                     "--body", str(body_len)], stderr=log)
    deadline = time.time() + 10
    while time.time() < deadline:
        log.seek(0)
        m = re.search(r"127\.0\.0\.1:(\d+)", log.read())
        if m:
            return Server("builtin", int(m.group(1)), [p], tmp, "recd-bench serve (epoll, 1 thread)")
        time.sleep(0.05)
    p.kill()
    raise RuntimeError("recd-bench serve did not start")


def _tmpdir(name):
    import tempfile
    d = tempfile.mkdtemp(prefix="rb-%s-" % name)
    os.chmod(d, 0o755)  # nginx workers run as nobody and read from here
    return d


def _nginx_common(tmp):
    for d in ("cb", "px", "fc", "uw", "sc", "logs"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    return ("worker_processes 1;\nerror_log %(t)s/logs/error.log warn;\npid %(t)s/nginx.pid;\n"
            "events { worker_connections 4096; }\n" % {"t": tmp},
            "access_log off;\nkeepalive_requests 100000000;\nkeepalive_timeout 300s;\n"
            "client_body_temp_path %(t)s/cb; proxy_temp_path %(t)s/px; fastcgi_temp_path %(t)s/fc;\n"
            "uwsgi_temp_path %(t)s/uw; scgi_temp_path %(t)s/sc;\n" % {"t": tmp})


def _run_nginx(name, tmp, conf, port, cpu, env=None, info=""):
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    log = open(os.path.join(tmp, "logs", "stderr"), "w+")
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.Popen(pin(cpu) + ["nginx", "-c", path, "-p", tmp, "-g", "daemon off;"],
                         stdout=subprocess.DEVNULL, stderr=log, env=full_env)
    if not wait_port(port, 15, p):
        p.kill()
        log.seek(0)
        err = log.read()
        try:
            err += open(os.path.join(tmp, "logs", "error.log")).read()
        except OSError:
            pass
        raise RuntimeError("%s did not start: %s" % (name, err[-1500:]))
    return Server(name, port, [p], tmp, info)


def start_nginx_static(cpu, body):
    """nginx serving one static JSON body of the same size as recd's answer."""
    if not shutil.which("nginx"):
        raise Skip("nginx not installed (apt-get install nginx-light)")
    tmp = _tmpdir("nginx")
    os.makedirs(os.path.join(tmp, "www"))
    with open(os.path.join(tmp, "www", "rec.json"), "wb") as f:
        f.write(body)
    port = free_port()
    main, http = _nginx_common(tmp)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = main + user + ("http {\n" + http +
                          "server { listen 127.0.0.1:%d; root %s/www; default_type application/json;\n"
                          "  location / { try_files /rec.json =404; } }\n}\n") % (port, tmp)
    return _run_nginx("nginx-static", tmp, conf, port, cpu, info="nginx %s, 1 worker, static file" % _nginx_version())


def _nginx_version():
    try:
        out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
        return out.strip().split("/")[-1]
    except OSError:
        return "?"


def _lua_module(cache):
    """The Lua module for nginx: the installed one, else Debian's packages
    unpacked (apt-get download + dpkg-deb -x) into the cache dir. Debian
    12's libnginx-mod-http-lua needs OpenResty's LuaJIT (libluajit2),
    which conflicts with libluajit-5.1-dev that recd builds with, so it is
    never installed here: the unpacked copy runs with its own LuaJIT on
    LD_LIBRARY_PATH and touches nothing system-wide."""
    sys_mod = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
    if os.path.exists(sys_mod) and os.path.exists("/usr/share/lua/5.1/resty/core.lua"):
        return sys_mod, "/usr/share/lua/5.1", None
    root = os.path.join(cache, "lua-debs", "root")
    mod = os.path.join(root, "usr/lib/nginx/modules/ngx_http_lua_module.so")
    if not os.path.exists(mod):
        if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
            raise Skip("nginx Lua module: needs apt-get and dpkg-deb to unpack Debian's packages")
        dl = os.path.join(cache, "lua-debs")
        os.makedirs(dl, exist_ok=True)
        r = subprocess.run(["apt-get", "download", "libnginx-mod-http-lua", "lua-resty-core",
                            "lua-resty-lrucache", "libluajit2-5.1-2"], cwd=dl, capture_output=True, text=True)
        debs = glob.glob(os.path.join(dl, "*.deb"))
        if r.returncode != 0 or len(debs) < 4:
            raise Skip("nginx Lua module: `apt-get download libnginx-mod-http-lua ...` failed: "
                       + (r.stderr.strip().splitlines() or ["?"])[-1])
        for d in debs:
            subprocess.run(["dpkg-deb", "-x", d, root], check=True)
    return mod, os.path.join(root, "usr/share/lua/5.1"), os.path.join(root, "usr/lib/x86_64-linux-gnu")


def start_nginx_lua(cpu, cache, cands_path):
    """nginx + lua: rerank a precomputed candidate list per user in Lua."""
    if not shutil.which("nginx"):
        raise Skip("nginx not installed (apt-get install nginx-light)")
    if not os.path.exists("/usr/lib/nginx/modules/ndk_http_module.so"):
        raise Skip("libnginx-mod-http-ndk not installed")
    mod, lua_path, ld_path = _lua_module(cache)
    tmp = _tmpdir("nginx-lua")
    port = free_port()
    main, http = _nginx_common(tmp)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = ("load_module /usr/lib/nginx/modules/ndk_http_module.so;\nload_module %s;\n" % mod + main + user +
            "http {\n" + http +
            'lua_package_path "%s/?.lua;%s/?.lua;;";\n' % (PEERS, lua_path) +
            'init_by_lua_block { require("rerank").load("%s") }\n' % cands_path +
            "server { listen 127.0.0.1:%d; default_type application/json;\n"
            "  location / { content_by_lua_block { require(\"rerank\").handle() } } }\n}\n" % port)
    env = {"LD_LIBRARY_PATH": ld_path} if ld_path else {}
    return _run_nginx("nginx-lua", tmp, conf, port, cpu, env,
                      "nginx %s + lua-nginx-module 0.10.23 (Debian), 1 worker, rerank of 100 candidates"
                      % _nginx_version())


def start_redis(cpu):
    if not shutil.which("redis-server"):
        raise Skip("redis-server not installed (apt-get install redis-server)")
    tmp = _tmpdir("redis")
    port = free_port()
    p = subprocess.Popen(pin(cpu) + ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--dir", tmp,
                                     "--daemonize", "no", "--logfile", os.path.join(tmp, "redis.log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_port(port, 15, p):
        p.kill()
        raise RuntimeError("redis-server did not start")
    return Server("redis", port, [p], tmp, "redis-server " + _redis_version())


def _redis_version():
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
        m = re.search(r"v=(\S+)", out)
        return m.group(1) if m else "?"
    except OSError:
        return "?"


def redis_load(port, pairs):
    """SET every (key, value) over one pipelined connection (RESP)."""
    def enc(*parts):
        out = b"*%d\r\n" % len(parts)
        for x in parts:
            x = x if isinstance(x, bytes) else x.encode()
            out += b"$%d\r\n%s\r\n" % (len(x), x)
        return out
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        n = 0
        buf = b""
        for k, v in pairs:
            buf += enc("SET", k, v)
            n += 1
            if len(buf) > 1 << 20:
                s.sendall(buf)
                buf = b""
        s.sendall(buf + enc("PING"))
        got = b""
        while not got.endswith(b"+PONG\r\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise RuntimeError("redis closed the connection while loading")
            got += chunk
        if got.count(b"+OK\r\n") != n:
            raise RuntimeError("redis refused some SETs")


def start_seed_service(cpu, redis_port):
    """The seed-style service: FastAPI on uvicorn reading lists from Redis."""
    try:
        r = subprocess.run(["/usr/bin/python3", "-c", "import fastapi, uvicorn, redis"], capture_output=True)
    except OSError:
        r = None
    if r is None or r.returncode != 0:
        raise Skip("python3-fastapi, python3-uvicorn or python3-redis not installed")
    tmp = _tmpdir("seed")
    port = free_port()
    env = dict(os.environ, REDIS_PORT=str(redis_port), PYTHONPATH=PEERS)
    log = open(os.path.join(tmp, "log"), "w+")
    p = subprocess.Popen(pin(cpu) + ["/usr/bin/python3", "-m", "uvicorn", "seed_app:app", "--host", "127.0.0.1",
                                     "--port", str(port), "--workers", "1", "--no-access-log",
                                     "--log-level", "warning"],
                         stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=PEERS)
    if not wait_port(port, 30, p):
        p.kill()
        log.seek(0)
        raise RuntimeError("seed service did not start: " + log.read()[-1500:])
    ver = subprocess.run(["/usr/bin/python3", "-c", "import fastapi, uvicorn; print(fastapi.__version__, uvicorn.__version__)"],
                         capture_output=True, text=True).stdout.split()
    return Server("fastapi-redis", port, [p], tmp,
                  "FastAPI %s on uvicorn %s (1 worker) + Redis" % tuple(ver[:2] or ["?", "?"]))


def redis_benchmark(cpu, port, value_size, conns, requests, keys=1000):
    """redis-benchmark GET of a value as big as the answer: closed loop."""
    if not shutil.which("redis-benchmark"):
        raise Skip("redis-benchmark not installed (apt-get install redis-tools)")
    base = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(conns),
            "-d", str(value_size), "-r", str(keys), "--csv"]
    subprocess.run(pin(cpu) + base + ["-t", "set", "-n", str(keys * 20)], capture_output=True, check=True,
                   timeout=120)
    out = subprocess.run(pin(cpu) + base + ["-t", "get", "-n", str(requests)], capture_output=True,
                         text=True, check=True, timeout=300).stdout
    lines = [l for l in out.splitlines() if l.strip()]
    head = [h.strip('"') for h in lines[0].split(",")]
    vals = [v.strip('"') for v in lines[-1].split(",")]
    row = dict(zip(head, vals))
    return {"throughput_rps": float(row["rps"]), "p50_us": float(row.get("p50_latency_ms", "nan")) * 1000,
            "p99_us": float(row.get("p99_latency_ms", "nan")) * 1000,
            "max_us": float(row.get("max_latency_ms", "nan")) * 1000, "raw": row}
