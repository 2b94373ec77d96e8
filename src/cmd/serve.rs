//! The parts on their own: the mock IdP, the mock mailbox, the reference server (and its audit
//! log) and the loopback DNS server, each until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use authmd_conformance::exit_code::Ending;
use authmd_conformance::redact::inert;
use authmd_mock_idp::{MockIdp, ServeArgs};
use authmd_mock_mailbox::Mailbox;
use authmd_reference_server::{Config, Defect, ReferenceServer};
use clap::Subcommand;

use super::{Failure, defects, wait_for_ctrl_c};

/// `idp`'s subcommands.
#[derive(Subcommand)]
pub enum IdpCommand {
    /// Serve the mock IdP with its HTTP control API.
    Serve(ServeArgs),
}

/// `mailbox`'s subcommands.
#[derive(Subcommand)]
pub enum MailboxCommand {
    /// Serve the SMTP sink and print every message received.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:2525")]
        listen: SocketAddr,
    },
}

/// `dns`'s subcommands.
#[derive(Subcommand)]
pub enum DnsCommand {
    /// Serve an RFC 1035 zone file over UDP and TCP until Ctrl-C.
    Serve {
        /// The zone file (e.g. `examples/authmd.test.zone`).
        #[arg(long)]
        zone: PathBuf,
        /// The zone's origin where the file has no `$ORIGIN`.
        #[arg(long)]
        origin: Option<String>,
        /// Listen address (UDP and TCP).
        #[arg(long, default_value = "127.0.0.1:5353")]
        listen: SocketAddr,
    },
}

/// `reference`'s subcommands.
#[derive(Subcommand)]
pub enum ReferenceCommand {
    /// Serve the reference server.
    Serve {
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Any configuration key, `key=value` (repeatable; overrides the file and AUTHMD_REF_*).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Listen address (shorthand for `--set listen=ADDR`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// SQLite file or `postgres://` URL (shorthand for `--set database=...`).
        #[arg(long)]
        database: Option<PathBuf>,
        /// Keep the data on a throwaway PostgreSQL cluster started for this run (initdb as an
        /// unprivileged user, a random loopback port; removed when the server stops).
        #[arg(long, conflicts_with = "database")]
        throwaway_postgres: bool,
        /// Serve N instances over the one database behind a round-robin front at the listen
        /// address (the base URL); each instance also answers at its own address.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
        replicas: u16,
        /// SMTP relay for claim mail (shorthand for `--set smtp=HOST:PORT`).
        #[arg(long)]
        smtp: Option<String>,
        /// Switch on a defect (repeatable).
        #[arg(long = "defect")]
        defects: Vec<String>,
        /// List the defects and exit.
        #[arg(long)]
        list_defects: bool,
        /// Request log format on stderr: human or json (filter with RUST_LOG).
        #[arg(long, default_value = "human")]
        log_format: String,
    },
    /// Print the audit events stored in a database.
    Audit {
        /// SQLite file or `postgres://` URL.
        #[arg(long, default_value = "authmd-reference.sqlite")]
        database: PathBuf,
    },
}

/// The mock IdP, with the control token's whereabouts in its banner.
pub async fn idp(command: IdpCommand) -> Result<Ending, Failure> {
    let IdpCommand::Serve(args) = command;
    let token_file = args.token_file.clone();
    let idp = MockIdp::start(args.into_config().map_err(Failure::Usage)?)
        .await
        .map_err(|e| Failure::Usage(e.to_string()))?;
    println!("{}", idp.banner(&token_file));
    wait_for_ctrl_c().await;
    Ok(Ending::Success)
}

/// A zone file on loopback DNS.
pub async fn dns(command: DnsCommand) -> Result<Ending, Failure> {
    let DnsCommand::Serve { zone, origin, listen } = command;
    let text = std::fs::read_to_string(&zone).map_err(|e| Failure::Usage(format!("--zone {}: {e}", zone.display())))?;
    let parsed =
        authmd_dns::Zone::parse(&text, origin.as_deref()).map_err(|e| Failure::Usage(format!("--zone {}: {e}", zone.display())))?;
    let (origin, records) = (parsed.origin(), parsed.len());
    let server = authmd_dns::DnsServer::start(parsed, listen).await.map_err(Failure::Usage)?;
    println!("DNS: zone {origin} ({records} records) on {} (udp and tcp)", server.addr());
    wait_for_ctrl_c().await;
    Ok(Ending::Success)
}

/// The SMTP sink, printing each arrival.
pub async fn mailbox(command: MailboxCommand) -> Result<Ending, Failure> {
    let MailboxCommand::Serve { listen } = command;
    let mailbox = Mailbox::start(listen).await.map_err(|e| Failure::Usage(e.to_string()))?;
    println!("mock mailbox: SMTP on {}", mailbox.addr());
    // Woken by arrivals, not by a timer; only what is new is copied, and a sender's subject or
    // address never reaches the terminal as an escape sequence.
    let (mut next, mut dropped) = (0, 0);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = mailbox.arrival_after(next) => {
                let (messages, received) = mailbox.messages_from(next);
                for m in &messages {
                    println!("mail to {}: {}", inert(&m.to.join(", "), false), inert(&m.subject, false));
                }
                let (_, now_dropped) = mailbox.counts();
                if now_dropped > dropped {
                    println!("({} older messages dropped to stay within the mailbox's memory)", now_dropped - dropped);
                    dropped = now_dropped;
                }
                next = received;
            }
        }
    }
    Ok(Ending::Success)
}

