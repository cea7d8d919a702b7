//! dialhound's daemon: configuration, the encrypted customer store, import,
//! campaigns (rules, pacing, scripts, the attempt ledger and CDRs), the SIP
//! agent and call flow, the control socket and metrics. The `dialhound`
//! binary is a thin shell around it.

pub mod attempt;
pub mod call_flow;
pub mod campaign;
pub mod client;
pub mod config;
pub mod control;
pub mod customer;
pub mod daemon;
pub mod demo;
pub mod demo_carrier;
pub mod directory;
pub mod import;
pub mod metrics;
pub mod pacer;
pub mod phone;
pub mod protocol;
pub mod redact;
pub mod rules_cli;
pub mod sip_agent;
pub mod socket;
pub mod store;
pub mod vault;
pub mod wake_wheel;
