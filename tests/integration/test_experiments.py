"""Integration: A/B experiments end to end, over real sockets.

One daemon with a main model and a `challenger` model, and a private copy
of plugins/ whose experiments.lua declares two experiments:
  - exp_main (placement home): control, challenger (the other model),
    diverse (params: one item per category), a shadow variant, a holdout;
  - exp_guard (placement guard): control and `explode`, whose params make
    the rerank hook raise, so its lists fall back to the C ranking.
Checked: every response's variant is the one the documented formula gives
(recomputed here with python3-xxhash), variants change what is served
(model, params), the shadow never reaches a response, clicks / carts /
purchases are credited to the list and position that showed the item,
the admin figures match a reference computation of the statistics, the
guardrail switches the failing variant off, a bad experiments.lua is
refused while the old set keeps serving, and the metrics pass promtool.

Run: RECD_BUILD_DIR=build python3 tests/integration/test_experiments.py
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from statistics import NormalDist

import xxhash

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recd_harness import Conn, Daemon, Dataset  # noqa: E402

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXP_MAIN = {"name": "exp_main", "salt": "salt-main", "holdout": 0.1, "exposure": 1.0,
            "variants": [{"name": "control", "weight": 50}, {"name": "challenger", "weight": 30},
                         {"name": "diverse", "weight": 20}, {"name": "shadow_pop", "shadow": True}]}
EXPERIMENTS = """
return {
	{ name = "exp_main", salt = "salt-main", holdout = 0.1, placements = { "home" },
	  min_detectable_effect = 0.1,
	  variants = {
		{ name = "control", weight = 50 },
		{ name = "challenger", weight = 30, model = "challenger" },
		{ name = "diverse", weight = 20, params = { rerank = { max_per_category = 1 } } },
		{ name = "shadow_pop", shadow = true, sources = { personalized = 0, session = 0, popular = 1 } },
	  } },
	{ name = "exp_hooks", placements = { "hooks" },
	  variants = {
		{ name = "control", weight = 50 },
		{ name = "own_rerank", weight = 50, hooks = { rerank = "rerank_b" } },
	  } },
	{ name = "exp_guard", placements = { "guard" },
	  guardrails = { fallback_rate = 0.2, min_requests = 20 },
	  variants = {
		{ name = "control", weight = 50 },
		{ name = "explode", weight = 50, params = { rerank = { explode = true } } },
	  } },
}
"""


def bucket(salt, tag, user):
    return xxhash.xxh3_64_intdigest(("%s:%s%s" % (salt, tag, user)).encode()) % 10000


def expected_variant(exp, user):
    """docs/policies.md, "Assignment", verbatim."""
    served = [v for v in exp["variants"] if not v.get("shadow")]
    H = round(exp.get("holdout", 0) * 10000)
    eb = bucket(exp.get("salt", exp["name"]), "exposure:", user)
    if H and eb >= 10000 - H:
        return "holdout"
    if eb >= round(exp.get("exposure", 1) * (10000 - H)):
        return None
    total = sum(round(v.get("weight", 1) * 100) for v in served)
    b, acc = bucket(exp.get("salt", exp["name"]), "", user), 0
    for v in served:
        acc += round(v.get("weight", 1) * 100)
        if b * total < acc * 10000:
            return v["name"]
    return None


def wilson(s, n, z=NormalDist().inv_cdf(0.975)):
    p = s / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def ztest(s1, n1, s2, n2):
    p = (s1 + s2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    z = (s2 / n2 - s1 / n1) / se
    return z, 2 * (1 - NormalDist().cdf(abs(z)))


class Experiments(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = Dataset(items=2000, users=400, dim=32, seed=21)
        cls.challenger = Dataset(items=2000, users=400, dim=32, seed=22)   # same ids, other model
        cls.category = {it["id"]: it.get("category") for it in cls.data.items}
        cls.plugins = tempfile.mkdtemp(prefix="recd-exp-plugins-")
        for f in os.listdir(os.path.join(SRC, "plugins")):
            if f.endswith(".lua"):
                shutil.copy(os.path.join(SRC, "plugins", f), cls.plugins)
        with open(os.path.join(cls.plugins, "experiments.lua"), "w") as f:
            f.write(EXPERIMENTS)
        # A variant's own hook file: every item explained as "on_sale".
        with open(os.path.join(cls.plugins, "rerank_b.lua"), "w") as f:
            f.write("function rerank(req, cands)\n\tcands:sort()\n\tcands:top(req.n)\n"
                    "\tfor i = 1, cands:count() do cands:explain(i, \"on_sale\") end\nend\n")
        with open(os.path.join(cls.plugins, "rerank.lua")) as f:
            rerank = f.read()
        # The `explode` variant's params make the hook fail: its lists fall back.
        rerank = rerank.replace("function rerank(req, cands)\n",
                                "function rerank(req, cands)\n"
                                "\tif recd.setting(\"rerank\", \"explode\", false) then error(\"deliberate\") end\n", 1)
        with open(os.path.join(cls.plugins, "rerank.lua"), "w") as f:
            f.write(rerank)
        cls.d = Daemon(cls.data.snapshot, "--models", "challenger=" + cls.challenger.snapshot,
                       "--plugins-dir", cls.plugins, "--lua-dir", os.path.join(SRC, "lua"))
        cls.c = Conn(cls.d.port)
        cls.admin = Conn(cls.d.admin_port)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.admin.close()
        cls.d.close()
        shutil.rmtree(cls.plugins, ignore_errors=True)
        cls.data.cleanup()
        cls.challenger.cleanup()

    def recs(self, user, placement="home", n=10):
        q = "/v1/recommendations?n=%d" % n
        if user:
            q += "&user_id=" + user
        if placement:
            q += "&placement=" + placement
        st, _, raw = self.c.request("GET", q)
        self.assertEqual(st, 200, raw)
        return json.loads(raw)

    def events(self, evs):
        st, _, raw = self.c.request("POST", "/v1/events", json.dumps(evs).encode(),
                                    {"Content-Type": "application/json"})
        self.assertEqual(st, 202, raw)
        self.assertEqual(json.loads(raw)["rejected"], [], raw)

    def experiments(self):
        st, _, raw = self.admin.request("GET", "/admin/experiments")
        self.assertEqual(st, 200, raw)
        body = json.loads(raw)
        return {e["name"]: {v["name"]: v for v in e["variants"]} for e in body["experiments"]}, body

    def wait_for(self, cond, timeout=5.0):
        deadline = time.time() + timeout
        while True:
            got = cond()
            if got or time.time() > deadline:
                return got
            time.sleep(0.05)

    def test_1_assignment_and_variants(self):
        seen = {}
        for u in self.data.user_ids:
            body = self.recs(u)
            want = expected_variant(EXP_MAIN, u)
            self.assertEqual(body.get("experiment"), "exp_main", body)
            self.assertEqual(body.get("variant"), want, (u, body))
            seen.setdefault(want, []).append(body)
            # the model follows the variant
            self.assertTrue(body["snapshot"].startswith("it-22@" if want == "challenger" else "it-21@"), body)
        self.assertEqual(set(seen), {"control", "challenger", "diverse", "holdout"})
        self.assertNotIn("shadow_pop", seen)
        # params: `diverse` leads with one item per category (the rest move
        # down); control, at most three per category, repeats sooner
        k = len(set(self.category.values()))
        self.assertGreaterEqual(k, 3)

        def distinct_head(b):
            cats = [self.category[i["id"]] for i in b["items"][:k]]
            return len(cats) == len(set(cats))
        for body in seen["diverse"]:
            self.assertTrue(distinct_head(body), body)
        self.assertFalse(all(distinct_head(b) for b in seen["control"]))
        # no experiment outside its placements, nor for anonymous shoppers
        self.assertNotIn("experiment", self.recs(self.data.user_ids[0], placement="pdp"))
        self.assertNotIn("experiment", self.recs(None))
        # the shadow variant was computed for every non-holdout list, never served
        served = sum(len(v) for k, v in seen.items() if k != "holdout")
        exps, _ = self.experiments()
        shadow = exps["exp_main"]["shadow_pop"]
        self.assertTrue(shadow["shadow"])
        self.assertTrue(self.wait_for(lambda: self.experiments()[0]["exp_main"]["shadow_pop"]["shadow_lists"]
                                      >= served))
        shadow = self.experiments()[0]["exp_main"]["shadow_pop"]
        self.assertTrue(0 <= shadow["mean_overlap"] <= 1)
        self.assertNotIn("impressions", shadow)

    def test_2_attribution_and_statistics(self):
        users = self.data.user_ids[:200]
        lists = {}
        for u in users:
            body = self.recs(u)
            lists.setdefault(body["variant"], []).append(body)
        before, _ = self.experiments()
        ctl = lists["control"][0]
        # a click naming the list: that list, that position
        self.events([{"type": "click", "user_id": ctl["user_id"], "item_id": ctl["items"][2]["id"],
                      "request_id": ctl["request_id"]}])
        # an add-to-cart without request_id: the shopper's newest list showing it
        self.events([{"type": "add_to_cart", "user_id": ctl["user_id"], "item_id": ctl["items"][4]["id"]}])
        # a purchase with the price paid
        self.events([{"type": "purchase", "user_id": ctl["user_id"], "item_id": ctl["items"][4]["id"],
                      "price": 12.5}])
        # an item never shown to them: unattributed
        shown = {i["id"] for b in sum(lists.values(), []) for i in b["items"]}
        other = next(i for i in self.data.item_ids if i not in shown)
        self.events([{"type": "click", "user_id": ctl["user_id"], "item_id": other}])

        def moved():
            now, body = self.experiments()
            c = now["exp_main"]["control"]
            b = before["exp_main"]["control"]
            return (c["clicks"] == b["clicks"] + 1 and c["add_to_carts"] == b["add_to_carts"] + 1 and
                    c["purchases"] == b["purchases"] + 1 and body["ledger"]["unattributed"] >= 1) and (c, b, body)
        got = self.wait_for(moved)
        self.assertTrue(got, self.experiments())
        c, b, body = got
        self.assertEqual(c["clicks_by_position"][2], b["clicks_by_position"][2] + 1)
        self.assertEqual(c["attributed_by_request_id"], b["attributed_by_request_id"] + 1)
        self.assertEqual(c["attributed_by_window"], b["attributed_by_window"] + 2)
        self.assertAlmostEqual(c["revenue"], b["revenue"] + 12.5, places=4)
        self.assertEqual(c["converted_lists"], b["converted_lists"] + 1)
        # a second click on the same list counts as a click, not as another clicked list
        self.events([{"type": "click", "user_id": ctl["user_id"], "item_id": ctl["items"][3]["id"],
                      "request_id": ctl["request_id"]}])
        self.assertTrue(self.wait_for(lambda: self.experiments()[0]["exp_main"]["control"]["clicks"] == c["clicks"] + 1))
        self.assertEqual(self.experiments()[0]["exp_main"]["control"]["clicked_lists"], c["clicked_lists"])

        # clicks on a share of each variant's lists, then the statistics
        evs = []
        for name, every in (("control", 4), ("diverse", 2)):
            for k, shown_list in enumerate(lists[name][1:]):
                if k % every == 0:
                    evs.append({"type": "click", "user_id": shown_list["user_id"],
                                "item_id": shown_list["items"][0]["id"], "request_id": shown_list["request_id"]})
        self.events(evs)
        self.assertTrue(self.wait_for(lambda: self.experiments()[1]["ledger"]["outcomes"] >=
                                      body["ledger"]["outcomes"] + 1 + len(evs)))
        exps, _ = self.experiments()
        ctl_v, div = exps["exp_main"]["control"], exps["exp_main"]["diverse"]
        for v in (ctl_v, div):
            lo, hi = wilson(v["clicked_lists"], v["impressions"])
            self.assertAlmostEqual(v["ctr"]["value"], v["clicked_lists"] / v["impressions"], places=5)
            self.assertAlmostEqual(v["ctr"]["lo"], lo, places=5)
            self.assertAlmostEqual(v["ctr"]["hi"], hi, places=5)
        z, p = ztest(ctl_v["clicked_lists"], ctl_v["impressions"], div["clicked_lists"], div["impressions"])
        self.assertAlmostEqual(div["ctr_vs_control"]["z"], z, places=4)
        self.assertAlmostEqual(div["ctr_vs_control"]["p_value"], p, places=4)
        self.assertEqual(div["ctr_vs_control"]["significant"], p < 0.05)
        # the seed's sample size from control's CTR, mde 0.1
        p1 = ctl_v["clicked_lists"] / ctl_v["impressions"]
        p2 = p1 * 1.1
        pa = (p1 + p2) / 2
        za, zb = NormalDist().inv_cdf(0.975), NormalDist().inv_cdf(0.8)
        n = int((za + zb) ** 2 * 2 * pa * (1 - pa) / (p2 - p1) ** 2)
        st, _, raw = self.admin.request("GET", "/admin/experiments")
        main = next(e for e in json.loads(raw)["experiments"] if e["name"] == "exp_main")
        self.assertLessEqual(abs(main["sample_size_per_variant"] - n), 1)
        self.assertEqual(div["samples_still_needed"], max(0, main["sample_size_per_variant"] - div["impressions"]))

    def test_1b_a_variant_brings_its_own_hook(self):
        exp = {"name": "exp_hooks", "variants": [{"name": "control", "weight": 50}, {"name": "own_rerank", "weight": 50}]}
        seen = set()
        for u in self.data.user_ids[:60]:
            body = self.recs(u, placement="hooks")
            want = expected_variant(exp, u)
            self.assertEqual(body["variant"], want)
            reasons = {i["reason"].split(":")[0] for i in body["items"]}
            if want == "own_rerank":
                self.assertEqual(reasons, {"on_sale"}, body)
            else:
                self.assertNotIn("on_sale", reasons, body)
            seen.add(want)
        self.assertEqual(seen, {"control", "own_rerank"})
        v = self.experiments()[0]["exp_hooks"]["own_rerank"]
        self.assertEqual(v["hooks"], {"rerank": "rerank_b"})

    def test_2b_forgotten_shoppers_leave_the_ledger(self):
        u = self.data.user_ids[-1]
        body = self.recs(u)
        item = body["items"][1]["id"]
        st, _, raw = self.admin.request("DELETE", "/v1/users/" + u)
        self.assertEqual(st, 202, raw)
        _, before = self.experiments()
        # without request_id: nothing to match by shopper any more
        self.events([{"type": "click", "user_id": u, "item_id": item}])
        self.assertTrue(self.wait_for(lambda: self.experiments()[1]["ledger"]["unattributed"] ==
                                      before["ledger"]["unattributed"] + 1))
        # the request_id the client kept still names the list
        self.events([{"type": "click", "user_id": u, "item_id": item, "request_id": body["request_id"]}])
        v = body["variant"]
        if v != "holdout":
            clicks = before["experiments"]
            was = next(x for e in clicks if e["name"] == "exp_main" for x in e["variants"] if x["name"] == v)["clicks"]
            self.assertTrue(self.wait_for(lambda: self.experiments()[0]["exp_main"][v]["clicks"] == was + 1))

    def test_3_guardrail_switches_a_failing_variant_off(self):
        users = self.data.user_ids
        exploded = [u for u in users if expected_variant(
            {"name": "exp_guard", "variants": [{"name": "control", "weight": 50}, {"name": "explode", "weight": 50}]},
            u) == "explode"]
        self.assertGreater(len(exploded), 40)
        for u in users[:120]:
            body = self.recs(u, placement="guard")
            if body["variant"] == "explode":
                self.assertEqual(body.get("fallback"), "rerank", body)
        off = self.wait_for(lambda: self.experiments()[0]["exp_guard"]["explode"]["disabled"])
        self.assertTrue(off, self.experiments())
        v = self.experiments()[0]["exp_guard"]["explode"]
        self.assertIn("fallback rate", v["disabled_reason"])
        self.assertIn("msg=experiment_guardrail experiment=exp_guard variant=explode", self.d.log())
        # its shoppers now get control, and no fallback
        body = self.recs(exploded[0], placement="guard")
        self.assertEqual(body["variant"], "control")
        self.assertNotIn("fallback", body)
        st, _, raw = self.c.request("GET", "/metrics")
        self.assertIn('recd_experiment_variant_disabled{experiment="exp_guard",variant="explode"} 1', raw.decode())

    def test_4_bad_experiments_file_is_refused(self):
        path = os.path.join(self.plugins, "experiments.lua")
        with open(path) as f:
            good = f.read()
        try:
            with open(path + ".tmp", "w") as f:
                f.write(good.replace("popular = 1 }", "bestsellers = 1 }"))
            os.rename(path + ".tmp", path)
            st, _, raw = self.admin.request("POST", "/admin/reload?what=policies")
            body = json.loads(raw)
            self.assertEqual(body["policies"]["status"], "refused", body)
            self.assertIn("experiments.lua", body["policies"]["detail"])
            self.assertIn("unknown source 'bestsellers'", body["policies"]["detail"])
            self.assertEqual(self.recs(self.data.user_ids[3]).get("experiment"), "exp_main")
        finally:
            with open(path + ".tmp", "w") as f:
                f.write(good)
            os.rename(path + ".tmp", path)

    def test_5_metrics_and_quality(self):
        for u in self.data.user_ids[:50]:
            self.recs(u)
        time.sleep(1.2)   # the gauges' views are published once a second
        st, _, raw = self.admin.request("GET", "/admin/quality")
        self.assertEqual(st, 200)
        cells = json.loads(raw)["cells"]
        home = [c for c in cells if c["placement"] == "home" and c.get("experiment") == "exp_main"]
        self.assertTrue({"control", "diverse", "challenger", "holdout", "shadow_pop"} <= {c["variant"] for c in home})
        for c in home:
            self.assertTrue(0 < c["coverage"] <= 1 and c["lists"] > 0, c)
        ctl = next(c for c in home if c["variant"] == "control")
        pop = next(c for c in home if c["variant"] == "shadow_pop")   # popular items only
        self.assertGreater(pop["popularity_percentile"], ctl["popularity_percentile"])
        st, _, raw = self.c.request("GET", "/metrics")
        text = raw.decode()
        self.assertRegex(text, r'recd_experiment_impressions_total\{experiment="exp_main",variant="control"\} [1-9]')
        self.assertRegex(text, r'recd_quality_coverage\{placement="home",experiment="exp_main",variant="diverse"\} 0\.')
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=raw, capture_output=True)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        elif os.environ.get("CI"):
            self.fail("promtool missing (tools/install-deps.sh test installs it)")


if __name__ == "__main__":
    unittest.main(verbosity=2)
