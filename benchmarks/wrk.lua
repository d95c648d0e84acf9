-- wrk script: POST pre-signed webhook deliveries, each exactly once, in file order.
--
-- wrk -t1 -cN -dT --latency -s wrk.lua URL -- POOL_FILE LIMIT MARKER_FILE
--
-- POOL_FILE (written by benchmarks/over_http.py):
--   line 1: "voicehooks-bench-pool 1"
--   line 2: the X-Webhook-Timestamp every request was signed at
--   line 3: K, the number of templates, then K lines "<event> <body prefix>"
--   then one line per request: "<template 1..K> <hex signature> <body tail>"
-- The body of a request is its template's prefix followed by its tail.
--
-- After LIMIT requests the thread stops and MARKER_FILE is written, so the harness can end
-- the run at once (SIGINT) instead of letting a delivery be sent twice: a repeated delivery
-- would meet duplicate suppression and be answered from a cache.

local templates = {}
local which, signatures, tails = {}, {}, {}
local count, limit, marker = 0, 0, nil
local threads = {}

-- Pacing for the tail level: with VOICEHOOKS_WRK_THINK_MS set, each connection waits that
-- many milliseconds (on average: wrk's timers take whole ms, so the wait is the floor or the
-- ceiling at random) after each answer. Defined only then: with a delay() wrk sends every
-- request through a timer, which would slow the unpaced runs.
local think = tonumber(os.getenv("VOICEHOOKS_WRK_THINK_MS") or "")
if think then
   function delay()
      local whole = math.floor(think)
      if math.random() < think - whole then
         return whole + 1
      end
      return whole
   end
end

-- Globals, read from the main state in done() through thread:get().
sent = 0
exhausted = 0

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local file = assert(io.open(args[1], "rb"))
   limit = tonumber(args[2])
   marker = args[3]
   assert(file:read("*l") == "voicehooks-bench-pool 1", "not a pool file")
   local timestamp = file:read("*l")
   local k = tonumber(file:read("*l"))
   for i = 1, k do
      local event, prefix = file:read("*l"):match("^(%S+) (.*)$")
      templates[i] = {
         head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: HMS-Sovereign/1.0\r\n"
            .. "Content-Type: application/json\r\nX-Webhook-Event: " .. event
            .. "\r\nX-Webhook-Timestamp: " .. timestamp
            .. "\r\nX-Webhook-Signature: sha256=",
         prefix = prefix,
         size = #prefix,
      }
   end
   for line in file:lines() do
      local t, signature, tail = line:match("^(%d+) (%x+) (.*)$")
      count = count + 1
      which[count] = tonumber(t)
      signatures[count] = signature
      tails[count] = tail
   end
   file:close()
end

function request()
   sent = sent + 1
   if sent > limit and exhausted == 0 then
      exhausted = 1
      wrk.thread:stop()
      if marker then
         local f = io.open(marker, "w")
         if f then
            f:write("exhausted\n")
            f:close()
         end
      end
   end
   -- The file holds spare requests past LIMIT for the few sent while the thread stops.
   local i = ((sent - 1) % count) + 1
   local t = templates[which[i]]
   local tail = tails[i]
   return t.head .. signatures[i] .. "\r\nContent-Length: " .. (t.size + #tail)
      .. "\r\n\r\n" .. t.prefix .. tail
end

function done(summary, latency, requests)
   local total, stopped = 0, 0
   for _, thread in ipairs(threads) do
      total = total + thread:get("sent")
      stopped = math.max(stopped, thread:get("exhausted"))
   end
   local e = summary.errors
   io.write(string.format(
      'WRK-JSON {"requests":%d,"duration_us":%d,"bytes":%d,"sent":%d,"exhausted":%s,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
      summary.requests, summary.duration, summary.bytes, total,
      stopped == 1 and "true" or "false",
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9)))
end
