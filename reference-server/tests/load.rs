//! The probes the reference server passed by hand, kept as tests: concurrent replays of one
//! ID-JAG yield exactly one success, and no acknowledged registration is lost to a kill -9
//! in the middle of a stream of writes; on SQLite, and on PostgreSQL with one instance and
//! with several over one database (replicas).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use authmd_mock_idp::{IdpConfig, MockIdp, Subject, TokenRequest};
use authmd_reference_server::{Config, Defect, Defects, ReferenceServer, TrustedIssuer};
use serde_json::json;

fn db_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("authmd-load-{}-{name}.sqlite", std::process::id()))
}

fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

/// For each of `rounds` fresh tokens, 200 concurrent registrations: the successes per round.
async fn race(defects: Defects, rounds: usize, name: &str) -> Vec<usize> {
    let db = db_path(name);
    remove_db(&db);
    let successes = race_on(defects, rounds, &db, 1).await;
    remove_db(&db);
    successes
}

/// [`race`] against `instances` servers over the one `database`, the posts spread round-robin.
async fn race_on(defects: Defects, rounds: usize, database: &Path, instances: usize) -> Vec<usize> {
    let idp = MockIdp::start(IdpConfig::default()).await.expect("idp");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: database.to_path_buf(),
        ..Config::default()
    };
    config.trusted_issuers.push(TrustedIssuer::named(idp.issuer()));
    config.rate.identity_per_ip = 1_000_000;
    config.rate.per_issuer = 1_000_000;
    let server = ReferenceServer::start(config.clone(), defects.clone()).await.expect("server");
    let base = server.base_url().trim_end_matches('/').to_string();
    // The other instances answer for the same base URL (the token's audience), each at its own
    // address.
    let mut servers = vec![server];
    for _ in 1..instances {
        let config = Config {
            base_url: Some(base.clone()),
            ..config.clone()
        };
        let replica = ReferenceServer::start(config, defects.clone()).await.expect("replica");
        servers.push(replica);
    }
    let origins: Vec<String> = servers.iter().map(|s| format!("http://{}", s.addr())).collect();
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let mut successes = Vec::new();
    for round in 0..rounds {
        let mut request = TokenRequest::default();
        request.set.insert("aud".into(), json!(base));
        let sub = format!("race-{round}");
        let token = idp
            .mint(
                &request,
                &Subject {
                    email: format!("{sub}@example.com"),
                    sub,
                },
            )
            .expect("mint")
            .token;
        let body = Arc::new(
            json!({ "type": "identity_assertion", "assertion_type": "urn:ietf:params:oauth:token-type:id-jag", "assertion": token, "requested_credential_type": "access_token" })
                .to_string(),
        );
        let posts = (0..200).map(|i| {
            let (http, url, body) = (http.clone(), format!("{}/agent/auth", origins[i % origins.len()]), body.clone());
            tokio::spawn(async move {
                http.post(url)
                    .header("content-type", "application/json")
                    .body(body.as_str().to_string())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        });
        let mut statuses = Vec::new();
        for post in posts.collect::<Vec<_>>() {
            statuses.push(post.await.expect("join").expect("an answer"));
        }
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let refused = statuses.iter().filter(|s| (400..500).contains(*s)).count();
        assert_eq!(ok + refused, 200, "round {round}: only 200s and 4xx expected, got {statuses:?}");
        successes.push(ok);
    }
    drop(servers);
    successes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_of_five_tokens_posted_200_times_at_once_succeeds_exactly_once() {
    assert_eq!(race(Defects::none(), 5, "race").await, [1, 1, 1, 1, 1]);
    // The check can fail: without the replay check, one token registers many times.
    let broken = race([Defect::SkipReplayCheck].into_iter().collect(), 1, "race-broken").await;
    assert!(broken[0] > 1, "skip-replay-check still allowed only {} success", broken[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_registration_is_lost_to_a_kill_9_under_load() {
    let db = db_path("crash");
    remove_db(&db);
    let acknowledged = kill_9_under_load(&db, 1).await;
    let conn = rusqlite::Connection::open(&db).expect("reopen after the crash");
    let mut lost = 0;
    for id in &acknowledged {
        let found: i64 = conn
            .query_row("SELECT COUNT(*) FROM registrations WHERE id = ?1", [id], |r| r.get(0))
            .expect("query");
        if found == 0 {
            lost += 1;
        }
    }
    assert_eq!(lost, 0, "{lost} of {} acknowledged registrations lost", acknowledged.len());
    drop(conn);
    remove_db(&db);
}

/// Starts `instances` server processes over `database`, has eight writers register through
/// them as fast as they can, kills every process with SIGKILL mid-stream, and returns the ids
/// whose registration was answered.
async fn kill_9_under_load(database: &Path, instances: usize) -> Vec<String> {
    let mut children = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..instances {
        let mut child = Command::new(env!("CARGO_BIN_EXE_authmd-reference-server"))
            .args(["--listen", "127.0.0.1:0", "--set", "rate.anonymous_per_ip=1000000000", "--database"])
            .arg(database)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("url line");
        bases.push(line.trim().trim_end_matches('/').to_string());
        children.push(child);
    }
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    // Each writer remembers the ids it got an answer for.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let (http, url) = (http.clone(), format!("{}/agent/auth", bases[i % bases.len()]));
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                loop {
                    let sent = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(r#"{"type":"anonymous","requested_credential_type":"api_key"}"#)
                        .send()
                        .await;
                    let Ok(response) = sent else { break };
                    let Ok(body) = response.json::<serde_json::Value>().await else {
                        break;
                    };
                    if let Some(id) = body["registration_id"].as_str() {
                        acknowledged.push(id.to_string());
                    }
                }
                acknowledged
            })
        })
        .collect();
    // Kill once a few hundred have been answered, while the writers are mid-stream.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    for child in &mut children {
        child.kill().expect("kill -9");
        let _ = child.wait();
    }
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.expect("join"));
    }
    assert!(
        acknowledged.len() > 100,
        "only {} registrations before the kill",
        acknowledged.len()
    );
    acknowledged
}

