//! DTMF: RFC 4733 telephone events, and a Goertzel detector for carriers that send
//! the tones in the audio.

/// A DTMF key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(pub char);

impl Digit {
    /// RFC 4733 event codes 0–15.
    pub fn from_event(event: u8) -> Option<Digit> {
        const KEYS: &[u8; 16] = b"0123456789*#ABCD";
        KEYS.get(usize::from(event))
            .map(|key| Digit(char::from(*key)))
    }

    pub fn event(self) -> Option<u8> {
        b"0123456789*#ABCD"
            .iter()
            .position(|k| char::from(*k) == self.0)
            .map(|p| p as u8)
    }
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    /// In RTP timestamp units.
    pub duration: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("a telephone-event payload is 4 bytes, this one is {0}")]
    Length(usize),
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, EventError> {
        let [event, flags, high, low] = payload[..payload.len().min(4)] else {
            return Err(EventError::Length(payload.len()));
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([high, low]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let [high, low] = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            high,
            low,
        ]
    }
}

/// Turns a stream of telephone-event packets into digits. One key press is one
/// RTP timestamp: its packets (and the three copies of its end packet) are
/// deduplicated by that timestamp. A digit is reported when its end packet
/// arrives, or when a new key starts before the old one's end was seen.
#[derive(Debug, Default)]
pub struct EventReceiver {
    current: Option<(u32, u8)>,
    /// Timestamps already reported, most recent last.
    reported: Vec<u32>,
}

impl EventReceiver {
    pub fn new() -> EventReceiver {
        EventReceiver::default()
    }

    /// Feeds one packet's RTP timestamp and payload; returns a digit when a key
    /// press is complete.
    pub fn handle_packet(
        &mut self,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Option<Digit>, EventError> {
        let event = TelephoneEvent::parse(payload)?;
        if self.reported.contains(&timestamp) {
            return Ok(None);
        }
        let mut finished = None;
        if let Some((current, code)) = self.current
            && current != timestamp
        {
            // A new key press while the previous one never sent its end.
            finished = self.report(current, code);
        }
        self.current = Some((timestamp, event.event));
        if event.end {
            self.current = None;
            return Ok(finished.or_else(|| self.report(timestamp, event.event)));
        }
        Ok(finished)
    }

    fn report(&mut self, timestamp: u32, event: u8) -> Option<Digit> {
        if self.reported.len() == 16 {
            self.reported.remove(0);
        }
        self.reported.push(timestamp);
        Digit::from_event(event)
    }
}

/// An in-band DTMF detector on 8 kHz linear audio, with the Goertzel algorithm on
/// blocks of 205 samples (about 25.6 ms).
#[derive(Debug)]
pub struct ToneDetector {
    block: Vec<f32>,
    /// The digit seen in the previous block, so a key is reported once.
    held: Option<Digit>,
    /// Consecutive blocks showing the same candidate.
    candidate: Option<(Digit, u32)>,
}

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
const BLOCK: usize = 205;
const SAMPLE_RATE: f32 = 8000.0;

impl Default for ToneDetector {
    fn default() -> Self {
        ToneDetector {
            block: Vec::with_capacity(BLOCK),
            held: None,
            candidate: None,
        }
    }
}

impl ToneDetector {
    pub fn new() -> ToneDetector {
        ToneDetector::default()
    }

    /// Feeds audio; returns the keys whose tones began in it.
    pub fn feed(&mut self, samples: &[i16]) -> Vec<Digit> {
        let mut digits = Vec::new();
        for sample in samples {
            self.block.push(f32::from(*sample));
            if self.block.len() == BLOCK {
                if let Some(digit) = self.analyse() {
                    digits.push(digit);
                }
                self.block.clear();
            }
        }
        digits
    }

