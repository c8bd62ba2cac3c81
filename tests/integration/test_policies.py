"""Integration: Lua policies in the real daemon, over real sockets.

Each hook's effect shows in real responses (a rules change removes an
item, a rerank change reorders, route decides the tier's sources); a set
that does not compile or escapes the sandbox is refused at reload while
the old one keeps serving; a hook that errors, loops, hoards memory or
returns garbage yields the C ranking (never a 5xx) and its counter moves;
a reload under load loses no request and every response comes from
exactly one generation; editing the plugins directory reloads it.

Run: RECD_BUILD_DIR=build python3 tests/integration/test_policies.py
"""

import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recd_harness import Conn, Daemon, Dataset  # noqa: E402

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DATA = None


def setUpModule():
    global DATA
    DATA = Dataset(items=3000, users=300, dim=32, seed=11)


def tearDownModule():
    if DATA:
        DATA.cleanup()


def metric(port, name, **labels):
    c = Conn(port)
    try:
        status, _, raw = c.request("GET", "/metrics")
    finally:
        c.close()
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in raw.decode().splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted(x for x in (m.group(2) or "").split(",") if x))
        if got == want:
            return float(m.group(3))
    raise AssertionError("no metric %s{%s}" % (name, want))


class PolicyDaemon(unittest.TestCase):
    """A daemon serving a private copy of plugins/ that tests rewrite."""

    extra = ()

    def setUp(self):
        self.plugins = tempfile.mkdtemp(prefix="recd-plugins-")
        for f in os.listdir(os.path.join(SRC, "plugins")):
            if f.endswith(".lua"):
                shutil.copy(os.path.join(SRC, "plugins", f), self.plugins)
        self.d = Daemon(DATA.snapshot, "--plugins-dir", self.plugins, "--lua-dir", os.path.join(SRC, "lua"),
                        *self.extra)
        self.c = Conn(self.d.port)

    def tearDown(self):
        self.c.close()
        if os.environ.get("RECD_TEST_LOG"):
            sys.stderr.write("".join(l for l in self.d.log().splitlines(True) if "polic" in l))
        self.d.close()
        shutil.rmtree(self.plugins, ignore_errors=True)

    def write(self, name, text):
        # Rename into place, as editors and deploy tools do.
        tmp = os.path.join(self.plugins, "." + name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.plugins, name))

    def reload(self, expect=200):
        a = Conn(self.d.admin_port, timeout=30)
        try:
            status, _, raw = a.request("POST", "/admin/reload?what=policies")
        finally:
            a.close()
        body = json.loads(raw)
        self.assertEqual(status, expect, body)
        return body

    def recs(self, query, conn=None):
        status, body = (conn or self.c).get_json("/v1/recommendations?" + query)
        self.assertEqual(status, 200, body)
        return body

    def ids(self, body):
        return [it["id"] for it in body["items"]]