/// A registration from the future (a test clock an hour ahead) sweeps the replay cache as of
/// its own clock; a `jti` still live by the server's clock must survive the sweep, or replaying
/// it succeeds a second time (a concurrent-replay case failed so beside a clock-moving one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_the_future_does_not_sweep_away_live_jtis() {
    let idp = MockIdp::start(IdpConfig::default()).await.expect("idp");
    let db = db_path("sweep");
    remove_db(&db);
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: db.clone(),
        test_clock: true,
        ..Config::default()
    };
    config.trusted_issuers.push(TrustedIssuer::named(idp.issuer()));
    let server = ReferenceServer::start(config, Defects::none()).await.expect("server");
    let base = server.base_url().trim_end_matches('/').to_string();
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let token = |sub: &str, ahead: i64| {
        let mut request = TokenRequest::default();
        request.set.insert("aud".into(), json!(base));
        request.set.insert("iat".into(), json!(format!("now+{ahead}")));
        request.set.insert("exp".into(), json!(format!("now+{}", ahead + 300)));
        let subject = Subject {
            email: format!("{sub}@example.com"),
            sub: sub.into(),
        };
        idp.mint(&request, &subject).expect("mint").token
    };
    let post = |assertion: String, offset: i64| {
        let body = json!({ "type": "identity_assertion", "assertion_type": "urn:ietf:params:oauth:token-type:id-jag", "assertion": assertion, "requested_credential_type": "access_token" });
        http.post(format!("{base}/agent/auth"))
            .header(authmd_reference_server::CLOCK_OFFSET_HEADER, offset.to_string())
            .json(&body)
            .send()
    };
    let now = token("now", 0);
    assert_eq!(post(now.clone(), 0).await.expect("answer").status(), 200);
    assert_eq!(post(token("later", 3600), 3600).await.expect("answer").status(), 200);
    assert_eq!(post(now, 0).await.expect("answer").status(), 400, "the replay was accepted");
    drop(server);
    remove_db(&db);
}

/// The throwaway PostgreSQL cluster this test binary shares, or why there is none. Without
/// PostgreSQL installed the tests below say so once and pass, unless
/// `AUTHMD_REQUIRE_POSTGRES=1` (CI) makes its absence a failure.
fn cluster() -> Option<&'static authmd_reference_server::pg_cluster::Cluster> {
    static SAID: std::sync::Once = std::sync::Once::new();
    match authmd_reference_server::pg_cluster::shared() {
        Ok(cluster) => Some(cluster),
        Err(e) if authmd_reference_server::pg_cluster::required() => panic!("PostgreSQL is required: {e}"),
        Err(e) => {
            SAID.call_once(|| eprintln!("skipping the PostgreSQL tests: {e}"));
            None
        }
    }
}

