//! Voice activity detection on the customer's audio, sans-IO: feed 20 ms
//! frames of 8 kHz audio with their media time, then drain
//! [`VoiceDetector::poll_event`] for the starts and ends of speech.
//!
//! Whether a stretch of audio is speech is decided by earshot, a small neural
//! detector that works on 16 ms blocks of 16 kHz audio; the 8 kHz frames are
//! upsampled by two with linear interpolation (the band above 4 kHz is empty
//! on a telephone line anyway). An energy gate rides on top: a block counts
//! as voiced only if it is also at least 10 dB above an adaptive noise floor
//! and above -50 dBFS. That keeps the detector's slow decay after the last
//! word out of the end time, and lets the start time move back to where the
//! energy began.
//!
//! A start is reported once speech has lasted [`VadConfig::min_speech`], so
//! a click never counts, and an end once there has been no voiced block for
//! [`VadConfig::hangover`], so pauses between words do not split a sentence.
//! The times in the events are where speech began and ended, not when that
//! became certain.

use std::collections::VecDeque;
use std::time::Duration;

use crate::prompt::SAMPLE_RATE;

/// What the detector reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    SpeechStart { at: Duration },
    SpeechEnd { at: Duration },
}

/// Tuning of [`VoiceDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// earshot's score from which a block is speech, 0–1.
    pub threshold: f32,
    /// Speech shorter than this is ignored (clicks, a cough's first crack).
    pub min_speech: Duration,
    /// Silence shorter than this does not end speech.
    pub hangover: Duration,
    /// RMS level below which a block is never voiced, in dBFS.
    pub min_level_dbfs: f32,
    /// How far above the noise floor a voiced block must be, in dB.
    pub above_noise_db: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            threshold: 0.5,
            min_speech: Duration::from_millis(48),
            hangover: Duration::from_millis(300),
            min_level_dbfs: -50.0,
            above_noise_db: 10.0,
        }
    }
}

/// A detector per call leg.
pub struct VoiceDetector {
    config: VadConfig,
    detector: Box<earshot::Detector>,
    /// The 8 kHz samples of the block being filled.
    block: Vec<i16>,
    /// The block upsampled to 16 kHz, made only when it is scored.
    upsampled: Vec<i16>,
    /// Media time of `block[0]`, or of the next sample when it is empty.
    pending_start: Duration,
    /// Whether a frame was fed yet.
    started: bool,
    /// The 8 kHz sample just before `block[0]`, for interpolating across
    /// blocks.
    previous_sample: i16,
    noise_floor: f32,
    /// Recent blocks (start time, RMS), to move a start back to where the
    /// energy began.
    history: VecDeque<(Duration, f32)>,
    state: State,
    events: VecDeque<VadEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Silence,
    /// Voiced blocks since `onset`, not yet long enough.
    Onset {
        onset: Duration,
        voiced: Duration,
    },
    Speech {
        last_voiced_end: Duration,
    },
}

/// What a recognizer made of one stretch of speech.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognition {
    pub text: String,
    /// The intent the text was matched to, if any.
    pub intent: Option<String>,
}

/// Turns a segment of speech (8 kHz linear audio from a
/// [`VadEvent::SpeechStart`] to its [`VadEvent::SpeechEnd`]) into text.
pub trait Recognizer {
    fn on_speech(&mut self, segment: &[i16]) -> Option<Recognition>;
}

/// The recognizer of a call that understands only keys: it knows that the
/// customer spoke (from the detector) and which keys they pressed (from
/// [`crate::dtmf`]), and recognizes no words.
#[derive(Debug, Clone, Copy, Default)]
pub struct DtmfAndVad;

impl Recognizer for DtmfAndVad {
    fn on_speech(&mut self, _segment: &[i16]) -> Option<Recognition> {
        None
    }
}

/// earshot's block: 256 samples at 16 kHz.
const BLOCK: usize = 256;
const BLOCK_DURATION: Duration = Duration::from_millis(16);
/// How far back a start may move to where the energy began.
const ONSET_LOOKBACK: usize = 6;
/// A gap in media time longer than this restarts the block timing instead
/// of being filled with silence.
const MAX_FILLED_GAP: Duration = Duration::from_secs(1);

impl VoiceDetector {
    pub fn new(config: VadConfig) -> VoiceDetector {
        VoiceDetector {
            config,
            detector: earshot::Detector::default_boxed(),
            block: Vec::with_capacity(BLOCK / 2),
            upsampled: Vec::with_capacity(BLOCK),
            pending_start: Duration::ZERO,
            started: false,
            previous_sample: 0,
            // Until the floor is measured, the gate is the absolute minimum.
            noise_floor: dbfs_to_rms(config.min_level_dbfs - config.above_noise_db),
            history: VecDeque::with_capacity(ONSET_LOOKBACK + 1),
            state: State::Silence,
            events: VecDeque::new(),
        }
    }

