//! Real-world report shapes, from the fixture files the inbound listener tests
//! also deliver with swaks.

use super::*;

fn fixture(name: &str) -> Report {
    let path = format!(
        "{}/tests/fixtures/bounces/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture");
    parse(
        text.replace("%TO_ADDRESS%", "b-00@bounces.acme.example")
            .as_bytes(),
    )
}

fn bounce(name: &str) -> Bounce {
    match fixture(name) {
        Report::Bounce(bounce) => bounce,
        other => panic!("{name}: not a bounce: {other:?}"),
    }
}

#[test]
fn a_postfix_dsn_is_a_hard_bounce_with_its_status_and_diagnostic() {
    let b = bounce("postfix-user-unknown.eml");
    assert_eq!(b.status, "5.1.1");
    assert_eq!(b.class, BounceClass::Hard);
    assert_eq!(
        b.diagnostic.as_deref(),
        Some(
            "550 5.1.1 <ann@a.example>: Recipient address rejected: User unknown in local recipient table"
        )
    );
    assert!(b.suppresses());
}

#[test]
fn an_exim_text_bounce_is_read_before_the_returned_copy() {
    let b = bounce("exim-user-unknown.eml");
    assert_eq!(b.status, "5.1.1");
    assert_eq!(b.class, BounceClass::Hard);
    let diagnostic = b.diagnostic.expect("diagnostic");
    assert!(
        diagnostic.starts_with("550 5.1.1 <ann@a.example>: Recipient address rejected"),
        "{diagnostic}"
    );
}

#[test]
fn an_exim_delay_warning_is_a_soft_bounce_that_does_not_suppress() {
    let b = bounce("exim-delayed-mailbox-full.eml");
    assert_eq!(b.status, "4.2.2");
    assert_eq!(b.class, BounceClass::Soft);
    assert!(!b.suppresses());
}

#[test]
fn a_gmail_style_notice_without_a_report_part_is_read_from_its_text() {
    let b = bounce("gmail-no-such-user.eml");
    assert_eq!(b.status, "5.1.1");
    assert_eq!(b.class, BounceClass::Hard);
    assert!(
        b.diagnostic
            .as_deref()
            .is_some_and(|d| d.starts_with("550 5.1.1 The email account")),
        "{b:?}"
    );
}

#[test]
fn an_office_365_ndr_keeps_its_three_digit_detail() {
    let b = bounce("office365-recipient-not-found.eml");
    assert_eq!(b.status, "5.1.10");
    assert_eq!(
        b.diagnostic.as_deref(),
        Some(
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
        )
    );
    assert!(b.suppresses());
}

#[test]
fn an_arf_report_is_a_complaint_whatever_codes_the_attached_message_contains() {
    assert_eq!(
        fixture("arf-abuse.eml"),
        Report::Complaint(Complaint {
            feedback_type: "abuse".into(),
            user_agent: Some("MailboxFeedback/2.1".into()),
        })
    );
}

#[test]
fn an_auto_reply_is_neither_bounce_nor_complaint() {
    assert_eq!(fixture("out-of-office.eml"), Report::Other);
    assert_eq!(parse(b""), Report::Other);
    assert_eq!(parse(b"\xff\xfe not mail at all"), Report::Other);
}

#[test]
fn delivery_status_actions_decide_the_class() {
    let delayed =
        "Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b\nAction: delayed\nStatus: 4.4.7\n";
    let b = delivery_status(delayed).expect("delayed");
    assert_eq!((b.status.as_str(), b.class), ("4.4.7", BounceClass::Soft));
    let delivered =
        "Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b\nAction: delivered\nStatus: 2.0.0\n";
    assert_eq!(delivery_status(delivered), None);
    let failed_basic = "Reporting-MTA: dns; x\n\nAction: failed\nStatus: bogus\nDiagnostic-Code: smtp; 554 go away\n";
    let b = delivery_status(failed_basic).expect("failed");
    assert_eq!((b.status.as_str(), b.class), ("5.0.0", BounceClass::Hard));
}

#[test]
fn policy_content_and_size_refusals_do_not_suppress_the_address() {
    for (status, suppresses) in [
        ("5.1.1", true),
        ("5.2.1", true),
        ("5.4.4", true),
        ("5.0.0", true),
        ("5.3.4", false),
        ("5.6.0", false),
        ("5.7.1", false),
        ("4.2.2", false),
    ] {
        let b = Bounce {
            status: status.into(),
            class: class_of(status),
            diagnostic: None,
        };
        assert_eq!(b.suppresses(), suppresses, "{status}");
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn arbitrary_text_in_a_bounce_never_panics(text in "\\PC{0,400}") {
        let message = format!("From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail\n\n{text}");
        let _ = parse(message.as_bytes());
    }
}
