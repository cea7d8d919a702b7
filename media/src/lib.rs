//! dialhound's media: G.711 companding, RFC 4733 telephone events and an in-band
//! DTMF detector.

pub mod dtmf;
pub mod g711;
pub mod packet;
pub mod prompt;
pub mod quality;
pub mod reception;
pub mod recording;
pub mod rtp_session;
pub mod sdp;
pub mod tts;
pub mod vad;
