//! Tests of `RecipientReader`: round trips of generated files in every dialect, and a
//! table of malformed files with the exact error or rejections each must produce.

use proptest::prelude::*;

use super::{ImportError, ImportOptions, RecipientReader, Rejection};
use crate::store::RecipientBatch;

/// A valid row as read back: id, address, values.
type Row = (i64, String, Vec<String>);

struct ReadBack {
    columns: Vec<String>,
    rows: Vec<Row>,
    rejections: Vec<Rejection>,
}

fn read_all(input: &[u8], options: &ImportOptions) -> Result<ReadBack, ImportError> {
    let mut reader = RecipientReader::new(input, options)?;
    let columns = reader.columns().to_vec();
    let mut batch = RecipientBatch::new(columns.len());
    let (mut rows, mut rejections) = (Vec::new(), Vec::new());
    let mut reject = |r: Rejection| {
        rejections.push(r);
        Ok(())
    };
    loop {
        let more = reader.fill(&mut batch, options.batch_rows, &mut reject)?;
        assert!(batch.len() <= options.batch_rows);
        rows.extend(batch.rows().map(|r| {
            let values = r.values().map(str::to_owned).collect();
            (r.id().0, r.email().to_owned(), values)
        }));
        batch.clear();
        if !more {
            break;
        }
    }
    assert_eq!(
        reader.rows_read(),
        (rows.len() + rejections.len()) as u64,
        "every data row is either loaded or rejected"
    );
    Ok(ReadBack {
        columns,
        rows,
        rejections,
    })
}

fn small_batches() -> ImportOptions {
    ImportOptions {
        batch_rows: 2,
        max_field_size: 20,
        ..ImportOptions::default()
    }
}

fn rejection(line: u64, column: Option<&str>, email: Option<&str>, reason: &str) -> Rejection {
    Rejection {
        line,
        column: column.map(str::to_owned),
        email: email.map(str::to_owned),
        reason: reason.to_owned(),
    }
}

const CONTROL: &str = "line breaks and control characters other than tab are not allowed in values";

#[test]
fn malformed_rows_are_rejected_with_line_column_and_reason() {
    let input = "email,name,city\n\
        ann@example.com,Ann,Oslo\n\
        bob@example.com,Bob\n\
        carl@example.com,Carl,Llanfairpwllgwyngyllg\n\
        dora@example.com,\"Do\nra\",Rome\n\
        eve@example.com,Eve\x01,Rome\n\
        not-an-address,Fay,Rome\n\
        \x20 ,Gus,Rome\n\
        ANN@Example.com,Ann again,Oslo\n\
        \x20hal@Example.COM\t,Hal,Rome\n\
        ida@example.com,\"Ida \"\"I\"\", x\",Rome\n\
        jo@example.com,J\0o,\"R\rome\"\n\
        ann@example.com,Ann third,Oslo\n";
    let read = read_all(input.as_bytes(), &small_batches()).expect("readable");
    assert_eq!(read.columns, ["name", "city"]);
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        read.rows,
        vec![
            (1, "ann@example.com".into(), strings(&["Ann", "Oslo"])),
            (2, "hal@example.com".into(), strings(&["Hal", "Rome"])),
            (
                3,
                "ida@example.com".into(),
                strings(&["Ida \"I\", x", "Rome"])
            ),
        ]
    );
    let too_long = "the value is 21 bytes long; at most 20 bytes are allowed";
    assert_eq!(
        read.rejections,
        vec![
            rejection(
                3,
                None,
                Some("bob@example.com"),
                "expected 3 fields, found 2"
            ),
            rejection(4, Some("city"), Some("carl@example.com"), too_long),
            rejection(
                5,
                Some("name"),
                Some("dora@example.com"),
                &format!("the value contains a line break (LF); {CONTROL}")
            ),
            rejection(
                7,
                Some("name"),
                Some("eve@example.com"),
                &format!("the value contains the control character U+0001; {CONTROL}")
            ),
            rejection(
                8,
                Some("email"),
                Some("not-an-address"),
                "the address has no '@'"
            ),
            rejection(9, Some("email"), None, "the address is empty"),
            rejection(
                10,
                Some("email"),
                Some("ANN@Example.com"),
                "duplicate of line 2"
            ),
            rejection(
                13,
                Some("name"),
                Some("jo@example.com"),
                &format!("the value contains a NUL character; {CONTROL}")
            ),
            rejection(
                14,
                Some("email"),
                Some("ann@example.com"),
                "duplicate of line 2"
            ),
        ]
    );
}

