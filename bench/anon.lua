-- Anonymous registration: the same small JSON body every time (each gets a new registration).
wrk.method = "POST"
wrk.body = '{"type":"anonymous","requested_credential_type":"api_key"}'
wrk.headers["Content-Type"] = "application/json"
