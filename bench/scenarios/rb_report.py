"""rb_report.py: turns a results directory (summary.json and one JSON per
load phase) into report.md and PNG plots drawn by gnuplot: the latency
percentile spectrum of each scenario's runs, and latency over time
(per-second p50 / p99 / max) for the runs where something happens
mid-run (swap, reload, overload, events)."""

import glob
import json
import os
import shutil
import subprocess

# HDR-style x axis: 1/(1-q) on a log scale, so the tail gets the room
# (gnuplot reads tic labels as formats: a literal percent sign is %%)
XTICS = '("0%%%%" 1, "90%%%%" 10, "99%%%%" 100, "99.9%%%%" 1000, "99.99%%%%" 10000, "99.999%%%%" 100000, "max" %d)'
MAX_X = 1000000


def fmt_us(v):
    if v is None:
        return "—"
    if v >= 10000:
        return "%.0f ms" % (v / 1000)
    if v >= 1000:
        return "%.2f ms" % (v / 1000)
    return "%.0f µs" % v


def fmt_rps(v):
    if v is None:
        return "—"
    return "%.1fk/s" % (v / 1000) if v >= 1000 else "%.0f/s" % v


def ratio(a, b):
    if not a or not b:
        return None
    return a / b


def fmt_ratio(r, goal=None, higher=True):
    if r is None:
        return "—"
    s = "%.2fx" % r if r < 10 else "%.0fx" % r
    if goal is not None:
        ok = r >= goal if higher else r <= goal
        s += " (%s)" % ("meets" if ok else "misses") + " %sx" % (("%g" % goal))
    return s


def load_runs(out):
    runs = {}
    for p in sorted(glob.glob(os.path.join(out, "run-*.json"))):
        with open(p) as f:
            runs[os.path.basename(p)] = json.load(f)
    return runs


