//! The login safeguards, against each backend: lockout, rate limits, SMS code
//! expiry, single use and hard failure, TOTP replay, password reuse and age, the
//! IP allowlist, second-factor enforcement, and the audit trail of it all. The
//! clock is a `ManualClock`, so nothing here waits.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use engine::auth::{FileGateway, Login, LoginError, Next, OutsideAllowlist, Role, Throttle, otp};
use engine::clock::{Clock, ManualClock};
use engine::config::SecurityConfig;
use engine::model::TenantId;
use engine::store::{AuditQuery, Store};

use super::tenant_name;

const PASSWORD: &str = "correct horse battery";

struct Rig<'a> {
    store: &'a dyn Store,
    clock: Arc<ManualClock>,
    sms: FileGateway,
    sms_file: PathBuf,
    throttle: Throttle,
    config: SecurityConfig,
    tenant: TenantId,
    _dir: tempfile::TempDir,
}

impl<'a> Rig<'a> {
    async fn new(store: &'a dyn Store, config: SecurityConfig) -> Rig<'a> {
        let dir = tempfile::tempdir().expect("temp dir");
        let sms_file = dir.path().join("sms.log");
        let tenant = store
            .create_tenant(&tenant_name("acme"))
            .await
            .expect("tenant")
            .id;
        Rig {
            store,
            clock: ManualClock::new(
                Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0)
                    .single()
                    .expect("t"),
            ),
            sms: FileGateway::new(&sms_file),
            sms_file,
            throttle: Throttle::default(),
            config,
            tenant,
            _dir: dir,
        }
    }

    fn login(&self) -> Login<'_> {
        Login {
            store: self.store,
            clock: &*self.clock,
            sms: &self.sms,
            throttle: &self.throttle,
            config: &self.config,
        }
    }

    async fn user(&self, name: &str) {
        let acme = tenant_name("acme");
        self.login()
            .create_user(
                name,
                Some((self.tenant, &acme)),
                Role::Admin,
                PASSWORD,
                "cli",
            )
            .await
            .expect("create user");
    }

    /// A user with a verified phone: a tenant requiring a second factor makes
    /// them register one at the first login.
    async fn user_with_phone(&self, name: &str) {
        self.user(name).await;
        self.require_second_factor(|_| {}).await;
        let login = self.login();
        let passed = login
            .password(name, PASSWORD, None)
            .await
            .expect("password");
        assert_eq!(passed.next, Next::EnrolPhone);
        login
            .enrol_phone(name, "+3612345678", None)
            .await
            .expect("enrol");
        login
            .sms_code(name, &self.last_code(), None)
            .await
            .expect("verify phone");
    }

    async fn require_second_factor(&self, also: impl FnOnce(&mut engine::auth::SecuritySettings)) {
        let mut settings = self
            .store
            .tenant_settings(self.tenant)
            .await
            .expect("settings");
        settings.security.require_second_factor = true;
        also(&mut settings.security);
        self.store
            .set_tenant_settings(self.tenant, &settings)
            .await
            .expect("set");
    }

    fn last_code(&self) -> String {
        let messages = FileGateway::read(&self.sms_file).expect("sms file");
        let text = &messages.last().expect("a message was sent").text;
        text.rsplit(' ').next().expect("code").to_owned()
    }

    fn codes_sent(&self) -> usize {
        FileGateway::read(&self.sms_file).expect("sms file").len()
    }
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().expect("ip"))
}

pub async fn wrong_passwords_lock_the_account_until_the_delay_or_an_admin(store: &dyn Store) {
    let rig = Rig::new(store, SecurityConfig::default()).await;
    rig.user("alice").await;
    let login = rig.login();
    for _ in 0..4 {
        let err = login
            .password("alice", "wrong password!", None)
            .await
            .expect_err("wrong");
        assert!(matches!(err, LoginError::BadCredentials), "{err:?}");
    }
    let err = login
        .password("alice", "wrong password!", None)
        .await
        .expect_err("5th");
    assert!(matches!(err, LoginError::Locked(_)), "{err:?}");
    let err = login
        .password("alice", PASSWORD, None)
        .await
        .expect_err("locked");
    assert!(
        matches!(err, LoginError::Locked(_)),
        "the right password does not help: {err:?}"
    );
    rig.clock.advance(Duration::minutes(15));
    assert_eq!(
        login
            .password("alice", PASSWORD, None)
            .await
            .expect("unlocked")
            .next,
        Next::Done
    );

    login.lock("alice", "cli").await.expect("lock");
    rig.clock.advance(Duration::days(365));
    assert!(matches!(
        login.password("alice", PASSWORD, None).await,
        Err(LoginError::Locked(_))
    ));
    login.unlock("alice", "cli").await.expect("unlock");
    let passed = login.password("alice", PASSWORD, None).await.expect("ok");
    assert_eq!(
        passed.next,
        Next::ChangePassword,
        "a year on, the password is too old"
    );
}

