//! The predictive pacer: how many new calls a campaign starts now.
//!
//! A sans-IO state machine. The engine tells it when it dialed a call, when a
//! call was answered, when one rang out or failed, and when an answered call
//! hung up, always with `now`; on each tick it asks [`Pacer::poll_dial`] how
//! many calls to start. Nothing here reads a clock or touches a socket.
//!
//! ```text
//!  handle_dialed ──▶ ringing ──handle_answered──▶ connected ──handle_ended──▶ (gone)
//!                       │                    └──▶ abandoning ─handle_ended──▶ (gone)
//!                       └──handle_unanswered──▶ (gone)
//! ```
//!
//! # Strategy
//!
//! Calls are agentless: an answered call hears the campaign's script, and the
//! campaign can carry `capacity` answered calls at once. A call answered while
//! all of them are taken is an *abandon*: the engine plays a short apology and
//! hangs up. The pacer keeps the answered calls close to capacity while holding
//! abandons under `abandon_target` (3 % of answered calls by default).
//!
//! Each tick it predicts the answered calls to come and dials for the gap:
//!
//! ```text
//!  expected = Σ over ringing calls of p(answer | rung so far)
//!  ending   = answered calls expected to hang up before those answers come
//!  free     = capacity − connected − expected + ending − margin
//!  dial     = ⌊free / p(answer)⌋, bounded by free channels and calls per second
//! ```
//!
//! - `p(answer)` is the answer rate over the sliding window, starting from
//!   `initial_answer_rate` and moving to the measured rate as outcomes come in.
//! - A call that has rung a while is less likely to be answered than a fresh
//!   one: the answered ones are mostly already gone. The pacer keeps, over the
//!   window, the distribution of ring times to an answer and to a give-up, and
//!   weighs each ringing call by its age:
//!   `p·Sₐ(age) / (p·Sₐ(age) + (1−p)·Sᵤ(age))`, where `S(age)` is the share of
//!   ring times longer than `age`. Until both distributions hold enough calls,
//!   every ringing call counts for `p`, which is cautious.
//! - `ending` is the rate at which answered calls hung up over the window times
//!   the mean time the expected answers still have to ring. Without it the
//!   campaign would sit several calls under capacity; it is measured, so it is
//!   small while the campaign warms up.
//! - `margin` is `caution × √expected`: the answers to come are a sum of
//!   coin tosses, and their spread grows with the square root of their count.
//!   `caution` follows the abandon rate over the window: above the target it
//!   rises (fewer calls), under half the target it falls (more calls), in
//!   between it holds.
//! - The trunks' limits are hard: ringing, connected and abandoning calls never
//!   exceed `max_channels`, and the calls started in any second never exceed
//!   `max_cps` (the start times of the last second are kept, so the bound holds
//!   over every sliding second, not only on average).
//!
//! The state is a fixed ring of window slices, the ringing calls' dial times and
//! the start times of the last second: bounded by the trunks' limits, and
//! deterministic for a given sequence of inputs.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dialhound_line_pool::window::{SlidingWindow, Tally};
use serde::Serialize;

/// The campaign's and trunks' limits, and how the pacer measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacerConfig {
    /// Answered calls the campaign can carry at once.
    pub capacity: u32,
    /// Calls the trunks carry at once, ringing or answered.
    pub max_channels: u32,
    /// New calls the trunks accept per second.
    pub max_cps: u32,
    /// Length of the sliding measurement window.
    pub window: Duration,
    /// Highest share of answered calls that may be abandoned.
    pub abandon_target: f64,
    /// Answer rate assumed until outcomes are measured.
    pub initial_answer_rate: f64,
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            capacity: 50,
            max_channels: 200,
            max_cps: 20,
            window: Duration::from_secs(60),
            abandon_target: 0.03,
            initial_answer_rate: 0.3,
        }
    }
}

/// A call the pacer counts as ringing; handed back when it is answered or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ringing {
    dialed_at: Instant,
}

/// An answered call, connected or abandoned; handed back when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Talking {
    answered_at: Instant,
    connected: bool,
}

impl Talking {
    /// Whether the call holds one of the campaign's answer slots.
    #[cfg(test)]
    pub fn is_connected(self) -> bool {
        self.connected
    }
}

/// What happens to a call that was just answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A slot was free: the call hears the script.
    Connect(Talking),
    /// Every slot was taken: the call hears the apology and is hung up.
    Abandon(Talking),
}

impl Admission {
    pub fn talking(self) -> Talking {
        match self {
            Admission::Connect(talking) | Admission::Abandon(talking) => talking,
        }
    }

