//! monitor: a host data-access monitor.
//!
//! The daemon reads what the kernel programs (`monitor-ebpf`) report and moves
//! it through one pipeline, one module per stage ([`pipeline`] composes them;
//! no stage imports another):
//!
//! - [`sensor`]: loads and attaches the programs, reads the ring buffer;
//!   [`backlog`]: batches of its records, and what waits of them while the
//!   daemon is behind.
//! - [`enrich`]: attributes each record ([`wire`]) to a process, user,
//!   cgroup and unit, and makes paths absolute ([`event::Event`]).
//! - [`role`]: which role each process acts for.
//! - [`payload`]: per-connection payload streams handed to the PII detector
//!   (`monitor-pii`), destinations named from TLS SNI or HTTP `Host`.
//! - [`classify`]: an event as an access to a data class.
//! - [`judge`]: the chain of judges (policy first) that turns accesses into alerts.
//! - [`repeat`]: the same access made again and again, counted into one record.
//! - [`record`]: the tamper-evident store, its writer, its queries, and the
//!   followers that read it after their own cursors.
//! - [`sinks`]: where records go after the store (followers); [`output`]:
//!   the inline event printer.
//!
//! The shared vocabulary: [`model`] (action, access, alert, severity,
//! outcome, record, follower), [`event`], [`wire`], [`rules`] (the rule
//! files, one module each), [`status`] (the self-report).
//!
//! Around the pipeline: [`daemon`] (start-up, control loop, shutdown),
//! [`server`] (the analysts' query socket), [`cli`] (every command),
//! [`btf`] (kernel struct offsets).

pub mod anomaly;
pub mod backlog;
pub mod btf;
pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod enrich;
pub mod event;
pub mod judge;
pub mod metrics;
pub mod model;
pub mod output;
pub mod payload;
pub mod pipeline;
pub mod record;
pub mod redact;
pub mod repeat;
pub mod respond;
pub mod role;
pub mod rules;
pub mod sensor;
pub mod server;
pub mod sinks;
pub mod status;
pub mod tls;
pub mod wire;

#[cfg(test)]
mod layering_tests;
