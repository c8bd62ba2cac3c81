-- settings.lua: the knobs of the default policies, in one table.
--
-- Change a number here and reload (`systemctl reload recd`); no code to
-- touch. Each policy file reads its own section: recd.settings.rules, ...
return {
	-- Shown in metrics and responses as "<name>@<generation>".
	name = "default",

	route = {
		-- A shopper with at least this many interactions is "returning"
		-- (collaborative recommendations); below it, 1+ is "new"
		-- (content-based); 0 is "anonymous" (popular and trending).
		returning_after = 10,
		-- How many candidates to fetch per item asked for: more gives the
		-- rules and the diversity step more to choose from.
		fetch_factor = 4,
		-- Weight of the popular items that fill a list when the other
		-- sources run short (1 would let them compete for the top).
		fill_weight = 0.3,
	},

	rules = {
		-- Never show what the shopper already bought.
		drop_purchased = true,
		-- Do not recommend what is already in the cart (on the cart page
		-- route.lua asks for items that go with the cart instead).
		drop_in_cart = true,
		-- Per placement: a price band and categories never shown there.
		placements = {
			-- checkout = { max_price = 30, blocked_categories = { "c12" } },
			-- home = { min_price = 5 },
		},
	},

	rerank = {
		-- At most this many items of one category in a list.
		max_per_category = 3,
		-- Multiply the score of discounted items by this (1 = off).
		on_sale_boost = 1.15,
	},
}