#[test]
fn a_carriage_return_inside_a_quoted_value_is_named_precisely() {
    let read = read_all(
        b"email;note\r\nann@example.com;\"a\rb\"\r\n",
        &small_batches(),
    )
    .expect("readable");
    assert_eq!(
        read.rejections,
        vec![rejection(
            2,
            Some("note"),
            Some("ann@example.com"),
            &format!("the value contains a line break (CR); {CONTROL}")
        )]
    );
}

/// Files that cannot be imported at all, each with its exact message.
#[test]
fn malformed_files_fail_with_an_exact_message() {
    let utf16 =
        "the file is UTF-16 (little-endian) encoded; save it as UTF-8 (\"CSV UTF-8\" in Excel)";
    let cases: &[(&str, &[u8], String)] = &[
        (
            "empty file",
            b"",
            "line 1: the file is empty; a header row naming the columns is required".into(),
        ),
        (
            "only a byte order mark and blank lines",
            b"\xEF\xBB\xBF\n\r\n",
            "line 1: the file is empty; a header row naming the columns is required".into(),
        ),
        (
            "no email column",
            b"name;city\nAnn;Oslo\n",
            "line 1: no column is named \"email\"; the columns found are: \"name\", \"city\""
                .into(),
        ),
        (
            "duplicate header",
            b"Email,Name, name \n",
            "line 1, column 3: the column name \"name\" repeats column 2 (\"Name\"); \
             column names must be unique, ignoring case"
                .into(),
        ),
        (
            "empty column name",
            b"email,,city\n",
            "line 1, column 2: the column has no name; every column needs a name in the \
             header row"
                .into(),
        ),
        (
            "too many columns",
            b"email,a,b,c\n",
            "line 1: the header has 4 columns; at most 3 are allowed".into(),
        ),
        (
            "UTF-16 LE byte order mark",
            b"\xFF\xFEe\0m\0",
            format!("line 1: {utf16}"),
        ),
        (
            "UTF-16 BE byte order mark",
            b"\xFE\xFF\0e\0m",
            format!("line 1: {}", utf16.replace("little", "big")),
        ),
        (
            "UTF-16 without a byte order mark",
            b"e\0m\0a\0i\0l\0\n\0",
            "line 1, column 1: the header contains NUL bytes; the file looks like UTF-16 \
             — save it as UTF-8"
                .into(),
        ),
        (
            "Latin-1 byte in row 3",
            b"email,name\na@example.com,Ann\n\"b@example.com\",\"Jos\xE9\"\n",
            "line 3, column 2: not valid UTF-8 (byte 0xE9); the file looks like Latin-1 or \
             Windows-1252 — save it as UTF-8"
                .into(),
        ),
        (
            "unterminated quote at the end of the file",
            b"email,name\na@example.com,Ann\nb@example.com,\"Bob\nc@example.com,Cy\n",
            "line 3, column 2: a quoted field is not closed before the end of the file \
             (a '\"' is missing)"
                .into(),
        ),
        (
            "unterminated quote without a final line break",
            b"email,name\nb@example.com,\"Bob",
            "line 2, column 2: a quoted field is not closed before the end of the file \
             (a '\"' is missing)"
                .into(),
        ),
    ];
    let options = ImportOptions {
        max_columns: 3,
        ..ImportOptions::default()
    };
    for (name, input, expected) in cases {
        match read_all(input, &options) {
            Ok(read) => panic!("{name}: accepted, rejections {:?}", read.rejections),
            Err(e) => assert_eq!(e.to_string(), *expected, "{name}"),
        }
    }
}

