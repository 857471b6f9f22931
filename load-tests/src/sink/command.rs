//! SMTP command-line parsing: borrowed slices of the line, no allocation.

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    Ehlo(&'a str),
    Helo(&'a str),
    Mail {
        from: &'a str,
        /// The client's `SIZE=` declaration, checked before the body is sent.
        size: Option<u64>,
    },
    Rcpt(&'a str),
    Data,
    Rset,
    Noop,
    Quit,
    StartTls,
    Vrfy,
    Help,
    /// A known verb with bad arguments; the text goes into a 501.
    Syntax(&'static str),
    Unknown,
}

/// Parses one line without its CRLF.
pub(crate) fn parse(line: &str) -> Command<'_> {
    let (verb, args) = line.split_once(' ').unwrap_or((line, ""));
    let args = args.trim();
    let is = |name: &str| verb.eq_ignore_ascii_case(name);
    if is("EHLO") || is("HELO") {
        if args.is_empty() {
            return Command::Syntax("Syntax: EHLO hostname");
        }
        return if is("EHLO") {
            Command::Ehlo(args)
        } else {
            Command::Helo(args)
        };
    }
    if is("MAIL") {
        return parse_mail(args);
    }
    if is("RCPT") {
        return match parse_path(args, "TO:") {
            Some((rcpt, _)) if !rcpt.is_empty() => Command::Rcpt(rcpt),
            _ => Command::Syntax("Syntax: RCPT TO:<address>"),
        };
    }
    let no_args = |command: Command<'static>| {
        if args.is_empty() {
            command
        } else {
            Command::Syntax("No parameters allowed")
        }
    };
    match () {
        () if is("DATA") => no_args(Command::Data),
        () if is("RSET") => no_args(Command::Rset),
        () if is("QUIT") => no_args(Command::Quit),
        () if is("STARTTLS") => no_args(Command::StartTls),
        () if is("NOOP") => Command::Noop,
        () if is("VRFY") => Command::Vrfy,
        () if is("HELP") => Command::Help,
        () => Command::Unknown,
    }
}

fn parse_mail(args: &str) -> Command<'_> {
    let Some((from, params)) = parse_path(args, "FROM:") else {
        return Command::Syntax("Syntax: MAIL FROM:<address>");
    };
    let mut size = None;
    for param in params.split_ascii_whitespace() {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        if key.eq_ignore_ascii_case("SIZE") {
            match value.parse() {
                Ok(n) => size = Some(n),
                Err(_) => return Command::Syntax("Bad SIZE parameter"),
            }
        } else if key.eq_ignore_ascii_case("BODY")
            && !(value.eq_ignore_ascii_case("8BITMIME") || value.eq_ignore_ascii_case("7BIT"))
        {
            return Command::Syntax("BODY must be 7BIT or 8BITMIME");
        }
        // Other parameters (SMTPUTF8, DSN's RET/ENVID) are accepted and
        // ignored: the sink records, it does not relay.
    }
    Command::Mail { from, size }
}

/// Splits `FROM:<addr> params` into the address (brackets removed) and the
/// parameters. A bare address without brackets is tolerated, as most servers do.
fn parse_path<'a>(args: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let head = args.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = args[prefix.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        let path = &inner[..end];
        // Drop an RFC 5321 source route (`@a,@b:user@d`).
        let address = path.rsplit_once(':').map_or(path, |(_, a)| a);
        Some((address, inner[end + 1..].trim()))
    } else {
        let (address, params) = rest.split_once(' ').unwrap_or((rest, ""));
        (!address.is_empty()).then_some((address, params.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_from_takes_its_address_and_size_parameter() {
        assert_eq!(
            parse("mail from:<a@b.example> SIZE=1234 BODY=8BITMIME"),
            Command::Mail {
                from: "a@b.example",
                size: Some(1234)
            }
        );
        assert_eq!(
            parse("MAIL FROM:<>"),
            Command::Mail {
                from: "",
                size: None
            }
        );
    }

    #[test]
    fn rcpt_to_accepts_brackets_spaces_and_source_routes() {
        assert_eq!(parse("RCPT TO: <x@y>"), Command::Rcpt("x@y"));
        assert_eq!(parse("RCPT TO:<@relay:x@y>"), Command::Rcpt("x@y"));
        assert_eq!(parse("RCPT TO:x@y"), Command::Rcpt("x@y"));
        assert!(matches!(parse("RCPT TO:<>"), Command::Syntax(_)));
        assert!(matches!(parse("RCPT x@y"), Command::Syntax(_)));
    }

    #[test]
    fn verbs_are_case_insensitive_and_unknown_ones_are_reported() {
        assert_eq!(parse("data"), Command::Data);
        assert_eq!(parse("StartTLS"), Command::StartTls);
        assert_eq!(parse("EXPN list"), Command::Unknown);
        assert!(matches!(parse("DATA now"), Command::Syntax(_)));
        assert!(matches!(parse("EHLO"), Command::Syntax(_)));
        assert!(matches!(
            parse("MAIL FROM:<a@b> SIZE=lots"),
            Command::Syntax(_)
        ));
    }
}