pub async fn failures_outside_the_lockout_window_do_not_add_up(store: &dyn Store) {
    let rig = Rig::new(store, SecurityConfig::default()).await;
    rig.user("alice").await;
    let login = rig.login();
    for _ in 0..8 {
        let err = login
            .password("alice", "wrong password!", None)
            .await
            .expect_err("wrong");
        assert!(matches!(err, LoginError::BadCredentials), "{err:?}");
        rig.clock.advance(Duration::minutes(4));
    }
}

pub async fn an_sms_code_works_once(store: &dyn Store) {
    let rig = Rig::new(store, SecurityConfig::default()).await;
    rig.user_with_phone("alice").await;
    let login = rig.login();
    assert_eq!(
        login
            .password("alice", PASSWORD, None)
            .await
            .expect("pw")
            .next,
        Next::SmsCode
    );
    let code = rig.last_code();
    assert_eq!(
        login
            .sms_code("alice", &code, None)
            .await
            .expect("code")
            .next,
        Next::Done
    );
    let replay = login
        .sms_code("alice", &code, None)
        .await
        .expect_err("replay");
    assert!(matches!(replay, LoginError::NoPendingLogin), "{replay:?}");
}

pub async fn an_sms_code_expires_after_its_ttl(store: &dyn Store) {
    let rig = Rig::new(store, SecurityConfig::default()).await;
    rig.user_with_phone("alice").await;
    let login = rig.login();
    login.password("alice", PASSWORD, None).await.expect("pw");
    let code = rig.last_code();
    rig.clock.advance(Duration::minutes(5));
    let err = login
        .sms_code("alice", &code, None)
        .await
        .expect_err("expired");
    assert!(matches!(err, LoginError::CodeExpired), "{err:?}");

    // A tenant may shorten the lifetime.
    rig.require_second_factor(|s| s.sms_code_ttl = Some("1m".parse().expect("duration")))
        .await;
    login.password("alice", PASSWORD, None).await.expect("pw");
    let code = rig.last_code();
    rig.clock.advance(Duration::seconds(61));
    let err = login
        .sms_code("alice", &code, None)
        .await
        .expect_err("expired");
    assert!(matches!(err, LoginError::CodeExpired), "{err:?}");
}

pub async fn three_wrong_codes_end_the_login(store: &dyn Store) {
    let rig = Rig::new(store, SecurityConfig::default()).await;
    rig.user_with_phone("alice").await;
    let login = rig.login();
    login.password("alice", PASSWORD, None).await.expect("pw");
    let code = rig.last_code();
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for left in [2, 1] {
        let err = login
            .sms_code("alice", wrong, None)
            .await
            .expect_err("wrong");
        assert!(
            matches!(err, LoginError::WrongCode(n) if n == left),
            "{err:?}"
        );
    }
    let err = login
        .sms_code("alice", wrong, None)
        .await
        .expect_err("third");
    assert!(matches!(err, LoginError::TooManyWrongCodes), "{err:?}");
    let err = login
        .sms_code("alice", &code, None)
        .await
        .expect_err("start over");
    assert!(matches!(err, LoginError::NoPendingLogin), "{err:?}");
    login
        .password("alice", PASSWORD, None)
        .await
        .expect("a new login works");
    login
        .sms_code("alice", &rig.last_code(), None)
        .await
        .expect("with its new code");
}

pub async fn login_attempts_are_limited_per_user_and_per_address(store: &dyn Store) {
    let config = SecurityConfig {
        lockout_failures: 1000,
        attempts_per_user: 4,
        attempts_per_ip: 6,
        ..SecurityConfig::default()
    };
    let rig = Rig::new(store, config).await;
    rig.user("alice").await;
    rig.user("bob").await;
    let login = rig.login();
    for _ in 0..4 {
        let _ = login
            .password("alice", "wrong password!", ip("192.0.2.1"))
            .await;
    }
    let err = login
        .password("alice", PASSWORD, ip("198.51.100.1"))
        .await
        .expect_err("per user");
    assert!(matches!(err, LoginError::RateLimited(_)), "{err:?}");
    // 192.0.2.1 has made 4 attempts; two more under other names reach its limit.
    login
        .password("bob", PASSWORD, ip("192.0.2.1"))
        .await
        .expect("bob");
    let _ = login.password("carol", PASSWORD, ip("192.0.2.1")).await;
    let err = login
        .password("bob", PASSWORD, ip("192.0.2.1"))
        .await
        .expect_err("per ip");
    assert!(matches!(err, LoginError::RateLimited(_)), "{err:?}");
    rig.clock.advance(Duration::minutes(15));
    login
        .password("bob", PASSWORD, ip("192.0.2.1"))
        .await
        .expect("a new window");
}

