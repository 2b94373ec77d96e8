-- An authenticated call to the identity/scope echo with one api_key.
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("AUTHMD_BENCH_KEY")
