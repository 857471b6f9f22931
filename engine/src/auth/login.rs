//! The login state machine: password, then (where required or enrolled) a second
//! factor, then a password change if one is due. Every safeguard — lockout, rate
//! limits, code expiry, single use, hard failure after wrong codes, the IP
//! allowlist — is decided here against an injected clock, so each is tested
//! without waiting, and every attempt is written to the audit log.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::ip::{IpDecision, check_ip};
use super::otp;
use super::password::{self, PolicyError};
use super::settings::SecuritySettings;
use super::sms::{SmsError, SmsGateway, valid_phone};
use super::throttle::Throttle;
use super::user::{PendingCode, User, actor};
use crate::clock::Clock;
use crate::config::SecurityConfig;
use crate::store::{AuditRecord, Store, StoreError};

/// Why a login step failed. `BadCredentials` covers an unknown user too, so the
/// answer never tells which names exist.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("the account is locked until {0}")]
    Locked(DateTime<Utc>),
    #[error("too many attempts; try again after {0}")]
    RateLimited(DateTime<Utc>),
    #[error("logins from this address are not allowed")]
    IpNotAllowed,
    #[error("wrong code; {0} tries left")]
    WrongCode(u32),
    #[error("the code expired; log in again")]
    CodeExpired,
    #[error("too many wrong codes; log in again")]
    TooManyWrongCodes,
    /// No code is pending: never sent, already used, or the login started over.
    #[error("no code is pending; log in again")]
    NoPendingLogin,
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("{0:?} is not a phone number in international form (+ and 8 to 15 digits)")]
    BadPhone(String),
    #[error("this step is not available: {0}")]
    NotAllowed(&'static str),
    #[error(transparent)]
    Sms(#[from] SmsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LoginError {
    /// The audit log's outcome for this failure.
    pub fn outcome(&self) -> &'static str {
        match self {
            LoginError::BadCredentials => "wrong_password",
            LoginError::Locked(_) => "locked",
            LoginError::RateLimited(_) => "rate_limited",
            LoginError::IpNotAllowed => "ip_not_allowed",
            LoginError::WrongCode(_) => "wrong_code",
            LoginError::CodeExpired => "code_expired",
            LoginError::TooManyWrongCodes => "too_many_wrong_codes",
            LoginError::NoPendingLogin => "no_pending_login",
            LoginError::Policy(_) => "policy",
            LoginError::BadPhone(_) => "bad_phone",
            LoginError::NotAllowed(_) => "not_allowed",
            LoginError::Sms(_) => "sms_failed",
            LoginError::Store(_) => "error",
        }
    }
}

/// What the person has to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Logged in.
    Done,
    /// Enter the code just sent by SMS.
    SmsCode,
    /// Enter the authenticator app's code (or a recovery code).
    Totp,
    /// Register a phone number (the tenant requires a second factor).
    EnrolPhone,
    /// Choose a new password (too old, or reset by an admin).
    ChangePassword,
}

/// A step passed: the user as now stored, and what comes next.
#[derive(Debug, Clone)]
pub struct Passed {
    pub user: User,
    pub next: Next,
}

/// The login service; borrowed parts, so the web application, the CLI and tests
/// build it from what they hold.
#[derive(Clone, Copy)]
pub struct Login<'a> {
    pub store: &'a dyn Store,
    pub clock: &'a dyn Clock,
    pub sms: &'a dyn SmsGateway,
    pub throttle: &'a Throttle,
    pub config: &'a SecurityConfig,
}

