-- experiments.lua: A/B experiments between policies, parameters, candidate
-- sources and models. The engine assigns each shopper (by user_id) to a
-- variant, says which in every response ("experiment", "variant"),
-- records what it served and credits clicks, add-to-carts and purchases
-- to the variant that showed the item. Figures: GET /admin/experiments,
-- `recdctl experiments`, recd_experiment_* metrics. docs/policies.md
-- ("Experiments") documents every field and the assignment formula.
--
-- Ramp by raising `exposure` (0..1): shoppers already in stay in, in the
-- same variant. Reload with `systemctl reload recd`.
return {
	{
		name = "rerank_diversity",
		-- Off until ramped: set exposure = 0.1, then 0.5, then 1.
		exposure = 0,
		-- Report the CTR change worth detecting (relative) for the sample size.
		min_detectable_effect = 0.05,
		-- A variant that fails or slows down against control is switched off.
		guardrails = { error_rate = 0.01, fallback_rate = 0.02, p99_ratio = 2, min_requests = 500 },
		variants = {
			{ name = "control", weight = 50 },
			-- At most two items of a category instead of three.
			{ name = "diverse", weight = 50, params = { rerank = { max_per_category = 2 } } },
		},
	},
}