    pub fn is_connect(self) -> bool {
        matches!(self, Admission::Connect(_))
    }
}

/// What the pacer measured and decided, for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PacerFigures {
    /// Calls ringing now.
    pub ringing: u32,
    /// Answered calls holding a slot now.
    pub connected: u32,
    /// Abandoned calls still hearing the apology.
    pub abandoning: u32,
    /// Answered over answered and unanswered outcomes in the window, blended
    /// with the initial rate while few outcomes are known.
    pub answer_rate: f64,
    pub mean_ring_to_answer_ms: Option<u64>,
    pub mean_ring_to_give_up_ms: Option<u64>,
    pub mean_talk_ms: Option<u64>,
    /// Calls answered in the window, abandoned ones included.
    pub answered_in_window: u32,
    pub abandons_in_window: u32,
    /// Abandons over answered calls in the window.
    pub abandon_rate: f64,
    /// Answers expected from the calls ringing now.
    pub expected_answers: f64,
    /// Connected calls expected to end before those answers come.
    pub expected_ends: f64,
    /// Slots held back against a burst of answers.
    pub margin: f64,
    /// What [`Pacer::poll_dial`] returns now.
    pub dial: u32,
    /// Abandons since the pacer started.
    pub abandons: u64,
}

/// One campaign's predictive pacer.
#[derive(Debug, Clone)]
pub struct Pacer {
    config: PacerConfig,
    /// When the pacer started measuring.
    epoch: Instant,
    tallies: SlidingWindow<Bucket>,
    /// Dial times of the ringing calls, oldest first.
    ringing: VecDeque<Instant>,
    connected: u32,
    abandoning: u32,
    /// Start times within the last second, oldest first.
    starts: VecDeque<Instant>,
    /// Scales the margin; follows the abandon rate.
    caution: f64,
    last_poll: Option<Instant>,
    abandons: u64,
}

impl Pacer {
    pub fn new(config: PacerConfig, now: Instant) -> Pacer {
        Pacer {
            config,
            epoch: now,
            tallies: SlidingWindow::new(config.window, now),
            ringing: VecDeque::new(),
            connected: 0,
            abandoning: 0,
            starts: VecDeque::new(),
            caution: INITIAL_CAUTION,
            last_poll: None,
            abandons: 0,
        }
    }

    /// Abandons since the pacer started.
    #[cfg(test)]
    pub fn abandons(&self) -> u64 {
        self.abandons
    }

    pub fn ringing(&self) -> u32 {
        u32::try_from(self.ringing.len()).unwrap_or(u32::MAX)
    }

    #[cfg(test)]
    pub fn connected(&self) -> u32 {
        self.connected
    }

    /// Calls on the trunks now: ringing, connected and abandoning.
    pub fn in_flight(&self) -> u32 {
        self.ringing()
            .saturating_add(self.connected)
            .saturating_add(self.abandoning)
    }