def gnuplot(out, name, script):
    gp = os.path.join(out, name + ".gp")
    with open(gp, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", gp], cwd=out, capture_output=True, text=True)
    if r.returncode != 0:
        return "gnuplot failed: " + r.stderr.strip()[-300:]
    return None


def plot_spectrum(out, name, title, runs):
    """runs: [(legend, run json)]"""
    plots = []
    for i, (legend, r) in enumerate(runs):
        dat = "%s-%d.dat" % (name, i)
        with open(os.path.join(out, dat), "w") as f:
            for p, us in r["results"]["spectrum"]:
                x = MAX_X if p >= 100 else 1.0 / (1.0 - p / 100.0)
                f.write("%g %g\n" % (x, max(us, 0.1)))
        plots.append("'%s' using 1:2 with linespoints pt 7 ps 0.4 title '%s'" % (dat, legend.replace("'", "")))
    if not plots:
        return None
    script = ("set terminal pngcairo size 1000,600 noenhanced\nset output '%s.png'\n"
              "set title '%s'\nset logscale x\nset logscale y\nset xtics %s\n"
              "set xlabel 'percentile'\nset ylabel 'latency (us, from intended send time)'\n"
              "set grid\nset key top left\nset xrange [1:%d]\n"
              "set arrow from 1,1000 to %d,1000 nohead dt 2 lc rgb 'red'\n"
              "plot %s\n") % (name, title, XTICS % MAX_X, MAX_X * 2, MAX_X * 2, ", ".join(plots))
    return gnuplot(out, name, script)


def plot_timeline(out, name, title, r):
    dat = name + ".dat"
    with open(os.path.join(out, dat), "w") as f:
        for sec, count, p50, p99, mx in r["results"]["per_second"]:
            f.write("%d %d %g %g %g\n" % (sec, count, max(p50, 0.1), max(p99, 0.1), max(mx, 0.1)))
    marks = "".join("set arrow from %g, graph 0 to %g, graph 1 nohead dt 2 lw 1.5 lc rgb 'gray40'\n" % (m, m)
                    for m in r.get("marks", []))
    script = ("set terminal pngcairo size 1000,500 noenhanced\nset output '%s.png'\n"
              "set title '%s'\nset logscale y\nset grid\nset key top left\n"
              "set xlabel 'second of the run (dotted: swap / reload)'\nset ylabel 'latency (us)'\n%s"
              "plot '%s' using 1:3 with lines lw 2 title 'p50', '' using 1:4 with lines lw 2 title 'p99', "
              "'' using 1:5 with lines title 'max'\n") % (name, title, marks, dat)
    return gnuplot(out, name, script)


def write(out, s, plots=True):
    runs = load_runs(out)
    sc = s["scenarios"]
    md = []
    m = s["machine"]
    pin = s["pinning"]
    cfg = s["config"]
    any_run = next(iter(runs.values()), None)
    build = any_run["build"]["type"] if any_run else "?"
    md.append("# recd latency report\n")
    md.append("- date: %s, commit `%s`, recd-bench build: %s" % (s["date"], s["commit"], build))
    md.append("- machine: %s, %s CPUs, %s GiB, kernel %s; load average at the end %s" % (
        m.get("cpu", "?"), m.get("cpus"), m.get("mem_gib", "?"), m.get("kernel"), m.get("loadavg_at_end")))
    md.append("- pinning: %s%s" % ("server on CPU %s, load generator on CPU %s (taskset)" % (
        pin["server_cpu"], pin["client_cpu"]) if pin["server_cpu"] is not None else "none",
        {"fifo": ", both SCHED_FIFO (chrt -f 1)", "nice": ", both at nice -10"}.get(pin.get("sched"), "")))
    md.append("- data: recd-gen %d items x %d dims, %d users (seed %d); %d keep-alive connections, %d load thread(s)"
              % (cfg["items"], cfg["dim"], cfg["users"], cfg["seed"], cfg["conns"], cfg["threads"]))
    md.append("- latency is measured from each request's intended send time (open loop, coordinated omission "
              "corrected); only 2xx answers enter it; the knee is the highest rate with p99 <= 1 ms")
    md.append("- wall time %.0f s%s\n" % (s["wall_s"], " (--short: smoke durations, figures are not meaningful)"
                                         if cfg.get("short") else ""))

    peers = sc.get("peers", {}).get("peers", {})
    steady = sc.get("steady", {})
    if "ceiling" in sc and "failed" not in sc["ceiling"]:
        c = sc["ceiling"]
        md.append("## Load generator ceiling\n")
        md.append("Against its own tiny responder (%s): closed loop %s (p99 %s, client CPU %.0f%%: the "
                  "generator alone would reach about %s on its core)." % (
                      c.get("server"), fmt_rps(c["closed_max_rps"]), fmt_us(c["closed_p99_us"]),
                      100 * c["client_cpu_share"], fmt_rps(c.get("generator_ceiling_est_rps"))))
        for key in ("open", "open_high"):
            if key in c:
                o = c[key]
                md.append("Open loop at %s: p50 %s, p99 %s, wake-up lag p99 %s, client CPU %.0f%%." % (
                    fmt_rps(o["rate"]), fmt_us(o["p50_us"]), fmt_us(o["p99_us"]), fmt_us(o.get("wake_lag_p99_us")),
                    100 * o["client_cpu_share"]))
        md.append("")

    if steady and "failed" not in steady:
        cr = steady.get("common_rate")
        md.append("## recd against its peers\n")
        md.append("Same request (`GET /v1/recommendations?user_id=...&n=10`), same data, same load generator "
                  "and pinning; the peers are measured with the steady workload. Common rate: %s.\n" % fmt_rps(cr))
        md.append("| server | closed-loop max | knee (p99 <= 1 ms) | p50 @ common | p99 @ common | what it is |")
        md.append("| --- | --- | --- | --- | --- | --- |")
        ac = steady.get("at_common", {})
        md.append("| **recd** (steady) | %s | %s | %s | %s | exact scan of %d items unless an index is on |" % (
            fmt_rps(steady["closed_max_rps"]), fmt_rps(steady["knee_rps"]), fmt_us(ac.get("p50_us")),
            fmt_us(ac.get("p99_us")), cfg["items"]))
        cs = sc.get("coldstart", {})
        if cs and "failed" not in cs:
            ac2 = cs.get("at_common", {})
            md.append("| **recd** (coldstart) | %s | %s | %s | %s | 10%% known users |" % (
                fmt_rps(cs["closed_max_rps"]), fmt_rps(cs["knee_rps"]), fmt_us(ac2.get("p50_us")),
                fmt_us(ac2.get("p99_us"))))
        for name, p in peers.items():
            if "skipped" in p:
                md.append("| %s | skipped | | | | %s |" % (name, p["skipped"]))
                continue
            pc = p.get("at_common", {})
            md.append("| %s | %s | %s | %s | %s | %s |" % (
                name, fmt_rps(p.get("closed_max_rps")), fmt_rps(p.get("knee_rps")),
                fmt_us(pc.get("p50_us") if pc else p.get("closed_p50_us")),
                fmt_us(pc.get("p99_us") if pc else p.get("closed_p99_us")), p.get("info", "")))
        md.append("")
        md.append("redis-get is redis-benchmark's own closed loop (its p50/p99 are at its maximum rate, not at "
                  "the common rate).\n")

        # goals
        md.append("## Goals\n")
        md.append("| goal | figure | verdict |")
        md.append("| --- | --- | --- |")
        ng = peers.get("nginx-static", {})
        fa = peers.get("fastapi-redis", {})
        recd_tp = steady["knee_rps"]
        ng_tp = ng.get("knee_rps") or ng.get("closed_max_rps")
        r1 = ratio(recd_tp, ng_tp)
        md.append("| recd at the knee >= 50%% of nginx-static | %s vs %s = %s | %s |" % (
            fmt_rps(recd_tp), fmt_rps(ng_tp), "%.0f%%" % (100 * r1) if r1 else "—",
            "meets" if r1 and r1 >= 0.5 else "misses"))
        r2 = ratio(recd_tp, fa.get("closed_max_rps"))
        md.append("| recd throughput >= 25x the seed-style service | %s vs %s = %s | %s |" % (
            fmt_rps(recd_tp), fmt_rps(fa.get("closed_max_rps")), fmt_ratio(r2),
            "meets" if r2 and r2 >= 25 else "misses"))
        r2b = ratio(steady["closed_max_rps"], fa.get("closed_max_rps"))
        md.append("| (the same, closed loop against closed loop) | %s vs %s = %s | %s |" % (
            fmt_rps(steady["closed_max_rps"]), fmt_rps(fa.get("closed_max_rps")), fmt_ratio(r2b),
            "meets" if r2b and r2b >= 25 else "misses"))
        fa_p99 = (fa.get("at_common") or {}).get("p99_us")
        r3 = ratio(fa_p99, ac.get("p99_us"))
        md.append("| recd p99 >= 25x lower than the seed-style service (at the common rate) | %s vs %s = %s | %s |" % (
            fmt_us(ac.get("p99_us")), fmt_us(fa_p99), fmt_ratio(r3), "meets" if r3 and r3 >= 25 else "misses"))
        fa_cp99 = fa.get("closed_p99_us")
        r3b = ratio(fa_cp99, steady.get("knee_p99_us"))
        md.append("| (the same, each at its maximum: recd's p99 at the knee, the seed service's closed-loop p99) "
                  "| %s vs %s = %s | %s |" % (fmt_us(steady.get("knee_p99_us")), fmt_us(fa_cp99), fmt_ratio(r3b),
                                             "meets" if r3b and r3b >= 25 else "misses"))
        md.append("| open-loop p99 <= 1 ms at the knee rate | %s | %s |" % (
            "knee %s, p99 %s" % (fmt_rps(recd_tp), fmt_us(steady.get("knee_p99_us"))) if recd_tp else
            "no swept rate met it (lowest: %s at %s)" % (
                fmt_us(steady["sweep"][0]["p99_us"]) if steady.get("sweep") else "—",
                fmt_rps(steady["sweep"][0]["rate"]) if steady.get("sweep") else "—"),
            "meets" if recd_tp else "misses"))
        md.append("")

    md.append("## Scenarios\n")
    for name in ("steady", "coldstart"):
        f = sc.get(name)
        if not f:
            continue
        md.append("### %s\n" % name)
        if "failed" in f:
            md.append("failed: %s\n" % f["failed"])
            continue
        md.append("Closed-loop maximum %s (p99 %s). Open-loop sweep:\n" % (fmt_rps(f["closed_max_rps"]),
                                                                         fmt_us(f["closed_p99_us"])))
        md.append("| rate | goodput | p50 | p99 | p99.9 | max | errors | p99 <= 1 ms | generator wake-up lag p99 / max |")
        md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for p in f["sweep"]:
            md.append("| %s | %s | %s | %s | %s | %s | %d | %s | %s / %s |" % (
                fmt_rps(p["rate"]), fmt_rps(p["goodput_rps"]), fmt_us(p["p50_us"]), fmt_us(p["p99_us"]),
                fmt_us(p["p99_9_us"]), fmt_us(p["max_us"]), p["errors"], "yes" if p["pass"] else "no",
                fmt_us(p.get("wake_lag_p99_us")), fmt_us(p.get("wake_lag_max_us"))))
        md.append("\nKnee: %s.\n" % (fmt_rps(f["knee_rps"]) if f["knee_rps"] else "not reached"))
    f = sc.get("events")
    if f:
        md.append("### events\n")
        if "failed" in f:
            md.append("failed: %s\n" % f["failed"])
        elif not f["events_endpoint"]:
            md.append("The server answered 404 to POST /v1/events: event requests were skipped; the "
                      "recommendation part ran at %s: p50 %s, p99 %s.\n" % (fmt_rps(f["rate"]), fmt_us(f["p50_us"]),
                                                                          fmt_us(f["p99_us"])))
        else:
            k = f["by_kind"]
            fr = f["freshness"]
            md.append("30%% events (20%% of them NDJSON batches of 10) at %s: overall p50 %s, p99 %s; "
                      "recommendations p99 %s, single events p99 %s, batches p99 %s; errors %d, non-2xx %d.\n" % (
                          fmt_rps(f["rate"]), fmt_us(f["p50_us"]), fmt_us(f["p99_us"]), fmt_us(k["rec"]["p99_us"]),
                          fmt_us(k["event"]["p99_us"]), fmt_us(k["batch"]["p99_us"]), f["errors"], f["non2xx"]))
            md.append("Freshness (purchase acknowledged -> first recommendation without the item, polled back to "
                      "back): %d probes, p50 %s, p99 %s, max %s, not reflected within 1 s: %d.\n" % (
                          fr["probes"], fmt_us(fr["p50_us"]), fmt_us(fr["p99_us"]), fmt_us(fr["max_us"]),
                          fr["stale_after_1s"]))
            if fr["probes"] and fr["stale_after_1s"] == fr["probes"]:
                md.append("No purchase was reflected: recd's answers still held the bought item after 1 s "
                          "(the read path does not filter purchases yet).\n")
    for name in ("swap", "reload"):
        f = sc.get(name)
        if not f:
            continue
        md.append("### %s\n" % name)
        if "failed" in f:
            md.append("failed: %s\n" % f["failed"])
            continue
        what = ("%d snapshot swaps (rename into place, every %g s; generation after: %s)" % (
            f["swaps"], f["every_s"], f["generation_after"]) if name == "swap" else
            "%d POST /admin/reload?what=policies (every %g s; answers %s)" % (
                f["reloads"], f["every_s"], f["reload_statuses"]))
        md.append("%s at %s: p50 %s, p99 %s, max %s, worst per-second p99 %s, errors %d. %s\n" % (
            what, fmt_rps(f["rate"]), fmt_us(f["p50_us"]), fmt_us(f["p99_us"]), fmt_us(f["max_us"]),
            fmt_us(f["per_second_max_p99_us"]), f["errors"], f.get("note", "")))
        if f.get("rss_peak_kib"):
            snap = f.get("snapshot_kib")
            md.append("Server memory during the phase: RSS %.0f MiB at the start, peak %.0f MiB (anonymous %.0f MiB, "
                      "file-backed %.0f MiB)%s.\n" % (
                          f["rss_start_kib"] / 1024, f["rss_peak_kib"] / 1024, f["rss_anon_peak_kib"] / 1024,
                          f["rss_file_peak_kib"] / 1024,
                          "; one snapshot file is %.0f MiB" % (snap / 1024) if snap else ""))
    f = sc.get("overload")
    if f:
        md.append("### overload\n")
        if "failed" in f:
            md.append("failed: %s\n" % f["failed"])
        else:
            md.append("Basis: %s = %s.\n" % (f["basis"], fmt_rps(f["basis_rps"])))
            md.append("| phase | offered | goodput | p50 | p99 | errors | unsent at the end |")
            md.append("| --- | --- | --- | --- | --- | --- | --- |")
            for ph in ("before", "during", "after"):
                p = f[ph]
                md.append("| %s | %s | %s | %s | %s | %d | %d |" % (ph, fmt_rps(p["rate"]), fmt_rps(p["goodput_rps"]),
                                                                  fmt_us(p["p50_us"]), fmt_us(p["p99_us"]),
                                                                  p["errors"], p["unsent"]))
            md.append("\nRecovered after the overload: %s.%s\n" % ("yes" if f["recovered"] else "no",
                                                                 " " + f["note"] + "." if f.get("note") else ""))
    failed = [n for n, f in sc.items() if "failed" in f]
    if failed:
        md.append("Failed scenarios: %s.\n" % ", ".join(failed))

    notes = []
    if plots:
        if not shutil.which("gnuplot"):
            notes.append("plots skipped: gnuplot not installed (apt-get install gnuplot-nox)")
        else:
            notes += make_plots(out, runs, md)
    for n in notes:
        md.append("- " + n)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")


def make_plots(out, runs, md):
    notes = []
    groups = {}
    for fn, r in runs.items():
        label = r["label"]
        if r["config"]["mode"] != "open":
            continue
        key = label.split("-")[0] if not label.startswith("peer-") else "peers"
        groups.setdefault(key, []).append((label, r))
    md.append("## Plots\n")
    for key, rs in groups.items():
        if key == "peers":
            rs = [x for x in rs if x[0].endswith("-common")]
            rs += [(l, r) for l, r in groups.get("steady", []) if l.endswith("-common")]
        err = plot_spectrum(out, "spectrum-" + key, "latency spectrum: " + key, rs)
        if err:
            notes.append(err)
        else:
            md.append("- `spectrum-%s.png`: latency by percentile, every open-loop run of %s" % (key, key))
    for fn, r in runs.items():
        label = r["label"]
        if label in ("swap", "reload", "events") or label.startswith("overload-"):
            err = plot_timeline(out, "timeline-" + label, "per-second latency: " + label, r)
            if err:
                notes.append(err)
            else:
                md.append("- `timeline-%s.png`: per-second p50 / p99 / max during %s" % (label, label))
    md.append("")
    return notes