    /// Feeds one frame (normally 160 samples, 20 ms) starting at
    /// `media_time`. Frames come in media-time order; a frame that starts
    /// before the end of the previous one is ignored, and a gap is filled
    /// with silence.
    pub fn push_frame(&mut self, media_time: Duration, frame: &[i16]) {
        let expected = self
            .pending_start
            .saturating_add(samples_duration(self.block.len()));
        let tolerance = Duration::from_millis(1);
        if !self.started {
            self.started = true;
            self.pending_start = media_time;
        } else if media_time.saturating_add(tolerance) < expected {
            return;
        } else if media_time > expected.saturating_add(tolerance) {
            let gap = media_time - expected;
            if gap > MAX_FILLED_GAP {
                self.block.clear();
                self.pending_start = media_time;
            } else {
                let missing = duration_samples(gap);
                self.push_samples(std::iter::repeat_n(0, missing));
            }
        }
        self.push_samples(frame.iter().copied());
    }

    /// The next event, if any. Drain after every [`Self::push_frame`].
    pub fn poll_event(&mut self) -> Option<VadEvent> {
        self.events.pop_front()
    }

    /// Whether the customer is speaking, as far as reported.
    pub fn is_speaking(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    fn push_samples(&mut self, samples: impl Iterator<Item = i16>) {
        for sample in samples {
            self.block.push(sample);
            if self.block.len() == BLOCK / 2 {
                self.analyse_block();
            }
        }
    }

    /// The block at 16 kHz: each sample preceded by its midpoint with the
    /// one before.
    fn upsample(&mut self) {
        self.upsampled.clear();
        let mut previous = self.previous_sample;
        for &sample in &self.block {
            // Midpoint of two i16 fits in i16.
            self.upsampled
                .push(((i32::from(previous) + i32::from(sample)) / 2) as i16);
            self.upsampled.push(sample);
            previous = sample;
        }
    }

    fn analyse_block(&mut self) {
        let start = self.pending_start;
        let end = start.saturating_add(BLOCK_DURATION);
        let rms = rms(&self.block);
        let gate = dbfs_to_rms(self.config.min_level_dbfs)
            .max(self.noise_floor * db_to_ratio(self.config.above_noise_db));
        // The neural score is the costly part, and it only matters for a
        // block loud enough to pass the gate while no speech is going on:
        // a quiet block is never voiced, and once speech has started the
        // gate alone decides when it ends. So a line that is quiet, or
        // steadily loud (the floor rises to it), costs almost nothing.
        let voiced = rms >= gate
            && (matches!(self.state, State::Speech { .. }) || {
                let threshold = self.config.threshold;
                self.upsample();
                self.detector.predict_i16(&self.upsampled) >= threshold
            });
        self.previous_sample = self.block.last().copied().unwrap_or(0);
        self.block.clear();
        self.pending_start = end;
        if !voiced {
            // The floor falls at once to a quieter block and rises slowly
            // (time constant about 320 ms) so that speech cannot lift it.
            if rms < self.noise_floor {
                self.noise_floor = rms.max(1.0);
            } else {
                self.noise_floor += (rms - self.noise_floor) * 0.05;
            }
        }

        self.state = match self.state {
            State::Silence if voiced => self.onset_or_start(start, BLOCK_DURATION, end, gate),
            State::Silence => State::Silence,
            State::Onset {
                onset,
                voiced: so_far,
            } if voiced => self.onset_or_start(onset, so_far + BLOCK_DURATION, end, gate),
            State::Onset { .. } => State::Silence,
            State::Speech { .. } if voiced => State::Speech {
                last_voiced_end: end,
            },
            State::Speech { last_voiced_end }
                if end.saturating_sub(last_voiced_end) >= self.config.hangover =>
            {
                self.events.push_back(VadEvent::SpeechEnd {
                    at: last_voiced_end,
                });
                State::Silence
            }
            speech @ State::Speech { .. } => speech,
        };

        self.history.push_back((start, rms));
        if self.history.len() > ONSET_LOOKBACK + 1 {
            self.history.pop_front();
        }
    }

    /// After a voiced block: still an onset, or long enough to report.
    fn onset_or_start(
        &mut self,
        onset: Duration,
        voiced: Duration,
        end: Duration,
        gate: f32,
    ) -> State {
        if voiced < self.config.min_speech {
            return State::Onset { onset, voiced };
        }
        // Move the start back over the loud blocks just before it, which the
        // detector needed as context before it scored them as speech.
        let mut at = onset;
        for (start, rms) in self.history.iter().rev() {
            if *start >= onset {
                continue;
            }
            if *rms < gate || at.saturating_sub(*start) > BLOCK_DURATION {
                break;
            }
            at = *start;
        }
        self.events.push_back(VadEvent::SpeechStart { at });
        State::Speech {
            last_voiced_end: end,
        }
    }
}

impl Default for VoiceDetector {
    fn default() -> Self {
        VoiceDetector::new(VadConfig::default())
    }
}

impl std::fmt::Debug for VoiceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceDetector")
            .field("config", &self.config)
            .field("state", &self.state)
            .field("noise_floor", &self.noise_floor)
            .field("pending_start", &self.pending_start)
            .finish_non_exhaustive()
    }
}

