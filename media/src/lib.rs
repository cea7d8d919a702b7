//! dialhound's media: G.711, DTMF, SDP and RTP for each call leg, and the
//! audio a call plays, hears and records.
//!
//! - [`g711`]: µ-law and A-law companding.
//! - [`dtmf`]: RFC 4733 telephone events and an in-band Goertzel DTMF detector.
//! - [`packet`]: RTP datagrams parsed into packets, errors instead of panics.
//! - [`sdp`]: SDP offer and answer for one G.711 audio stream.
//! - [`rtp_session`]: the sans-IO RTP/RTCP session of one call leg.
//! - [`reception`]: RFC 3550 reception statistics: extended sequence, loss, jitter.
//! - [`quality`]: what a leg measured, and a MOS estimate from the E-model.
//! - [`mandarin`]: Mandarin text as it is read aloud: numbers, amounts, dates,
//!   times and phone numbers written out before synthesis.
//! - [`prompt`]: WAV prompts converted once to 8 kHz mono, played in 20 ms frames.
//! - [`tts`]: espeak-ng text-to-speech from prompt templates, cached on disk,
//!   with the neural Mandarin voice of [`voice`] when one is loaded.
//! - [`voice`]: a neural Mandarin voice (FastSpeech2 and MB-MelGAN on the
//!   Baker corpus, non-commercial) run in process.
//! - [`vad`]: voice activity detection on 20 ms frames, and the recognizer trait.
//! - [`recording`]: stereo call recordings aligned by media time, renamed into
//!   place when done.

pub mod dtmf;
pub mod encoded;
pub mod engine;
pub mod g711;
pub mod mandarin;
pub mod packet;
pub mod prompt;
pub mod quality;
pub mod reception;
pub mod recording;
pub mod rtp_session;
pub mod sdp;
pub mod tts;
pub mod vad;
pub mod voice;
