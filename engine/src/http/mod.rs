//! HTTP: what the daemon serves over HTTP, each on its own address: the
//! metrics page ([`metrics_page`]) and the tracked SMS links ([`links`]).
//!
//! It imports no stage: it is handed a function that renders the page, and
//! one that looks a link up and records its click. It must not know the
//! store, campaigns, calls or SMS.

pub mod links;
pub mod metrics_page;
