//! monitor: a host data-access monitor.
//!
//! The daemon reads what the kernel programs (`monitor-ebpf`) report and moves
//! it through one pipeline, one module per stage:
//!
//! - [`sensor`]: loads and attaches the programs, reads the ring buffer,
//!   decodes records ([`sensor::decode`]).
//! - [`enrich`]: attributes each record to a process, user, cgroup and unit,
//!   and makes paths absolute ([`event::Event`]).
//! - [`payload`]: per-connection payload streams handed to the PII detector
//!   (`monitor-pii`), destinations named from TLS SNI or HTTP `Host`.
//! - [`output`]: event sinks (JSON lines for now).
//! - [`pipeline`]: composes the stages; [`daemon`] runs it as a service.
//!
//! Supporting modules: [`btf`] (kernel struct offsets), [`status`] (the
//! self-report behind `monitor status`), [`notify`] (systemd readiness),
//! [`bench`](mod@bench) (the sensor benchmark driven by `cargo xtask bench`),
//! [`scan_cli`] (`monitor scan`, the detector from `monitor-pii` over files).

pub mod analyst;
pub mod bench;
pub mod btf;
pub mod classify;
pub mod daemon;
pub mod enrich;
pub mod event;
pub mod judge;
pub mod model;
pub mod notify;
pub mod output;
pub mod payload;
pub mod pipeline;
pub mod record;
pub mod role;
pub mod rules;
pub mod scan_cli;
pub mod sensor;
pub mod server;
pub mod status;
pub mod wire;