pub async fn sms_codes_sent_are_limited_per_user(store: &dyn Store) {
    let config = SecurityConfig {
        codes_per_user: 3,
        ..SecurityConfig::default()
    };
    let rig = Rig::new(store, config).await;
    rig.user_with_phone("alice").await; // the enrolment sent one
    let login = rig.login();
    login
        .password("alice", PASSWORD, None)
        .await
        .expect("second code");
    login
        .password("alice", PASSWORD, None)
        .await
        .expect("third code");
    let sent = rig.codes_sent();
    let err = login
        .password("alice", PASSWORD, None)
        .await
        .expect_err("flood");
    assert!(matches!(err, LoginError::RateLimited(_)), "{err:?}");
    assert_eq!(rig.codes_sent(), sent, "no message went out");
}

pub async fn a_totp_code_works_once_and_recovery_codes_once_each(store: &dyn Store) {
    let rig = Rig::new(store, SecurityConfig::default()).await;
    rig.user("alice").await;
    let login = rig.login();
    let (secret, url) = login.begin_totp("alice").await.expect("begin");
    assert!(
        url.starts_with("otpauth://totp/Broadside:alice?secret="),
        "{url}"
    );
    let unix = |c: &ManualClock| u64::try_from(c.now().timestamp()).expect("positive");
    let code = otp::totp_code(&secret, unix(&rig.clock)).expect("code");
    let recovery = login
        .confirm_totp("alice", &code, None)
        .await
        .expect("confirm");
    assert_eq!(recovery.len(), otp::RECOVERY_CODES);

    rig.clock.advance(Duration::seconds(30));
    assert_eq!(
        login
            .password("alice", PASSWORD, None)
            .await
            .expect("pw")
            .next,
        Next::Totp
    );
    let code = otp::totp_code(&secret, unix(&rig.clock)).expect("code");
    assert_eq!(
        login
            .totp_code("alice", &code, None)
            .await
            .expect("totp")
            .next,
        Next::Done
    );
    login.password("alice", PASSWORD, None).await.expect("pw");
    let err = login
        .totp_code("alice", &code, None)
        .await
        .expect_err("replay");
    assert!(matches!(err, LoginError::WrongCode(2)), "{err:?}");
    login
        .totp_code("alice", &recovery[0], None)
        .await
        .expect("recovery code");
    login.password("alice", PASSWORD, None).await.expect("pw");
    let err = login
        .totp_code("alice", &recovery[0], None)
        .await
        .expect_err("used");
    assert!(matches!(err, LoginError::WrongCode(_)), "{err:?}");
    for _ in 0..2 {
        let _ = login.totp_code("alice", "123456x", None).await;
    }
    let err = login
        .totp_code("alice", &recovery[1], None)
        .await
        .expect_err("hard fail");
    assert!(matches!(err, LoginError::NoPendingLogin), "{err:?}");
}

pub async fn a_password_cannot_repeat_the_last_ones(store: &dyn Store) {
    let config = SecurityConfig {
        password_history: 2,
        ..SecurityConfig::default()
    };
    let rig = Rig::new(store, config).await;
    rig.user("alice").await;
    let login = rig.login();
    let err = login
        .change_password("alice", PASSWORD, "cli", None)
        .await
        .expect_err("same");
    assert!(matches!(err, LoginError::Policy(_)), "{err:?}");
    login
        .change_password("alice", "second horse battery", "cli", None)
        .await
        .expect("2nd");
    let err = login
        .change_password("alice", PASSWORD, "cli", None)
        .await
        .expect_err("reuse");
    assert!(matches!(
        err,
        LoginError::Policy(engine::auth::password::PolicyError::Reused(2))
    ));
    login
        .change_password("alice", "third horse battery", "cli", None)
        .await
        .expect("3rd");
    login
        .change_password("alice", PASSWORD, "cli", None)
        .await
        .expect("old enough again");
    let err = login
        .change_password("alice", "acme horse battery", "cli", None)
        .await;
    assert!(
        matches!(err, Err(LoginError::Policy(_))),
        "tenant name: {err:?}"
    );
}

