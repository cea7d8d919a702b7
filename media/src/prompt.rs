//! Audio prompts: a WAV file of any common rate, sample width and channel
//! count, converted once, when it is loaded, to the 8 kHz mono linear audio
//! that G.711 carries.
//!
//! Rate conversion uses rubato's synchronous FFT resampler, whose
//! anti-aliasing filter keeps what is above 4 kHz in a 44.1 kHz recording
//! from folding back into the telephone band. Stereo is downmixed by
//! averaging the two channels.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// The rate of everything a call plays and hears.
pub const SAMPLE_RATE: u32 = 8000;

/// Samples in one 20 ms packet at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// Lowest and highest input rates accepted: below 4 kHz is not speech, and
/// above 384 kHz no WAV file of a prompt has any reason to be.
const RATES: std::ops::RangeInclusive<u32> = 4000..=384_000;

/// 8 kHz mono linear audio, ready to be companded and sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pcm8k(Vec<i16>);

impl Pcm8k {
    /// Wraps samples that already are 8 kHz mono.
    pub fn new(samples: Vec<i16>) -> Pcm8k {
        Pcm8k(samples)
    }

    pub fn samples(&self) -> &[i16] {
        &self.0
    }

    pub fn into_samples(self) -> Vec<i16> {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Playing time: 125 µs a sample.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.0.len() as u64 * 1_000_000 / u64::from(SAMPLE_RATE))
    }

    /// The audio in frames of `samples_per_frame` samples (160 for 20 ms
    /// packets), the last one padded with silence.
    ///
    /// # Panics
    ///
    /// If `samples_per_frame` is 0, which is a bug in the caller.
    pub fn frames(&self, samples_per_frame: usize) -> Frames<'_> {
        assert!(samples_per_frame > 0, "a frame holds at least one sample");
        Frames {
            chunks: self.0.chunks(samples_per_frame),
            samples_per_frame,
        }
    }
}

/// Iterator returned by [`Pcm8k::frames`]. Full frames borrow the audio; only
/// a short last frame is copied, to pad it.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    chunks: std::slice::Chunks<'a, i16>,
    samples_per_frame: usize,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Cow<'a, [i16]>;

    fn next(&mut self) -> Option<Cow<'a, [i16]>> {
        let chunk = self.chunks.next()?;
        if chunk.len() == self.samples_per_frame {
            Some(Cow::Borrowed(chunk))
        } else {
            let mut padded = chunk.to_vec();
            padded.resize(self.samples_per_frame, 0);
            Some(Cow::Owned(padded))
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Frames<'_> {}

/// What is wrong with a prompt file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt `{path}` was not found")]
    NotFound { path: PathBuf },
    #[error("prompt `{path}` could not be read: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("prompt `{path}` is not a readable WAV file: {reason}")]
    NotWav { path: PathBuf, reason: String },
    #[error("prompt `{path}` has an unsupported format: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("prompt `{path}` holds no audio")]
    Empty { path: PathBuf },
}

/// What is wrong with audio handed to [`pcm8k_from_samples`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudioError {
    #[error("{0}")]
    Unsupported(String),
    #[error("no samples")]
    Empty,
}

/// Loads a WAV file (8, 16, 24 or 32-bit integer or 32-bit float, mono or
/// stereo, 4–384 kHz) and converts it to 8 kHz mono.
pub fn load_wav(path: impl AsRef<Path>) -> Result<Pcm8k, PromptError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => PromptError::NotFound {
            path: path.to_path_buf(),
        },
        _ => PromptError::Io {
            path: path.to_path_buf(),
            reason: error.to_string(),
        },
    })?;
    let reader =
        hound::WavReader::new(BufReader::new(file)).map_err(|error| wav_error(path, error))?;
    let decoded = decode(reader).map_err(|error| match error {
        hound::Error::IoError(error) => PromptError::NotWav {
            path: path.to_path_buf(),
            reason: format!("its audio could not be read: {error}"),
        },
        other => wav_error(path, other),
    })?;
    pcm8k_from_samples(&decoded.samples, decoded.rate, decoded.channels).map_err(
        |error| match error {
            AudioError::Unsupported(reason) => PromptError::Unsupported {
                path: path.to_path_buf(),
                reason,
            },
            AudioError::Empty => PromptError::Empty {
                path: path.to_path_buf(),
            },
        },
    )
}

