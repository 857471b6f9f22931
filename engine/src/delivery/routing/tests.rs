//! Router behaviour against real DNS packets from a loopback test zone.

use std::time::Duration;

use hickory_resolver::proto::rr::RecordType;

use super::test_dns::TestDns;
use super::*;

/// Long enough that nothing expires during a test that does not wait for it.
const LONG_TTL: u32 = 300;

fn routes(entries: &[(&str, &str)]) -> RouteTable {
    let entries = entries
        .iter()
        .map(|(domain, target)| RouteConfig::new(*domain, *target))
        .collect::<Vec<_>>();
    RouteTable::from_config(&entries).expect("valid routes")
}

fn router(routes: RouteTable, dns: &TestDns) -> Router {
    Router::new(routes, DnsMode::Servers(vec![dns.addr()])).expect("router")
}

fn addrs(destinations: &[Destination]) -> Vec<String> {
    destinations.iter().map(|d| d.addr.to_string()).collect()
}

fn hosts(destinations: &[Destination]) -> Vec<&str> {
    destinations.iter().map(|d| d.host.as_str()).collect()
}

#[track_caller]
fn assert_permanent(result: Result<Vec<Destination>, DeliveryError>, reason: &str) {
    match result {
        Err(DeliveryError::Permanent { reason: got, .. }) => {
            assert!(got.contains(reason), "{got:?} lacks {reason:?}");
        }
        other => panic!("expected a permanent failure ({reason}), got {other:?}"),
    }
}

#[track_caller]
fn assert_transient(result: Result<Vec<Destination>, DeliveryError>, reason: &str) {
    match result {
        Err(DeliveryError::Transient { reason: got, .. }) => {
            assert!(got.contains(reason), "{got:?} lacks {reason:?}");
        }
        other => panic!("expected a transient failure ({reason}), got {other:?}"),
    }
}

#[tokio::test]
async fn a_configured_route_overrides_dns() {
    let dns = TestDns::start(LONG_TTL).await;
    let router = router(routes(&[("mx.example", "127.0.0.1:2525")]), &dns);

    let found = router.resolve("MX.example").await.expect("routed");

    assert_eq!(addrs(&found), ["127.0.0.1:2525"]);
    assert_eq!(dns.total(), 0, "a routed domain must not be looked up");
}

#[tokio::test]
async fn a_wildcard_route_catches_every_unrouted_domain() {
    let router =
        Router::new(routes(&[("*", "127.0.0.1:2600")]), DnsMode::Disabled).expect("router");

    let found = router.resolve("anything.example").await.expect("routed");

    assert_eq!(addrs(&found), ["127.0.0.1:2600"]);
}

#[tokio::test]
async fn an_exact_route_beats_the_wildcard() {
    let table = routes(&[("*", "127.0.0.1:2600"), ("d1.example", "[::1]:2525")]);
    let router = Router::new(table, DnsMode::Disabled).expect("router");

    let exact = router.resolve("d1.example").await.expect("routed");
    let other = router.resolve("d2.example").await.expect("routed");

    assert_eq!(addrs(&exact), ["[::1]:2525"]);
    assert_eq!(addrs(&other), ["127.0.0.1:2600"]);
}

#[tokio::test]
async fn a_route_to_a_host_name_is_resolved_through_dns_and_keeps_its_tls_mode() {
    let dns = TestDns::start(LONG_TTL).await;
    let table = RouteTable::from_config(&[RouteConfig {
        domain: "d1.example".into(),
        target: "route-host.example:2525".into(),
        tls: Some("required".into()),
    }])
    .expect("routes");
    let router = router(table, &dns);

    let found = router.resolve("d1.example").await.expect("routed");

    assert_eq!(addrs(&found), ["192.0.2.20:2525"]);
    assert_eq!(hosts(&found), ["route-host.example"]);
    assert_eq!(found[0].tls, Some(TlsMode::Required));
}

#[tokio::test]
async fn mx_hosts_come_back_in_preference_order() {
    let dns = TestDns::start(LONG_TTL).await;
    let router = router(RouteTable::new(), &dns);

    let found = router.resolve("mx.example").await.expect("resolved");

    assert_eq!(
        addrs(&found),
        ["192.0.2.1:25", "192.0.2.2:25", "[2001:db8::2]:25"]
    );
    assert_eq!(
        hosts(&found),
        ["mx1.mx.example", "mx2.mx.example", "mx2.mx.example"]
    );
    assert!(found.iter().all(|d| d.tls.is_none()));
}

#[tokio::test]
async fn a_null_mx_is_a_permanent_failure() {
    let dns = TestDns::start(LONG_TTL).await;
    let router = router(RouteTable::new(), &dns);

    assert_permanent(
        router.resolve("nullmx.example").await,
        "domain accepts no mail (null MX)",
    );
}