fn dur(d: crate::config::Duration) -> chrono::Duration {
    chrono::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl<'a> Login<'a> {
    /// The first step. Order matters: rate limits and the allowlist are checked
    /// before the password, so neither a flood nor a foreign network gets to
    /// test passwords.
    pub async fn password(
        &self,
        name: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<Passed, LoginError> {
        let result = self.password_inner(name, password, ip).await;
        self.audit_result(name, "login.password", ip, &result)
            .await?;
        result
    }

    async fn password_inner(
        &self,
        name: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<Passed, LoginError> {
        let now = self.clock.now();
        self.count_attempt(name, ip, now)?;
        let Some(user) = self.load(name).await? else {
            // Spend the time a real check takes, so timing does not reveal names.
            let _ = password::verify_password(password, DUMMY_HASH);
            return Err(LoginError::BadCredentials);
        };
        let settings = self.settings(&user).await?;
        let ip_decision = check_ip(&settings, ip);
        if ip_decision == IpDecision::Refused {
            return Err(LoginError::IpNotAllowed);
        }
        if let Some(until) = user.data.locked_until.filter(|u| *u > now) {
            return Err(LoginError::Locked(until));
        }
        let (hash, pw) = (user.data.password_hash.clone(), password.to_owned());
        let ok = tokio::task::spawn_blocking(move || password::verify_password(&pw, &hash))
            .await
            .unwrap_or(false);
        if !ok {
            let config = self.config;
            let user = self
                .modify(name, |u| {
                    let window = dur(config.lockout_window);
                    u.data.failures.retain(|t| *t + window > now);
                    u.data.failures.push(now);
                    if u.data.failures.len() >= config.lockout_failures {
                        u.data.locked_until = Some(now + dur(config.lockout_duration));
                        u.data.failures.clear();
                    }
                })
                .await?;
            return Err(match user.data.locked_until.filter(|u| *u > now) {
                Some(until) => LoginError::Locked(until),
                None => LoginError::BadCredentials,
            });
        }
        let factor = if user.data.totp.as_ref().is_some_and(|t| t.confirmed) {
            Next::Totp
        } else if user.data.phone.is_some() {
            Next::SmsCode
        } else if ip_decision == IpDecision::SecondFactorOnly {
            // Outside the allowlist, enrolling a factor would hand it to whoever
            // holds the password.
            return Err(LoginError::IpNotAllowed);
        } else if settings.require_second_factor {
            Next::EnrolPhone
        } else {
            Next::Done
        };
        let user = self
            .modify(name, |u| {
                u.data.failures.clear();
                u.data.locked_until = None;
                u.data.wrong_codes = 0;
                u.data.code = None;
                u.data.password_ok_at = (factor != Next::Done).then_some(now);
            })
            .await?;
        match factor {
            Next::SmsCode => {
                let phone = user.data.phone.clone().unwrap_or_default();
                let user = self.send_code(user, &phone, &settings).await?;
                Ok(Passed {
                    user,
                    next: Next::SmsCode,
                })
            }
            Next::Done => {
                let next = self.after_second_factor(&user);
                Ok(Passed { user, next })
            }
            next => Ok(Passed { user, next }),
        }
    }

    /// The second step by SMS: the code sent by `password` (or `enrol_phone`).
    pub async fn sms_code(
        &self,
        name: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<Passed, LoginError> {
        let result = self.sms_inner(name, code, ip).await;
        self.audit_result(name, "login.sms", ip, &result).await?;
        result
    }

    async fn sms_inner(
        &self,
        name: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<Passed, LoginError> {
        let now = self.clock.now();
        self.count_attempt(name, ip, now)?;
        let user = self.pending_user(name, now).await?;
        let pending = user.data.code.clone().ok_or(LoginError::NoPendingLogin)?;
        if pending.expires_at <= now {
            self.start_over(name).await?;
            return Err(LoginError::CodeExpired);
        }
        if !otp::hash_eq(&pending.hash, &otp::code_hash(name, code)) {
            return Err(self.wrong_code(name).await?);
        }
        let user = self
            .modify(name, |u| {
                // Single use: the code is gone the moment it is accepted.
                u.data.code = None;
                u.data.password_ok_at = None;
                u.data.wrong_codes = 0;
                u.data.phone = Some(pending.phone.clone());
            })
            .await?;
        let next = self.after_second_factor(&user);
        Ok(Passed { user, next })
    }

    /// The second step with an authenticator app's code or, failing that, one of
    /// the recovery codes (each works once).
    pub async fn totp_code(
        &self,
        name: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<Passed, LoginError> {
        let result = self.totp_inner(name, code, ip).await;
        self.audit_result(name, "login.totp", ip, &result).await?;
        result
    }

    async fn totp_inner(
        &self,
        name: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<Passed, LoginError> {
        let now = self.clock.now();
        self.count_attempt(name, ip, now)?;
        let user = self.pending_user(name, now).await?;
        let factor = user
            .data
            .totp
            .clone()
            .filter(|t| t.confirmed)
            .ok_or(LoginError::NotAllowed("no authenticator app is registered"))?;
        let unix = u64::try_from(now.timestamp()).unwrap_or(0);
        let step = otp::check_totp(&factor.secret, code, unix, factor.last_step);
        let recovery = otp::code_hash(name, code);
        let is_recovery = step.is_none()
            && user
                .data
                .recovery_codes
                .iter()
                .any(|h| otp::hash_eq(h, &recovery));
        if step.is_none() && !is_recovery {
            return Err(self.wrong_code(name).await?);
        }
        let user = self
            .modify(name, |u| {
                if let (Some(step), Some(totp)) = (step, u.data.totp.as_mut()) {
                    totp.last_step = Some(step);
                }
                u.data
                    .recovery_codes
                    .retain(|h| !otp::hash_eq(h, &recovery));
                u.data.password_ok_at = None;
                u.data.wrong_codes = 0;
            })
            .await?;
        let next = self.after_second_factor(&user);
        Ok(Passed { user, next })
    }

    /// Registers a phone number during a login that requires one: sends a code to
    /// it, which `sms_code` then accepts and which verifies the number.
    pub async fn enrol_phone(
        &self,
        name: &str,
        phone: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), LoginError> {
        let result = async {
            let now = self.clock.now();
            let user = self.pending_user(name, now).await?;
            if user.has_second_factor() {
                return Err(LoginError::NotAllowed(
                    "a second factor is already registered",
                ));
            }
            if !valid_phone(phone) {
                return Err(LoginError::BadPhone(phone.to_owned()));
            }
            let settings = self.settings(&user).await?;
            self.send_code(user, phone, &settings).await.map(drop)
        }
        .await;
        self.audit(name, "login.enrol_phone", ip, result.as_ref().err())
            .await?;
        result
    }

    /// Sends a fresh code to `phone`, replacing any pending one, within the
    /// per-user limit on codes sent.
    async fn send_code(
        &self,
        user: User,
        phone: &str,
        settings: &SecuritySettings,
    ) -> Result<User, LoginError> {
        let now = self.clock.now();
        let window = dur(self.config.rate_window);
        self.throttle
            .hit(
                &format!("sms:{}", user.name),
                self.config.codes_per_user,
                window,
                now,
            )
            .map_err(LoginError::RateLimited)?;
        let code = otp::sms_code();
        let ttl = dur(settings.sms_code_ttl.unwrap_or(self.config.sms_code_ttl));
        let pending = PendingCode {
            hash: otp::code_hash(&user.name, &code),
            phone: phone.to_owned(),
            expires_at: now + ttl,
        };
        let user = self
            .modify(&user.name, |u| u.data.code = Some(pending.clone()))
            .await?;
        self.sms
            .send(phone, &format!("Broadside login code: {code}"))
            .await?;
        Ok(user)
    }

    /// Counts one attempt against the user's and the client address's limits.
    fn count_attempt(
        &self,
        name: &str,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), LoginError> {
        let window = dur(self.config.rate_window);
        self.throttle
            .hit(
                &format!("user:{name}"),
                self.config.attempts_per_user,
                window,
                now,
            )
            .map_err(LoginError::RateLimited)?;
        if let Some(ip) = ip {
            self.throttle
                .hit(
                    &format!("ip:{ip}"),
                    self.config.attempts_per_ip,
                    window,
                    now,
                )
                .map_err(LoginError::RateLimited)?;
        }
        Ok(())
    }

    /// The user, if their password was accepted recently enough for a second
    /// factor to complete the login.
    async fn pending_user(&self, name: &str, now: DateTime<Utc>) -> Result<User, LoginError> {
        let user = self.load(name).await?.ok_or(LoginError::NoPendingLogin)?;
        // Longer than any code's life, so an expired code is reported as such.
        let window = (dur(self.config.sms_code_ttl) * 2).max(chrono::Duration::minutes(15));
        match user.data.password_ok_at {
            Some(at) if at + window > now => Ok(user),
            _ => Err(LoginError::NoPendingLogin),
        }
    }

    /// Counts a wrong code; the last allowed one ends the login.
    async fn wrong_code(&self, name: &str) -> Result<LoginError, LoginError> {
        let max = self.config.code_max_wrong;
        let user = self
            .modify(name, |u| {
                u.data.wrong_codes += 1;
                if u.data.wrong_codes >= max {
                    u.data.code = None;
                    u.data.password_ok_at = None;
                    u.data.wrong_codes = 0;
                }
            })
            .await?;
        Ok(match user.data.password_ok_at {
            None => LoginError::TooManyWrongCodes,
            Some(_) => LoginError::WrongCode(max.saturating_sub(user.data.wrong_codes)),
        })
    }

    async fn start_over(&self, name: &str) -> Result<(), LoginError> {
        self.modify(name, |u| {
            u.data.code = None;
            u.data.password_ok_at = None;
            u.data.wrong_codes = 0;
        })
        .await
        .map(drop)
    }

    /// After the factors: a password change if one is due.
    fn after_second_factor(&self, user: &User) -> Next {
        let max_age = dur(self.config.password_max_age);
        let too_old = !self.config.password_max_age.is_zero()
            && user
                .data
                .password_changed_at
                .is_none_or(|at| at + max_age <= self.clock.now());
        match user.data.must_change_password || too_old {
            true => Next::ChangePassword,
            false => Next::Done,
        }
    }

    pub(super) async fn settings(&self, user: &User) -> Result<SecuritySettings, LoginError> {
        Ok(match user.tenant {
            Some(tenant) => self.store.tenant_settings(tenant).await?.security,
            None => SecuritySettings::default(),
        })
    }

    pub(super) async fn load(&self, name: &str) -> Result<Option<User>, LoginError> {
        match self.store.user(name).await? {
            Some(record) => Ok(Some(User::from_record(record)?)),
            None => Ok(None),
        }
    }

    /// Reads, changes and writes back the user, again from a fresh read if another
    /// update came first, so concurrent attempts are each counted.
    pub(super) async fn modify(
        &self,
        name: &str,
        mut change: impl FnMut(&mut User),
    ) -> Result<User, LoginError> {
        for _ in 0..8 {
            let mut user = self
                .load(name)
                .await?
                .ok_or_else(|| StoreError::UnknownUser(name.to_owned()))?;
            change(&mut user);
            match self.store.update_user(&user.to_record()).await {
                Ok(record) => return Ok(User::from_record(record)?),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(format!("user {name:?}")).into())
    }

    async fn audit_result(
        &self,
        name: &str,
        action: &str,
        ip: Option<IpAddr>,
        result: &Result<Passed, LoginError>,
    ) -> Result<(), LoginError> {
        self.audit(name, action, ip, result.as_ref().err()).await
    }

    /// One audit entry per attempt, whatever its outcome; an unknown user is
    /// logged under the name tried, without a tenant.
    pub(super) async fn audit(
        &self,
        name: &str,
        action: &str,
        ip: Option<IpAddr>,
        error: Option<&LoginError>,
    ) -> Result<(), LoginError> {
        let user = self
            .store
            .user(name)
            .await?
            .and_then(|r| User::from_record(r).ok());
        let (tenant, actor) = match &user {
            Some(u) => (u.tenant, u.actor()),
            None => (None, actor(name, super::user::Role::Member)),
        };
        let mut record = AuditRecord::new(tenant, actor, action, self.clock.now())
            .target(name)
            .outcome(error.map_or("ok", LoginError::outcome));
        if let Some(ip) = ip {
            record = record.ip(ip.to_string());
        }
        self.store.append_audit(&record).await?;
        Ok(())
    }
}

/// A valid argon2id hash of a random password, verified against when the user
/// does not exist so that both cases take the same time.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7Zc1l3JgJ4iV0QyH5jzQ8f9m0y8x0m6m1nI2Xn8vH3w";
