-- route.lua: which candidate sources serve a request, and how many items
-- each should bring. Runs once per request, before candidates are fetched.
--
-- The three cold-start tiers:
--   anonymous (no history)      -> trending and popular items
--   new (1 to 9 interactions)   -> items similar to what they just viewed
--   returning (10 or more)      -> the shopper's own taste (collaborative)
-- On a product page the page's item comes first: "similar items"; on the
-- cart page, items that go with the cart.
--
-- Each source is { name, how many, weight }. The weight (0..1, default 1)
-- is the score of that source's best item: 1 competes for the top, a
-- small weight only fills the list when the others run short.
local recd = require "recd"

-- Settings are read per request: an experiment variant may override
-- them (its params in plugins/experiments.lua).
local setting = recd.setting

function route(req)
	local n = req.n * setting("route", "fetch_factor", 4)
	local FILL = setting("route", "fill_weight", 0.3)
	local tier = recd.tier(req, setting("route", "returning_after", 10))

	if req.context_item then
		return {
			policy = "similar_items",
			tier = tier,
			sources = { { "similar", n }, { "popular", req.n, FILL } },
		}
	end

	if req.placement == "cart" and req.cart_count > 0 then
		-- "Complete your cart": items that go with what is in it.
		return {
			policy = "complete_the_cart",
			tier = tier,
			sources = { { "similar", n }, { "content", n, 0.8 }, { "popular", req.n, FILL } },
		}
	end

	if tier == "anonymous" then
		return {
			policy = "cold_start_popular",
			tier = tier,
			sources = { { "trending", n }, { "popular", n, 0.8 } },
		}
	elseif tier == "new" then
		return {
			policy = "content_based",
			tier = tier,
			sources = { { "similar", n }, { "content", n, 0.8 }, { "popular", req.n, FILL } },
		}
	end
	return {
		policy = "collaborative",
		tier = tier,
		sources = { { "personalized", n }, { "session", n }, { "popular", req.n, FILL } },
	}
end
