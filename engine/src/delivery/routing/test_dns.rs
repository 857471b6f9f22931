//! A tiny authoritative DNS server on a loopback UDP port serving a fixed test
//! zone, so routing tests exercise real DNS packets through hickory without
//! touching the internet. It counts the questions it gets, which is how the
//! cache tests see whether a lookup reached the network.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX, SOA};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

type QueryLog = Arc<Mutex<Vec<(String, RecordType)>>>;

/// The server; stops when dropped.
pub(super) struct TestDns {
    addr: SocketAddr,
    queries: QueryLog,
    server: JoinHandle<()>,
}

impl TestDns {
    /// Starts serving the zone with every record's TTL set to `ttl` seconds.
    pub(super) async fn start(ttl: u32) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind test DNS");
        let addr = socket.local_addr().expect("test DNS address");
        let queries = QueryLog::default();
        let server = tokio::spawn(serve(socket, ttl, Arc::clone(&queries)));
        Self {
            addr,
            queries,
            server,
        }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Questions received for `name` (no trailing dot) of type `rtype`.
    pub(super) fn count(&self, name: &str, rtype: RecordType) -> usize {
        let queries = self.queries.lock().expect("query log");
        queries
            .iter()
            .filter(|(n, t)| n == name && *t == rtype)
            .count()
    }

    /// All questions received.
    pub(super) fn total(&self) -> usize {
        self.queries.lock().expect("query log").len()
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(socket: UdpSocket, ttl: u32, queries: QueryLog) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Ok(request) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let response = respond(&request, ttl, &queries);
        let bytes = response.to_vec().expect("encode DNS response");
        let _ = socket.send_to(&bytes, peer).await;
    }
}

/// What the zone says about one question.
enum Zone {
    Records(Vec<RData>),
    /// The name exists, without records of this type.
    NoData,
    NxDomain,
    ServFail,
}

fn zone(name: &str, rtype: RecordType) -> Zone {
    let mx = |preference, exchange: &str| {
        RData::MX(MX::new(
            preference,
            Name::from_ascii(exchange).expect("name"),
        ))
    };
    let a = |a, b, c, d| RData::A(A(Ipv4Addr::new(a, b, c, d)));
    match (name, rtype) {
        // Worse preference first, so the order in the result proves sorting.
        ("mx.example", RecordType::MX) => {
            Zone::Records(vec![mx(20, "mx2.mx.example."), mx(10, "mx1.mx.example.")])
        }
        ("mx1.mx.example", RecordType::A) => Zone::Records(vec![a(192, 0, 2, 1)]),
        ("mx2.mx.example", RecordType::A) => Zone::Records(vec![a(192, 0, 2, 2)]),
        ("mx2.mx.example", RecordType::AAAA) => {
            let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
            Zone::Records(vec![RData::AAAA(AAAA(ip))])
        }
        ("nullmx.example", RecordType::MX) => Zone::Records(vec![mx(0, ".")]),
        ("nomx.example", RecordType::A) => Zone::Records(vec![a(192, 0, 2, 10)]),
        ("route-host.example", RecordType::A) => Zone::Records(vec![a(192, 0, 2, 20)]),
        ("loopmx.example", RecordType::MX) => Zone::Records(vec![mx(10, "loop.example.")]),
        ("loop.example", RecordType::A) => Zone::Records(vec![a(127, 0, 0, 1)]),
        ("partial.example", RecordType::MX) => {
            Zone::Records(vec![mx(10, "servfail.example."), mx(20, "mx1.mx.example.")])
        }
        ("servfail.example", _) => Zone::ServFail,
        (
            "mx.example" | "mx1.mx.example" | "mx2.mx.example" | "nullmx.example" | "nomx.example"
            | "route-host.example" | "loopmx.example" | "loop.example" | "partial.example"
            | "example",
            _,
        ) => Zone::NoData,
        _ => Zone::NxDomain,
    }
}

fn respond(request: &Message, ttl: u32, queries: &QueryLog) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    let Some(query) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(query.clone());
    let name = query.name().to_ascii();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    queries
        .lock()
        .expect("query log")
        .push((name.clone(), query.query_type()));

    match zone(&name, query.query_type()) {
        Zone::Records(data) => {
            let owner = query.name().clone();
            response.add_answers(
                data.into_iter()
                    .map(|rdata| Record::from_rdata(owner.clone(), ttl, rdata)),
            );
        }
        Zone::NoData => {
            response.add_authority(soa(ttl));
        }
        Zone::NxDomain => {
            response.metadata.response_code = ResponseCode::NXDomain;
            response.add_authority(soa(ttl));
        }
        Zone::ServFail => response.metadata.response_code = ResponseCode::ServFail,
    }
    response
}

/// The zone's SOA, which negative answers carry (RFC 2308).
fn soa(ttl: u32) -> Record {
    let name = |s: &str| Name::from_ascii(s).expect("name");
    let data = SOA::new(
        name("ns.example."),
        name("hostmaster.example."),
        1,
        60,
        60,
        600,
        ttl,
    );
    Record::from_rdata(name("example."), ttl, RData::SOA(data))
}
