#!/usr/bin/env python3
"""rb_run.py: recd's latency scenarios, one command each.

    bench/scenarios/rb_run.py [options] SCENARIO...

SCENARIO is one of ceiling, steady, coldstart, events, swap, reload,
overload, peers, or `standard` (all of them, in that order). Each builds
(or reuses) the recd-gen data set and its snapshots, starts the real
daemon and the peers on loopback, drives them with recd-bench, and writes
into the output directory: one JSON per load phase, summary.json,
report.md and PNG plots (gnuplot). `--short` runs every phase for about a
second: the CI smoke version. See bench/README.md for what each figure
means.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import rb_procs  # noqa: E402
import rb_report  # noqa: E402
from rb_procs import Skip  # noqa: E402

SLO_US = 1000.0  # the knee: the highest rate at which p99 <= 1 ms holds
STANDARD = ["ceiling", "steady", "coldstart", "events", "swap", "reload", "overload", "peers"]


class Ctx:
    def __init__(self, a):
        self.a = a
        self.build = os.path.abspath(a.build)
        self.bench = os.path.join(self.build, "bench", "recd-bench")
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.out = os.path.abspath(a.out or os.path.join(ROOT, "bench", "results", "rb-" + stamp))
        os.makedirs(self.out, exist_ok=True)
        two = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") and not a.no_pin
        self.server_cpu, self.client_cpu = (0, 1) if two else (None, None)
        self.tmp = tempfile.mkdtemp(prefix="rb-run-")
        self.runs = []          # every load phase, in order
        self.scenarios = {}     # name -> figures
        self.recd = None
        self.knee = None        # steady's knee, the reference for the other scenarios
        self.common_rate = a.common_rate
        self.short = a.short

    def dur(self, full):
        return 1.0 if self.short else full * self.a.scale


def log(*msg):
    print(*msg, flush=True)


# ---- data ----

def prepare_data(ctx):
    a = ctx.a
    d = os.path.abspath(a.data or "/tmp/recd-rb-data-%dx%dx%d" % (a.items, a.dim, a.users))
    os.makedirs(d, exist_ok=True)
    gen = os.path.join(ctx.build, "tools", "recd-gen")
    snap = os.path.join(ctx.build, "tools", "recd-snapshot")
    if not os.path.exists(os.path.join(d, "items.jsonl")):
        log("data: recd-gen %d items x %d dims, %d users -> %s" % (a.items, a.dim, a.users, d))
        subprocess.run([gen, "--out", d, "--items", str(a.items), "--users", str(a.users), "--dim", str(a.dim),
                        "--seed", str(a.seed)], check=True, stdout=subprocess.DEVNULL)
    for tag in ("a", "b"):  # two model versions of the same data: what swap alternates
        path = os.path.join(d, "snap-%s.recd" % tag)
        # a rebuilt recd-snapshot may write a different format (an index): rebuild
        if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(snap):
            subprocess.run([snap, "build", "--items", os.path.join(d, "items.jsonl"),
                            "--item-embeddings", os.path.join(d, "item_embeddings.npy"),
                            "--users", os.path.join(d, "users.txt"),
                            "--user-embeddings", os.path.join(d, "user_embeddings.npy"),
                            "--interactions", os.path.join(d, "interactions.csv"),
                            "--model-version", "rb-%s" % tag, "-o", path + ".tmp"],
                           check=True, stdout=subprocess.DEVNULL)
            os.rename(path + ".tmp", path)
    ctx.data = d
    ctx.serve_dir = os.path.join(ctx.tmp, "serve")
    os.makedirs(ctx.serve_dir, exist_ok=True)
    ctx.served = os.path.join(ctx.serve_dir, "snap.recd")
    shutil.copyfile(os.path.join(d, "snap-a.recd"), ctx.served)
    with open(os.path.join(d, "users.txt")) as f:
        ctx.users = [l.strip() for l in f if l.strip()]


def recd(ctx):
    if ctx.recd is None or ctx.recd.procs[0].poll() is not None:
        workers = ctx.a.workers or (1 if ctx.server_cpu is not None else os.cpu_count())
        extra = ctx.a.recd_arg or []
        ctx.recd = rb_procs.start_recd(ctx.build, ctx.served, ctx.tmp, ctx.server_cpu, workers, extra)
        ctx.recd.info += " on CPU %s" % ctx.server_cpu if ctx.server_cpu is not None else ""
    return ctx.recd


# ---- one load phase ----

def run(ctx, server, label, rate, duration, warmup=None, workload=True, extra=(), conns=None, background=False):
    """One recd-bench phase; returns its parsed JSON (or the Popen and the
    JSON path when background)."""
    path = os.path.join(ctx.out, "run-%03d-%s.json" % (len(ctx.runs) + 1, label))
    ctx.runs.append(path)
    warm = (0.3 if ctx.short else 1.0) if warmup is None else warmup
    cmd = rb_procs.pin(ctx.client_cpu) + [
        ctx.bench, "run", "--port", str(server.port), "--rate", "%.1f" % rate, "--duration", "%.2f" % duration,
        "--warmup", "%.2f" % warm, "--conns", str(conns or ctx.a.conns), "--threads", str(ctx.a.threads),
        "--timeout", "5", "--seed", str(ctx.a.seed), "--json", path, "--label", label]
    cmd += ["--data", ctx.data] if workload else ["--path", "/v1/recommendations?user_id=u0&n=10"]
    cmd += list(extra)
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True), path
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=duration + warm + 60)
    sys.stdout.write(out.stdout)
    if out.returncode != 0:
        raise RuntimeError("recd-bench failed (%d): %s" % (out.returncode, " ".join(cmd)))
    return load(path, server)


def load(path, server):
    with open(path) as f:
        r = json.load(f)
    r["server"] = server.name
    r["server_info"] = server.info
    with open(path, "w") as f:
        json.dump(r, f)
    return r


def errors(r):
    res = r["results"]
    return sum(res["errors"].values()) + res["non2xx"]["5xx"]


def passes(r, rate):
    res = r["results"]
    return (res["latency"]["p99_us"] <= SLO_US and errors(r) == 0 and res["latency"]["count"] > 0
            and res["ok"] >= 0.97 * rate * res["elapsed_s"])


def point(r, rate):
    lat = r["results"]["latency"]
    return {"rate": round(rate, 1), "goodput_rps": r["results"]["goodput_rps"], "p50_us": lat["p50_us"],
            "p99_us": lat["p99_us"], "p99_9_us": lat["p99_9_us"], "max_us": lat["max_us"],
            "errors": errors(r), "non2xx": sum(r["results"]["non2xx"].values()), "pass": passes(r, rate),
            "send_lag_p99_us": r["results"]["send_lag"]["p99_us"], "send_lag_max_us": r["results"]["send_lag"]["max_us"],
            "wake_lag_p99_us": r["results"]["wake_lag"]["p99_us"], "wake_lag_max_us": r["results"]["wake_lag"]["max_us"]}


def find_knee(ctx, server, label, extra=(), workload=True):
    """Closed-loop maximum, then open-loop rates up from a quarter of it;
    the knee is the highest rate that still met p99 <= 1 ms, refined by
    bisection between the last pass and the first fail."""
    step = ctx.dur(3)
    closed = run(ctx, server, label + "-closed", 0, ctx.dur(3), workload=workload, extra=extra)
    top = max(closed["results"]["goodput_rps"], 1.0)
    sweep, good, bad = [], None, None
    fracs = [0.25, 0.5] if ctx.short else [0.25, 0.5, 0.7, 0.85, 1.0]
    for f in fracs:
        rate = f * top
        r = run(ctx, server, "%s-%.0f" % (label, rate), rate, step, workload=workload, extra=extra)
        sweep.append(point(r, rate))
        if sweep[-1]["pass"]:
            good = rate
        else:
            bad = rate
            break
    if good is None and not ctx.short:  # even a quarter failed: look lower
        for f in (0.1, 0.03):
            rate = f * top
            r = run(ctx, server, "%s-%.0f" % (label, rate), rate, step, workload=workload, extra=extra)
            sweep.append(point(r, rate))
            if sweep[-1]["pass"]:
                good = rate
                break
            bad = rate
    if good is not None and bad is not None and not ctx.short:
        for _ in range(2):
            rate = (good + bad) / 2
            r = run(ctx, server, "%s-%.0f" % (label, rate), rate, step, workload=workload, extra=extra)
            sweep.append(point(r, rate))
            if sweep[-1]["pass"]:
                good = rate
            else:
                bad = rate
    knee_p = next((p for p in sweep if good is not None and abs(p["rate"] - round(good, 1)) < 0.05), None)
    return {"closed_max_rps": closed["results"]["goodput_rps"],
            "closed_p50_us": closed["results"]["latency"]["p50_us"],
            "closed_p99_us": closed["results"]["latency"]["p99_us"],
            "knee_rps": round(good, 1) if good is not None else None,
            "knee_p50_us": knee_p["p50_us"] if knee_p else None,
            "knee_p99_us": knee_p["p99_us"] if knee_p else None,
            "sweep": sorted(sweep, key=lambda p: p["rate"])}


def at_rate(ctx, server, label, rate, extra=(), workload=True):
    r = run(ctx, server, label, rate, ctx.dur(5), workload=workload, extra=extra)
    p = point(r, rate)
    p["client_cpu_share"] = r["results"]["client_cpu_share"]
    return p


# ---- scenarios ----

def sc_ceiling(ctx):
    """The generator against the tiny built-in responder: its own ceiling."""
    srv = rb_procs.start_builtin(ctx.build, ctx.server_cpu, ctx.a.body)
    try:
        closed = run(ctx, srv, "ceiling-closed", 0, ctx.dur(3), workload=False)
        res = closed["results"]
        fig = {"closed_max_rps": res["goodput_rps"], "closed_p99_us": res["latency"]["p99_us"],
               "client_cpu_share": res["client_cpu_share"],
               # the responder is one thread: when it saturates first, the
               # generator's own ceiling is its rate over its CPU share
               "generator_ceiling_est_rps": round(res["goodput_rps"] / max(res["client_cpu_share"], 0.01), -2)}
        for key, f in (("open", 0.5), ("open_high", 0.8)):
            rate = f * res["goodput_rps"]
            o = run(ctx, srv, "ceiling-open%d" % (100 * f), rate, ctx.dur(3), workload=False)
            fig[key] = point(o, rate)
            fig[key]["client_cpu_share"] = o["results"]["client_cpu_share"]
        fig["server"] = srv.info
    finally:
        srv.stop()
    ctx.scenarios["ceiling"] = fig


def common_rate(ctx):
    if ctx.common_rate:
        return ctx.common_rate
    steady = ctx.scenarios.get("steady")
    top = steady["closed_max_rps"] if steady else 1000.0
    # half of recd's closed-loop maximum, at most 500/s: well within what
    # the seed-style peer carries (1.3k-1.9k/s closed loop on this class of
    # machine), so its figure is latency, not its queue
    ctx.common_rate = max(50.0, min(500.0, round(top / 2, -1)))
    return ctx.common_rate


def sc_steady(ctx):
    s = recd(ctx)
    fig = find_knee(ctx, s, "steady")
    ctx.knee = fig["knee_rps"]
    ctx.scenarios["steady"] = fig
    fig["common_rate"] = common_rate(ctx)
    fig["at_common"] = at_rate(ctx, s, "steady-common", fig["common_rate"])


COLD = ["--known", "0.1", "--anon", "0.45"]


def sc_coldstart(ctx):
    s = recd(ctx)
    fig = find_knee(ctx, s, "coldstart", extra=COLD)
    fig["common_rate"] = common_rate(ctx)
    fig["at_common"] = at_rate(ctx, s, "coldstart-common", fig["common_rate"], extra=COLD)
    ctx.scenarios["coldstart"] = fig


def ref_rate(ctx):
    """The rate the fixed-rate scenarios run at: half the knee, else half
    the common rate."""
    if ctx.knee:
        return ctx.knee / 2
    return common_rate(ctx) / 2


def sc_events(ctx):
    s = recd(ctx)
    rate = ref_rate(ctx)
    r = run(ctx, s, "events", rate, ctx.dur(10), extra=["--events", "0.3", "--freshness"])
    res = r["results"]
    fr = res.get("freshness", {})
    fig = point(r, rate)
    fig["events_endpoint"] = res["events_skipped_404"] == 0 and fr.get("supported", False)
    fig["by_kind"] = {k: {"count": v["count"], "p50_us": v["p50_us"], "p99_us": v["p99_us"]}
                      for k, v in res["by_kind"].items()}
    fig["freshness"] = {"probes": fr.get("probes", 0), "p50_us": fr.get("latency", {}).get("p50_us"),
                        "p99_us": fr.get("latency", {}).get("p99_us"),
                        "max_us": fr.get("latency", {}).get("max_us"),
                        "stale_after_1s": fr.get("stale_after_1s", 0)}
    ctx.scenarios["events"] = fig


def _rss_kib(pid):
    """(VmRSS, RssAnon, RssFile) of a process in KiB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            v = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "RssAnon", "RssFile")))
        return tuple(int(v[k].split()[0]) for k in ("VmRSS", "RssAnon", "RssFile"))
    except (OSError, KeyError, ValueError):
        return None


