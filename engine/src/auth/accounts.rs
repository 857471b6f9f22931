//! Changes to users: creating them, passwords (policy and history), locking,
//! second-factor enrolment and reset. Each change is audited under the actor
//! that made it (`cli`, `user:<admin>`, …).

use std::net::IpAddr;

use chrono::DateTime;
use chrono::Utc;

use super::login::{Login, LoginError};
use super::otp;
use super::password;
use super::user::{Role, TotpFactor, User, UserData, valid_name};
use crate::model::{TenantId, TenantName};
use crate::store::{AuditRecord, StoreError};

/// Who makes a change to a user, for the audit log: an actor name
/// (`user:<name>`, `operator:<name>`, `cli`) and, over the web, the client's
/// address. A plain `&str` is an actor without an address.
#[derive(Debug, Clone, Copy)]
pub struct ChangedBy<'s> {
    pub actor: &'s str,
    pub ip: Option<IpAddr>,
}

impl<'s> From<&'s str> for ChangedBy<'s> {
    fn from(actor: &'s str) -> Self {
        Self { actor, ip: None }
    }
}

impl<'s> From<&'s String> for ChangedBy<'s> {
    fn from(actor: &'s String) -> Self {
        Self { actor, ip: None }
    }
}

/// The change-making half of the login service.
impl<'a> Login<'a> {
    /// Adds a user after checking the password policy. `tenant` is `None` exactly
    /// for operators.
    pub async fn create_user(
        &self,
        name: &str,
        tenant: Option<(TenantId, &TenantName)>,
        role: Role,
        password: &str,
        by: impl Into<ChangedBy<'_>>,
    ) -> Result<User, LoginError> {
        let by = by.into();
        if !valid_name(name) {
            return Err(LoginError::NotAllowed(
                "user names are 1-64 letters, digits, '.', '_', '-' or '@'",
            ));
        }
        if (role == Role::Operator) != tenant.is_none() {
            return Err(LoginError::NotAllowed(
                "operators have no tenant; every other user has one",
            ));
        }
        let tenant_name = tenant
            .map(|(_, n)| n.as_str().to_owned())
            .unwrap_or_default();
        password::check_policy(password, &[name, &tenant_name], self.config)?;
        let now = self.clock.now();
        let data = UserData {
            role,
            password_hash: hash(password).await?,
            password_changed_at: Some(now),
            ..UserData::default()
        };
        let user = User::new(name, tenant.map(|(t, _)| t), data, now);
        let record = self.store.create_user(&user.to_record()).await?;
        self.audit_change(&user, "user.create", by.actor, by.ip)
            .await?;
        Ok(User::from_record(record)?)
    }

    /// Sets a new password: policy, not one of the last `password_history`.
    pub async fn change_password(
        &self,
        name: &str,
        new_password: &str,
        by: &str,
        ip: Option<IpAddr>,
    ) -> Result<User, LoginError> {
        let user = self.existing(name).await?;
        let tenant_name = match user.tenant {
            Some(t) => self
                .store
                .tenants()
                .await?
                .into_iter()
                .find(|x| x.id == t)
                .map(|x| x.name.as_str().to_owned())
                .unwrap_or_default(),
            None => String::new(),
        };
        password::check_policy(new_password, &[name, &tenant_name], self.config)?;
        let keep = self.config.password_history;
        let earlier: Vec<String> = std::iter::once(user.data.password_hash.clone())
            .chain(user.data.password_history.iter().cloned())
            .take(keep.max(1))
            .collect();
        let (pw, hashes) = (new_password.to_owned(), earlier.clone());
        if tokio::task::spawn_blocking(move || password::reused(&pw, hashes.iter()))
            .await
            .unwrap_or(true)
        {
            return Err(password::PolicyError::Reused(keep).into());
        }
        let new_hash = hash(new_password).await?;
        let now = self.clock.now();
        let user = self
            .modify(name, |u| {
                u.data.password_hash = new_hash.clone();
                u.data.password_history = earlier.iter().take(keep).cloned().collect();
                u.data.password_changed_at = Some(now);
                u.data.must_change_password = false;
            })
            .await?;
        self.audit_change(&user, "user.password", by, ip).await?;
        Ok(user)
    }

    /// Locks the account until an admin unlocks it.
    pub async fn lock(&self, name: &str, by: impl Into<ChangedBy<'_>>) -> Result<User, LoginError> {
        let by = by.into();
        self.existing(name).await?;
        let user = self
            .modify(name, |u| {
                u.data.locked_until = Some(DateTime::<Utc>::MAX_UTC)
            })
            .await?;
        self.audit_change(&user, "user.lock", by.actor, by.ip)
            .await?;
        Ok(user)
    }