/// The reference server, or its stored audit events.
pub async fn reference(command: ReferenceCommand) -> Result<Ending, Failure> {
    match command {
        ReferenceCommand::Serve {
            config,
            mut sets,
            listen,
            database,
            throwaway_postgres,
            replicas,
            smtp,
            defects: ids,
            list_defects,
            log_format,
        } => {
            if list_defects {
                for d in Defect::ALL {
                    println!("{:<40} {}", d.id(), d.describe());
                }
                return Ok(Ending::Success);
            }
            sets.extend(listen.map(|l| format!("listen={l}")));
            sets.extend(database.map(|d| format!("database={}", d.display())));
            sets.extend(smtp.map(|s| format!("smtp={s}")));
            let mut cfg = Config::layered(config.as_deref(), &sets).map_err(|e| Failure::Usage(e.to_string()))?;
            authmd_reference_server::init_logging(&log_format).map_err(Failure::Usage)?;
            if throwaway_postgres {
                let url = authmd_reference_server::pg_cluster::throwaway_database()
                    .await
                    .map_err(|e| Failure::Usage(format!("--throwaway-postgres: {e}")))?;
                cfg.database = PathBuf::from(url);
            }
            let defects = defects(&ids)?;
            if replicas > 1 {
                return serve_replicas(cfg, defects, usize::from(replicas)).await;
            }
            let server = ReferenceServer::start(cfg, defects)
                .await
                .map_err(|e| Failure::Usage(e.to_string()))?;
            println!("reference server listening on {}", server.base_url());
            // The AID records, as zone-file lines to paste into the zone `dns serve` serves.
            for r in server.aid_records() {
                let strings: Vec<String> = r
                    .txt
                    .as_bytes()
                    .chunks(255)
                    .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                    .collect();
                println!("AID record: {}. {} IN TXT {}", r.owner, r.ttl, strings.join(" "));
            }
            wait_for_ctrl_c().await;
            Ok(Ending::Success)
        }
        ReferenceCommand::Audit { database } => {
            if !authmd_reference_server::store::Location::of(&database).is_postgres() && !database.exists() {
                return Err(Failure::Usage(format!("--database {}: no such file", database.display())));
            }
            let events = authmd_reference_server::audit_events(&database)
                .await
                .map_err(|e| Failure::Usage(e.to_string()))?;
            for e in events {
                println!("{e}");
            }
            Ok(Ending::Success)
        }
    }
}

/// `reference serve --replicas N`: N instances over one database, behind a round-robin front at
/// the listen address, as a load balancer would stand before them; each is also reachable at
/// its own address (what a target config's `[replicas]` names).
async fn serve_replicas(mut cfg: Config, defects: authmd_reference_server::Defects, replicas: usize) -> Result<Ending, Failure> {
    let front = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let front_addr = front.local_addr().map_err(|e| Failure::Usage(e.to_string()))?;
    if cfg.https || cfg.tls_cert.is_some() {
        return Err(Failure::Usage(
            "--replicas serves plain HTTP behind its front; drop https and tls_cert".into(),
        ));
    }
    cfg.base_url.get_or_insert_with(|| format!("http://{front_addr}"));
    // Counted in the shared database, a burst spread over the replicas meets the one limit.
    cfg.rate.shared.get_or_insert(true);
    cfg.listen = SocketAddr::new(front_addr.ip(), 0);
    let mut servers = Vec::new();
    for _ in 0..replicas {
        let server = ReferenceServer::start(cfg.clone(), defects.clone())
            .await
            .map_err(|e| Failure::Usage(e.to_string()))?;
        servers.push(server);
    }
    let upstreams: Vec<SocketAddr> = servers.iter().map(ReferenceServer::addr).collect();
    let _front = authmd_conformance::latency::DelayProxy::forward_to_each(front, upstreams.clone(), std::time::Duration::ZERO);
    let own: Vec<String> = upstreams.iter().map(|a| format!("http://{a}")).collect();
    println!(
        "reference server listening on {} ({replicas} replicas behind a round-robin front)",
        servers[0].base_url()
    );
    println!("replicas: {}", own.join(" "));
    println!(
        "target config: [replicas] origins = [{}]",
        own.iter().map(|o| format!("\"{o}\"")).collect::<Vec<_>>().join(", ")
    );
    wait_for_ctrl_c().await;
    Ok(Ending::Success)
}
