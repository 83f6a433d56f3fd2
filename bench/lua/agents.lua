-- Shared by the redirect scenarios: a realistic mix of visitors for click analytics (four
-- real browsers, some with a referrer), cycled per request. The baseline gets the same bytes.
local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:120.0) Gecko/20100101 Firefox/120.0",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
}
local referrers = { nil, "https://news.ycombinator.com/item?id=1", nil, "https://www.reddit.com/r/rust" }
local turn = 0
function visitor_headers()
  turn = turn % #agents + 1
  local h = { ["User-Agent"] = agents[turn] }
  if referrers[turn] then h["Referer"] = referrers[turn] end
  return h
end