#[test]
fn a_runaway_quoted_field_is_stopped_before_it_fills_memory() {
    let mut input = b"email,name\na@example.com,\"".to_vec();
    input.extend(b"x,y\n".repeat(100_000));
    let options = ImportOptions {
        max_columns: 2,
        max_field_size: 100,
        ..ImportOptions::default()
    };
    let error = read_all(&input, &options).err().expect("refused");
    assert_eq!(
        error.in_file("list.csv").to_string(),
        "list.csv: line 2: a record is longer than 2 columns of 100 bytes can be; \
         a quoted field is probably not closed (a '\"' is missing)"
    );
}

#[test]
fn a_declared_delimiter_overrides_detection_and_the_email_column_name_is_configurable() {
    let options = ImportOptions {
        delimiter: Some(b'|'),
        email_column: " E-Mail ".into(),
        ..ImportOptions::default()
    };
    let read = read_all(b"name,x|e-mail\nAnn,1|ann@example.com\n", &options).expect("readable");
    assert_eq!(read.columns, ["name,x"]);
    assert_eq!(
        read.rows,
        vec![(1, "ann@example.com".into(), vec!["Ann,1".to_string()])]
    );
}

#[test]
fn a_header_only_file_has_no_rows_and_progress_counts_the_bom() {
    let input = b"\xEF\xBB\xBFemail\tfirst name\n";
    let mut reader = RecipientReader::new(&input[..], &ImportOptions::default()).expect("ok");
    assert_eq!(reader.columns(), ["first name"]);
    let mut batch = RecipientBatch::new(1);
    let more = reader.fill(&mut batch, 10, &mut |_| Ok(())).expect("ok");
    assert!(!more && batch.is_empty());
    assert_eq!(reader.bytes_read(), input.len() as u64);
}