class RssSampler(threading.Thread):
    """Peak resident memory of the server while a phase runs (every 10 ms)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop, self.peak, self.first = pid, threading.Event(), None, None

    def run(self):
        while not self.stop.is_set():
            r = _rss_kib(self.pid)
            if r:
                self.first = self.first or r
                self.peak = tuple(max(a, b) for a, b in zip(self.peak, r)) if self.peak else r
            time.sleep(0.01)

    def figures(self):
        self.stop.set()
        self.join(1)
        if not self.peak:
            return {}
        return {"rss_start_kib": self.first[0], "rss_peak_kib": self.peak[0], "rss_anon_peak_kib": self.peak[1],
                "rss_file_peak_kib": self.peak[2]}


def _under_load(ctx, label, action, every, duration):
    """Load at the reference rate while `action` runs every `every` s;
    returns the run, its point and the action times (s since measuring)."""
    s = recd(ctx)
    rss = RssSampler(s.procs[0].pid)
    rss.start()
    rate = ref_rate(ctx)
    warm = 0.3 if ctx.short else 1.0
    proc, path = run(ctx, s, label, rate, duration, warmup=warm, background=True)
    t0 = time.time() + warm + 0.05  # connections take a few ms; close enough for plot marks
    marks, results = [], []
    next_t = t0 + every / 2
    while proc.poll() is None:
        now = time.time()
        if now >= next_t and now < t0 + duration - 0.2:
            marks.append(round(now - t0, 2))
            results.append(action(len(marks)))
            next_t += every
        time.sleep(0.02)
    sys.stdout.write(proc.stdout.read())
    mem = rss.figures()
    if proc.returncode != 0:
        raise RuntimeError("recd-bench failed in " + label)
    r = load(path, s)
    r["marks"] = marks
    r["memory"] = mem
    with open(path, "w") as f:
        json.dump(r, f)
    return r, point(r, rate), marks, results


def sc_swap(ctx):
    every = 1.0 if ctx.short else ctx.a.swap_every
    d = ctx.dur(30) if not ctx.short else 3.0
    ctx_admin = recd(ctx).admin_port

    tmp = ctx.served + ".next"

    def stage(i):  # the copy is made ahead, so only the rename falls on the mark
        shutil.copyfile(os.path.join(ctx.data, "snap-%s.recd" % ("b" if i % 2 else "a")), tmp)

    def swap(i):
        os.rename(tmp, ctx.served)  # the daemon watches the file and reloads
        stage(i + 1)
        return "rb-" + ("b" if i % 2 else "a")
    stage(1)
    r, fig, marks, _ = _under_load(ctx, "swap", swap, every, d)
    st, body = rb_procs.http_get(ctx_admin, "/admin/status")
    gen = json.loads(body).get("snapshot", {}).get("generation") if st == 200 else None
    fig.update({"swaps": len(marks), "every_s": every, "marks_s": marks, "generation_after": gen,
                "per_second_max_p99_us": max([p[3] for p in r["results"]["per_second"]] or [0]),
                "snapshot_kib": os.path.getsize(ctx.served) // 1024})
    fig.update(r.get("memory", {}))
    ctx.scenarios["swap"] = fig


def sc_reload(ctx):
    every = 1.0 if ctx.short else ctx.a.swap_every
    d = ctx.dur(20) if not ctx.short else 3.0
    admin = recd(ctx).admin_port

    def reload(_):
        try:
            return rb_procs.http_get(admin, "/admin/reload?what=policies", method="POST")[0]
        except OSError:
            return -1
    r, fig, marks, statuses = _under_load(ctx, "reload", reload, every, d)
    fig.update({"reloads": len(marks), "every_s": every, "marks_s": marks,
                "reload_statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
                "per_second_max_p99_us": max([p[3] for p in r["results"]["per_second"]] or [0])})
    if statuses and all(s == 501 for s in statuses):
        fig["note"] = "policy reload answered 501 (the Lua layer is not there yet): load only"
    ctx.scenarios["reload"] = fig


def sc_overload(ctx):
    s = recd(ctx)
    steady = ctx.scenarios.get("steady", {})
    base = ctx.knee or steady.get("closed_max_rps") or common_rate(ctx)
    d = ctx.dur(8)
    fig = {"basis": "knee" if ctx.knee else "closed-loop maximum (no rate met p99 <= 1 ms)",
           "basis_rps": base}
    for phase, mult in (("before", 0.5), ("during", 2.0), ("after", 0.5)):
        r = run(ctx, s, "overload-" + phase, base * mult, d, extra=["--timeout", "2"])
        p = point(r, base * mult)
        p["unsent"] = r["results"]["unsent"]
        p["unfinished"] = r["results"]["unfinished"]
        fig[phase] = p
    closed = steady.get("closed_max_rps")
    if closed and 2 * base < 0.9 * closed:
        fig["note"] = ("2x the knee (%.0f/s) is below the closed-loop maximum (%.0f/s): the knee is set by "
                       "latency tails here, so this phase tests a burst, not saturation" % (2 * base, closed))
    b, a = fig["before"], fig["after"]
    fig["recovered"] = bool(a["errors"] == 0 and a["p99_us"] <= max(2 * b["p99_us"], SLO_US))
    ctx.scenarios["overload"] = fig


# ---- peers ----

def peer_data(ctx):
    """recd's own answers, fetched once: the static body, the Redis lists
    and the Lua candidates all come from the same snapshot."""
    s = recd(ctx)
    users = ctx.users[:200 if ctx.short else ctx.a.peer_users]
    cats = {}
    with open(os.path.join(ctx.data, "items.jsonl")) as f:
        for line in f:
            it = json.loads(line)
            cats[it["id"]] = it.get("category", "c0")
    lists = {}
    for u in users + ["__popular__"]:
        q = "/v1/recommendations?n=100" + ("" if u == "__popular__" else "&user_id=" + u)
        st, body = rb_procs.http_get(s.port, q)
        if st != 200:
            raise RuntimeError("recd answered %d to %s" % (st, q))
        lists[u] = json.loads(body)["items"]
    st, static_body = rb_procs.http_get(s.port, "/v1/recommendations?n=10&user_id=" + users[0])
    cands = os.path.join(ctx.tmp, "cands.tsv")
    with open(cands, "w") as f:
        for u, items in lists.items():
            f.write(u + "\t" + ",".join("%s:%.6f:%s" % (it["id"], it["score"], cats.get(it["id"], "c0"))
                                        for it in items) + "\n")
    return users, lists, static_body, cands


def sc_peers(ctx):
    users, lists, static_body, cands = peer_data(ctx)
    rate = common_rate(ctx)
    fig = {"common_rate": rate, "body_bytes": len(static_body), "peers": {}}
    ctx.scenarios["peers"] = fig
    if ctx.recd is not None:  # the peers get the server CPU to themselves
        ctx.recd.stop()
        ctx.recd = None

    def measure(name, start, knee=True):
        try:
            srv = start()
        except Skip as e:
            log("peer %s: skipped: %s" % (name, e))
            fig["peers"][name] = {"skipped": str(e)}
            return
        try:
            if knee:
                p = find_knee(ctx, srv, "peer-" + name)
            else:  # far below 1 ms at no rate: the closed-loop maximum is the figure
                closed = run(ctx, srv, "peer-%s-closed" % name, 0, ctx.dur(3))
                p = {"closed_max_rps": closed["results"]["goodput_rps"],
                     "closed_p50_us": closed["results"]["latency"]["p50_us"],
                     "closed_p99_us": closed["results"]["latency"]["p99_us"], "knee_rps": None, "sweep": []}
                low = run(ctx, srv, "peer-%s-low" % name, min(rate, 0.25 * p["closed_max_rps"]), ctx.dur(3))
                p["sweep"].append(point(low, min(rate, 0.25 * p["closed_max_rps"])))
                p["knee_rps"] = p["sweep"][0]["rate"] if p["sweep"][0]["pass"] else None
            p["at_common"] = at_rate(ctx, srv, "peer-%s-common" % name, rate)
            p["info"] = srv.info
            fig["peers"][name] = p
        finally:
            srv.stop()

    measure("nginx-static", lambda: rb_procs.start_nginx_static(ctx.server_cpu, static_body))
    measure("nginx-lua", lambda: rb_procs.start_nginx_lua(ctx.server_cpu, ctx.cache, cands))
    try:
        redis = rb_procs.start_redis(ctx.server_cpu)
    except Skip as e:
        log("peer redis: skipped: %s" % e)
        fig["peers"]["fastapi-redis"] = {"skipped": str(e)}
        fig["peers"]["redis-get"] = {"skipped": str(e)}
        return
    try:
        pairs = []
        for i, u in enumerate(ctx.users):
            src = users[i % len(users)]
            pairs.append(("recs:%s:10" % u, json.dumps(lists[src][:10])))
        pairs.append(("recs:__popular__:10", json.dumps(lists["__popular__"][:10])))
        rb_procs.redis_load(redis.port, pairs)
        measure("fastapi-redis", lambda: rb_procs.start_seed_service(ctx.server_cpu, redis.port), knee=False)
        try:
            n = 20000 if ctx.short else 300000
            rbm = rb_procs.redis_benchmark(ctx.client_cpu, redis.port, len(static_body), ctx.a.conns, n)
            rbm["info"] = "%s, redis-benchmark -c %d GET of a %d-byte value (closed loop)" % (
                redis.info, ctx.a.conns, len(static_body))
            fig["peers"]["redis-get"] = {"closed_max_rps": rbm["throughput_rps"], "closed_p50_us": rbm["p50_us"],
                                         "closed_p99_us": rbm["p99_us"], "info": rbm["info"]}
        except Skip as e:
            fig["peers"]["redis-get"] = {"skipped": str(e)}
    finally:
        redis.stop()


SCENARIOS = {"ceiling": sc_ceiling, "steady": sc_steady, "coldstart": sc_coldstart, "events": sc_events,
             "swap": sc_swap, "reload": sc_reload, "overload": sc_overload, "peers": sc_peers}


def git_commit():
    try:
        c = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return c + ("-dirty" if dirty else "")
    except OSError:
        return "?"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="+", choices=STANDARD + ["standard"])
    p.add_argument("--build", default=os.environ.get("RECD_BUILD_DIR", "build"))
    p.add_argument("--out", help="output directory (default bench/results/rb-<time>)")
    p.add_argument("--data", help="data directory (default /tmp/recd-rb-data-ITEMSxDIMxUSERS)")
    p.add_argument("--items", type=int, default=100000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--users", type=int, default=20000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="load threads")
    p.add_argument("--workers", type=int, default=0, help="recd workers (default 1 when pinned, else one per CPU)")
    p.add_argument("--recd-arg", action="append", help="extra recd argument (repeatable), e.g. --recd-arg=--ann=true")
    p.add_argument("--common-rate", type=float, default=0, help="rate at which every server is compared "
                   "(default: half recd's closed-loop maximum, at most 500/s)")
    p.add_argument("--swap-every", type=float, default=5.0)
    p.add_argument("--body", type=int, default=700, help="built-in responder body size")
    p.add_argument("--peer-users", type=int, default=1000, help="users whose lists are precomputed for the peers")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every phase's duration")
    p.add_argument("--short", action="store_true", help="about a second per phase (CI smoke)")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and client to CPUs 0 and 1")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--sched", choices=["fifo", "nice", "none"], default="fifo" if os.geteuid() == 0 else "none",
                   help="scheduling of servers and generator: fifo = chrt -f 1 (default as root), "
                   "nice = nice -n -10, none")
    a = p.parse_args()
    ctx = Ctx(a)
    if a.sched != "none" and os.geteuid() != 0:
        sys.exit("rb_run: --sched %s needs root" % a.sched)
    rb_procs.SCHED = a.sched
    if ctx.client_cpu is not None:  # the driver's own work (copies, admin calls) stays off the server's CPU
        os.sched_setaffinity(0, {ctx.client_cpu})
    ctx.cache = os.path.join(os.path.expanduser("~"), ".cache", "recd-bench")
    names = STANDARD if "standard" in a.scenarios else a.scenarios
    if not os.path.exists(ctx.bench):
        sys.exit("rb_run: %s not built (ninja -C %s)" % (ctx.bench, a.build))
    t0 = time.time()
    status = 0
    try:
        prepare_data(ctx)
        log("rb_run: %s; server CPU %s, client CPU %s; output %s" % (
            ", ".join(names), ctx.server_cpu, ctx.client_cpu, ctx.out))
        for n in names:
            log("== %s" % n)
            try:
                SCENARIOS[n](ctx)
            except (RuntimeError, subprocess.SubprocessError, OSError) as e:
                log("scenario %s failed: %s" % (n, e))
                ctx.scenarios[n] = {"failed": str(e)}
                status = 1
    finally:
        if ctx.recd is not None:
            ctx.recd.stop()
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    summary = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": git_commit(), "machine": machine(), "pinning": {"server_cpu": ctx.server_cpu,
                                                                 "client_cpu": ctx.client_cpu, "sched": a.sched},
        "config": {k: v for k, v in vars(a).items()}, "data": ctx.data, "wall_s": round(time.time() - t0, 1),
        "slo_p99_us": SLO_US, "scenarios": ctx.scenarios, "runs": [os.path.basename(r) for r in ctx.runs]}
    with open(os.path.join(ctx.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    rb_report.write(ctx.out, summary, plots=not a.no_plots)
    log("rb_run: done in %.0f s: %s/report.md" % (time.time() - t0, ctx.out))
    return status


def machine():
    m = {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            m["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        pass
    try:
        m["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        with open("/proc/meminfo") as f:
            m["mem_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return m


if __name__ == "__main__":
    sys.exit(main())