fn rms(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    // i16 squares summed in i64 cannot overflow for any block.
    let energy: i64 = samples.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    (energy as f64 / samples.len() as f64).sqrt() as f32
}

fn dbfs_to_rms(dbfs: f32) -> f32 {
    32768.0 * db_to_ratio(dbfs)
}

fn db_to_ratio(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

fn samples_duration(samples: usize) -> Duration {
    Duration::from_micros(samples as u64 * 1_000_000 / u64::from(SAMPLE_RATE))
}

fn duration_samples(duration: Duration) -> usize {
    (duration.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{FRAME_SAMPLES, Pcm8k};
    use crate::tts::TtsEngine;

    /// White noise from a fixed seed, uniform within ±32768/`divisor`: -60 dBFS
    /// RMS for a divisor of 600, -40 dBFS for 60.
    fn noise(samples: usize, divisor: i16, seed: &mut u32) -> Vec<i16> {
        (0..samples)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((*seed >> 16) as u16 as i16) / divisor
            })
            .collect()
    }

    /// Feeds `audio` in 20 ms frames from media time 0; returns the events
    /// with the media time at the end of the frame after which each was
    /// polled.
    fn run(audio: &[i16]) -> Vec<(VadEvent, Duration)> {
        let mut detector = VoiceDetector::default();
        let mut events = Vec::new();
        for (k, frame) in Pcm8k::new(audio.to_vec()).frames(FRAME_SAMPLES).enumerate() {
            let at = Duration::from_millis(20 * k as u64);
            detector.push_frame(at, &frame);
            while let Some(event) = detector.poll_event() {
                events.push((event, at + Duration::from_millis(20)));
            }
        }
        events
    }

    /// Start and end of the stretch whose 10 ms windows are above -40 dBFS.
    fn energy_bounds(samples: &[i16]) -> (Duration, Duration) {
        let loud: Vec<usize> = samples
            .chunks(80)
            .enumerate()
            .filter(|(_, window)| rms(window) > dbfs_to_rms(-40.0))
            .map(|(k, _)| k)
            .collect();
        let first = *loud.first().expect("some loud window");
        let last = *loud.last().expect("some loud window");
        (
            Duration::from_millis(10 * first as u64),
            Duration::from_millis(10 * (last as u64 + 1)),
        )
    }

    fn assert_near(actual: Duration, expected: Duration, what: &str) {
        let difference = actual.abs_diff(expected);
        assert!(
            difference <= Duration::from_millis(100),
            "{what}: {actual:?} against {expected:?}"
        );
    }

    fn sentence_between_noise(voice: &str, text: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = TtsEngine::new(dir.path(), voice, 1.0).expect("engine");
        let speech = engine.speak(text).expect("speak");
        let (onset, offset) = energy_bounds(speech.samples());
        let mut seed = 7;
        let mut audio = noise(8000, 600, &mut seed);
        for (sample, noise) in
            speech
                .samples()
                .iter()
                .zip(noise(speech.samples().len(), 600, &mut seed))
        {
            audio.push(sample.saturating_add(noise));
        }
        audio.extend(noise(8000, 600, &mut seed));

        let events = run(&audio);
        let second = Duration::from_secs(1);
        let [
            (VadEvent::SpeechStart { at: start }, start_reported),
            (VadEvent::SpeechEnd { at: end }, _),
        ] = events[..]
        else {
            panic!("{voice}: expected one start and one end, got {events:?}");
        };
        assert_near(start, second + onset, "start");
        assert!(
            start_reported <= second + onset + Duration::from_millis(100),
            "{voice}: start reported at {start_reported:?}, speech began at {:?}",
            second + onset
        );
        assert_near(end, second + offset, "end");
    }

    #[test]
    fn mandarin_sentence_is_one_stretch_of_speech() {
        sentence_between_noise("cmn", "您好，张先生，您的购物车还有商品");
    }

    #[test]
    fn english_sentence_is_one_stretch_of_speech() {
        sentence_between_noise("en", "Hello, items are waiting in your cart.");
    }

    #[test]
    fn quiet_speech_from_the_first_frame_is_heard() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = TtsEngine::new(dir.path(), "en", 1.0).expect("engine");
        let speech = engine
            .speak("Hello, items are waiting in your cart.")
            .expect("speak");
        let (onset, _) = energy_bounds(speech.samples());
        // 20 dB down: a quiet line, and no noise before it to learn from.
        let mut audio: Vec<i16> = speech.samples().iter().map(|s| s / 10).collect();
        audio.extend(vec![0; 8000]);
        let events = run(&audio);
        assert!(
            matches!(
                events[..],
                [
                    (VadEvent::SpeechStart { at }, _),
                    (VadEvent::SpeechEnd { .. }, _)
                ] if at.abs_diff(onset) <= Duration::from_millis(100)
            ),
            "{events:?}"
        );
    }

    #[test]
    fn noise_alone_is_not_speech() {
        let mut seed = 11;
        // -60 and -40 dBFS.
        for divisor in [600, 60] {
            assert_eq!(run(&noise(5 * 8000, divisor, &mut seed)), vec![]);
        }
    }

    #[test]
    fn a_click_is_not_speech() {
        let mut seed = 3;
        let mut audio = noise(8000, 600, &mut seed);
        // A 2 ms click at full scale.
        for (k, sample) in audio[4000..4016].iter_mut().enumerate() {
            *sample = if k % 2 == 0 { 30_000 } else { -30_000 };
        }
        assert_eq!(run(&audio), vec![]);
    }

    #[test]
    fn a_speech_burst_shorter_than_min_speech_is_not_speech() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = TtsEngine::new(dir.path(), "en", 1.0).expect("engine");
        let speech = engine.speak("Ah").expect("speak");
        let (onset, _) = energy_bounds(speech.samples());
        let onset = duration_samples(onset);
        let mut seed = 5;
        let mut audio = noise(8000, 600, &mut seed);
        let burst = &speech.samples()[onset..onset + 240];
        audio[4000..4240].copy_from_slice(burst);
        assert_eq!(run(&audio), vec![]);
    }

    #[test]
    fn a_lost_frame_keeps_the_timing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = TtsEngine::new(dir.path(), "en", 1.0).expect("engine");
        let speech = engine.speak("Hello there, how are you?").expect("speak");
        let (onset, _) = energy_bounds(speech.samples());
        let mut audio = vec![0; 8000];
        audio.extend_from_slice(speech.samples());
        audio.extend(vec![0; 8000]);
        let mut detector = VoiceDetector::default();
        let mut events = Vec::new();
        for (k, frame) in Pcm8k::new(audio).frames(FRAME_SAMPLES).enumerate() {
            // Frames 10 to 12 (200–260 ms) never arrive.
            if (10..13).contains(&k) {
                continue;
            }
            detector.push_frame(Duration::from_millis(20 * k as u64), &frame);
            events.extend(std::iter::from_fn(|| detector.poll_event()));
        }
        let Some(VadEvent::SpeechStart { at }) = events.first() else {
            panic!("no start: {events:?}");
        };
        assert_near(*at, Duration::from_secs(1) + onset, "start");
        assert!(!detector.is_speaking());
    }

    #[test]
    fn a_repeated_frame_is_ignored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = TtsEngine::new(dir.path(), "en", 1.0).expect("engine");
        let mut audio = vec![0; 8000];
        audio.extend_from_slice(engine.speak("Yes, please.").expect("speak").samples());
        audio.extend(vec![0; 8000]);
        let once = run(&audio);
        let mut detector = VoiceDetector::default();
        let mut twice = Vec::new();
        for (k, frame) in Pcm8k::new(audio).frames(FRAME_SAMPLES).enumerate() {
            let at = Duration::from_millis(20 * k as u64);
            detector.push_frame(at, &frame);
            detector.push_frame(at, &frame);
            while let Some(event) = detector.poll_event() {
                twice.push((event, at + Duration::from_millis(20)));
            }
        }
        assert_eq!(once.len(), 2, "{once:?}");
        assert_eq!(twice, once);
    }

    #[test]
    fn keys_and_voice_recognize_no_words() {
        assert_eq!(DtmfAndVad.on_speech(&[1000; 8000]), None);
    }
}
