//! Library target of the kernel programs. It exists so that `monitor` can name
//! this crate as a build dependency (and be rebuilt when it changes); the
//! programs themselves are the `monitor` binary target in `main.rs`.
#![no_std]