/// Converts interleaved samples in [-1, 1] at `rate` with `channels`
/// channels (1 or 2) to 8 kHz mono.
pub fn pcm8k_from_samples(samples: &[f32], rate: u32, channels: u16) -> Result<Pcm8k, AudioError> {
    if !(1..=2).contains(&channels) {
        return Err(AudioError::Unsupported(format!(
            "{channels} channels, only mono and stereo are supported"
        )));
    }
    if !RATES.contains(&rate) {
        return Err(AudioError::Unsupported(format!(
            "a sample rate of {rate} Hz, outside {}–{} Hz",
            RATES.start(),
            RATES.end()
        )));
    }
    let mono: Vec<f32> = match channels {
        1 => samples.to_vec(),
        _ => samples
            .chunks_exact(2)
            .map(|pair| (pair[0] + pair[1]) / 2.0)
            .collect(),
    };
    if mono.is_empty() {
        return Err(AudioError::Empty);
    }
    let at_8k = if rate == SAMPLE_RATE {
        mono
    } else {
        resample(&mono, rate)?
    };
    Ok(Pcm8k(at_8k.iter().map(|s| to_i16(*s)).collect()))
}

/// Decodes a WAV stream the way `espeak-ng --stdout` writes it: the header
/// is written before the length is known, so its data length is a
/// placeholder and the audio simply ends where the stream does.
pub(crate) fn pcm8k_from_streamed_wav(bytes: &[u8]) -> Result<Pcm8k, AudioError> {
    let bytes = with_true_data_length(bytes);
    let reader = hound::WavReader::new(bytes.as_ref())
        .map_err(|error| AudioError::Unsupported(format!("not a WAV stream: {error}")))?;
    let decoded = decode(reader).map_err(|error| AudioError::Unsupported(error.to_string()))?;
    pcm8k_from_samples(&decoded.samples, decoded.rate, decoded.channels)
}

/// Writes 8 kHz mono 16-bit audio to a WAV writer.
pub(crate) fn write_pcm8k<W: io::Write + io::Seek>(
    writer: W,
    pcm: &Pcm8k,
) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::new(writer, spec)?;
    for sample in &pcm.0 {
        wav.write_sample(*sample)?;
    }
    wav.finalize()
}

struct Decoded {
    samples: Vec<f32>,
    rate: u32,
    channels: u16,
}

fn decode<R: Read>(reader: hound::WavReader<R>) -> hound::Result<Decoded> {
    let spec = reader.spec();
    let samples = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            reader.into_samples::<f32>().collect::<hound::Result<_>>()?
        }
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            reader
                .into_samples::<i32>()
                .collect::<hound::Result<Vec<_>>>()?
                .into_iter()
                .map(|s| (f64::from(s) * scale) as f32)
                .collect()
        }
        _ => return Err(hound::Error::Unsupported),
    };
    Ok(Decoded {
        samples,
        rate: spec.sample_rate,
        channels: spec.channels,
    })
}

/// `bytes` with the data chunk's length set to what the stream holds: a
/// streamed header's length is a placeholder. Bytes that are not a RIFF
/// stream are returned as they are, for the WAV reader to reject.
fn with_true_data_length(bytes: &[u8]) -> Cow<'_, [u8]> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Cow::Borrowed(bytes);
    }
    let mut block_align = 1usize;
    let mut at: usize = 12;
    while let Some(header) = at.checked_add(8).and_then(|end| bytes.get(at..end)) {
        let id = &header[..4];
        let length = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let body = at + 8;
        if id == b"fmt " {
            if let Some(align) = bytes.get(body + 12..body + 14) {
                block_align = usize::from(u16::from_le_bytes([align[0], align[1]])).max(1);
            }
        } else if id == b"data" {
            let available = bytes.len() - body;
            if length <= available {
                return Cow::Borrowed(bytes);
            }
            let true_length = available - available % block_align;
            let mut fixed = bytes[..body + true_length].to_vec();
            // Both fit in u32: they are shorter than the placeholders they replace.
            fixed[at + 4..at + 8].copy_from_slice(&(true_length as u32).to_le_bytes());
            let riff_length = (fixed.len() - 8) as u32;
            fixed[4..8].copy_from_slice(&riff_length.to_le_bytes());
            return Cow::Owned(fixed);
        }
        // Chunks are padded to an even length.
        at = body.saturating_add(length).saturating_add(length % 2);
    }
    Cow::Borrowed(bytes)
}

fn resample(mono: &[f32], rate: u32) -> Result<Vec<f32>, AudioError> {
    let unsupported = |error: &dyn std::fmt::Display| {
        AudioError::Unsupported(format!("cannot resample {rate} Hz to 8 kHz: {error}"))
    };
    let mut resampler = Fft::<f32>::new(
        rate as usize,
        SAMPLE_RATE as usize,
        1024,
        1,
        FixedSync::Both,
    )
    .map_err(|error| unsupported(&error))?;
    let input = InterleavedSlice::new(mono, 1, mono.len()).map_err(|error| unsupported(&error))?;
    let output = resampler
        .process_all(&input, mono.len(), None)
        .map_err(|error| unsupported(&error))?;
    Ok(output.take_data())
}

