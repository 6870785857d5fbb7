//! Shutdown, in order: the pipeline drains and stops, the query server
//! stops, the daemon's `stop` record is written, the writer finishes, the
//! followers catch up (for at most [`DRAIN`](crate::record::follow::DRAIN)),
//! and the final status is written.

use std::sync::atomic::Ordering;

use anyhow::Context as _;

use super::control::{log_stats, update_status};
use super::start::Daemon;
use super::Options;
use crate::model::{Action, Record};
use sd_notify::NotifyState;

/// Stops every part of `d`.
pub async fn shutdown(opts: &Options, d: Daemon) -> anyhow::Result<()> {
    let Daemon {
        store,
        records,
        writer,
        writer_counters,
        template,
        server,
        stop,
        pipeline,
        followers,
        sinks,
        followers_stop,
        mut status,
        metrics,
        ..
    } = d;
    if let Some(m) = metrics {
        m.abort();
    }
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
    stop.store(true, Ordering::Relaxed);
    let final_counters = pipeline
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))?
        .context("pipeline stopped")?;
    server.abort();
    let _ = records.send(Record {
        action: Action::Stop,
        object: format!("monitor {}", env!("CARGO_PKG_VERSION")),
        ..template.stamped()
    });
    // The writer stores the stop record and ends once its queue is closed.
    drop(records);
    tokio::task::spawn_blocking(move || writer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("record writer panicked"))?;
    followers_stop.store(true, Ordering::Relaxed);
    let mut followers: Vec<_> = followers
        .into_iter()
        .chain(sinks.into_iter().map(|(_, f)| f))
        .collect();
    let followers = tokio::task::spawn_blocking(move || {
        followers.iter_mut().for_each(|f| f.join());
        followers
    })
    .await?;
    update_status(
        &mut status,
        &final_counters,
        &writer_counters,
        &store,
        followers.iter(),
    );
    log_stats(&status, &mut 0);
    status.write(&opts.status_file).ok();
    tracing::info!("stopped");
    Ok(())
}
