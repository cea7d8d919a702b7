//! Trunk health as a sans-IO state machine: results and time go in, the state and
//! the next wake-up come out.
//!
//! ```text
//!            failure rate ≥ threshold            cool-down elapsed
//!  Closed ───(with enough attempts)──▶ Open ────────────────────────▶ HalfOpen
//!    ▲                                   ▲                               │
//!    │                                   └── a trial or probe fails ─────┤
//!    └──────────────── enough trials and probes succeed ─────────────────┘
//! ```
//!
//! Each time a trunk opens again without having closed, its cool-down doubles (up
//! to a cap), so a flapping trunk never oscillates faster than its cool-down.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::window::{SlidingWindow, Tally};

/// What one attempt on a trunk came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    Answered,
    Busy,
    NoAnswer,
    Rejected,
    InvalidNumber,
    /// 500, 502, 503, 504.
    ServerError,
    /// No response at all before the INVITE transaction gave up.
    Timeout,
    /// The trunk refused our credentials.
    AuthFailure,
    Cancelled,
}

impl CallResult {
    pub const ALL: [CallResult; 9] = [
        CallResult::Answered,
        CallResult::Busy,
        CallResult::NoAnswer,
        CallResult::Rejected,
        CallResult::InvalidNumber,
        CallResult::ServerError,
        CallResult::Timeout,
        CallResult::AuthFailure,
        CallResult::Cancelled,
    ];

    /// Whether the trunk, not the customer, failed the call. Such a call is retried
    /// on another trunk and is not an attempt on the customer.
    pub fn is_trunk_failure(self) -> bool {
        matches!(
            self,
            CallResult::ServerError | CallResult::Timeout | CallResult::AuthFailure
        )
    }

    /// Classifies a final SIP status.
    pub fn from_status(status: u16) -> CallResult {
        match status {
            200..=299 => CallResult::Answered,
            486 | 600 => CallResult::Busy,
            408 | 480 => CallResult::NoAnswer,
            603 => CallResult::Rejected,
            404 | 484 | 604 => CallResult::InvalidNumber,
            401 | 407 => CallResult::AuthFailure,
            487 => CallResult::Cancelled,
            500..=599 => CallResult::ServerError,
            _ => CallResult::Rejected,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CallResult::Answered => "answered",
            CallResult::Busy => "busy",
            CallResult::NoAnswer => "no_answer",
            CallResult::Rejected => "rejected",
            CallResult::InvalidNumber => "invalid_number",
            CallResult::ServerError => "server_error",
            CallResult::Timeout => "timeout",
            CallResult::AuthFailure => "auth_failure",
            CallResult::Cancelled => "cancelled",
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthConfig {
    /// Share of trunk-side failures that opens the trunk.
    pub failure_threshold: f64,
    /// Attempts the window must hold before the share counts.
    pub min_attempts: u32,
    /// Length of the sliding window.
    pub window: Duration,
    /// Time an open trunk waits before it is probed.
    pub cool_down: Duration,
    /// The longest cool-down after repeated re-opening.
    pub max_cool_down: Duration,
    /// Trial calls a half-open trunk takes; all must succeed to close it.
    pub trial_calls: u32,
    /// Successful OPTIONS probes a half-open trunk needs before it closes.
    pub probes_to_close: u32,
    /// Consecutive failed OPTIONS probes that open a closed trunk.
    pub probe_failures_to_open: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            failure_threshold: 0.10,
            min_attempts: 20,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(240),
            trial_calls: 3,
            probes_to_close: 1,
            probe_failures_to_open: 3,
        }
    }
}

/// One slice of the sliding window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Bucket {
    attempts: u32,
    trunk_failures: u32,
    answered: u32,
    post_dial_delay_ms: u64,
    post_dial_delays: u32,
    talk_ms: u64,
    mos_sum: f64,
    mos_reports: u32,
}

impl Tally for Bucket {
    fn add(&mut self, other: &Bucket) {
        self.attempts += other.attempts;
        self.trunk_failures += other.trunk_failures;
        self.answered += other.answered;
        self.post_dial_delay_ms += other.post_dial_delay_ms;
        self.post_dial_delays += other.post_dial_delays;
        self.talk_ms += other.talk_ms;
        self.mos_sum += other.mos_sum;
        self.mos_reports += other.mos_reports;
    }
}

