//! Call recording: one stereo 8 kHz 16-bit WAV per call, the left channel
//! what the customer sent us, the right channel what we played.
//!
//! Audio is placed by media time (time since the call's media started, from
//! the call's media clock), not by arrival order: a gap in either direction
//! becomes silence, so the two channels stay in step however the packets
//! came. The file is written as `NAME.part` and renamed to `NAME` by
//! [`CallRecording::finish`], so a crash never leaves a half-written file
//! under the final name.
//!
//! Audio is written out as soon as both channels have it. When one side
//! falls silent (a one-way call, a hold) the other is not held back forever:
//! once it is [`MAX_LAG`] ahead, the silent side is filled with silence up to
//! that point, and audio for it arriving later than that is dropped.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::prompt::SAMPLE_RATE;

/// How far one channel may run ahead of the other before the other is
/// filled with silence and written.
pub const MAX_LAG: Duration = Duration::from_secs(2);

/// The longest recording: a 16-bit stereo 8 kHz WAV file reaches the
/// format's 4 GiB limit after 37 hours.
pub const LONGEST: Duration = Duration::from_secs(24 * 3600);

/// A recording in progress.
pub struct CallRecording {
    path: PathBuf,
    part: PathBuf,
    writer: hound::WavWriter<BufWriter<File>>,
    /// Frames (sample pairs) already in the file.
    written: u64,
    /// Audio not yet written, from frame `written` on; gaps hold zeros.
    received: Vec<i16>,
    sent: Vec<i16>,
    /// Samples dropped because they came after their place was written.
    late_samples: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("recording `{path}`: {reason}")]
pub struct RecordingError {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Debug for CallRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecording")
            .field("path", &self.path)
            .field("written", &self.written)
            .field("received", &self.received.len())
            .field("sent", &self.sent.len())
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
enum Channel {
    Received,
    Sent,
}

impl CallRecording {
    /// Starts a recording that [`CallRecording::finish`] will leave at
    /// `path`; until then it is written to `path` with `.part` appended.
    pub fn create(path: impl Into<PathBuf>) -> Result<CallRecording, RecordingError> {
        let path = path.into();
        let mut part = path.clone().into_os_string();
        part.push(".part");
        let part = PathBuf::from(part);
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(&part, spec).map_err(|error| RecordingError {
            path: part.clone(),
            reason: error.to_string(),
        })?;
        Ok(CallRecording {
            path,
            part,
            writer,
            written: 0,
            received: Vec::new(),
            sent: Vec::new(),
            late_samples: 0,
        })
    }

    /// The final path, where the file is once finished.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Audio from the customer, starting at `media_time`.
    pub fn push_received(
        &mut self,
        media_time: Duration,
        samples: &[i16],
    ) -> Result<(), RecordingError> {
        self.push(Channel::Received, media_time, samples)
    }

    /// Audio we played, starting at `media_time`.
    pub fn push_sent(
        &mut self,
        media_time: Duration,
        samples: &[i16],
    ) -> Result<(), RecordingError> {
        self.push(Channel::Sent, media_time, samples)
    }

    /// Samples dropped so far because they arrived more than [`MAX_LAG`]
    /// behind the other channel.
    pub fn late_samples(&self) -> u64 {
        self.late_samples
    }

    /// Writes what is left, the shorter channel padded with silence, and
    /// moves the file to its final name.
    pub fn finish(mut self) -> Result<PathBuf, RecordingError> {
        let end = self.received.len().max(self.sent.len());
        self.write_frames(end as u64)?;
        let CallRecording {
            path, part, writer, ..
        } = self;
        writer.finalize().map_err(|error| RecordingError {
            path: part.clone(),
            reason: error.to_string(),
        })?;
        std::fs::rename(&part, &path).map_err(|error| RecordingError {
            path: path.clone(),
            reason: format!("cannot move `{}` into place: {error}", part.display()),
        })?;
        Ok(path)
    }

