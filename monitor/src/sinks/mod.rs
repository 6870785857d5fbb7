//! Sinks: where records go after the store, one file per kind. Each is a
//! [`Follower`](crate::model::Follower) of the record with its own cursor,
//! so a slow or dead destination never slows the pipeline, and a restart
//! resumes where it stopped. (The inline `--events-stdout` printer is an
//! event sink, `output.rs`, not a follower.)

pub mod jsonl;
