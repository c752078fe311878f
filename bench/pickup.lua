-- wrk script for the pickup benchmark: every request hands over a different parcel.
-- wrk -t T -s bench/pickup.lua URL -- CODES_FILE TOKEN T
-- CODES_FILE has one "SITE_ID CODE" line per live pickup code. Thread i of T sends lines
-- i, i + T, ...; a thread that runs out of codes stops (reported as exhausted).
threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  codes = {}
  for line in io.lines(args[1]) do table.insert(codes, line) end
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[2]}
  stride = tonumber(args[3])
  sent, exhausted, statuses = 0, 0, {}
end

function request()
  local k = 1 + id + sent * stride
  if k > #codes then
    exhausted = 1
    wrk.thread:stop()
    k = #codes
  end
  sent = sent + 1
  local site, code = codes[k]:match("(%d+) (%d+)")
  return wrk.format("POST", "/api/v1/sites/" .. site .. "/pickups", headers,
                    string.format('{"code":"%s"}', code))
end

function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total, exh, st = 0, 0, {}
  for _, t in ipairs(threads) do
    total = total + t:get("sent")
    exh = exh + t:get("exhausted")
    for k, v in pairs(t:get("statuses")) do st[k] = (st[k] or 0) + v end
  end
  local out = {}
  for k, v in pairs(st) do table.insert(out, string.format('"%d": %d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "sent": %d, "exhausted": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"statuses": {%s}, "latency_us": {"p50": %d, "p95": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, total, exh, e.connect, e.read, e.write, e.status,
    e.timeout, table.concat(out, ", "), latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
