-- rules.lua: business rules, applied to every candidate list before it is
-- ranked. Rules only remove items; rerank.lua decides the order.
local recd = require "recd"

local S = recd.settings.rules or {}
local PLACEMENTS = S.placements or {}

function rules(req, cands)
	-- Nothing that cannot be bought right now.
	cands:drop_out_of_stock()

	-- Nothing the shopper already owns.
	if S.drop_purchased ~= false then
		cands:drop_purchased()
	end

	-- Nothing already in the cart (the cart page shows what goes with it).
	if S.drop_in_cart ~= false then
		cands:drop_in_cart()
	end

	-- Placement rules: a price band and blocked categories.
	local p = req.placement and PLACEMENTS[req.placement]
	if p then
		if p.min_price or p.max_price then
			cands:price_between(p.min_price, p.max_price)
		end
		if p.blocked_categories then
			cands:drop_categories(p.blocked_categories)
		end
	end
end