class Hooks(PolicyDaemon):
    def test_tiers_route_differently(self):
        anon = self.recs("user_id=someone-new&n=10")
        self.assertEqual((anon["tier"], anon["route"]), ("anonymous", "cold_start_popular"))
        self.assertTrue(anon["policy"].startswith("default@"), anon)
        known = self.recs("user_id=%s&n=10" % DATA.user_ids[4])
        self.assertEqual((known["tier"], known["route"]), ("returning", "collaborative"))
        self.assertEqual(known["strategy"], "personalized")
        # three views: the "new" tier, content-based
        views = [{"type": "view", "user_id": "fresh-1", "item_id": DATA.item_ids[i]} for i in (5, 6, 7)]
        status, _, _ = self.c.request("POST", "/v1/events", views)
        self.assertEqual(status, 202)
        new = self.recs("user_id=fresh-1&n=10")
        self.assertEqual((new["tier"], new["route"]), ("new", "content_based"))
        reasons = {it["reason"] for it in new["items"]}
        self.assertTrue(any(r.startswith("because_you_viewed:") or r == "similar" for r in reasons), reasons)
        page = self.recs("item_id=%s&n=10" % DATA.item_ids[9])
        self.assertEqual(page["route"], "similar_items")
        # the cart page: items that go with the cart, never the cart itself
        cart = [DATA.item_ids[i] for i in (20, 21)]
        status, _, raw = self.c.request("POST", "/v1/recommendations",
                                        {"user_id": "cart-shopper", "n": 10, "placement": "cart",
                                         "context": {"cart": cart, "device": "mobile"}})
        body = json.loads(raw)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["route"], "complete_the_cart")
        self.assertFalse(set(cart) & set(self.ids(body)))
        self.assertIn(body["strategy"], ("similar", "content"))
        # the default rerank caps every category at 3
        cat_of = {it["id"]: it["category"] for it in DATA.items}
        for body in (anon, known, new):
            cats = [cat_of[i] for i in self.ids(body)]
            self.assertLessEqual(max(cats.count(c) for c in cats), 3, cats)
            self.assertEqual(len(body["items"]), 10)
            self.assertNotIn("fallback", body)

    def test_rules_rerank_and_route_changes_show(self):
        before = self.recs("user_id=anon-a&n=10")
        victim = before["items"][0]["id"]
        gen = int(before["policy"].split("@")[1])
        # rules: drop one item by id
        with open(os.path.join(self.plugins, "rules.lua")) as f:
            rules = f.read()
        self.write("rules.lua", rules.replace(
            "function rules(req, cands)",
            "function rules(req, cands)\n\tcands:filter(function(item) return recd.id(item) ~= %s end)"
            % json.dumps(victim)))
        body = self.reload()
        self.assertEqual(body["policies"]["status"], "reloaded")
        self.assertEqual(body["policies"]["generation"], gen + 1)
        after = self.recs("user_id=anon-a&n=10")
        self.assertEqual(after["policy"], "default@%d" % (gen + 1))
        self.assertNotIn(victim, self.ids(after))
        self.assertEqual(self.ids(after)[:5], [i for i in self.ids(before) if i != victim][:5])

        # rerank: cheapest first
        self.write("rerank.lua", "local recd = require 'recd'\n"
                   "function rerank(req, cands)\n"
                   "  for i = 1, cands:count() do cands:set_score(i, -cands:price(i)) end\n"
                   "  cands:sort()\n  cands:top(req.n)\nend\n")
        self.reload()
        cheap = self.recs("user_id=anon-a&n=10")
        price = {it["id"]: it["price"] for it in DATA.items}
        prices = [price[i] for i in self.ids(cheap)]
        self.assertEqual(prices, sorted(prices), cheap)
        self.assertNotEqual(self.ids(cheap), self.ids(after))

        # route: everyone gets the popular list under a new policy name
        self.write("route.lua", "function route(req)\n"
                   "  return { policy = 'all_popular', tier = 'anonymous', sources = { { 'popular', 50 } } }\n"
                   "end\n")
        self.reload()
        known = self.recs("user_id=%s&n=10" % DATA.user_ids[4])
        self.assertEqual(known["route"], "all_popular")
        self.assertEqual(known["strategy"], "popular")

    def test_bad_sets_are_refused_and_the_old_one_serves(self):
        before = self.recs("user_id=anon-b&n=10")
        failures = metric(self.d.port, "recd_policy_load_failures_total")
        self.write("rules.lua", "function rules(req, cands)\n  cands:filter(function(i) return end\nend\n")
        body = self.reload(expect=422)
        self.assertEqual(body["error"], "policies_refused")
        self.assertIn("rules.lua:", body["detail"])
        self.assertEqual(metric(self.d.port, "recd_policy_load_failures_total"), failures + 1)
        after = self.recs("user_id=anon-b&n=10")
        self.assertEqual(after["policy"], before["policy"])
        self.assertEqual(self.ids(after), self.ids(before))
        # sandbox escapes are refused at load, with the file named
        for escape in ("os.execute('touch /tmp/recd-escaped')", "io.open('/etc/passwd')",
                       "require('ffi')", "debug.getinfo(1)", "load(string.dump(print))"):
            self.write("rules.lua", escape + "\nfunction rules() end\n")
            body = self.reload(expect=422)
            self.assertIn("rules.lua", body["detail"], escape)
        self.assertFalse(os.path.exists("/tmp/recd-escaped"))
        self.assertEqual(self.recs("user_id=anon-b&n=10")["policy"], before["policy"])