    fn push(
        &mut self,
        channel: Channel,
        media_time: Duration,
        samples: &[i16],
    ) -> Result<(), RecordingError> {
        let start = sample_index(media_time);
        if start > sample_index(LONGEST) {
            return Err(RecordingError {
                path: self.part.clone(),
                reason: format!(
                    "media time {media_time:?} is past the {LONGEST:?} a recording holds"
                ),
            });
        }
        let max_lag = sample_index(MAX_LAG);
        // Audio far ahead of everything buffered: write out silence up to
        // `MAX_LAG` before it first, rather than buffer the gap.
        if let Some(silent) = start.checked_sub(max_lag + self.written) {
            self.write_frames(silent)?;
        }
        // Drop what belongs to frames already in the file.
        let skip = self.written.saturating_sub(start).min(samples.len() as u64) as usize;
        self.late_samples += skip as u64;
        let samples = &samples[skip..];
        if samples.is_empty() {
            return Ok(());
        }
        // At most `MAX_LAG` after the first unwritten frame, by the above.
        let offset = (start + skip as u64 - self.written) as usize;
        let buffer = match channel {
            Channel::Received => &mut self.received,
            Channel::Sent => &mut self.sent,
        };
        let end = offset + samples.len();
        if buffer.len() < end {
            buffer.resize(end, 0);
        }
        buffer[offset..end].copy_from_slice(samples);

        let shorter = self.received.len().min(self.sent.len()) as u64;
        let longer = self.received.len().max(self.sent.len()) as u64;
        self.write_frames(shorter.max(longer.saturating_sub(max_lag)))
    }