    /// Ends a lock, whether from failed logins or an admin, and forgets failures.
    pub async fn unlock(
        &self,
        name: &str,
        by: impl Into<ChangedBy<'_>>,
    ) -> Result<User, LoginError> {
        let by = by.into();
        self.existing(name).await?;
        let user = self
            .modify(name, |u| {
                u.data.locked_until = None;
                u.data.failures.clear();
            })
            .await?;
        self.audit_change(&user, "user.unlock", by.actor, by.ip)
            .await?;
        Ok(user)
    }

    /// Removes the phone number, the authenticator app and the recovery codes:
    /// the user enrols again at the next login (for a lost phone).
    pub async fn reset_second_factor(
        &self,
        name: &str,
        by: impl Into<ChangedBy<'_>>,
    ) -> Result<User, LoginError> {
        let by = by.into();
        self.existing(name).await?;
        let user = self
            .modify(name, |u| {
                u.data.phone = None;
                u.data.code = None;
                u.data.totp = None;
                u.data.recovery_codes.clear();
            })
            .await?;
        self.audit_change(&user, "user.reset_2fa", by.actor, by.ip)
            .await?;
        Ok(user)
    }

    /// Starts registering an authenticator app: returns the secret (base32) and
    /// the `otpauth://` URL to show. Not active until `confirm_totp`.
    pub async fn begin_totp(&self, name: &str) -> Result<(String, String), LoginError> {
        let secret = otp::new_totp_secret();
        let user = self
            .modify(name, |u| {
                if u.data.totp.as_ref().is_none_or(|t| !t.confirmed) {
                    u.data.totp = Some(TotpFactor {
                        secret: secret.clone(),
                        confirmed: false,
                        last_step: None,
                    });
                }
            })
            .await?;
        let Some(totp) = user.data.totp.filter(|t| !t.confirmed) else {
            return Err(LoginError::NotAllowed(
                "an authenticator app is already registered",
            ));
        };
        let url = otp::otpauth_url(&totp.secret, "Broadside", name);
        Ok((totp.secret, url))
    }

    /// Activates the app once it produced a valid code; returns the recovery
    /// codes, shown this once and stored only as hashes.
    pub async fn confirm_totp(
        &self,
        name: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<Vec<String>, LoginError> {
        let user = self.existing(name).await?;
        let factor =
            user.data
                .totp
                .clone()
                .filter(|t| !t.confirmed)
                .ok_or(LoginError::NotAllowed(
                    "no authenticator app registration is pending",
                ))?;
        let unix = u64::try_from(self.clock.now().timestamp()).unwrap_or(0);
        let Some(step) = otp::check_totp(&factor.secret, code, unix, None) else {
            self.audit(name, "user.totp_enrol", ip, Some(&LoginError::WrongCode(0)))
                .await?;
            return Err(LoginError::WrongCode(0));
        };
        let codes: Vec<String> = (0..otp::RECOVERY_CODES)
            .map(|_| otp::recovery_code())
            .collect();
        let hashes: Vec<String> = codes.iter().map(|c| otp::code_hash(name, c)).collect();
        let user = self
            .modify(name, |u| {
                if let Some(totp) = u.data.totp.as_mut() {
                    totp.confirmed = true;
                    totp.last_step = Some(step);
                }
                u.data.recovery_codes = hashes.clone();
            })
            .await?;
        self.audit_change(&user, "user.totp_enrol", &user.actor(), ip)
            .await?;
        Ok(codes)
    }

    async fn existing(&self, name: &str) -> Result<User, LoginError> {
        self.load(name)
            .await?
            .ok_or_else(|| StoreError::UnknownUser(name.to_owned()).into())
    }

    async fn audit_change(
        &self,
        user: &User,
        action: &str,
        by: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), LoginError> {
        let mut record = AuditRecord::new(user.tenant, by, action, self.clock.now())
            .target(&user.name)
            .detail(&serde_json::json!({"role": user.data.role.as_str()}));
        if let Some(ip) = ip {
            record = record.ip(ip.to_string());
        }
        self.store.append_audit(&record).await?;
        Ok(())
    }
}

async fn hash(password: &str) -> Result<String, LoginError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password::hash_password(&password))
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
        .map_err(|e| StoreError::Unavailable(format!("hashing the password: {e}")).into())
}
