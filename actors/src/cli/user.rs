//! `broadside user add|list|lock|unlock|reset-2fa`: the people who log in to the
//! web application. Every change is audited with the actor `cli`.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use engine::auth::password::check_policy;
use engine::auth::{Login, Role, Throttle, User, otp};
use engine::clock::SystemClock;
use engine::config::Config;
use engine::model::TenantName;

use crate::app;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. The password is read from stdin with --password-stdin,
    /// otherwise generated and printed once.
    Add {
        name: String,
        /// The user's tenant; omit with --operator.
        #[arg(
            long,
            required_unless_present = "operator",
            conflicts_with = "operator"
        )]
        tenant: Option<TenantName>,
        #[arg(long, value_enum, default_value = "member")]
        role: CliRole,
        /// An operator of the installation: sees every tenant, each view audited.
        #[arg(long)]
        operator: bool,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List a tenant's users, or the operators.
    List {
        #[arg(
            long,
            required_unless_present = "operators",
            conflicts_with = "operators"
        )]
        tenant: Option<TenantName>,
        #[arg(long)]
        operators: bool,
    },
    /// Lock an account until it is unlocked.
    Lock { name: String },
    /// Unlock an account locked by an admin or by failed logins.
    Unlock { name: String },
    /// Forget the phone number, authenticator app and recovery codes: the user
    /// enrols again at the next login.
    #[command(name = "reset-2fa")]
    Reset2fa { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CliRole {
    Admin,
    Member,
}

pub async fn run(config: &Config, command: UserCommand) -> anyhow::Result<ExitCode> {
    let store = app::open_store(config).await?;
    let sms = crate::sms::gateway(config)?;
    let throttle = Throttle::default();
    let login = Login {
        store: store.as_ref(),
        clock: &SystemClock,
        sms: sms.as_ref(),
        throttle: &throttle,
        config: &config.security,
    };
    match command {
        UserCommand::Add {
            name,
            tenant,
            role,
            operator,
            password_stdin,
        } => {
            let tenant = match tenant {
                Some(t) => Some((app::tenant_id(store.as_ref(), &t).await?, t)),
                None => None,
            };
            let role = match (operator, role) {
                (true, _) => Role::Operator,
                (false, CliRole::Admin) => Role::Admin,
                (false, CliRole::Member) => Role::Member,
            };
            let tenant_name = tenant.as_ref().map(|(_, n)| n.as_str()).unwrap_or("");
            let (password, generated) = match password_stdin {
                true => (read_password()?, false),
                false => (generate(config, &name, tenant_name), true),
            };
            let tenant_ref = tenant.as_ref().map(|(id, n)| (*id, n));
            login
                .create_user(&name, tenant_ref, role, &password, "cli")
                .await
                .with_context(|| format!("adding user {name}"))?;
            println!("added {} {name}", role.as_str());
            if generated {
                println!("password = {password}");
                println!("Hand it over now: it is not shown again.");
            }
        }
        UserCommand::List { tenant, .. } => {
            let id = match tenant {
                Some(t) => Some(app::tenant_id(store.as_ref(), &t).await?),
                None => None,
            };
            println!(
                "{:<32}  {:<8}  {:<7}  {:<8}  created",
                "name", "role", "locked", "2fa"
            );
            for record in store.users(id).await? {
                let user = User::from_record(record)?;
                let factor = match (&user.data.totp, &user.data.phone) {
                    (Some(t), _) if t.confirmed => "totp",
                    (_, Some(_)) => "sms",
                    _ => "-",
                };
                println!(
                    "{:<32}  {:<8}  {:<7}  {factor:<8}  {}",
                    user.name,
                    user.data.role.as_str(),
                    if user.is_locked(chrono::Utc::now()) {
                        "yes"
                    } else {
                        "no"
                    },
                    user.created_at.to_rfc3339()
                );
            }
        }
        UserCommand::Lock { name } => {
            login.lock(&name, "cli").await?;
            println!("locked {name}");
        }
        UserCommand::Unlock { name } => {
            login.unlock(&name, "cli").await?;
            println!("unlocked {name}");
        }
        UserCommand::Reset2fa { name } => {
            login.reset_second_factor(&name, "cli").await?;
            println!("{name} registers a second factor again at the next login");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The first line of stdin, without its line end.
fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .context("reading the password from stdin")?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// A random password that passes the policy: recovery-code groups joined, about
/// 150 bits.
fn generate(config: &Config, name: &str, tenant: &str) -> String {
    loop {
        let password = (0..3)
            .map(|_| otp::recovery_code())
            .collect::<Vec<_>>()
            .join("-");
        if check_policy(&password, &[name, tenant], &config.security).is_ok() {
            return password;
        }
    }
}