/// Figures over the current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WindowFigures {
    pub attempts: u32,
    pub trunk_failures: u32,
    pub failure_rate: f64,
    /// Answer-seizure ratio: answered calls over attempts.
    pub asr: f64,
    pub average_post_dial_delay_ms: Option<u64>,
    pub average_talk_ms: Option<u64>,
    pub average_mos: Option<f64>,
}

/// Detail that comes with a finished call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallDetail {
    pub post_dial_delay: Option<Duration>,
    pub talk: Option<Duration>,
    pub mos: Option<f64>,
}

/// One trunk's health.
#[derive(Debug, Clone)]
pub struct Health {
    config: HealthConfig,
    window: SlidingWindow<Bucket>,
    state: BreakerState,
    /// While open: when the trunk may be probed.
    reopen_at: Option<Instant>,
    /// Cool-downs in a row without closing; doubles the next one.
    reopenings: u32,
    trials_started: u32,
    trials_succeeded: u32,
    probes_succeeded: u32,
    probe_failures_in_a_row: u32,
    state_changes: u64,
}

impl Health {
    pub fn new(config: HealthConfig, now: Instant) -> Health {
        Health {
            config,
            window: SlidingWindow::new(config.window, now),
            state: BreakerState::Closed,
            reopen_at: None,
            reopenings: 0,
            trials_started: 0,
            trials_succeeded: 0,
            probes_succeeded: 0,
            probe_failures_in_a_row: 0,
            state_changes: 0,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn state_changes(&self) -> u64 {
        self.state_changes
    }

    /// Whether a new call may start now; in half-open, only the trial calls may.
    pub fn admits(&self) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => self.trials_started < self.config.trial_calls,
        }
    }

    /// A call is starting on this trunk.
    pub fn handle_call_started(&mut self) {
        if self.state == BreakerState::HalfOpen {
            self.trials_started += 1;
        }
    }

    /// A call on this trunk finished.
    pub fn handle_call_result(&mut self, now: Instant, result: CallResult, detail: CallDetail) {
        self.handle_timeout(now);
        let bucket = self.window.at(now);
        bucket.attempts += 1;
        if result.is_trunk_failure() {
            bucket.trunk_failures += 1;
        }
        if result == CallResult::Answered {
            bucket.answered += 1;
        }
        if let Some(delay) = detail.post_dial_delay {
            bucket.post_dial_delay_ms += delay.as_millis() as u64;
            bucket.post_dial_delays += 1;
        }
        if let Some(talk) = detail.talk {
            bucket.talk_ms += talk.as_millis() as u64;
        }
        if let Some(mos) = detail.mos.filter(|m| m.is_finite()) {
            bucket.mos_sum += mos;
            bucket.mos_reports += 1;
        }
        match self.state {
            BreakerState::Closed => {
                let figures = self.figures(now);
                if figures.attempts >= self.config.min_attempts
                    && figures.failure_rate >= self.config.failure_threshold
                {
                    self.open(now);
                }
            }
            BreakerState::HalfOpen if result.is_trunk_failure() => self.open(now),
            BreakerState::HalfOpen => {
                self.trials_succeeded += 1;
                self.close_if_proven();
            }
            // A call that started before the trunk opened: counted, nothing more.
            BreakerState::Open => {}
        }
    }

    /// The result of an OPTIONS keepalive or probe.
    pub fn handle_probe(&mut self, now: Instant, ok: bool) {
        self.handle_timeout(now);
        if ok {
            self.probe_failures_in_a_row = 0;
        } else {
            self.probe_failures_in_a_row += 1;
        }
        match self.state {
            BreakerState::Closed
                if self.probe_failures_in_a_row >= self.config.probe_failures_to_open =>
            {
                self.open(now);
            }
            BreakerState::HalfOpen if !ok => self.open(now),
            BreakerState::HalfOpen => {
                self.probes_succeeded += 1;
                self.close_if_proven();
            }
            _ => {}
        }
    }

