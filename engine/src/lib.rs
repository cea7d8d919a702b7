//! dialhound's daemon, as the loop it runs: customers come in (`ingest`),
//! live in the encrypted store (`store`), are decided on by campaigns
//! (`campaign`), and are called (`call`); operators drive it (`control`),
//! Prometheus watches it (`metrics`, served by `http`). `config` reads the
//! configuration file and `daemon` wires the stages together. `demo` runs
//! the daemon against a built-in loopback carrier and stays outside the loop:
//! no stage imports it. `ARCHITECTURE.md` at the repository's root is the
//! map.
//!
//! The `dialhound` binary is a thin shell around this library. What is
//! public here is what the binary, the tests, the benchmarks and the fuzz
//! targets use.

pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod ingest;
pub mod sms;
pub mod store;

mod call;
mod campaign;
mod http;
mod metrics;
