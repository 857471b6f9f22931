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
    address_at(i, &format!("d{}.example", i % domains.max(1)))
}

/// The address of generated recipient `i` at `domain`.
pub fn address_at(i: u64, domain: &str) -> String {
    format!("firstname.lastname{i}@{domain}")
}

/// The recipient number in a generated address (`firstname.lastname<i>@…`).
pub fn index_of(address: &str) -> Option<u64> {
    address
        .strip_prefix("firstname.lastname")?
        .split_once('@')?
        .0
        .parse()
        .ok()
}

/// The values of row `i` (1-based) in [`COLUMNS`] order after the email, so a
/// checker can tell what a recipient's message must say.
pub fn fields(i: u64) -> [String; 9] {
    let k = i as usize;
    let (city, country) = CITIES[k % CITIES.len()];
    [
        FIRST[k % FIRST.len()].to_owned(),
        LAST[(k / 8) % LAST.len()].to_owned(),
        city.to_owned(),
        country.to_owned(),
        format!("{} {}", STREETS[k % STREETS.len()], 1 + (i * 7919) % 250),
        format!("C{i:09}"),
        SEGMENTS[k % SEGMENTS.len()].to_owned(),
        format!("2025-{:02}-{:02}", 1 + k % 12, 1 + k % 28),
        ((i * 31) % 1000).to_string(),
    ]
}

/// The value of column `name` in row `i`; `None` for an unknown column.
pub fn field(i: u64, name: &str, domain: &str) -> Option<String> {
    if name == "email" {
        return Some(address_at(i, domain));
    }
    let at = COLUMNS.iter().position(|c| *c == name)?;
    fields(i).into_iter().nth(at - 1)
}

/// Writes `rows` recipients (plus a header) spread over 20 domains; returns the size.
pub fn write_recipients(path: &Path, rows: u64) -> std::io::Result<u64> {
    write_recipients_over(path, rows, 20)
}

/// Like `write_recipients`, with `domains` domains `d<n>.example` (loopback-routed in
/// every test setup; `.example` never resolves on the internet).
pub fn write_recipients_over(path: &Path, rows: u64, domains: u64) -> std::io::Result<u64> {
    write_recipients_with(path, rows, |i| address(i, domains))
}

/// Writes `rows` recipients whose addresses `address_of(i)` gives; returns the size.
pub fn write_recipients_with(
    path: &Path,
    rows: u64,
    address_of: impl Fn(u64) -> String,
) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(out, "{}", COLUMNS.join(","))?;
    for i in 1..=rows {
        let f = fields(i);
        writeln!(
            out,
            "{},{},{},{},{},\"{}\",{},{},{},{}",
            address_of(i),
            f[0],
            f[1],
            f[2],
            f[3],
            f[4],
            f[5],
            f[6],
            f[7],
            f[8],
        )?;
    }
    out.flush()?;
    Ok(out.get_ref().metadata()?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_row_reads_back_as_its_fields() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = dir.path().join("r.csv");
        write_recipients_over(&path, 3, 2).expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        let row = text.lines().nth(2).expect("row 2");
        assert!(row.starts_with("firstname.lastname2@d0.example,"), "{row}");
        assert!(row.contains(&field(2, "customer_id", "d0.example").expect("column")));
        assert_eq!(index_of(&address(2, 2)), Some(2));
        assert_eq!(index_of("someone@else.example"), None);
        assert_eq!(field(2, "nonexistent", "d0.example"), None);
    }
}
