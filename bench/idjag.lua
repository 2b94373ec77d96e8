-- ID-JAG registration: every request carries a different pre-minted token (a fresh jti and
-- subject), read from AUTHMD_BENCH_TOKENS, starting at AUTHMD_BENCH_OFFSET (so the measured
-- run does not resend the warm-up's tokens). Threads take interleaved tokens so none is sent
-- twice unless the run outlasts the file (then the replays show up as non-2xx answers).
local threads = {}
local count = 0

function setup(thread)
  thread:set("tid", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(os.getenv("AUTHMD_BENCH_TOKENS")) do
    tokens[#tokens + 1] = line
  end
  stride = tonumber(os.getenv("AUTHMD_BENCH_THREADS"))
  next_index = tonumber(os.getenv("AUTHMD_BENCH_OFFSET") or "0") + tid
end

function request()
  local token = tokens[(next_index % #tokens) + 1]
  next_index = next_index + stride
  local body = '{"type":"identity_assertion","assertion_type":"urn:ietf:params:oauth:token-type:id-jag",'
    .. '"requested_credential_type":"access_token","assertion":"' .. token .. '"}'
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
