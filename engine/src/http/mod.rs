//! HTTP: what the daemon serves over HTTP. Today that is the metrics page
//! ([`metrics_page`]), on its own address.
//!
//! It imports no stage: it is handed a function that renders the page. It
//! must not know the store, campaigns or calls.

pub mod metrics_page;
