//! Control: how operators drive the daemon. The Unix socket ([`socket`])
//! speaking JSON lines ([`protocol`]), the commands it runs ([`commands`]),
//! the `dialhound` command's side of the socket ([`client`]), and the rules
//! tooling the command runs locally on a file ([`rules_cli`]).
//!
//! Imports the stages it drives (`ingest`, `campaign`, `call`, `metrics`).
//! No stage imports it: the daemon hands it the stages' handles at start.

pub mod client;
pub(crate) mod commands;
pub mod protocol;
pub mod rules_cli;
pub(crate) mod socket;
