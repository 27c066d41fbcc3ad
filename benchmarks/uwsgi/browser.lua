-- Browser-like requests for wrk: every request has its own path, query string,
-- cookies and request id, and the header set varies as real browsers' do.
-- Deterministic (seeded per thread), so every server gets the same mix.

local paths = {
  "/", "/products", "/products/shoes/running", "/cart", "/search",
  "/account/orders", "/static/app.css", "/api/v1/items", "/blog/2026/12/hello-world",
  "/caf%C3%A9/menu",
}
local agents = {
  "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
}
local languages = { "en-GB,en;q=0.9", "en-US,en;q=0.8,fr;q=0.5", "de-DE,de;q=0.9,en;q=0.7", "fr-FR" }
local counter = 0

function init(args)
  math.randomseed(12345)
end

local function hex(n)
  local out = {}
  for i = 1, n do out[i] = string.format("%x", math.random(0, 15)) end
  return table.concat(out)
end

request = function()
  counter = counter + 1
  local path = paths[(counter % #paths) + 1]
  local query = string.format("?id=%d&ref=%s&page=%d", counter, hex(6), counter % 17)
  local headers = {
    ["Host"] = "shop.example",
    ["User-Agent"] = agents[(counter % #agents) + 1],
    ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    ["Accept-Language"] = languages[(counter % #languages) + 1],
    ["Accept-Encoding"] = "gzip, deflate, br, zstd",
    ["Cookie"] = string.format("session=%s; _ga=GA1.2.%d.%d; theme=%s; cart=%d",
      hex(32), math.random(100000000, 999999999), 1700000000 + counter,
      (counter % 2 == 0) and "dark" or "light", counter % 5),
    ["Referer"] = "https://shop.example" .. paths[((counter + 3) % #paths) + 1],
    ["X-Request-Id"] = hex(16),
  }
  if counter % 3 == 0 then
    headers["Sec-Fetch-Mode"] = "navigate"
    headers["Sec-Fetch-Site"] = "same-origin"
    headers["Upgrade-Insecure-Requests"] = "1"
  end
  if counter % 4 == 0 then
    headers["X-Requested-With"] = "XMLHttpRequest"
    headers["Cache-Control"] = "no-cache"
  end
  return wrk.format("GET", path .. query, headers)
end
