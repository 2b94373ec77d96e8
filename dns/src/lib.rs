//! A loopback DNS server for a zone: hickory-server's in-memory authority behind a UDP and a
//! TCP listener on one port (TCP carries answers too large for a UDP datagram). The bundled
//! stack serves the reference server's `_agent` record with it, `dns serve` a zone file, and
//! tests hostile zones. Neutral plumbing: it serves what it is given and knows no AID rules.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::ServerFuture;
use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, AAAA, SOA, TXT};
use hickory_server::proto::rr::{Name, RData, Record};
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::store::in_memory::InMemoryAuthority;

/// The records of one zone.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: Name,
    records: Vec<Record>,
}

fn name(text: &str) -> Result<Name, String> {
    let fqdn = if text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    };
    Name::from_str(&fqdn).map_err(|e| format!("`{text}` is not a domain name: {e}"))
}

impl Zone {
    /// An empty zone for `origin`, with its SOA.
    pub fn new(origin: &str) -> Result<Self, String> {
        let origin = name(origin)?;
        let soa = SOA::new(
            name(&format!("ns.{origin}"))?,
            name(&format!("hostmaster.{origin}"))?,
            1,
            3600,
            600,
            86400,
            60,
        );
        Ok(Self {
            records: vec![Record::from_rdata(origin.clone(), 300, RData::SOA(soa))],
            origin,
        })
    }

    /// Parses an RFC 1035 master file. `origin` is used where the file has no `$ORIGIN`.
    pub fn parse(text: &str, origin: Option<&str>) -> Result<Self, String> {
        let origin = origin.map(name).transpose()?;
        let (origin, sets) = Parser::new(text, None, origin).parse().map_err(|e| format!("zone file: {e}"))?;
        let records = sets.values().flat_map(|set| set.records_without_rrsigs().cloned()).collect();
        Ok(Self { origin, records })
    }

    /// The zone's origin, without the trailing dot.
    pub fn origin(&self) -> String {
        self.origin.to_string().trim_end_matches('.').to_string()
    }

    /// Adds a TXT record of `strings` (each at most 255 bytes, as on the wire) at `owner`.
    pub fn txt(&mut self, owner: &str, ttl: u32, strings: Vec<Vec<u8>>) -> Result<(), String> {
        if let Some(long) = strings.iter().find(|s| s.len() > 255) {
            return Err(format!("a TXT string of {} bytes (at most 255)", long.len()));
        }
        let rdata = TXT::from_bytes(strings.iter().map(Vec::as_slice).collect());
        self.records.push(Record::from_rdata(name(owner)?, ttl, RData::TXT(rdata)));
        Ok(())
    }

    /// Adds a TXT record holding `text`, split into 255-byte strings the way DNS carries it.
    pub fn txt_text(&mut self, owner: &str, ttl: u32, text: &str) -> Result<(), String> {
        let strings = text.as_bytes().chunks(255).map(<[u8]>::to_vec).collect();
        self.txt(owner, ttl, strings)
    }

    /// Adds an address record at `owner`.
    pub fn address(&mut self, owner: &str, ttl: u32, ip: IpAddr) -> Result<(), String> {
        let rdata = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.records.push(Record::from_rdata(name(owner)?, ttl, rdata));
        Ok(())
    }

    /// How many records the zone holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the zone holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// A running DNS server. Dropping it stops it.
pub struct DnsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Serves `zone` on `listen` (UDP and TCP, one port; port 0 picks a free one).
    pub async fn start(zone: Zone, listen: SocketAddr) -> Result<Self, String> {
        let mut authority = InMemoryAuthority::empty(zone.origin.clone(), ZoneType::Primary, false);
        for record in zone.records {
            authority.upsert_mut(record, 1);
        }
        let mut catalog = Catalog::new();
        catalog.upsert(zone.origin.into(), vec![Arc::new(authority)]);
        let mut server = ServerFuture::new(catalog);
        // The TCP listener must take the UDP socket's port; a random port may be taken for TCP,
        // so try a few.
        let mut last = String::new();
        for _ in 0..16 {
            let udp = tokio::net::UdpSocket::bind(listen)
                .await
                .map_err(|e| format!("cannot bind udp {listen}: {e}"))?;
            let addr = udp.local_addr().map_err(|e| e.to_string())?;
            match tokio::net::TcpListener::bind(addr).await {
                Ok(tcp) => {
                    server.register_socket(udp);
                    server.register_listener(tcp, Duration::from_secs(5));
                    let task = tokio::spawn(async move {
                        let _ = server.block_until_done().await;
                    });
                    return Ok(Self { addr, task });
                }
                Err(e) => last = format!("cannot bind tcp {addr}: {e}"),
            }
            if listen.port() != 0 {
                break;
            }
        }
        Err(last)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_zone_file_and_refuses_a_broken_one() {
        let zone = Zone::parse(
            "$ORIGIN authmd.test.\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n_agent.svc IN TXT \"v=aid1;p=mcp;u=https://svc.authmd.test/mcp\"\nsvc IN A 127.0.0.1\n",
            None,
        )
        .expect("zone");
        assert_eq!(zone.origin(), "authmd.test");
        assert_eq!(zone.len(), 3);
        assert!(Zone::parse("@ IN TXT", Some("x.test")).is_err());
    }

    #[test]
    fn refuses_an_overlong_txt_string() {
        let mut zone = Zone::new("authmd.test").expect("zone");
        assert!(zone.txt("_agent.authmd.test", 300, vec![vec![b'a'; 256]]).is_err());
        assert!(zone.txt_text("_agent.authmd.test", 300, &"a".repeat(600)).is_ok());
    }
}