    /// Moves time forward: an open trunk whose cool-down is over turns half-open.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let (BreakerState::Open, Some(at)) = (self.state, self.reopen_at)
            && now >= at
        {
            self.state = BreakerState::HalfOpen;
            self.state_changes += 1;
            self.reopen_at = None;
            self.trials_started = 0;
            self.trials_succeeded = 0;
            self.probes_succeeded = 0;
        }
    }

    /// When [`Health::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.reopen_at
    }

    /// Figures over the sliding window ending at `now`.
    pub fn figures(&self, now: Instant) -> WindowFigures {
        let total = self.window.total(now);
        let ratio = |part: u32| {
            if total.attempts == 0 {
                0.0
            } else {
                f64::from(part) / f64::from(total.attempts)
            }
        };
        WindowFigures {
            attempts: total.attempts,
            trunk_failures: total.trunk_failures,
            failure_rate: ratio(total.trunk_failures),
            asr: ratio(total.answered),
            average_post_dial_delay_ms: (total.post_dial_delays > 0)
                .then(|| total.post_dial_delay_ms / u64::from(total.post_dial_delays)),
            average_talk_ms: (total.answered > 0)
                .then(|| total.talk_ms / u64::from(total.answered)),
            average_mos: (total.mos_reports > 0)
                .then(|| total.mos_sum / f64::from(total.mos_reports)),
        }
    }

    fn open(&mut self, now: Instant) {
        let factor = 1u32 << self.reopenings.min(16);
        let cool_down = self
            .config
            .cool_down
            .saturating_mul(factor)
            .min(self.config.max_cool_down);
        self.state = BreakerState::Open;
        self.state_changes += 1;
        self.reopen_at = Some(now + cool_down);
        self.reopenings += 1;
    }

    fn close_if_proven(&mut self) {
        if self.trials_succeeded >= self.config.trial_calls
            && self.probes_succeeded >= self.config.probes_to_close
        {
            self.state = BreakerState::Closed;
            self.state_changes += 1;
            self.reopenings = 0;
            // A fresh start: the failures that opened the trunk are history.
            self.window.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn fail(health: &mut Health, now: Instant) {
        health.handle_call_result(now, CallResult::ServerError, CallDetail::default());
    }

    fn answer(health: &mut Health, now: Instant) {
        health.handle_call_result(now, CallResult::Answered, CallDetail::default());
    }

    #[test]
    fn opens_when_the_failure_rate_reaches_the_threshold() {
        let t0 = Instant::now();
        let mut health = Health::new(HealthConfig::default(), t0);
        for _ in 0..18 {
            answer(&mut health, t0);
        }
        fail(&mut health, t0);
        assert_eq!(
            health.state(),
            BreakerState::Closed,
            "19 attempts: below the minimum"
        );
        fail(&mut health, t0);
        // 2 of 20 = 10 %.
        assert_eq!(health.state(), BreakerState::Open);
        assert!(!health.admits());
        assert_eq!(health.poll_timeout(), Some(t0 + secs(30)));
    }

    #[test]
    fn stays_closed_below_the_minimum_sample() {
        let t0 = Instant::now();
        let mut health = Health::new(HealthConfig::default(), t0);
        for _ in 0..19 {
            fail(&mut health, t0);
        }
        assert_eq!(health.state(), BreakerState::Closed);
        assert_eq!(health.figures(t0).failure_rate, 1.0);
    }

    #[test]
    fn customer_side_outcomes_never_open_a_trunk() {
        let t0 = Instant::now();
        let mut health = Health::new(HealthConfig::default(), t0);
        for result in [
            CallResult::Busy,
            CallResult::NoAnswer,
            CallResult::Rejected,
            CallResult::InvalidNumber,
        ] {
            for _ in 0..50 {
                health.handle_call_result(t0, result, CallDetail::default());
            }
        }
        assert_eq!(health.state(), BreakerState::Closed);
        assert_eq!(health.figures(t0).trunk_failures, 0);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t0 = Instant::now();
        let mut health = Health::new(HealthConfig::default(), t0);
        for _ in 0..19 {
            fail(&mut health, t0);
        }
        let later = t0 + secs(61);
        for _ in 0..19 {
            answer(&mut health, later);
        }
        assert_eq!(health.figures(later).trunk_failures, 0);
        answer(&mut health, later);
        assert_eq!(health.state(), BreakerState::Closed);
    }

    fn opened(t0: Instant) -> Health {
        let mut health = Health::new(HealthConfig::default(), t0);
        for _ in 0..20 {
            fail(&mut health, t0);
        }
        assert_eq!(health.state(), BreakerState::Open);
        health
    }

    #[test]
    fn half_open_after_cool_down_takes_only_trial_calls_then_closes() {
        let t0 = Instant::now();
        let mut health = opened(t0);
        health.handle_timeout(t0 + secs(29));
        assert_eq!(health.state(), BreakerState::Open);
        health.handle_timeout(t0 + secs(30));
        assert_eq!(health.state(), BreakerState::HalfOpen);
        for _ in 0..3 {
            assert!(health.admits());
            health.handle_call_started();
        }
        assert!(!health.admits(), "only three trial calls");
        let t = t0 + secs(31);
        health.handle_probe(t, true);
        for _ in 0..3 {
            answer(&mut health, t);
        }
        assert_eq!(health.state(), BreakerState::Closed);
        assert_eq!(health.figures(t).attempts, 0, "the window starts afresh");
        assert!(health.admits());
    }

    #[test]
    fn a_failed_probe_or_trial_reopens_with_a_longer_cool_down() {
        let t0 = Instant::now();
        let mut health = opened(t0);
        let t1 = t0 + secs(30);
        health.handle_timeout(t1);
        health.handle_probe(t1, false);
        assert_eq!(health.state(), BreakerState::Open);
        assert_eq!(health.poll_timeout(), Some(t1 + secs(60)));
        let t2 = t1 + secs(60);
        health.handle_timeout(t2);
        health.handle_call_started();
        fail(&mut health, t2);
        assert_eq!(health.poll_timeout(), Some(t2 + secs(120)));
    }

    #[test]
    fn a_flapping_trunk_never_changes_state_faster_than_its_cool_down() {
        let t0 = Instant::now();
        let mut health = opened(t0);
        let mut now = t0;
        let mut opened_at = vec![t0];
        // Every probe window, the trunk looks fine for one call, then fails again.
        for _ in 0..20 {
            now = health.poll_timeout().unwrap();
            health.handle_timeout(now);
            assert_eq!(health.state(), BreakerState::HalfOpen);
            health.handle_call_started();
            answer(&mut health, now);
            health.handle_call_started();
            fail(&mut health, now + Duration::from_millis(10));
            assert_eq!(health.state(), BreakerState::Open);
            opened_at.push(now + Duration::from_millis(10));
        }
        for pair in opened_at.windows(2) {
            assert!(
                pair[1] - pair[0] >= secs(30),
                "re-opened after {:?}",
                pair[1] - pair[0]
            );
        }
        assert_eq!(
            health.poll_timeout(),
            Some(now + Duration::from_millis(10) + secs(240))
        );
    }

    #[test]
    fn failed_keepalives_open_a_closed_trunk() {
        let t0 = Instant::now();
        let mut health = Health::new(HealthConfig::default(), t0);
        health.handle_probe(t0, false);
        health.handle_probe(t0, false);
        health.handle_probe(t0, true);
        health.handle_probe(t0, false);
        health.handle_probe(t0, false);
        assert_eq!(health.state(), BreakerState::Closed);
        health.handle_probe(t0, false);
        assert_eq!(health.state(), BreakerState::Open);
    }

    #[test]
    fn window_figures_average_what_calls_report() {
        let t0 = Instant::now();
        let mut health = Health::new(HealthConfig::default(), t0);
        let detail = |pdd: u64, talk: u64, mos: f64| CallDetail {
            post_dial_delay: Some(Duration::from_millis(pdd)),
            talk: Some(Duration::from_millis(talk)),
            mos: Some(mos),
        };
        health.handle_call_result(t0, CallResult::Answered, detail(1000, 30_000, 4.2));
        health.handle_call_result(t0, CallResult::Answered, detail(3000, 10_000, 3.8));
        health.handle_call_result(
            t0,
            CallResult::Busy,
            CallDetail {
                post_dial_delay: Some(Duration::from_millis(2000)),
                ..CallDetail::default()
            },
        );
        let figures = health.figures(t0);
        assert_eq!(figures.attempts, 3);
        assert!((figures.asr - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(figures.average_post_dial_delay_ms, Some(2000));
        assert_eq!(figures.average_talk_ms, Some(20_000));
        assert!((figures.average_mos.unwrap() - 4.0).abs() < 1e-9);
    }

    #[test]
    fn statuses_classify_as_the_carrier_meant_them() {
        assert_eq!(CallResult::from_status(200), CallResult::Answered);
        assert_eq!(CallResult::from_status(486), CallResult::Busy);
        assert_eq!(CallResult::from_status(600), CallResult::Busy);
        assert_eq!(CallResult::from_status(480), CallResult::NoAnswer);
        assert_eq!(CallResult::from_status(603), CallResult::Rejected);
        assert_eq!(CallResult::from_status(484), CallResult::InvalidNumber);
        for status in [500, 502, 503, 504] {
            assert!(
                CallResult::from_status(status).is_trunk_failure(),
                "{status}"
            );
        }
        assert!(CallResult::from_status(407).is_trunk_failure());
        assert!(!CallResult::from_status(486).is_trunk_failure());
    }
}
