-- HAProxy action: asks floodgate's GET /check and keeps its answer in
-- variables that haproxy.cfg turns into a 429 or lets through.
-- Usage in a frontend: http-request lua.floodgate http://127.0.0.1:8080/check
core.register_action("floodgate", { "http-req" }, function(txn, url)
  local client = core.httpclient()
  local res = client:get{
    url = url,
    headers = {
      ["x-forwarded-for"] = { txn.f:src() },
      ["x-original-uri"] = { txn.f:path() },
      ["x-original-method"] = { txn.f:method() },
    },
    timeout = 1000,
  }
  if res == nil or res.status == nil then
    -- floodgate unreachable: let the request through (fail open).
    txn:set_var("txn.fg_status", 0)
    return
  end
  txn:set_var("txn.fg_status", res.status)
  local function first(name)
    local values = res.headers and res.headers[name]
    if values == nil then return nil end
    for _, v in pairs(values) do return v end
    return nil
  end
  for var, name in pairs({ fg_retry_after = "retry-after", fg_ratelimit = "ratelimit", fg_policy = "ratelimit-policy" }) do
    local v = first(name)
    if v ~= nil then txn:set_var("txn." .. var, v) end
  end
end, 1)
