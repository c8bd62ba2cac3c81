-- rerank.lua: the final order of the list, and the reason shown with
-- each item.
--   1. discounted items get a small boost (when the engine knows prices
--      live: the "on_sale" flag);
--   2. best score first;
--   3. at most 3 items of one category (the rest move down the list);
--   4. keep what was asked for, and explain each item.
local recd = require "recd"

-- Settings are read per request: an experiment variant may override
-- them (its params in plugins/experiments.lua).
local setting = recd.setting

-- Reason shown for an item, by where it came from.
local REASON_BY_SOURCE = {
	popular = "popular",
	trending = "trending",
	personalized = "personalized",
	session = "personalized",
	similar = "similar",
	content = "similar",
}

function rerank(req, cands)
	local ON_SALE_BOOST = setting("rerank", "on_sale_boost", 1)
	local MAX_PER_CATEGORY = setting("rerank", "max_per_category", 3)
	if ON_SALE_BOOST ~= 1 and recd.flag_defined("on_sale") then
		cands:boost { on_sale = ON_SALE_BOOST }
	end

	cands:sort()
	cands:diversify { max_per_category = MAX_PER_CATEGORY }
	cands:top(req.n)

	for i = 1, cands:count() do
		local reason = REASON_BY_SOURCE[cands:source(i)] or "popular"
		local seen = cands:ref_item(i)
		if reason == "similar" and seen and req:viewed(seen) then
			-- "because you viewed <that item>"
			cands:explain(i, "because_you_viewed", seen)
		else
			cands:explain(i, reason)
		end
	end
end
