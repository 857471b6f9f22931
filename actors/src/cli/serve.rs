//! `broadside serve`: runs the engine and the HTTP API until SIGINT or SIGTERM,
//! then finishes API requests in flight, stops dispatching and stores every
//! buffered outcome before exiting.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use engine::clock::SystemClock;
use engine::config::Config;

use actix_web::web;

use crate::app;
use crate::exchange;
use crate::http::{ApiState, Application};
use crate::inbound;
use crate::runtime::Runtime;
use crate::telemetry;
use crate::webhooks;

pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    actix::System::new().block_on(async move {
        // The store is opened inside the actor system so that pooled connections
        // live on the runtime that uses them.
        let store = app::open_store(&config).await?;
        if !config.metrics.listen.is_empty() {
            let listen: SocketAddr = config.metrics.listen.parse().with_context(|| {
                format!(
                    "metrics.listen = {:?} is not an address",
                    config.metrics.listen
                )
            })?;
            telemetry::install(listen).context("starting the metrics endpoint")?;
            tracing::info!(%listen, "metrics at http://{listen}/metrics");
        }
        let runtime = Runtime::start(&config, store, Arc::new(SystemClock))?;
        let state = web::Data::new(ApiState::new(&config, runtime.clone())?);
        let writes = state.exchange_writes.clone();
        let (tracking_key, tracking_events) = (state.tracking.key(), state.tracking.events());
        let api = Application::build(&config, state)?;
        let scheme = if api.tls { "https" } else { "http" };
        tracing::info!(listen = %api.addr, "API at {scheme}://{}/v1", api.addr);
        let server = api.spawn();
        let exchange = exchange::start(&config, runtime.store.clone(), writes)
            .await
            .context("starting the file exchange")?;
        if let Some(addr) = exchange.sftp_addr {
            tracing::info!(listen = %addr, "SFTP at sftp://{addr}");
        }
        let inbound = inbound::start(
            &config,
            runtime.store.clone(),
            tracking_key,
            tracking_events,
        )
        .await
        .context("starting the inbound SMTP listener")?;
        if let Some(inbound) = &inbound {
            tracing::info!(listen = %inbound.addr, "bounces and complaints at smtp://{}", inbound.addr);
        }
        let webhooks = webhooks::start(
            runtime.store.clone(),
            webhooks::WebhookSettings::from_config(&config),
        )
        .context("starting the webhook sender")?;
        tracing::info!("broadside is running");
        shutdown_signal().await;
        // Requests in flight finish first (up to api.shutdown_timeout): they may
        // launch or pause campaigns, which the drain below must then see.
        tracing::info!("shutting down: finishing API requests in flight");
        server.stop(true).await;
        exchange.stop();
        if let Some(inbound) = &inbound {
            inbound.stop();
        }
        // Queued events stay in the outbox for the next start.
        webhooks.abort();
        tracing::info!("shutting down: storing outcomes of messages in flight");
        runtime.drain().await;
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