    /// How many new calls to start now. Moves the pacer's time forward; asking
    /// twice without dialing returns the same count.
    pub fn poll_dial(&mut self, now: Instant) -> u32 {
        self.prune_starts(now);
        let window = self.tallies.total(now);
        let elapsed = self
            .last_poll
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last))
            .min(Duration::from_secs(1));
        self.last_poll = Some(now);
        if window.answered >= MIN_ANSWERS_FOR_CAUTION {
            let rate = window.abandon_rate();
            let step = elapsed.as_secs_f64();
            if rate > self.config.abandon_target {
                self.caution += CAUTION_UP_PER_SEC * step;
            } else if rate < self.config.abandon_target / 2.0 {
                self.caution -= CAUTION_DOWN_PER_SEC * step;
            }
            self.caution = self.caution.clamp(MIN_CAUTION, MAX_CAUTION);
        }
        self.decide(now, &window).dial
    }

    /// A call was started now.
    pub fn handle_dialed(&mut self, now: Instant) -> Ringing {
        let at = self.ringing.partition_point(|&t| t <= now);
        self.ringing.insert(at, now);
        let at = self.starts.partition_point(|&t| t <= now);
        self.starts.insert(at, now);
        Ringing { dialed_at: now }
    }

    /// A ringing call was answered: it connects if a slot is free, otherwise it
    /// is abandoned.
    pub fn handle_answered(&mut self, now: Instant, call: Ringing) -> Admission {
        self.forget_ringing(call);
        let ring = now.saturating_duration_since(call.dialed_at);
        let connected = self.connected < self.config.capacity;
        let bucket = self.tallies.at(now);
        bucket.answered += 1;
        bucket.ring_to_answer_ms += millis(ring);
        bucket.answer_ring[ring_bin(ring)] += 1;
        let talking = Talking {
            answered_at: now,
            connected,
        };
        if connected {
            self.connected += 1;
            Admission::Connect(talking)
        } else {
            bucket.abandoned += 1;
            self.abandoning += 1;
            self.abandons += 1;
            Admission::Abandon(talking)
        }
    }

    /// A ringing call ended without an answer: busy, no answer, or failed.
    pub fn handle_unanswered(&mut self, now: Instant, call: Ringing) {
        self.forget_ringing(call);
        let ring = now.saturating_duration_since(call.dialed_at);
        let bucket = self.tallies.at(now);
        bucket.unanswered += 1;
        bucket.ring_to_give_up_ms += millis(ring);
        bucket.give_up_ring[ring_bin(ring)] += 1;
    }

    /// An answered call hung up, connected or abandoned.
    pub fn handle_ended(&mut self, now: Instant, call: Talking) {
        if call.connected {
            self.connected = self.connected.saturating_sub(1);
            let talk = now.saturating_duration_since(call.answered_at);
            let bucket = self.tallies.at(now);
            bucket.ended += 1;
            bucket.talk_ms += millis(talk);
        } else {
            self.abandoning = self.abandoning.saturating_sub(1);
        }
    }

    /// What the pacer measured over the window ending at `now`, and what it
    /// would dial now.
    pub fn figures(&self, now: Instant) -> PacerFigures {
        let window = self.tallies.total(now);
        let decision = self.decide(now, &window);
        let mean = |sum: u64, count: u32| (count > 0).then(|| sum / u64::from(count));
        PacerFigures {
            ringing: self.ringing(),
            connected: self.connected,
            abandoning: self.abandoning,
            answer_rate: self.answer_rate(&window),
            mean_ring_to_answer_ms: mean(window.ring_to_answer_ms, window.answered),
            mean_ring_to_give_up_ms: mean(window.ring_to_give_up_ms, window.unanswered),
            mean_talk_ms: mean(window.talk_ms, window.ended),
            answered_in_window: window.answered,
            abandons_in_window: window.abandoned,
            abandon_rate: window.abandon_rate(),
            expected_answers: decision.expected_answers,
            expected_ends: decision.expected_ends,
            margin: decision.margin,
            dial: decision.dial,
            abandons: self.abandons,
        }
    }

    fn decide(&self, now: Instant, window: &Bucket) -> Decision {
        let p = self.answer_rate(window);
        let shape = RingShape::new(window, p);
        let mut expected_answers = 0.0;
        let mut remaining_ring = 0.0;
        for &dialed in &self.ringing {
            let age = now.saturating_duration_since(dialed);
            match &shape {
                Some(shape) => {
                    let (q, remaining) = shape.answer_chance(age);
                    expected_answers += q;
                    remaining_ring += q * remaining;
                }
                None => expected_answers += p,
            }
        }
        let measured_for = now
            .saturating_duration_since(self.epoch)
            .min(self.config.window)
            .as_secs_f64();
        let expected_ends = match &shape {
            Some(_) if window.ended >= MIN_ENDS && expected_answers > 0.0 && measured_for > 0.0 => {
                let end_rate = f64::from(window.ended) / measured_for;
                let horizon = remaining_ring / expected_answers;
                (end_rate * horizon).min(f64::from(self.connected))
            }
            _ => 0.0,
        };
        let margin = self.caution * expected_answers.max(1.0).sqrt();
        let free = f64::from(self.config.capacity) - f64::from(self.connected) - expected_answers
            + expected_ends
            - margin;
        let wanted = if free > 0.0 {
            // Bounded below by the 1 % floor on p; the cast saturates.
            (free / p).floor() as u32
        } else {
            0
        };
        let channels = self.config.max_channels.saturating_sub(self.in_flight());
        let per_second = self
            .config
            .max_cps
            .saturating_sub(u32::try_from(self.starts.len()).unwrap_or(u32::MAX));
        Decision {
            expected_answers,
            expected_ends,
            margin,
            dial: wanted.min(channels).min(per_second),
        }
    }

    fn answer_rate(&self, window: &Bucket) -> f64 {
        let prior = self.config.initial_answer_rate.clamp(MIN_ANSWER_RATE, 1.0);
        let answered = f64::from(window.answered);
        let outcomes = answered + f64::from(window.unanswered);
        ((answered + prior * PRIOR_OUTCOMES) / (outcomes + PRIOR_OUTCOMES))
            .clamp(MIN_ANSWER_RATE, 1.0)
    }

    fn forget_ringing(&mut self, call: Ringing) {
        let at = self.ringing.partition_point(|&t| t < call.dialed_at);
        if self.ringing.get(at) == Some(&call.dialed_at) {
            self.ringing.remove(at);
        }
    }

    fn prune_starts(&mut self, now: Instant) {
        while let Some(&first) = self.starts.front() {
            if now.saturating_duration_since(first) >= Duration::from_secs(1) {
                self.starts.pop_front();
            } else {
                break;
            }
        }
    }
}

