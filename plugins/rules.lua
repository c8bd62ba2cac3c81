-- rules.lua: business rules, applied to every candidate list before it is
-- ranked. Rules only remove items; rerank.lua decides the order.
local recd = require "recd"

-- Settings are read per request: an experiment variant may override
-- them (its params in plugins/experiments.lua).
local setting = recd.setting

function rules(req, cands)
	-- Nothing that cannot be bought right now.
	cands:drop_out_of_stock()

	-- Nothing the shopper already owns.
	if setting("rules", "drop_purchased", true) ~= false then
		cands:drop_purchased()
	end

	-- Nothing already in the cart (the cart page shows what goes with it).
	if setting("rules", "drop_in_cart", true) ~= false then
		cands:drop_in_cart()
	end

	-- Placement rules: a price band and blocked categories.
	local placements = setting("rules", "placements", nil)
	local p = req.placement and type(placements) == "table" and placements[req.placement]
	if p then
		if p.min_price or p.max_price then
			cands:price_between(p.min_price, p.max_price)
		end
		if p.blocked_categories then
			cands:drop_categories(p.blocked_categories)
		end
	end
end