/// One generated row: what is written and what reading it must give.
#[derive(Debug, Clone)]
enum Gen {
    Valid,
    /// An address without '@'.
    BadAddress,
    /// A value with a line break, quoted over several lines.
    Multiline(&'static str),
    /// The address of an earlier valid row, upper-cased.
    Duplicate,
}

fn gen_kind() -> impl Strategy<Value = Gen> {
    prop_oneof![
        6 => Just(Gen::Valid),
        1 => Just(Gen::BadAddress),
        1 => prop::sample::select(vec!["\n", "\r\n", "\r"]).prop_map(Gen::Multiline),
        1 => Just(Gen::Duplicate),
    ]
}

#[derive(Debug, Clone)]
struct Dialect {
    delimiter: u8,
    declared: bool,
    always_quote: bool,
    crlf: bool,
    bom: bool,
}

fn dialect() -> impl Strategy<Value = Dialect> {
    (
        prop::sample::select(vec![b',', b';', b'\t', b'|']),
        any::<(bool, bool, bool, bool)>(),
    )
        .prop_map(|(delimiter, (declared, always_quote, crlf, bom))| Dialect {
            delimiter,
            declared,
            always_quote,
            crlf,
            bom,
        })
}

type GenRow = (Gen, String, Vec<String>, bool);

fn gen_rows(values: usize) -> impl Strategy<Value = Vec<GenRow>> {
    let row = (
        gen_kind(),
        "[a-z0-9+_-]{1,8}",
        prop::collection::vec("\\PC{0,10}", values),
        any::<bool>(),
    );
    prop::collection::vec(row, 0..25)
}

/// Writes `rows` in `dialect`; returns the file and what reading it must give.
fn write_file(
    dialect: &Dialect,
    email_at: usize,
    values: usize,
    rows: &[GenRow],
) -> (Vec<u8>, Vec<String>, Vec<Row>, Vec<Rejection>) {
    let style = if dialect.always_quote {
        csv::QuoteStyle::Always
    } else {
        csv::QuoteStyle::Necessary
    };
    let terminator = if dialect.crlf {
        csv::Terminator::CRLF
    } else {
        csv::Terminator::Any(b'\n')
    };
    let mut out = csv::WriterBuilder::new()
        .delimiter(dialect.delimiter)
        .quote_style(style)
        .terminator(terminator)
        .from_writer(if dialect.bom {
            b"\xEF\xBB\xBF".to_vec()
        } else {
            Vec::new()
        });
    let columns: Vec<String> = (0..values).map(|i| format!("Col {i}")).collect();
    let mut header = columns.clone();
    header.insert(email_at, "Email".into());
    out.write_record(&header).expect("write");
    let (mut expected, mut rejections) = (Vec::<Row>::new(), Vec::new());
    let mut first_lines = Vec::new();
    for (i, (kind, local, row_values, padded)) in rows.iter().enumerate() {
        out.flush().expect("flush");
        let line = 1 + out.get_ref().iter().filter(|&&b| b == b'\n').count() as u64;
        let mut kind = kind.clone();
        if matches!(kind, Gen::Multiline(_)) && values == 0
            || matches!(kind, Gen::Duplicate) && expected.is_empty()
        {
            kind = Gen::Valid;
        }
        let mut email = format!("{local}.{i}@Example.com");
        let mut row_values = row_values.clone();
        let reject = |column: Option<&str>, email: &str, reason: String| Rejection {
            line,
            column: column.map(str::to_owned),
            email: Some(email.to_owned()),
            reason,
        };
        match kind {
            Gen::Valid => {
                let id = expected.len() as i64 + 1;
                expected.push((id, email.to_lowercase(), row_values.clone()));
                first_lines.push(line);
            }
            Gen::BadAddress => {
                email = format!("{local}.{i}");
                rejections.push(reject(
                    Some("Email"),
                    &email,
                    "the address has no '@'".into(),
                ));
            }
            Gen::Multiline(brk) => {
                row_values[0] = format!("a{brk}b");
                let what = if brk.starts_with('\r') { "CR" } else { "LF" };
                let reason = format!("the value contains a line break ({what}); {CONTROL}");
                rejections.push(reject(Some("Col 0"), &email, reason));
            }
            Gen::Duplicate => {
                let k = local.len() % expected.len();
                email = expected[k].1.to_uppercase();
                let reason = format!("duplicate of line {}", first_lines[k]);
                rejections.push(reject(Some("Email"), &email, reason));
            }
        }
        let mut record = row_values;
        record.insert(
            email_at,
            if *padded {
                format!(" {email}\t")
            } else {
                email
            },
        );
        out.write_record(&record).expect("write");
    }
    let bytes = out.into_inner().expect("flush");
    (bytes, columns, expected, rejections)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_files_read_back_exactly_in_every_dialect(
        (values, email_at) in (0usize..4).prop_flat_map(|v| (Just(v), 0..=v)),
        rows in (0usize..4).prop_flat_map(gen_rows),
        dialect in dialect(),
        batch_rows in 1usize..5,
    ) {
        // Rows were generated for some width; fit them to this file's width.
        let rows: Vec<GenRow> = rows
            .into_iter()
            .map(|(k, l, mut v, p)| { v.resize(values, "v".into()); (k, l, v, p) })
            .collect();
        let (bytes, columns, expected, rejections) = write_file(&dialect, email_at, values, &rows);
        let options = ImportOptions {
            delimiter: dialect.declared.then_some(dialect.delimiter),
            batch_rows,
            ..ImportOptions::default()
        };
        let read = read_all(&bytes, &options).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(read.columns, columns);
        prop_assert_eq!(read.rows, expected);
        prop_assert_eq!(read.rejections, rejections);
    }
}
