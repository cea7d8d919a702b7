//! Prompts encoded once for every leg that plays them.
//!
//! A prompt is companded to both G.711 laws when it is loaded, so that a leg's
//! outgoing payload is a slice of shared bytes: playing a prompt to a
//! thousand legs costs one encoding and no allocation per packet.

use std::sync::Arc;
use std::time::Duration;

use crate::g711::{alaw_encode, mulaw_encode};
use crate::sdp::Codec;

/// Samples in one 20 ms frame at 8 kHz, and bytes in one G.711 payload.
pub const FRAME_SAMPLES: usize = 160;

/// One frame of µ-law silence (a linear 0 encodes to 0xff).
pub const MULAW_SILENCE: [u8; FRAME_SAMPLES] = [0xff; FRAME_SAMPLES];

/// One frame of A-law silence (a linear 0 encodes to 0xd5).
pub const ALAW_SILENCE: [u8; FRAME_SAMPLES] = [0xd5; FRAME_SAMPLES];

/// The silence frame of `codec`.
pub fn silence_frame(codec: Codec) -> &'static [u8; FRAME_SAMPLES] {
    match codec {
        Codec::Pcmu => &MULAW_SILENCE,
        Codec::Pcma => &ALAW_SILENCE,
    }
}

/// 8 kHz mono audio in both G.711 laws, whole 20 ms frames, the last one
/// padded with silence. Cloning shares the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPrompt {
    mulaw: Arc<[u8]>,
    alaw: Arc<[u8]>,
    samples: usize,
}

impl EncodedPrompt {
    /// Encodes 8 kHz mono linear samples. An empty prompt has no frames and
    /// finishes as soon as it starts.
    pub fn from_pcm_8k(samples: &[i16]) -> EncodedPrompt {
        let frames = samples.len().div_ceil(FRAME_SAMPLES);
        let padded = frames * FRAME_SAMPLES;
        let mut mulaw = Vec::with_capacity(padded);
        let mut alaw = Vec::with_capacity(padded);
        for &sample in samples {
            mulaw.push(mulaw_encode(sample));
            alaw.push(alaw_encode(sample));
        }
        mulaw.resize(padded, MULAW_SILENCE[0]);
        alaw.resize(padded, ALAW_SILENCE[0]);
        EncodedPrompt {
            mulaw: mulaw.into(),
            alaw: alaw.into(),
            samples: samples.len(),
        }
    }

    /// Number of 20 ms frames, the last possibly padded.
    pub fn frames(&self) -> usize {
        self.mulaw.len() / FRAME_SAMPLES
    }

    /// Samples before padding.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Playing time of the frames sent, padding included.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(20 * self.frames() as u64)
    }

    /// `length` bytes from sample `start` in `codec`'s encoding, as far as
    /// the prompt (padded to whole frames) reaches.
    pub fn samples_from(&self, codec: Codec, start: usize, length: usize) -> &[u8] {
        let bytes = match codec {
            Codec::Pcmu => &self.mulaw,
            Codec::Pcma => &self.alaw,
        };
        let start = start.min(bytes.len());
        &bytes[start..bytes.len().min(start.saturating_add(length))]
    }

    /// Frame `index` in `codec`'s encoding, `None` past the end.
    pub fn frame(&self, codec: Codec, index: usize) -> Option<&[u8]> {
        let bytes = match codec {
            Codec::Pcmu => &self.mulaw,
            Codec::Pcma => &self.alaw,
        };
        let start = index.checked_mul(FRAME_SAMPLES)?;
        bytes.get(start..start + FRAME_SAMPLES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::{alaw_decode, mulaw_decode};

    #[test]
    fn the_last_frame_is_padded_with_silence() {
        let samples: Vec<i16> = (0..400).map(|n| (n * 50 - 10_000) as i16).collect();
        let prompt = EncodedPrompt::from_pcm_8k(&samples);
        assert_eq!(prompt.frames(), 3);
        assert_eq!(prompt.samples(), 400);
        assert_eq!(prompt.duration(), Duration::from_millis(60));
        let last = prompt.frame(Codec::Pcmu, 2).unwrap();
        assert!(last[80..].iter().all(|&code| mulaw_decode(code) == 0));
        let last = prompt.frame(Codec::Pcma, 2).unwrap();
        assert!(last[80..].iter().all(|&code| alaw_decode(code).abs() <= 8));
        assert_eq!(prompt.frame(Codec::Pcmu, 3), None);
        assert_eq!(prompt.frame(Codec::Pcmu, usize::MAX), None);
    }

    #[test]
    fn frames_hold_each_laws_encoding() {
        let samples: Vec<i16> = (0..320).map(|n| (n * 97 % 30_000) as i16).collect();
        let prompt = EncodedPrompt::from_pcm_8k(&samples);
        let mulaw: Vec<u8> = samples.iter().map(|&s| mulaw_encode(s)).collect();
        let alaw: Vec<u8> = samples.iter().map(|&s| alaw_encode(s)).collect();
        assert_eq!(prompt.frame(Codec::Pcmu, 1).unwrap(), &mulaw[160..]);
        assert_eq!(prompt.frame(Codec::Pcma, 0).unwrap(), &alaw[..160]);
        assert_eq!(mulaw_encode(0), MULAW_SILENCE[0]);
        assert_eq!(alaw_encode(0), ALAW_SILENCE[0]);
    }

    #[test]
    fn an_empty_prompt_has_no_frames() {
        let prompt = EncodedPrompt::from_pcm_8k(&[]);
        assert_eq!(prompt.frames(), 0);
        assert_eq!(prompt.frame(Codec::Pcmu, 0), None);
    }
}