fn fresh_database(cluster: &authmd_reference_server::pg_cluster::Cluster) -> PathBuf {
    PathBuf::from(cluster.fresh_database().expect("a database"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_each_replayed_token_succeeds_exactly_once_on_one_instance_and_across_three() {
    let Some(cluster) = cluster() else { return };
    assert_eq!(race_on(Defects::none(), 3, &fresh_database(cluster), 1).await, [1, 1, 1]);
    assert_eq!(race_on(Defects::none(), 3, &fresh_database(cluster), 3).await, [1, 1, 1]);
    // Both can fail: without the replay check, or with a replay cache per instance.
    let broken = race_on([Defect::SkipReplayCheck].into_iter().collect(), 1, &fresh_database(cluster), 1).await;
    assert!(broken[0] > 1, "skip-replay-check still allowed only {} success", broken[0]);
    let per_instance = race_on(
        [Defect::ReplayCachePerInstance].into_iter().collect(),
        1,
        &fresh_database(cluster),
        3,
    )
    .await;
    assert_eq!(
        per_instance[0], 3,
        "a replay cache per instance lets each of the 3 accept the token once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_no_acknowledged_registration_is_lost_to_a_kill_9_of_one_or_two_instances() {
    let Some(cluster) = cluster() else { return };
    for instances in [1, 2] {
        let url = fresh_database(cluster);
        let acknowledged = kill_9_under_load(&url, instances).await;
        let url = url.to_string_lossy().into_owned();
        // The synchronous client starts a runtime of its own: not on this test's.
        let lost = std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect after the crash");
            let stored: std::collections::HashSet<String> = client
                .query("SELECT id FROM registrations", &[])
                .expect("query")
                .iter()
                .map(|r| r.get(0))
                .collect();
            acknowledged.iter().filter(|id| !stored.contains(*id)).count()
        })
        .join()
        .expect("join");
        assert_eq!(lost, 0, "{lost} acknowledged registrations lost with {instances} instance(s)");
    }
}

/// The two schemas are written apart (each in its own dialect); every table and column of the
/// SQLite one must exist on PostgreSQL too, or a statement would work on one and fail on the
/// other. PostgreSQL has `rowid` columns where the store reads SQLite's implicit one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgresql_schema_has_every_table_and_column_of_the_sqlite_one() {
    let Some(cluster) = cluster() else { return };
    let lite = db_path("schema");
    remove_db(&lite);
    let url = fresh_database(cluster);
    for database in [lite.clone(), url.clone()] {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database,
            ..Config::default()
        };
        // Both key tables are made at start only where a key is used.
        config.profile = authmd_reference_server::profile::Profile::V06;
        drop(ReferenceServer::start(config, Defects::none()).await.expect("server"));
    }
    let conn = rusqlite::Connection::open(&lite).expect("sqlite");
    let mut on_sqlite = std::collections::BTreeSet::new();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("tables");
    for table in tables {
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .expect("columns")
            .query_map([], |r| r.get(0))
            .expect("columns")
            .collect::<Result<_, _>>()
            .expect("columns");
        on_sqlite.extend(columns.into_iter().map(|c| format!("{table}.{c}")));
    }
    drop(conn);
    remove_db(&lite);
    let url = url.to_string_lossy().into_owned();
    let on_postgres: std::collections::BTreeSet<String> = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("postgres");
        client
            .query(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'",
                &[],
            )
            .expect("columns")
            .iter()
            .map(|r| format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect()
    })
    .join()
    .expect("join");
    let missing: Vec<&String> = on_sqlite.difference(&on_postgres).collect();
    assert!(missing.is_empty(), "on SQLite, not on PostgreSQL: {missing:?}");
    assert!(on_sqlite.len() > 60, "only {} columns read", on_sqlite.len());
}

/// A server whose PostgreSQL connections are cut (a database restart, a terminated backend)
/// connects again: the next registration and API call succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_server_whose_connections_were_cut_connects_again() {
    let Some(cluster) = cluster() else { return };
    let url = fresh_database(cluster);
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: url.clone(),
        ..Config::default()
    };
    let server = ReferenceServer::start(config, Defects::none()).await.expect("server");
    let base = server.base_url().trim_end_matches('/').to_string();
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let register = || {
        http.post(format!("{base}/agent/auth"))
            .header("content-type", "application/json")
            .body(r#"{"type":"anonymous","requested_credential_type":"api_key"}"#)
            .send()
    };
    assert_eq!(register().await.expect("answer").status(), 200);
    let url = url.to_string_lossy().into_owned();
    let cut = std::thread::spawn(move || {
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("admin");
        admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .expect("terminate")
            .len()
    })
    .join()
    .expect("join");
    assert!(cut >= 3, "only {cut} connections cut (a writer and two readers expected)");
    // The client learns of the closed connection when its socket does.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let answer = register().await.expect("answer");
    assert_eq!(answer.status(), 200, "after the cut: {:?}", answer.text().await);
    let body: serde_json::Value = register().await.expect("answer").json().await.expect("json");
    let key = body["credential"].as_str().expect("a credential").to_string();
    let api = http
        .get(format!("{base}/api/resource"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("answer");
    assert_eq!(api.status(), 200);
}