fn to_i16(sample: f32) -> i16 {
    // The inverse of the 1/32768 scaling on reading, so that 16-bit audio
    // at 8 kHz comes back sample for sample. In range after the clamp, so
    // the cast only drops the fraction.
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

fn wav_error(path: &Path, error: hound::Error) -> PromptError {
    let path = path.to_path_buf();
    match error {
        hound::Error::IoError(error) => PromptError::Io {
            path,
            reason: error.to_string(),
        },
        hound::Error::FormatError(reason) => PromptError::NotWav {
            path,
            reason: reason.into(),
        },
        hound::Error::Unsupported => PromptError::Unsupported {
            path,
            reason: "an encoding other than 8 to 32-bit integer or 32-bit float PCM".into(),
        },
        other => PromptError::Unsupported {
            path,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Power of `frequency` in 8 kHz audio (Goertzel).
    pub(crate) fn tone_power(samples: &[i16], frequency: f32) -> f32 {
        let coefficient = 2.0 * (2.0 * std::f32::consts::PI * frequency / SAMPLE_RATE as f32).cos();
        let (mut previous, mut before) = (0.0f32, 0.0f32);
        for sample in samples {
            let current = f32::from(*sample) + coefficient * previous - before;
            before = previous;
            previous = current;
        }
        previous * previous + before * before - coefficient * previous * before
    }

    fn peak_of_rms(samples: &[i16]) -> f32 {
        let energy: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
        ((energy / samples.len() as f64).sqrt() * std::f64::consts::SQRT_2) as f32
    }

    /// Writes a 1 kHz sine of amplitude 0.5 lasting one second.
    fn write_sine(path: &Path, rate: u32, channels: u16, format: hound::SampleFormat, bits: u16) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        };
        let mut writer = hound::WavWriter::create(path, spec).expect("create test WAV");
        for n in 0..rate {
            let value =
                0.5 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(n) / f64::from(rate)).sin();
            for _ in 0..channels {
                match format {
                    hound::SampleFormat::Float => writer.write_sample(value as f32),
                    hound::SampleFormat::Int => {
                        let full = ((1i64 << (bits - 1)) - 1) as f64;
                        writer.write_sample((value * full).round() as i32)
                    }
                }
                .expect("write sample");
            }
        }
        writer.finalize().expect("finalize test WAV");
    }

    fn assert_one_second_of_1khz(pcm: &Pcm8k) {
        let samples = pcm.samples();
        assert!(
            (samples.len() as i64 - 8000).abs() <= FRAME_SAMPLES as i64,
            "length {}",
            samples.len()
        );
        // Skip the edges, where the resampler's filter rings.
        let middle = &samples[800..7200];
        let at_1k = tone_power(middle, 1000.0);
        for other in [300.0, 500.0, 700.0, 1300.0, 2000.0, 3000.0, 3700.0] {
            let power = tone_power(middle, other);
            assert!(
                at_1k > power * 1000.0,
                "{other} Hz: {power} against {at_1k}"
            );
        }
        let amplitude = peak_of_rms(middle) / 32768.0;
        assert!(
            (amplitude - 0.5).abs() < 0.5 * 0.03,
            "amplitude {amplitude}"
        );
    }

    #[test]
    fn sine_at_44100_stereo_16_bit_keeps_its_tone_and_level() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sine.wav");
        write_sine(&path, 44_100, 2, hound::SampleFormat::Int, 16);
        assert_one_second_of_1khz(&load_wav(&path).expect("load"));
    }

    #[test]
    fn sine_at_16000_mono_16_bit_keeps_its_tone_and_level() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sine.wav");
        write_sine(&path, 16_000, 1, hound::SampleFormat::Int, 16);
        assert_one_second_of_1khz(&load_wav(&path).expect("load"));
    }

    #[test]
    fn other_rates_and_widths_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (rate, channels, format, bits) in [
            (8000, 1, hound::SampleFormat::Int, 8),
            (22_050, 1, hound::SampleFormat::Int, 24),
            (48_000, 2, hound::SampleFormat::Float, 32),
            (48_000, 1, hound::SampleFormat::Int, 32),
        ] {
            let path = dir.path().join(format!("sine-{rate}-{bits}.wav"));
            write_sine(&path, rate, channels, format, bits);
            let pcm =
                load_wav(&path).unwrap_or_else(|error| panic!("{rate} Hz {bits} bit: {error}"));
            assert_one_second_of_1khz(&pcm);
        }
    }

    #[test]
    fn sixteen_bit_audio_at_8k_is_unchanged() {
        let samples: Vec<i16> = (i16::MIN..=i16::MAX).step_by(7).collect();
        let mut bytes = io::Cursor::new(Vec::new());
        write_pcm8k(&mut bytes, &Pcm8k::new(samples.clone())).expect("write");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ramp.wav");
        std::fs::write(&path, bytes.into_inner()).expect("write");
        assert!(load_wav(&path).expect("load").samples() == samples.as_slice());
    }

    #[test]
    fn treble_above_4_khz_does_not_fold_into_the_band() {
        let rate = 44_100;
        let sine = |frequency: f64| -> Vec<f32> {
            (0..rate)
                .map(|n| {
                    let t = f64::from(n) / f64::from(rate);
                    (0.5 * (2.0 * std::f64::consts::PI * frequency * t).sin()) as f32
                })
                .collect()
        };
        // 5 kHz would alias to 3 kHz without the filter.
        let treble = pcm8k_from_samples(&sine(5000.0), rate, 1).expect("convert");
        let level = peak_of_rms(&treble.samples()[800..7200]) / 32768.0;
        assert!(level < 0.5 * 0.01, "5 kHz came through at {level}");
        // 3 kHz, inside the telephone band, is kept.
        let in_band = pcm8k_from_samples(&sine(3000.0), rate, 1).expect("convert");
        let level = peak_of_rms(&in_band.samples()[800..7200]) / 32768.0;
        assert!(
            (level - 0.5).abs() < 0.5 * 0.05,
            "3 kHz came through at {level}"
        );
    }

    #[test]
    fn stereo_is_averaged() {
        let pcm = pcm8k_from_samples(&[0.5, -0.5, 0.25, 0.75], SAMPLE_RATE, 2).expect("convert");
        assert_eq!(pcm.samples(), &[0, 16384]);
    }

    #[test]
    fn frames_pad_the_last_one_with_silence() {
        let pcm = Pcm8k::new((1..=400).collect());
        let frames: Vec<_> = pcm.frames(FRAME_SAMPLES).collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0][0], 1);
        assert_eq!(frames[1][159], 320);
        assert_eq!(frames[2].len(), 160);
        assert_eq!(frames[2][79], 400);
        assert!(frames[2][80..].iter().all(|s| *s == 0));
        assert_eq!(pcm.duration(), Duration::from_millis(50));
    }

    #[test]
    fn missing_file_is_named() {
        let error = load_wav("/nonexistent/hello.wav").expect_err("no such file");
        assert!(matches!(error, PromptError::NotFound { .. }));
        assert_eq!(
            error.to_string(),
            "prompt `/nonexistent/hello.wav` was not found"
        );
    }

    #[test]
    fn text_file_is_not_a_wav() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hello.wav");
        std::fs::write(&path, "hello, this is text").expect("write");
        let error = load_wav(&path).expect_err("not a WAV");
        assert!(matches!(error, PromptError::NotWav { .. }), "{error}");
        assert!(error.to_string().contains("hello.wav"));
    }

    #[test]
    fn wav_without_samples_is_empty() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("empty.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        hound::WavWriter::create(&path, spec)
            .expect("create")
            .finalize()
            .expect("finalize");
        let error = load_wav(&path).expect_err("empty");
        assert!(matches!(error, PromptError::Empty { .. }), "{error}");
    }

    #[test]
    fn more_than_two_channels_are_unsupported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("three.wav");
        write_sine(&path, 8000, 3, hound::SampleFormat::Int, 16);
        let error = load_wav(&path).expect_err("three channels");
        assert!(matches!(error, PromptError::Unsupported { .. }), "{error}");
        assert!(error.to_string().contains("3 channels"), "{error}");
    }

    #[test]
    fn truncated_file_is_an_error_but_a_streamed_header_is_not() {
        let mut bytes = io::Cursor::new(Vec::new());
        write_pcm8k(&mut bytes, &Pcm8k::new(vec![1000; 800])).expect("write");
        let mut bytes = bytes.into_inner();
        bytes.truncate(bytes.len() - 400);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cut.wav");
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            load_wav(&path).expect_err("truncated"),
            PromptError::NotWav { .. }
        ));
        let streamed = pcm8k_from_streamed_wav(&bytes).expect("streamed");
        assert_eq!(streamed.samples().len(), 600);
    }
}