    /// Writes `frames` frames from the start of both buffers, silence where
    /// a buffer is shorter, and drops them from the buffers.
    fn write_frames(&mut self, frames: u64) -> Result<(), RecordingError> {
        let write_error = |error: hound::Error| RecordingError {
            path: self.part.clone(),
            reason: error.to_string(),
        };
        for k in 0..frames {
            let k = k as usize;
            let left = self.received.get(k).copied().unwrap_or(0);
            let right = self.sent.get(k).copied().unwrap_or(0);
            self.writer.write_sample(left).map_err(write_error)?;
            self.writer.write_sample(right).map_err(write_error)?;
        }
        for buffer in [&mut self.received, &mut self.sent] {
            let written = buffer.len().min(frames as usize);
            buffer.drain(..written);
        }
        self.written += frames;
        Ok(())
    }
}

/// The sample at `media_time`, rounded to the nearest.
fn sample_index(media_time: Duration) -> u64 {
    let nanos = media_time.as_nanos() * u128::from(SAMPLE_RATE);
    // A u64 of samples at 8 kHz is 73 million years: saturate rather than wrap.
    u64::try_from((nanos + 500_000_000) / 1_000_000_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(path: &Path) -> (hound::WavSpec, Vec<i16>, Vec<i16>) {
        let mut reader = hound::WavReader::open(path).expect("open recording");
        let spec = reader.spec();
        let samples: Vec<i16> = reader
            .samples::<i16>()
            .collect::<Result<_, _>>()
            .expect("samples");
        let left = samples.iter().step_by(2).copied().collect();
        let right = samples.iter().skip(1).step_by(2).copied().collect();
        (spec, left, right)
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn channels_are_aligned_by_media_time_with_gaps_as_silence() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("call.wav");
        let mut recording = CallRecording::create(&path).expect("create");
        // The customer speaks in 20 ms frames from 0 to 60 ms, then packets
        // for 60–100 ms are lost, then one more frame at 100 ms.
        for (k, value) in [(0u64, 1i16), (1, 2), (2, 3), (5, 6)] {
            recording
                .push_received(ms(20 * k), &[value; 160])
                .expect("push");
        }
        // We play from 40 ms, out of order against the customer's audio.
        recording.push_sent(ms(40), &[-7; 160]).expect("push");
        recording.push_sent(ms(60), &[-8; 160]).expect("push");
        assert!(path.with_extension("wav.part").exists());
        assert!(!path.exists(), "the final name appears only when finished");

        let finished = recording.finish().expect("finish");
        assert_eq!(finished, path);
        assert!(!path.with_extension("wav.part").exists());

        let (spec, left, right) = read_back(&path);
        assert_eq!(spec.channels, 2);
        assert_eq!(spec.sample_rate, 8000);
        assert_eq!(spec.bits_per_sample, 16);
        assert_eq!(left.len(), 960);
        assert_eq!(right.len(), 960);
        let expected_left: Vec<i16> = [1, 2, 3, 0, 0, 6].iter().flat_map(|v| [*v; 160]).collect();
        let expected_right: Vec<i16> = [0, 0, -7, -8, 0, 0]
            .iter()
            .flat_map(|v| [*v; 160])
            .collect();
        assert_eq!(left, expected_left);
        assert_eq!(right, expected_right);
    }

    #[test]
    fn one_sided_audio_is_written_with_bounded_memory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("one-way.wav");
        let mut recording = CallRecording::create(&path).expect("create");
        // Ten seconds of our audio, nothing from the customer.
        for k in 0..500u64 {
            recording.push_sent(ms(20 * k), &[100; 160]).expect("push");
        }
        assert!(recording.sent.len() <= sample_index(MAX_LAG) as usize + 160);
        // The customer's audio for the first second comes far too late.
        recording.push_received(ms(0), &[5; 160]).expect("push");
        assert_eq!(recording.late_samples(), 160);
        // Audio within the lag window still lands in place.
        recording.push_received(ms(9_000), &[9; 160]).expect("push");
        recording.finish().expect("finish");

        let (_, left, right) = read_back(&path);
        assert_eq!(right.len(), 80_000);
        assert!(right.iter().all(|s| *s == 100));
        assert!(left[..72_000].iter().all(|s| *s == 0));
        assert!(left[72_000..72_160].iter().all(|s| *s == 9));
        assert!(left[72_160..].iter().all(|s| *s == 0));
    }

    #[test]
    fn a_jump_in_media_time_is_written_as_silence_without_buffering_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("jump.wav");
        let mut recording = CallRecording::create(&path).expect("create");
        recording.push_received(ms(0), &[4; 160]).expect("push");
        recording.push_sent(ms(60_000), &[8; 160]).expect("push");
        assert!(recording.received.len() + recording.sent.len() <= 2 * (16_000 + 160));
        recording
            .push_received(ms(59_000), &[6; 160])
            .expect("push");
        let error = recording
            .push_sent(Duration::from_secs(25 * 3600), &[1; 160])
            .expect_err("past a day");
        assert!(error.to_string().contains("is past the"), "{error}");
        recording.finish().expect("finish");

        let (_, left, right) = read_back(&path);
        assert_eq!(left.len(), 480_160);
        assert!(left[..160].iter().all(|s| *s == 4));
        assert!(left[160..472_000].iter().all(|s| *s == 0));
        assert!(left[472_000..472_160].iter().all(|s| *s == 6));
        assert!(left[472_160..].iter().all(|s| *s == 0));
        assert!(right[..480_000].iter().all(|s| *s == 0));
        assert!(right[480_000..].iter().all(|s| *s == 8));
    }

    #[test]
    fn overlapping_audio_replaces_what_was_there() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("overlap.wav");
        let mut recording = CallRecording::create(&path).expect("create");
        recording.push_received(ms(0), &[1; 320]).expect("push");
        recording.push_received(ms(20), &[2; 160]).expect("push");
        recording.push_sent(ms(30), &[3; 80]).expect("push");
        recording.finish().expect("finish");
        let (_, left, right) = read_back(&path);
        assert_eq!(left.len(), 320);
        assert!(left[..160].iter().all(|s| *s == 1));
        assert!(left[160..].iter().all(|s| *s == 2));
        assert!(right[..240].iter().all(|s| *s == 0));
        assert!(right[240..].iter().all(|s| *s == 3));
    }

    #[test]
    fn unwritable_place_is_an_error_naming_it() {
        let error = CallRecording::create("/nonexistent/dir/call.wav").expect_err("no dir");
        assert!(
            error.to_string().contains("/nonexistent/dir/call.wav.part"),
            "{error}"
        );
    }
}
