-- .luacheckrc: luacheck settings for lua/, plugins/ and the policy fixtures
-- (run by the `luacheck` test in tests/lua/meson.build).
std = "luajit"
max_line_length = 120

-- A policy file defines its hook as a global function.
files["plugins/"] = { globals = { "route", "rules", "rerank" } }
-- Fixture files are lists of case { ... } calls.
files["tests/lua/fixtures/"] = { read_globals = { "case" } }
-- The host hardens the shared string library in place (dump, rep).
files["lua/recd_host.lua"] = { globals = { "string" } }
