//! Deterministic recipient CSV files for benchmarks and demos: ten columns, about
//! 120 bytes a row, addresses spread over a set of domains.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

pub const COLUMNS: [&str; 10] = [
    "email",
    "first_name",
    "last_name",
    "city",
    "country",
    "street",
    "customer_id",
    "segment",
    "signup_date",
    "score",
];

const FIRST: [&str; 8] = [
    "Anna", "Ben", "Chloé", "David", "Emma", "Farid", "Greta", "Hiro",
];
const LAST: [&str; 8] = [
    "Meyer", "Okafor", "Nakamura", "Rossi", "Schmidt", "Dubois", "Kowalski", "Silva",
];
const CITIES: [(&str, &str); 6] = [
    ("Berlin", "DE"),
    ("Lisboa", "PT"),
    ("Kraków", "PL"),
    ("Lyon", "FR"),
    ("Osaka", "JP"),
    ("Austin", "US"),
];
const SEGMENTS: [&str; 4] = [
    "new-subscriber",
    "active-buyer",
    "lapsed-customer",
    "vip-member",
];
const STREETS: [&str; 6] = [
    "Kastanienallee",
    "Rua Augusta",
    "ulica Floriańska",
    "Rue de la République",
    "Shinsaibashi-suji",
    "South Congress Avenue",
];

/// The address of generated recipient `i` (1-based) when spread over `domains`
/// domains, so tests can check deliveries against what was generated.
pub fn address(i: u64, domains: u64) -> String {
    format!("firstname.lastname{i}@d{}.example", i % domains.max(1))
}

/// Writes `rows` recipients (plus a header) spread over 20 domains; returns the size.
pub fn write_recipients(path: &Path, rows: u64) -> std::io::Result<u64> {
    write_recipients_over(path, rows, 20)
}

/// Like `write_recipients`, with `domains` domains `d<n>.example` (loopback-routed in
/// every test setup; `.example` never resolves on the internet).
pub fn write_recipients_over(path: &Path, rows: u64, domains: u64) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(out, "{}", COLUMNS.join(","))?;
    for i in 1..=rows {
        let k = i as usize;
        let (city, country) = CITIES[k % CITIES.len()];
        writeln!(
            out,
            "{},{},{},{city},{country},\"{} {}\",C{:09},{},2025-{:02}-{:02},{}",
            address(i, domains),
            FIRST[k % FIRST.len()],
            LAST[(k / 8) % LAST.len()],
            STREETS[k % STREETS.len()],
            1 + (i * 7919) % 250,
            i,
            SEGMENTS[k % SEGMENTS.len()],
            1 + k % 12,
            1 + k % 28,
            (i * 31) % 1000,
        )?;
    }
    out.flush()?;
    Ok(out.get_ref().metadata()?.len())
}