/// Ring-time histogram bins of one second; the last one holds every longer ring.
const RING_BINS: usize = 32;
/// Outcomes the initial answer rate counts for while few are measured.
const PRIOR_OUTCOMES: f64 = 20.0;
const MIN_ANSWER_RATE: f64 = 0.01;
/// Answered and unanswered calls each needed before ring ages are weighed.
const MIN_SHAPE: u32 = 20;
/// Ended calls needed before expected ends count.
const MIN_ENDS: u32 = 20;
/// Answered calls needed before the abandon rate moves the caution.
const MIN_ANSWERS_FOR_CAUTION: u32 = 20;
/// The caution starts at one and a half standard deviations of the answers to
/// come and stays between a half and three; it rises faster than it falls, and
/// slowly enough that one unlucky burst of answers does not empty the campaign.
const INITIAL_CAUTION: f64 = 1.5;
const MIN_CAUTION: f64 = 0.5;
const MAX_CAUTION: f64 = 3.0;
const CAUTION_UP_PER_SEC: f64 = 0.01;
const CAUTION_DOWN_PER_SEC: f64 = 0.004;

#[derive(Debug, Clone, Copy)]
struct Decision {
    expected_answers: f64,
    expected_ends: f64,
    margin: f64,
    dial: u32,
}

/// One slice of the sliding window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Bucket {
    answered: u32,
    abandoned: u32,
    unanswered: u32,
    ended: u32,
    ring_to_answer_ms: u64,
    ring_to_give_up_ms: u64,
    talk_ms: u64,
    answer_ring: [u32; RING_BINS],
    give_up_ring: [u32; RING_BINS],
}

impl Tally for Bucket {
    fn add(&mut self, other: &Bucket) {
        self.answered += other.answered;
        self.abandoned += other.abandoned;
        self.unanswered += other.unanswered;
        self.ended += other.ended;
        self.ring_to_answer_ms += other.ring_to_answer_ms;
        self.ring_to_give_up_ms += other.ring_to_give_up_ms;
        self.talk_ms += other.talk_ms;
        for (sum, n) in self.answer_ring.iter_mut().zip(other.answer_ring) {
            *sum += n;
        }
        for (sum, n) in self.give_up_ring.iter_mut().zip(other.give_up_ring) {
            *sum += n;
        }
    }
}

impl Bucket {
    fn abandon_rate(&self) -> f64 {
        if self.answered == 0 {
            0.0
        } else {
            f64::from(self.abandoned) / f64::from(self.answered)
        }
    }
}

/// The window's ring-time distributions, ready to weigh ringing calls by age.
struct RingShape {
    p: f64,
    /// Share of answered calls that rang longer than the start of each bin.
    answer_tail: [f64; RING_BINS + 1],
    /// Mean ring time of the answered calls that rang longer than each bin's
    /// start, in seconds.
    answer_tail_mean: [f64; RING_BINS + 1],
    give_up_tail: [f64; RING_BINS + 1],
}

impl RingShape {
    fn new(window: &Bucket, p: f64) -> Option<RingShape> {
        if window.answered < MIN_SHAPE || window.unanswered < MIN_SHAPE {
            return None;
        }
        let mut answer_tail = [0.0; RING_BINS + 1];
        let mut answer_tail_mean = [0.0; RING_BINS + 1];
        let mut give_up_tail = [0.0; RING_BINS + 1];
        let (mut answers, mut answer_secs, mut give_ups) = (0.0, 0.0, 0.0);
        for bin in (0..RING_BINS).rev() {
            let n = f64::from(window.answer_ring[bin]);
            answers += n;
            answer_secs += n * (bin as f64 + 0.5);
            give_ups += f64::from(window.give_up_ring[bin]);
            answer_tail[bin] = answers;
            answer_tail_mean[bin] = if answers > 0.0 {
                answer_secs / answers
            } else {
                0.0
            };
            give_up_tail[bin] = give_ups;
        }
        let (all_answers, all_give_ups) = (answer_tail[0], give_up_tail[0]);
        for share in &mut answer_tail {
            *share /= all_answers;
        }
        for share in &mut give_up_tail {
            *share /= all_give_ups;
        }
        Some(RingShape {
            p,
            answer_tail,
            answer_tail_mean,
            give_up_tail,
        })
    }