FAILING_RERANK = """local recd = require 'recd'
HOARD = {}
function rerank(req, cands)
  local p = req.placement
  if p == 'boom' then error('boom') end
  if p == 'loop' then while true do local f = function() end end end
  if p == 'hog' then for i = 1, 400000 do HOARD[#HOARD + 1] = { i } end end
  if p == 'garbage' then return 42 end
  cands:sort()
  cands:top(req.n)
end
"""


class Failures(PolicyDaemon):
    extra = ("--plugin-memory-mb", "8", "--plugin-breaker-threshold", "1000", "--workers", "1")

    def test_each_failure_serves_the_c_ranking_and_counts(self):
        self.write("rerank.lua", FAILING_RERANK)
        self.reload()
        ok = self.recs("user_id=anon-c&n=10&placement=home")
        self.assertNotIn("fallback", ok)
        for placement, kind in (("boom", "error"), ("loop", "budget"), ("hog", "memory"), ("garbage", "garbage")):
            before = metric(self.d.port, "recd_plugin_errors_total", plugin=os.path.basename(self.plugins),
                            hook="rerank", kind=kind)
            t0 = time.time()
            body = self.recs("user_id=anon-c&n=10&placement=%s" % placement)
            self.assertLess(time.time() - t0, 2.0, placement)
            self.assertEqual(body.get("fallback"), "rerank", (placement, body))
            self.assertEqual(len(body["items"]), 10, placement)
            after = metric(self.d.port, "recd_plugin_errors_total", plugin=os.path.basename(self.plugins),
                           hook="rerank", kind=kind)
            self.assertEqual(after, before + 1, placement)
        # the C ranking is the default one: the same items as without Lua's rerank
        self.assertGreater(metric(self.d.port, "recd_policy_fallbacks_total"), 3)
        status, ready = self.c.get_json("/ready")
        self.assertEqual(status, 200)
        self.assertIn("rerank.lua:", ready["policies"]["workers"][0]["last_error"])
        # it names the file the operator edits, not the staged private copy
        errs = [w["last_error"] for w in ready["policies"]["workers"] if w["last_error"]]
        self.assertTrue(errs)
        for e in errs:
            self.assertIn(os.path.join(self.plugins, "rerank.lua:"), e)
            self.assertNotIn("recd-policies-", e)
        # and the next ordinary request is served by the policy again
        self.assertNotIn("fallback", self.recs("user_id=anon-c&n=10&placement=home"))
        # the fallback names the hook that failed
        with open(os.path.join(self.plugins, "rules.lua")) as f:
            rules = f.read()
        self.write("rules.lua", rules.replace("function rules(req, cands)",
                                              "function rules(req, cands)\n\tif req.placement == 'rb' then error('x') end"))
        self.reload()
        self.assertEqual(self.recs("n=10&placement=rb").get("fallback"), "rules")


class Breaker(PolicyDaemon):
    extra = ("--plugin-breaker-threshold", "3", "--workers", "1")

    def test_repeated_failures_open_the_breaker_until_reload(self):
        self.write("rerank.lua", FAILING_RERANK)
        self.reload()
        for _ in range(3):
            self.assertEqual(self.recs("n=5&placement=boom").get("fallback"), "rerank")
        # open: even good requests get the C ranking now (route included)
        self.assertIn("fallback", self.recs("n=5&placement=home"))
        self.assertEqual(metric(self.d.port, "recd_plugin_breaker_open"), 1)
        status, ready = self.c.get_json("/ready")
        self.assertTrue(ready["policies"]["workers"][0]["breaker_open"])
        self.reload()
        self.assertNotIn("fallback", self.recs("n=5&placement=home"))
        self.assertEqual(metric(self.d.port, "recd_plugin_breaker_open"), 0)


