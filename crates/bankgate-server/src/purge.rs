//! Removes expired tokens and sessions in the background.

use std::sync::Arc;
use std::time::Duration;

use bankgate_core::Clock;
use bankgate_core::model::EXPIRED_RETENTION;
use bankgate_store::{Purged, Store};

use crate::metrics::Metrics;

/// Purges once: rows that expired more than [`EXPIRED_RETENTION`] ago.
pub async fn purge_once(
    store: &dyn Store,
    clock: &dyn Clock,
) -> Result<Purged, bankgate_core::DomainError> {
    let expired_before = clock.now() - EXPIRED_RETENTION;
    let purged = store.purge_expired(expired_before).await?;
    let connect = store.purge_connect_sessions(expired_before).await?;
    let async_steps = store.purge_async_steps(expired_before).await?;
    let deliveries = store
        .purge_deliveries(clock.now() - bankgate_store::FINISHED_DELIVERY_RETENTION)
        .await?;
    if deliveries > 0 {
        tracing::info!(
            webhook_deliveries = deliveries,
            "purged finished webhook deliveries"
        );
    }
    if async_steps > 0 {
        tracing::info!(
            authorize_async_steps = async_steps,
            "purged expired AuthorizeAsync steps"
        );
    }
    if connect > 0 {
        tracing::info!(
            connect_sessions = connect,
            "purged expired Connect sessions"
        );
    }
    // The nightly refresh of each instance whose clock passed 02:00 (a read per instance when
    // none did); a failure here must not stop the purge.
    match store.list_instances().await {
        Ok(instances) => {
            for instance in instances {
                let now = instance.now(clock);
                if let Err(error) = crate::api::nightly::catch_up(store, &instance.name, now).await
                {
                    tracing::warn!(%error, instance = %instance.name, "nightly refresh failed");
                }
            }
        }
        Err(error) => tracing::warn!(%error, "nightly refresh: instances unreadable"),
    }
    if purged != Purged::default() {
        tracing::info!(
            tokens = purged.tokens,
            sessions = purged.sessions,
            failure_counters = purged.attempt_failures,
            "purged expired rows"
        );
    }
    Ok(purged)
}

/// Purges every `every` until the task is aborted.
pub fn spawn_purger(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match purge_once(store.as_ref(), clock.as_ref()).await {
                Ok(purged) => metrics.purged(purged),
                Err(error) => tracing::warn!(%error, "purge failed; will retry"),
            }
        }
    })
}
