//! dialhound's media: G.711 companding, RFC 4733 telephone events and an in-band
//! DTMF detector.

pub mod dtmf;
pub mod encoded;
pub mod engine;
pub mod g711;
pub mod packet;
pub mod quality;
pub mod reception;
pub mod rtp_session;
pub mod sdp;