    /// The chance a call that has rung for `age` is answered, and the mean time
    /// it still has to ring if it is, in seconds.
    fn answer_chance(&self, age: Duration) -> (f64, f64) {
        let secs = age.as_secs_f64();
        let bin = ring_bin(age);
        // Survival at `age`: the bins after this one, and half of this one.
        let survive = |tail: &[f64; RING_BINS + 1]| (tail[bin] + tail[bin + 1]) / 2.0;
        let answer = self.p * survive(&self.answer_tail);
        let give_up = (1.0 - self.p) * survive(&self.give_up_tail);
        if answer <= 0.0 {
            return (0.0, 0.0);
        }
        let remaining = (self.answer_tail_mean[bin] - secs).max(0.5);
        (answer / (answer + give_up), remaining)
    }
}

fn ring_bin(ring: Duration) -> usize {
    (ring.as_secs() as usize).min(RING_BINS - 1)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Event {
        Answer(u64),
        GiveUp(u64),
        End(u64),
    }

    /// A campaign on simulated time: every tick it dials what the pacer says,
    /// each call is answered or not after a random ring, each answered call
    /// talks for a random time, and an abandoned call hears a short apology.
    struct Sim {
        config: PacerConfig,
        rng: StdRng,
        t0: Instant,
        pacer: Pacer,
        /// Events by due time in milliseconds, then by call.
        events: BinaryHeap<Reverse<(u64, u64, Event)>>,
        ringing: std::collections::HashMap<u64, Ringing>,
        talking: std::collections::HashMap<u64, Talking>,
        next_call: u64,
        starts: VecDeque<u64>,
    }

    #[derive(Debug, Default)]
    struct Report {
        answered: u64,
        abandons: u64,
        occupancy_sum: f64,
        occupancy_samples: u64,
        most_in_flight: u32,
        most_starts_in_a_second: u32,
    }

    impl Report {
        fn abandon_share(&self) -> f64 {
            self.abandons as f64 / self.answered.max(1) as f64
        }

        fn occupancy(&self) -> f64 {
            self.occupancy_sum / self.occupancy_samples.max(1) as f64
        }
    }

    const TICK_MS: u64 = 100;
    const APOLOGY_MS: u64 = 3_000;

    impl Sim {
        fn new(seed: u64, config: PacerConfig) -> Sim {
            let t0 = Instant::now();
            Sim {
                config,
                rng: StdRng::seed_from_u64(seed),
                t0,
                pacer: Pacer::new(config, t0),
                events: BinaryHeap::new(),
                ringing: Default::default(),
                talking: Default::default(),
                next_call: 0,
                starts: VecDeque::new(),
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        /// Runs from `from_ms` to `to_ms` with the given answer rate; counts
        /// occupancy from `warm_ms` on. Returns the calls started.
        fn run(
            &mut self,
            from_ms: u64,
            to_ms: u64,
            answer_rate: f64,
            warm_ms: u64,
            report: &mut Report,
        ) -> u64 {
            let mut started = 0;
            let mut ms = from_ms;
            while ms < to_ms {
                self.deliver(ms, report);
                if ms >= warm_ms {
                    report.occupancy_sum +=
                        f64::from(self.pacer.connected()) / f64::from(self.config.capacity);
                    report.occupancy_samples += 1;
                }
                let dial = self.pacer.poll_dial(self.at(ms));
                for _ in 0..dial {
                    self.dial(ms, answer_rate);
                }
                started += u64::from(dial);
                while self.starts.front().is_some_and(|&s| s + 1_000 <= ms) {
                    self.starts.pop_front();
                }
                let in_a_second = self.starts.len() as u32;
                let in_flight = self.pacer.in_flight();
                assert!(
                    in_flight <= self.config.max_channels,
                    "{in_flight} calls on {} channels at {ms} ms",
                    self.config.max_channels
                );
                assert!(
                    in_a_second <= self.config.max_cps,
                    "{in_a_second} calls started in the second before {ms} ms"
                );
                report.most_in_flight = report.most_in_flight.max(in_flight);
                report.most_starts_in_a_second = report.most_starts_in_a_second.max(in_a_second);
                ms += TICK_MS;
            }
            started
        }

        fn dial(&mut self, ms: u64, answer_rate: f64) {
            let call = self.next_call;
            self.next_call += 1;
            self.ringing
                .insert(call, self.pacer.handle_dialed(self.at(ms)));
            self.starts.push_back(ms);
            let event = if self.rng.random_bool(answer_rate) {
                (
                    ms + self.rng.random_range(3_000..=15_000),
                    Event::Answer(call),
                )
            } else {
                (
                    ms + self.rng.random_range(20_000..=30_000),
                    Event::GiveUp(call),
                )
            };
            self.events.push(Reverse((event.0, call, event.1)));
        }

        fn deliver(&mut self, until_ms: u64, report: &mut Report) {
            while let Some(&Reverse((ms, call, event))) = self.events.peek() {
                if ms > until_ms {
                    break;
                }
                self.events.pop();
                let now = self.at(ms);
                match event {
                    Event::Answer(id) => {
                        let ringing = self.ringing.remove(&id).expect("a ringing call");
                        let admission = self.pacer.handle_answered(now, ringing);
                        report.answered += 1;
                        let end = if admission.is_connect() {
                            ms + self.rng.random_range(20_000..=90_000)
                        } else {
                            report.abandons += 1;
                            ms + APOLOGY_MS
                        };
                        self.talking.insert(id, admission.talking());
                        self.events.push(Reverse((end, call, Event::End(id))));
                    }
                    Event::GiveUp(id) => {
                        let ringing = self.ringing.remove(&id).expect("a ringing call");
                        self.pacer.handle_unanswered(now, ringing);
                    }
                    Event::End(id) => {
                        let talking = self.talking.remove(&id).expect("a talking call");
                        self.pacer.handle_ended(now, talking);
                    }
                }
            }
        }
    }

    const MINUTE_MS: u64 = 60_000;

    fn steady(seed: u64) -> Report {
        let config = PacerConfig {
            capacity: 50,
            max_channels: 200,
            max_cps: 20,
            ..PacerConfig::default()
        };
        let mut sim = Sim::new(seed, config);
        let mut report = Report::default();
        for minute in 0..30 {
            sim.run(
                minute * MINUTE_MS,
                (minute + 1) * MINUTE_MS,
                0.3,
                5 * MINUTE_MS,
                &mut report,
            );
        }
        assert_eq!(sim.pacer.abandons(), report.abandons);
        println!(
            "seed {seed}: occupancy {:.1} %, abandons {:.2} % ({} of {} answered), most in flight {}",
            report.occupancy() * 100.0,
            report.abandon_share() * 100.0,
            report.abandons,
            report.answered,
            report.most_in_flight,
        );
        report
    }

    #[test]
    fn keeps_answered_calls_near_capacity_with_few_abandons() {
        let reports: Vec<(u64, Report)> = (1..=5).map(|seed| (seed, steady(seed))).collect();
        for (seed, report) in reports {
            assert!(
                report.abandon_share() <= 0.03,
                "seed {seed}: {:.2} % abandoned",
                report.abandon_share() * 100.0
            );
            assert!(
                report.occupancy() >= 0.85,
                "seed {seed}: {:.1} % of capacity in use",
                report.occupancy() * 100.0
            );
        }
    }

    #[test]
    fn dials_faster_within_a_window_when_the_answer_rate_drops() {
        let config = PacerConfig {
            capacity: 50,
            max_channels: 260,
            max_cps: 15,
            ..PacerConfig::default()
        };
        let mut sim = Sim::new(7, config);
        let mut report = Report::default();
        sim.run(0, 13 * MINUTE_MS, 0.3, 5 * MINUTE_MS, &mut report);
        // Two minutes at 30 %, the drop, one window for the pacer to see it,
        // then two minutes at 10 %.
        let before = sim.run(13 * MINUTE_MS, 15 * MINUTE_MS, 0.3, 0, &mut report);
        let ringing_before = sim.pacer.ringing();
        sim.run(15 * MINUTE_MS, 16 * MINUTE_MS, 0.1, 0, &mut report);
        let after = sim.run(16 * MINUTE_MS, 18 * MINUTE_MS, 0.1, 0, &mut report);
        let ringing_after = sim.pacer.ringing();
        let figures = sim.pacer.figures(sim.at(18 * MINUTE_MS));
        println!(
            "calls in two minutes {before} -> {after}, ringing {ringing_before} -> {ringing_after}, \
             answer rate measured {:.3}",
            figures.answer_rate
        );
        assert!(figures.answer_rate < 0.15, "{figures:?}");
        assert!(after >= 2 * before, "{before} calls a minute, then {after}");
        assert!(ringing_after >= 2 * ringing_before);
        sim.run(17 * MINUTE_MS, 30 * MINUTE_MS, 0.1, 0, &mut report);
        assert!(report.abandon_share() <= 0.03, "{report:?}");
    }

    #[test]
    fn never_exceeds_tight_trunk_limits() {
        for (max_channels, max_cps) in [(40, 20), (200, 2), (30, 1)] {
            let config = PacerConfig {
                capacity: 50,
                max_channels,
                max_cps,
                ..PacerConfig::default()
            };
            let mut sim = Sim::new(3, config);
            let mut report = Report::default();
            // The simulator asserts both limits on every tick.
            sim.run(0, 10 * MINUTE_MS, 0.3, 0, &mut report);
            assert!(report.most_in_flight <= max_channels);
            assert!(report.most_starts_in_a_second <= max_cps);
            assert!(
                report.most_in_flight == max_channels || report.most_starts_in_a_second == max_cps,
                "the limits were never reached: {report:?}"
            );
        }
    }

    #[test]
    fn answer_rate_is_measured_over_the_sliding_window() {
        let t0 = Instant::now();
        let config = PacerConfig {
            capacity: 1_000,
            ..PacerConfig::default()
        };
        let mut pacer = Pacer::new(config, t0);
        assert!((pacer.figures(t0).answer_rate - 0.3).abs() < 1e-9);
        let calls: Vec<Ringing> = (0..100).map(|_| pacer.handle_dialed(t0)).collect();
        for call in &calls[..80] {
            pacer.handle_answered(t0 + secs(10), *call);
        }
        for call in &calls[80..] {
            pacer.handle_unanswered(t0 + secs(25), *call);
        }
        let figures = pacer.figures(t0 + secs(25));
        // 80 answers of 100 outcomes, with the initial 30 % counting for 20 more.
        assert!(
            (figures.answer_rate - 86.0 / 120.0).abs() < 1e-9,
            "{figures:?}"
        );
        assert_eq!(figures.mean_ring_to_answer_ms, Some(10_000));
        assert_eq!(figures.mean_ring_to_give_up_ms, Some(25_000));
        assert_eq!(figures.answered_in_window, 80);
        assert_eq!(figures.ringing, 0);
        // The answers leave the window first, then the give-ups.
        let figures = pacer.figures(t0 + secs(71));
        assert_eq!(figures.answered_in_window, 0);
        assert!(
            (figures.answer_rate - 6.0 / 40.0).abs() < 1e-9,
            "{figures:?}"
        );
        let figures = pacer.figures(t0 + secs(86));
        assert!((figures.answer_rate - 0.3).abs() < 1e-9, "{figures:?}");
    }

    #[test]
    fn a_call_answered_with_every_slot_taken_is_an_abandon() {
        let t0 = Instant::now();
        let config = PacerConfig {
            capacity: 2,
            ..PacerConfig::default()
        };
        let mut pacer = Pacer::new(config, t0);
        let calls: Vec<Ringing> = (0..4).map(|_| pacer.handle_dialed(t0)).collect();
        let t1 = t0 + secs(5);
        let first = pacer.handle_answered(t1, calls[0]);
        let second = pacer.handle_answered(t1, calls[1]);
        let third = pacer.handle_answered(t1, calls[2]);
        assert!(first.is_connect() && second.is_connect());
        assert!(matches!(third, Admission::Abandon(_)));
        assert!(!third.talking().is_connected());
        assert_eq!(pacer.abandons(), 1);
        let figures = pacer.figures(t1);
        assert_eq!(
            (figures.connected, figures.abandoning, figures.ringing),
            (2, 1, 1)
        );
        assert_eq!(figures.abandons_in_window, 1);
        assert!((figures.abandon_rate - 1.0 / 3.0).abs() < 1e-9);
        let t2 = t1 + secs(3);
        pacer.handle_ended(t2, third.talking());
        pacer.handle_ended(t2, first.talking());
        assert_eq!(pacer.in_flight(), 2);
        let fourth = pacer.handle_answered(t2, calls[3]);
        assert!(fourth.is_connect(), "the slot freed by the first call");
        assert_eq!(pacer.abandons(), 1);
        let figures = pacer.figures(t2);
        assert_eq!(figures.mean_talk_ms, Some(3_000));
        // The abandon leaves the window with its slice.
        assert_eq!(pacer.figures(t1 + secs(61)).abandons_in_window, 0);
        assert_eq!(pacer.abandons(), 1);
    }

    #[test]
    fn dials_for_the_free_slots_at_the_initial_answer_rate() {
        let t0 = Instant::now();
        let config = PacerConfig {
            capacity: 50,
            max_channels: 1_000,
            max_cps: 1_000,
            ..PacerConfig::default()
        };
        let mut pacer = Pacer::new(config, t0);
        // 50 slots, one and a half held back, at 30 %: 161 calls.
        assert_eq!(pacer.poll_dial(t0), 161);
        for _ in 0..100 {
            pacer.handle_dialed(t0);
        }
        // 100 ringing calls are worth 30 answers: 20 slots are left, less a
        // margin of 1.5 × √30, at 30 % a call.
        let figures = pacer.figures(t0);
        assert!((figures.expected_answers - 30.0).abs() < 1e-9);
        let expected = ((50.0 - 30.0 - 1.5 * 30f64.sqrt()) / 0.3).floor() as u32;
        assert_eq!(pacer.poll_dial(t0), expected);
    }

    #[test]
    fn calls_per_second_hold_over_every_sliding_second() {
        let t0 = Instant::now();
        let config = PacerConfig {
            max_cps: 5,
            ..PacerConfig::default()
        };
        let mut pacer = Pacer::new(config, t0);
        assert_eq!(pacer.poll_dial(t0), 5);
        for _ in 0..3 {
            pacer.handle_dialed(t0);
        }
        let t1 = t0 + Duration::from_millis(600);
        assert_eq!(pacer.poll_dial(t1), 2);
        pacer.handle_dialed(t1);
        pacer.handle_dialed(t1);
        assert_eq!(pacer.poll_dial(t0 + Duration::from_millis(999)), 0);
        assert_eq!(pacer.poll_dial(t0 + secs(1)), 3);
        assert_eq!(pacer.poll_dial(t1 + secs(1)), 5);
    }

    #[test]
    fn never_dials_past_the_channels() {
        let t0 = Instant::now();
        let config = PacerConfig {
            max_channels: 10,
            max_cps: 100,
            ..PacerConfig::default()
        };
        let mut pacer = Pacer::new(config, t0);
        assert_eq!(pacer.poll_dial(t0), 10);
        let calls: Vec<Ringing> = (0..10).map(|_| pacer.handle_dialed(t0)).collect();
        let t1 = t0 + secs(2);
        assert_eq!(pacer.poll_dial(t1), 0);
        let talking = pacer.handle_answered(t1, calls[0]).talking();
        pacer.handle_unanswered(t1, calls[1]);
        assert_eq!(
            pacer.poll_dial(t1),
            1,
            "the unanswered call freed a channel"
        );
        pacer.handle_ended(t1, talking);
        assert_eq!(pacer.poll_dial(t1), 2);
    }

    #[test]
    fn a_call_that_rang_past_every_answer_counts_for_nothing() {
        let t0 = Instant::now();
        let config = PacerConfig {
            capacity: 1_000,
            max_channels: 1_000,
            ..PacerConfig::default()
        };
        let mut pacer = Pacer::new(config, t0);
        let calls: Vec<Ringing> = (0..60).map(|_| pacer.handle_dialed(t0)).collect();
        for call in &calls[..30] {
            pacer.handle_answered(t0 + secs(5), *call);
        }
        for call in &calls[30..] {
            pacer.handle_unanswered(t0 + secs(25), *call);
        }
        pacer.handle_dialed(t0 + secs(25));
        // Answers came after five seconds of ringing, give-ups after 25: a call
        // two seconds in is as likely to answer as any, one ten seconds in is not.
        let p = (30.0 + 0.3 * 20.0) / (60.0 + 20.0);
        let young = pacer.figures(t0 + secs(27));
        assert!((young.answer_rate - p).abs() < 1e-9);
        assert!((young.expected_answers - p).abs() < 1e-9, "{young:?}");
        let old = pacer.figures(t0 + secs(35));
        assert_eq!(old.expected_answers, 0.0, "{old:?}");
    }

    #[test]
    fn figures_serialize_for_metrics() {
        let t0 = Instant::now();
        let pacer = Pacer::new(PacerConfig::default(), t0);
        let json = serde_json::to_value(pacer.figures(t0)).expect("figures serialize");
        assert_eq!(json["dial"], 20, "the first second's calls");
        assert_eq!(json["abandons"], 0);
        assert!(json["mean_talk_ms"].is_null());
    }
}