class Reload(PolicyDaemon):
    def rules_dropping(self, item_id):
        return ("local recd = require 'recd'\n"
                "function rules(req, cands)\n"
                "  cands:drop_out_of_stock()\n"
                "  cands:filter(function(item) return recd.id(item) ~= %s end)\n"
                "end\n" % json.dumps(item_id))

    def test_reload_under_load_loses_nothing_and_never_mixes(self):
        top = self.ids(self.recs("user_id=anon-d&n=10"))
        a, b = top[0], top[1]
        dropped = {}     # generation -> the item that generation drops
        self.write("rules.lua", self.rules_dropping(a))
        dropped[self.reload()["policies"]["generation"]] = a

        stop = threading.Event()
        results, errors = [], []

        def load():
            c = Conn(self.d.port)
            try:
                n = 0
                while not stop.is_set() and n < 20000:
                    status, body = c.get_json("/v1/recommendations?user_id=anon-d&n=10")
                    n += 1
                    if status != 200:
                        errors.append((status, body))
                    else:
                        results.append((body["policy"], [it["id"] for it in body["items"]]))
            except Exception as e:  # a dropped connection is a failure too
                errors.append(repr(e))
            finally:
                c.close()

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(6):
                time.sleep(0.25)
                item = b if i % 2 == 0 else a
                self.write("rules.lua", self.rules_dropping(item))
                dropped[self.reload()["policies"]["generation"]] = item
            time.sleep(0.25)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(errors, [])
        self.assertGreater(len(results), 100)
        seen = set()
        for policy, items in results:
            gen = int(policy.split("@")[1])
            seen.add(gen)
            self.assertIn(gen, dropped, policy)
            # the list is exactly that generation's: its dropped item is absent
            self.assertNotIn(dropped[gen], items, policy)
            self.assertEqual(len(items), 10)
        self.assertGreaterEqual(len(seen), 3, seen)

    def test_editing_the_plugins_directory_reloads(self):
        gen = int(self.recs("n=3")["policy"].split("@")[1])
        self.write("route.lua", "function route(req)\n"
                   "  return { policy = 'edited', sources = { { 'popular', 30 } } }\nend\n")
        deadline = time.time() + 10
        body = None
        while time.time() < deadline:
            body = self.recs("n=3")
            if body["route"] == "edited":
                break
            time.sleep(0.05)
        self.assertEqual(body["route"], "edited")
        self.assertGreater(int(body["policy"].split("@")[1]), gen)
        # a broken edit is refused: the edited set keeps serving
        self.write("route.lua", "function route(req) return {\n")
        time.sleep(1.0)
        self.assertEqual(self.recs("n=3")["route"], "edited")
        self.assertEqual(metric(self.d.port, "recd_policy_load_failures_total"), 1)


class Settings(unittest.TestCase):
    """A reload re-reads the config file: reloadable keys apply, the rest
    are reported as needing a restart, a bad file changes nothing."""

    def test_reload_applies_reloadable_keys_only(self):
        tmp = tempfile.mkdtemp(prefix="recd-conf-")
        conf = os.path.join(tmp, "recd.conf")

        def write(text):
            with open(conf + ".tmp", "w") as f:
                f.write(text)
            os.rename(conf + ".tmp", conf)

        write("ann_nprobe = 50\nmax_body_bytes = 100000\n")
        d = Daemon(DATA.snapshot, "--config", conf)
        try:
            a = Conn(d.admin_port, timeout=30)
            status, body = a.get_json("/admin/status")
            self.assertEqual(body["config"]["ann_nprobe"], 50)
            write("ann_nprobe = 60\nmax_body_bytes = 200000\nlog_level = debug\n")
            status, _, raw = a.request("POST", "/admin/reload?what=settings")
            body = json.loads(raw)
            self.assertEqual(status, 200, body)
            self.assertEqual(sorted(body["settings"]["applied"]), ["ann_nprobe", "log_level"])
            self.assertEqual(body["settings"]["need_restart"], ["max_body_bytes"])
            status, body = a.get_json("/admin/status")
            self.assertEqual(body["config"]["ann_nprobe"], 60)
            self.assertEqual(body["config"]["max_body_bytes"], 100000)
            # a bad file: refused with the line, nothing changes
            write("ann_nprobe = 70\nann_nprobe = lots\n")
            status, _, raw = a.request("POST", "/admin/reload?what=settings")
            body = json.loads(raw)
            self.assertEqual(status, 422, body)
            self.assertEqual(body["error"], "settings_refused")
            self.assertIn("recd.conf:2", body["detail"])
            status, body = a.get_json("/admin/status")
            self.assertEqual(body["config"]["ann_nprobe"], 60)
            a.close()
            self.assertIn("msg=settings_need_restart keys=max_body_bytes", d.log())
        finally:
            d.close()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