pub async fn an_old_password_must_be_changed_at_login(store: &dyn Store) {
    let rig = Rig::new(store, SecurityConfig::default()).await;
    rig.user("alice").await;
    let login = rig.login();
    rig.clock.advance(Duration::days(91));
    let passed = login.password("alice", PASSWORD, None).await.expect("pw");
    assert_eq!(passed.next, Next::ChangePassword);
    login
        .change_password("alice", "fresh horse battery", "user:alice", None)
        .await
        .expect("new");
    let passed = login
        .password("alice", "fresh horse battery", None)
        .await
        .expect("pw");
    assert_eq!(passed.next, Next::Done);
}

pub async fn the_ip_allowlist_refuses_or_demands_a_second_factor(store: &dyn Store) {
    let rig = Rig::new(store, SecurityConfig::default()).await;
    rig.user("alice").await;
    rig.user_with_phone("bob").await;
    let mut settings = store.tenant_settings(rig.tenant).await.expect("settings");
    settings.security.require_second_factor = false;
    settings.security.ip_allowlist = vec!["192.0.2.0/24".parse().expect("cidr")];
    store
        .set_tenant_settings(rig.tenant, &settings)
        .await
        .expect("set");
    let login = rig.login();
    assert_eq!(
        login
            .password("alice", PASSWORD, ip("192.0.2.9"))
            .await
            .expect("in")
            .next,
        Next::Done
    );
    let err = login
        .password("alice", PASSWORD, ip("203.0.113.5"))
        .await
        .expect_err("out");
    assert!(matches!(err, LoginError::IpNotAllowed), "{err:?}");

    settings.security.outside_allowlist = OutsideAllowlist::SecondFactor;
    store
        .set_tenant_settings(rig.tenant, &settings)
        .await
        .expect("set");
    let err = login
        .password("alice", PASSWORD, ip("203.0.113.5"))
        .await
        .expect_err("no factor");
    assert!(matches!(err, LoginError::IpNotAllowed), "{err:?}");
    let passed = login
        .password("bob", PASSWORD, ip("203.0.113.5"))
        .await
        .expect("bob");
    assert_eq!(passed.next, Next::SmsCode);
}

pub async fn every_login_step_is_audited(store: &dyn Store) {
    let rig = Rig::new(store, SecurityConfig::default()).await;
    rig.user_with_phone("alice").await;
    let login = rig.login();
    let _ = login
        .password("alice", "wrong password!", ip("192.0.2.1"))
        .await;
    let _ = login
        .password("nobody", "wrong password!", ip("192.0.2.1"))
        .await;
    login
        .password("alice", PASSWORD, ip("192.0.2.1"))
        .await
        .expect("pw");
    login
        .sms_code("alice", &rig.last_code(), ip("192.0.2.1"))
        .await
        .expect("code");
    let log = store
        .audit_log(AuditQuery {
            tenant: None,
            before: None,
            limit: 100,
        })
        .await
        .expect("audit");
    let steps: Vec<(String, String, String, Option<String>)> = log
        .iter()
        .rev()
        .map(|e| {
            let r = &e.record;
            (
                r.actor.clone(),
                r.action.clone(),
                r.outcome.clone(),
                r.ip.clone(),
            )
        })
        .collect();
    let ip1 = Some("192.0.2.1".to_owned());
    let tail = &steps[steps.len() - 4..];
    assert_eq!(
        tail,
        [
            (
                "user:alice".into(),
                "login.password".into(),
                "wrong_password".into(),
                ip1.clone()
            ),
            (
                "user:nobody".into(),
                "login.password".into(),
                "wrong_password".into(),
                ip1.clone()
            ),
            (
                "user:alice".into(),
                "login.password".into(),
                "ok".into(),
                ip1.clone()
            ),
            ("user:alice".into(), "login.sms".into(), "ok".into(), ip1),
        ]
    );
    assert!(steps.iter().any(|s| s.1 == "user.create" && s.0 == "cli"));
    assert!(steps.iter().any(|s| s.1 == "login.enrol_phone"));
    assert_eq!(
        log.iter()
            .find(|e| e.record.action == "login.sms")
            .and_then(|e| e.record.tenant),
        Some(rig.tenant)
    );
}