#[tokio::test]
async fn a_domain_that_does_not_exist_is_a_permanent_failure() {
    let dns = TestDns::start(LONG_TTL).await;
    let router = router(RouteTable::new(), &dns);

    assert_permanent(
        router.resolve("nxdomain.example").await,
        "domain does not exist",
    );
}

#[tokio::test]
async fn a_domain_without_mx_records_receives_mail_at_its_own_address() {
    let dns = TestDns::start(LONG_TTL).await;
    let router = router(RouteTable::new(), &dns);

    let found = router.resolve("nomx.example").await.expect("implicit MX");

    assert_eq!(addrs(&found), ["192.0.2.10:25"]);
    assert_eq!(hosts(&found), ["nomx.example"]);
}

#[tokio::test]
async fn a_dns_server_failure_is_transient() {
    let dns = TestDns::start(LONG_TTL).await;
    let router = router(RouteTable::new(), &dns);

    assert_transient(
        router.resolve("servfail.example").await,
        "MX lookup for servfail.example",
    );
}

#[tokio::test]
async fn an_mx_host_that_fails_to_resolve_is_skipped_and_the_answer_kept_only_briefly() {
    let dns = TestDns::start(LONG_TTL).await;
    let settings = RoutingSettings {
        failure_ttl: Duration::ZERO,
        ..RoutingSettings::default()
    };
    let mode = DnsMode::Servers(vec![dns.addr()]);
    let router = Router::with_settings(RouteTable::new(), mode, settings).expect("router");

    let found = router
        .resolve("partial.example")
        .await
        .expect("one MX works");

    assert_eq!(hosts(&found), ["mx1.mx.example"]);
    assert_eq!(
        router.cache.len(),
        0,
        "a partial answer outlived the failure TTL"
    );
}

#[tokio::test]
async fn an_mx_pointing_at_loopback_is_never_used() {
    let dns = TestDns::start(LONG_TTL).await;
    let router = router(RouteTable::new(), &dns);

    assert_permanent(
        router.resolve("loopmx.example").await,
        "no MX host has an address",
    );
}

#[tokio::test]
async fn answers_are_cached_until_their_ttl_expires() {
    let dns = TestDns::start(1).await;
    let router = router(RouteTable::new(), &dns);

    router.resolve("mx.example").await.expect("first");
    router.resolve("mx.example").await.expect("cached");
    assert_eq!(
        dns.count("mx.example", RecordType::MX),
        1,
        "second resolve hit the network"
    );
    // hickory caches too; this shows the router's own cache holds the answer.
    assert_eq!(router.cache.len(), 1);

    // hickory's clock is std::time, so paused tokio time cannot stand in here.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    router.resolve("mx.example").await.expect("after expiry");
    assert_eq!(
        dns.count("mx.example", RecordType::MX),
        2,
        "expired answer was reused"
    );
}

#[tokio::test]
async fn negative_answers_are_cached_for_the_configured_time() {
    let dns = TestDns::start(LONG_TTL).await;
    let router = router(RouteTable::new(), &dns);

    assert_permanent(router.resolve("nxdomain.example").await, "does not exist");
    assert_permanent(router.resolve("nxdomain.example").await, "does not exist");

    assert_eq!(dns.count("nxdomain.example", RecordType::MX), 1);
    assert_eq!(router.cache.len(), 1);
}

#[tokio::test]
async fn without_dns_an_unrouted_domain_is_deferred() {
    let router = Router::new(
        routes(&[("d1.example", "127.0.0.1:2525")]),
        DnsMode::Disabled,
    )
    .expect("router");

    assert_transient(
        router.resolve("mx.example").await,
        "no route and DNS lookups are disabled",
    );
}

#[test]
fn a_route_to_a_host_name_is_refused_when_dns_is_disabled() {
    let err = Router::new(
        routes(&[("d1.example", "sink.example:2525")]),
        DnsMode::Disabled,
    )
    .expect_err("needs DNS");

    assert!(err.to_string().contains("sink.example"), "{err}");
}

#[tokio::test]
async fn a_route_to_localhost_needs_no_dns() {
    let router = Router::new(
        routes(&[("d1.example", "localhost:2525")]),
        DnsMode::Disabled,
    )
    .expect("router");

    let found = router.resolve("d1.example").await.expect("routed");

    assert_eq!(addrs(&found), ["127.0.0.1:2525"]);
    assert_eq!(hosts(&found), ["localhost"]);
}

#[tokio::test]
async fn an_unreachable_dns_server_is_transient() {
    // A port that was just free: nothing answers there, and the kernel says so.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("free port");
    let settings = RoutingSettings {
        lookup_timeout: Duration::from_millis(200),
        ..RoutingSettings::default()
    };
    let mode = DnsMode::Servers(vec![closed]);
    let router = Router::with_settings(RouteTable::new(), mode, settings).expect("router");

    assert_transient(
        router.resolve("mx.example").await,
        "MX lookup for mx.example failed",
    );
}