    fn analyse(&mut self) -> Option<Digit> {
        let energy: f32 = self.block.iter().map(|s| s * s).sum();
        if energy <= MIN_ENERGY {
            // Too quiet to be a key: the filters need not run.
            self.candidate = None;
            self.held = None;
            return None;
        }
        let powers = goertzel_bank(&self.block);
        let row_power = [powers[0], powers[1], powers[2], powers[3]];
        let column_power = [powers[4], powers[5], powers[6], powers[7]];
        let (row, row_peak) = strongest(&row_power);
        let (column, column_peak) = strongest(&column_power);
        // Goertzel power of a pure tone of amplitude a over N samples is about
        // (a N / 2)^2, and the block's energy is a^2 N / 2: normalise to compare.
        let norm = energy * BLOCK as f32 / 2.0;
        let tone_share = (row_peak + column_peak) / norm.max(1.0);
        let others_quiet = row_power
            .iter()
            .enumerate()
            .all(|(i, p)| i == row || *p < row_peak * 0.16)
            && column_power
                .iter()
                .enumerate()
                .all(|(i, p)| i == column || *p < column_peak * 0.16);
        // Twist: the two tones within 8 dB of each other (power ratio 6.3).
        let twist_ok = row_peak < column_peak * 6.3 && column_peak < row_peak * 6.3;
        let found =
            (tone_share > 0.6 && others_quiet && twist_ok).then(|| Digit(KEYPAD[row][column]));
        let reported = match (found, self.candidate) {
            (Some(digit), Some((previous, blocks))) if previous == digit => {
                self.candidate = Some((digit, blocks + 1));
                (blocks + 1 == 2 && self.held != Some(digit)).then_some(digit)
            }
            (Some(digit), _) => {
                self.candidate = Some((digit, 1));
                None
            }
            (None, _) => {
                self.candidate = None;
                self.held = None;
                None
            }
        };
        if let Some(digit) = reported {
            self.held = Some(digit);
        }
        reported
    }
}

/// A block's energy at or under this is silence to the detector.
const MIN_ENERGY: f32 = 1e5;

/// The Goertzel power at the four row and four column frequencies, in one
/// pass over the block (the eight filters side by side vectorise).
fn goertzel_bank(block: &[f32]) -> [f32; 8] {
    let mut coefficients = [0.0f32; 8];
    for (coefficient, frequency) in coefficients.iter_mut().zip(ROWS.iter().chain(&COLUMNS)) {
        *coefficient = 2.0 * (2.0 * std::f32::consts::PI * frequency / SAMPLE_RATE).cos();
    }
    let mut previous = [0.0f32; 8];
    let mut before = [0.0f32; 8];
    for &sample in block {
        for filter in 0..8 {
            let current = sample + coefficients[filter] * previous[filter] - before[filter];
            before[filter] = previous[filter];
            previous[filter] = current;
        }
    }
    let mut powers = [0.0f32; 8];
    for filter in 0..8 {
        powers[filter] = previous[filter] * previous[filter] + before[filter] * before[filter]
            - coefficients[filter] * previous[filter] * before[filter];
    }
    powers
}

fn strongest(powers: &[f32; 4]) -> (usize, f32) {
    powers.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |best, (i, p)| if p > best.1 { (i, p) } else { best },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_and_print() {
        let event = TelephoneEvent::parse(&[9, 0x8a, 0x03, 0x20]).unwrap();
        assert_eq!(
            event,
            TelephoneEvent {
                event: 9,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(event.to_bytes(), [9, 0x8a, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&[1, 2]), Err(EventError::Length(2)));
        assert_eq!(Digit::from_event(11), Some(Digit('#')));
        assert_eq!(Digit::from_event(16), None);
        assert_eq!(Digit('*').event(), Some(10));
    }

    #[test]
    fn one_key_press_is_one_digit_despite_repeated_end_packets() {
        let mut receiver = EventReceiver::new();
        let packet = |end: bool, duration: u16| {
            TelephoneEvent {
                event: 5,
                end,
                volume: 10,
                duration,
            }
            .to_bytes()
        };
        assert_eq!(
            receiver.handle_packet(1000, &packet(false, 160)).unwrap(),
            None
        );
        assert_eq!(
            receiver.handle_packet(1000, &packet(false, 320)).unwrap(),
            None
        );
        assert_eq!(
            receiver.handle_packet(1000, &packet(true, 480)).unwrap(),
            Some(Digit('5'))
        );
        assert_eq!(
            receiver.handle_packet(1000, &packet(true, 480)).unwrap(),
            None
        );
        assert_eq!(
            receiver.handle_packet(1000, &packet(true, 480)).unwrap(),
            None
        );
        // The same key again is a new press with a new timestamp.
        assert_eq!(
            receiver.handle_packet(2000, &packet(true, 480)).unwrap(),
            Some(Digit('5'))
        );
    }

    #[test]
    fn a_press_whose_end_was_lost_is_reported_when_the_next_starts() {
        let mut receiver = EventReceiver::new();
        let start = |event: u8| {
            TelephoneEvent {
                event,
                end: false,
                volume: 10,
                duration: 160,
            }
            .to_bytes()
        };
        receiver.handle_packet(1000, &start(1)).unwrap();
        assert_eq!(
            receiver.handle_packet(3000, &start(2)).unwrap(),
            Some(Digit('1'))
        );
    }

    fn tone(digit: char, low_gain: f32, high_gain: f32, noise: f32, samples: usize) -> Vec<i16> {
        let (row, column) = (0..4)
            .flat_map(|r| (0..4).map(move |c| (r, c)))
            .find(|(r, c)| KEYPAD[*r][*c] == digit)
            .unwrap();
        let mut seed = 12345u32;
        (0..samples)
            .map(|n| {
                let t = n as f32 / SAMPLE_RATE;
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let random = (seed >> 16) as f32 / 32_768.0 - 1.0;
                let value = 6000.0 * low_gain * (2.0 * std::f32::consts::PI * ROWS[row] * t).sin()
                    + 6000.0 * high_gain * (2.0 * std::f32::consts::PI * COLUMNS[column] * t).sin()
                    + noise * random;
                value as i16
            })
            .collect()
    }

    #[test]
    fn every_key_is_heard_once_with_twist_and_noise() {
        for key in "0123456789*#ABCD".chars() {
            // +4 dB and -4 dB twist, with noise about 20 dB under the tones.
            for (low, high) in [(1.0, 1.0), (1.58, 1.0), (1.0, 1.58)] {
                let mut detector = ToneDetector::new();
                let mut audio = tone(key, low, high, 600.0, 800);
                audio.extend(std::iter::repeat_n(0, 800));
                assert_eq!(
                    detector.feed(&audio),
                    vec![Digit(key)],
                    "{key} with gains {low}/{high}"
                );
            }
        }
    }

    #[test]
    fn one_tone_alone_or_noise_is_not_a_key() {
        let mut detector = ToneDetector::new();
        let single: Vec<i16> = (0..1600)
            .map(|n| {
                (8000.0 * (2.0 * std::f32::consts::PI * 770.0 * n as f32 / SAMPLE_RATE).sin())
                    as i16
            })
            .collect();
        assert!(detector.feed(&single).is_empty());
        let noise = tone('5', 0.0, 0.0, 8000.0, 1600);
        assert!(detector.feed(&noise).is_empty());
    }
}
