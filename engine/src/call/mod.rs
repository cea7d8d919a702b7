//! Call: placing one call and running it. The tokio shell around the
//! sans-IO SIP user agent of `dialhound-sip` ([`sip_agent`]), the route and
//! trunk failover ([`dial`]), the RTP leg of the media engine with its
//! recording, voice activity and keys ([`media_call`]), the conversation it
//! drives ([`conversation`]), and what a call reports ([`report`]).
//!
//! Imports nothing of the daemon's other stages. It must not know customers,
//! the store, rules or campaigns: a campaign hands it a [`dial::Dial`] and a
//! [`conversation::Conversation`] and gets a [`report::CallReport`] back.
//! Its counters are its own ([`metrics`]), gathered by the daemon's registry.

pub mod conversation;
pub mod dial;
pub mod media_call;
pub mod metrics;
pub mod report;
pub mod sip_agent;
