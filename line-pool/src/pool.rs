//! The pool: trunks grouped by tier, selection with failover, and operator state.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;

use crate::capacity::{CallRate, Channels};
use crate::config::{ConfigError, TrunkConfig};
use crate::health::{BreakerState, CallDetail, CallResult, Health, HealthConfig, WindowFigures};

/// Trunks a pool holds at most (selection tracks tried trunks in a 64-bit mask).
pub const MAX_TRUNKS: usize = 64;

/// A trunk's index in its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TrunkId(pub u16);

/// What an operator has said about a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminState {
    Enabled,
    /// No new calls; calls in progress finish.
    Drained,
    /// Off in the configuration.
    Disabled,
}

/// Whether a call may move to a later tier when its own has no trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierFallback {
    SameTierOnly,
    LaterTiers,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no trunk has tier `{0}`")]
    UnknownTier(String),
    #[error("no trunk of tier `{tier}`{} can take a call now", if *.fallback { " or a later tier" } else { "" })]
    NoCapacity { tier: String, fallback: bool },
}

/// A channel and a call-rate slot held on one trunk; the channel is given back
/// when this is dropped.
#[derive(Debug)]
pub struct Reservation {
    trunk: Arc<Trunk>,
    caller_id: Option<String>,
}

impl Reservation {
    pub fn trunk(&self) -> TrunkId {
        self.trunk.id
    }

    pub fn config(&self) -> &TrunkConfig {
        &self.trunk.config
    }

    /// The caller ID for this call, rotated over the trunk's pool.
    pub fn caller_id(&self) -> Option<&str> {
        self.caller_id.as_deref()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.trunk.channels.give_back();
    }
}

/// A trunk as `dialhound trunk list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrunkSnapshot {
    pub name: String,
    pub tier: String,
    pub admin: AdminState,
    pub state: BreakerState,
    pub active_calls: u32,
    pub channels: u32,
    pub cps: u32,
    pub window: WindowFigures,
    pub attempts_by_result: Vec<(&'static str, u64)>,
    pub state_changes: u64,
}

#[derive(Debug)]
struct Trunk {
    id: TrunkId,
    config: TrunkConfig,
    tier: usize,
    channels: Channels,
    rate: CallRate,
    admin: AtomicU8,
    /// Mirrors the health state for selection without the lock.
    breaker: AtomicU8,
    health: Mutex<Health>,
    results: [AtomicU64; CallResult::ALL.len()],
    next_caller_id: AtomicUsize,
}

/// Trunks by tier. Tiers rank in the order they first appear in the
/// configuration: the first tier named is the best.
#[derive(Debug)]
pub struct LinePool {
    epoch: Instant,
    tiers: Vec<String>,
    trunks: Vec<Arc<Trunk>>,
    /// Trunk indexes of each tier, in tier order.
    by_tier: Vec<Vec<usize>>,
}

const ENABLED: u8 = 0;
const DRAINED: u8 = 1;
const DISABLED: u8 = 2;

fn breaker_code(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

fn lock(health: &Mutex<Health>) -> std::sync::MutexGuard<'_, Health> {
    // Health updates are single assignments; a panic elsewhere leaves it usable.
    health.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LinePool {
    pub fn new(
        configs: &[TrunkConfig],
        health: HealthConfig,
        now: Instant,
    ) -> Result<LinePool, ConfigError> {
        if configs.len() > MAX_TRUNKS {
            return Err(ConfigError::TooMany { max: MAX_TRUNKS });
        }
        let mut tiers: Vec<String> = Vec::new();
        let mut trunks = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            if config.name.trim().is_empty() {
                return Err(ConfigError::EmptyName(config.name.clone()));
            }
            if configs[..index].iter().any(|c| c.name == config.name) {
                return Err(ConfigError::Duplicate(config.name.clone()));
            }
            for (field, value) in [("channels", config.channels), ("cps", config.cps)] {
                if value == 0 {
                    return Err(ConfigError::Zero {
                        name: config.name.clone(),
                        field,
                    });
                }
            }
            let tier = match tiers.iter().position(|t| *t == config.tier) {
                Some(tier) => tier,
                None => {
                    tiers.push(config.tier.clone());
                    tiers.len() - 1
                }
            };
            trunks.push(Arc::new(Trunk {
                id: TrunkId(index as u16),
                config: config.clone(),
                tier,
                channels: Channels::new(config.channels),
                rate: CallRate::new(config.cps),
                admin: AtomicU8::new(if config.enabled { ENABLED } else { DISABLED }),
                breaker: AtomicU8::new(0),
                health: Mutex::new(Health::new(health, now)),
                results: Default::default(),
                next_caller_id: AtomicUsize::new(0),
            }));
        }
        let by_tier = (0..tiers.len())
            .map(|tier| {
                trunks
                    .iter()
                    .filter(|t| t.tier == tier)
                    .map(|t| t.id.0 as usize)
                    .collect()
            })
            .collect();
        Ok(LinePool {
            epoch: now,
            tiers,
            trunks,
            by_tier,
        })
    }

    pub fn tiers(&self) -> &[String] {
        &self.tiers
    }

    pub fn trunk_id(&self, name: &str) -> Option<TrunkId> {
        self.trunks
            .iter()
            .find(|t| t.config.name == name)
            .map(|t| t.id)
    }

    pub fn config(&self, trunk: TrunkId) -> Option<&TrunkConfig> {
        self.trunks.get(trunk.0 as usize).map(|t| &t.config)
    }

    /// Picks a trunk of `tier` (then later tiers, when allowed) and reserves a
    /// channel and a call-rate slot on it. Within a tier the healthiest trunk wins,
    /// then the least loaded, then the cheapest. `exclude` names trunks that already
    /// failed this call for a trunk-side reason, so a retry fails over.
    pub fn select_and_reserve(
        &self,
        tier: &str,
        fallback: TierFallback,
        exclude: &[TrunkId],
        now: Instant,
    ) -> Result<Reservation, SelectError> {
        let first = self
            .tiers
            .iter()
            .position(|t| t == tier)
            .ok_or_else(|| SelectError::UnknownTier(tier.to_owned()))?;
        let last = match fallback {
            TierFallback::SameTierOnly => first,
            TierFallback::LaterTiers => self.tiers.len() - 1,
        };
        let now_nanos = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let mut tried: u64 = exclude
            .iter()
            .fold(0, |mask, id| mask | (1u64 << (id.0 as usize % 64)));
        for tier_index in first..=last {
            while let Some(trunk) = self.best_candidate(tier_index, tried) {
                tried |= 1u64 << trunk.id.0;
                if let Some(reservation) = self.try_reserve(trunk, now_nanos) {
                    return Ok(reservation);
                }
            }
        }
        Err(SelectError::NoCapacity {
            tier: tier.to_owned(),
            fallback: fallback == TierFallback::LaterTiers,
        })
    }

    /// Reserves on one named trunk, for an operator's test call.
    pub fn reserve_on(&self, trunk: TrunkId, now: Instant) -> Option<Reservation> {
        let trunk = self.trunks.get(trunk.0 as usize)?;
        if !self.admits(trunk) {
            return None;
        }
        self.try_reserve(
            trunk,
            now.saturating_duration_since(self.epoch).as_nanos() as u64,
        )
    }

    /// A call on `trunk` ended with `result`.
    pub fn report(&self, trunk: TrunkId, now: Instant, result: CallResult, detail: CallDetail) {
        let Some(trunk) = self.trunks.get(trunk.0 as usize) else {
            return;
        };
        if let Some(position) = CallResult::ALL.iter().position(|r| *r == result) {
            trunk.results[position].fetch_add(1, Ordering::Relaxed);
        }
        let mut health = lock(&trunk.health);
        health.handle_call_result(now, result, detail);
        trunk
            .breaker
            .store(breaker_code(health.state()), Ordering::Release);
    }

    /// An OPTIONS keepalive or probe to `trunk` came back (or did not).
    pub fn report_probe(&self, trunk: TrunkId, now: Instant, ok: bool) {
        let Some(trunk) = self.trunks.get(trunk.0 as usize) else {
            return;
        };
        let mut health = lock(&trunk.health);
        health.handle_probe(now, ok);
        trunk
            .breaker
            .store(breaker_code(health.state()), Ordering::Release);
    }

    /// Moves time forward for every trunk.
    pub fn handle_timeout(&self, now: Instant) {
        for trunk in &self.trunks {
            let mut health = lock(&trunk.health);
            health.handle_timeout(now);
            trunk
                .breaker
                .store(breaker_code(health.state()), Ordering::Release);
        }
    }

    /// The next instant [`LinePool::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.trunks
            .iter()
            .filter_map(|t| lock(&t.health).poll_timeout())
            .min()
    }

    /// Stops new calls on a trunk; calls in progress finish. False for an unknown name.
    pub fn drain(&self, name: &str) -> bool {
        self.set_admin(name, DRAINED)
    }

    /// Lets a drained or disabled trunk take calls again.
    pub fn enable(&self, name: &str) -> bool {
        self.set_admin(name, ENABLED)
    }

    pub fn snapshot(&self, now: Instant) -> Vec<TrunkSnapshot> {
        self.trunks
            .iter()
            .map(|trunk| {
                let health = lock(&trunk.health);
                TrunkSnapshot {
                    name: trunk.config.name.clone(),
                    tier: trunk.config.tier.clone(),
                    admin: match trunk.admin.load(Ordering::Acquire) {
                        ENABLED => AdminState::Enabled,
                        DRAINED => AdminState::Drained,
                        _ => AdminState::Disabled,
                    },
                    state: health.state(),
                    active_calls: trunk.channels.active(),
                    channels: trunk.channels.limit(),
                    cps: trunk.config.cps,
                    window: health.figures(now),
                    attempts_by_result: CallResult::ALL
                        .iter()
                        .zip(&trunk.results)
                        .map(|(result, count)| (result.name(), count.load(Ordering::Relaxed)))
                        .collect(),
                    state_changes: health.state_changes(),
                }
            })
            .collect()
    }

    fn set_admin(&self, name: &str, state: u8) -> bool {
        match self.trunks.iter().find(|t| t.config.name == name) {
            Some(trunk) => {
                trunk.admin.store(state, Ordering::Release);
                true
            }
            None => false,
        }
    }

    fn admits(&self, trunk: &Trunk) -> bool {
        trunk.admin.load(Ordering::Acquire) == ENABLED
            && trunk.breaker.load(Ordering::Acquire) != breaker_code(BreakerState::Open)
    }

    /// The best untried trunk of a tier: a half-open trunk first, so it gets its trial
    /// calls and can close again, then the lowest load, then the lowest cost.
    fn best_candidate(&self, tier: usize, tried: u64) -> Option<&Arc<Trunk>> {
        let mut best: Option<(&Arc<Trunk>, bool, u32)> = None;
        for &index in &self.by_tier[tier] {
            let trunk = &self.trunks[index];
            if tried & (1u64 << index) != 0 || !self.admits(trunk) {
                continue;
            }
            let half_open =
                trunk.breaker.load(Ordering::Relaxed) == breaker_code(BreakerState::HalfOpen);
            let active = trunk.channels.active();
            let better = match best {
                None => true,
                Some((current, current_half_open, current_active)) => {
                    // Loads compared as active/limit without dividing.
                    let load = u64::from(active) * u64::from(current.channels.limit());
                    let current_load =
                        u64::from(current_active) * u64::from(trunk.channels.limit());
                    (half_open, current_load, current.config.cost_per_minute)
                        > (current_half_open, load, trunk.config.cost_per_minute)
                }
            };
            if better {
                best = Some((trunk, half_open, active));
            }
        }
        best.map(|(trunk, _, _)| trunk)
    }

    fn try_reserve(&self, trunk: &Arc<Trunk>, now_nanos: u64) -> Option<Reservation> {
        if !trunk.channels.try_take() {
            return None;
        }
        if !trunk.rate.try_take(now_nanos) {
            trunk.channels.give_back();
            return None;
        }
        if trunk.breaker.load(Ordering::Acquire) == breaker_code(BreakerState::HalfOpen) {
            // Half-open trunks take only their trial calls.
            let mut health = lock(&trunk.health);
            if !health.admits() {
                trunk.channels.give_back();
                return None;
            }
            health.handle_call_started();
        }
        let caller_id = (!trunk.config.caller_ids.is_empty()).then(|| {
            let next = trunk.next_caller_id.fetch_add(1, Ordering::Relaxed);
            trunk.config.caller_ids[next % trunk.config.caller_ids.len()].clone()
        });
        Some(Reservation {
            trunk: Arc::clone(trunk),
            caller_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn trunk(name: &str, tier: &str, channels: u32, cost: f64) -> TrunkConfig {
        TrunkConfig {
            name: name.into(),
            proxy: "127.0.0.1:5070".parse().unwrap(),
            tier: tier.into(),
            channels,
            cps: 1000,
            from_domain: None,
            username: None,
            password: None,
            cost_per_minute: cost,
            caller_ids: Vec::new(),
            codecs: Vec::new(),
            enabled: true,
        }
    }

    fn pool(trunks: &[TrunkConfig], now: Instant) -> LinePool {
        LinePool::new(trunks, HealthConfig::default(), now).unwrap()
    }

    fn name(pool: &LinePool, reservation: &Reservation) -> String {
        pool.config(reservation.trunk()).unwrap().name.clone()
    }

    #[test]
    fn cheapest_idle_trunk_of_the_tier_wins_then_load_spreads() {
        let t0 = Instant::now();
        let pool = pool(
            &[
                trunk("dear", "premium", 2, 0.3),
                trunk("cheap", "premium", 2, 0.1),
            ],
            t0,
        );
        let first = pool
            .select_and_reserve("premium", TierFallback::SameTierOnly, &[], t0)
            .unwrap();
        assert_eq!(name(&pool, &first), "cheap");
        let second = pool
            .select_and_reserve(
                "premium",
                TierFallback::SameTierOnly,
                &[],
                t0 + Duration::from_millis(5),
            )
            .unwrap();
        assert_eq!(name(&pool, &second), "dear", "the less loaded trunk");
    }

    #[test]
    fn a_trunk_side_failure_fails_over_within_the_tier_then_to_the_next() {
        let t0 = Instant::now();
        let pool = pool(
            &[
                trunk("a", "premium", 5, 0.1),
                trunk("b", "premium", 5, 0.2),
                trunk("c", "standard", 5, 0.0),
            ],
            t0,
        );
        let first = pool
            .select_and_reserve("premium", TierFallback::LaterTiers, &[], t0)
            .unwrap();
        assert_eq!(name(&pool, &first), "a");
        let retry = pool
            .select_and_reserve("premium", TierFallback::LaterTiers, &[first.trunk()], t0)
            .unwrap();
        assert_eq!(name(&pool, &retry), "b");
        let again = pool
            .select_and_reserve(
                "premium",
                TierFallback::LaterTiers,
                &[first.trunk(), retry.trunk()],
                t0,
            )
            .unwrap();
        assert_eq!(name(&pool, &again), "c");
        let same_tier_only = pool.select_and_reserve(
            "premium",
            TierFallback::SameTierOnly,
            &[first.trunk(), retry.trunk()],
            t0,
        );
        assert_eq!(
            same_tier_only.unwrap_err(),
            SelectError::NoCapacity {
                tier: "premium".into(),
                fallback: false
            }
        );
    }

    #[test]
    fn full_trunks_overflow_and_dropped_reservations_free_channels() {
        let t0 = Instant::now();
        let pool = pool(
            &[
                trunk("a", "premium", 1, 0.0),
                trunk("b", "standard", 1, 0.0),
            ],
            t0,
        );
        let held = pool
            .select_and_reserve("premium", TierFallback::LaterTiers, &[], t0)
            .unwrap();
        let overflow = pool
            .select_and_reserve("premium", TierFallback::LaterTiers, &[], t0)
            .unwrap();
        assert_eq!(name(&pool, &overflow), "b");
        assert!(
            pool.select_and_reserve("premium", TierFallback::LaterTiers, &[], t0)
                .is_err()
        );
        drop(held);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            name(
                &pool,
                &pool
                    .select_and_reserve("premium", TierFallback::LaterTiers, &[], later)
                    .unwrap()
            ),
            "a"
        );
    }

    #[test]
    fn an_open_trunk_takes_no_calls_and_traffic_moves() {
        let t0 = Instant::now();
        let pool = pool(
            &[
                trunk("a", "premium", 50, 0.0),
                trunk("b", "premium", 50, 0.5),
            ],
            t0,
        );
        let a = pool.trunk_id("a").unwrap();
        for _ in 0..20 {
            pool.report(a, t0, CallResult::ServerError, CallDetail::default());
        }
        for step in 0..10 {
            let now = t0 + Duration::from_millis(10 * step);
            let reservation = pool
                .select_and_reserve("premium", TierFallback::SameTierOnly, &[], now)
                .unwrap();
            assert_eq!(name(&pool, &reservation), "b");
        }
        let snapshot = pool.snapshot(t0);
        assert_eq!(snapshot[0].state, BreakerState::Open);
        assert_eq!(
            snapshot[0]
                .attempts_by_result
                .iter()
                .find(|(n, _)| *n == "server_error")
                .unwrap()
                .1,
            20
        );
        // After the cool-down the trunk is half-open and takes its trial calls again.
        let later = t0 + Duration::from_secs(31);
        pool.handle_timeout(later);
        let mut trials = 0;
        for step in 0..6 {
            let now = later + Duration::from_millis(10 * step);
            let reservation = pool
                .select_and_reserve("premium", TierFallback::SameTierOnly, &[], now)
                .unwrap();
            if reservation.trunk() == a {
                trials += 1;
            }
        }
        assert_eq!(
            trials, 3,
            "exactly the trial calls go to the half-open trunk"
        );
    }

    #[test]
    fn drained_trunks_take_no_new_calls_until_enabled() {
        let t0 = Instant::now();
        let pool = pool(&[trunk("a", "premium", 5, 0.0)], t0);
        let in_progress = pool
            .select_and_reserve("premium", TierFallback::SameTierOnly, &[], t0)
            .unwrap();
        assert!(pool.drain("a"));
        assert!(
            pool.select_and_reserve(
                "premium",
                TierFallback::SameTierOnly,
                &[],
                t0 + Duration::from_secs(1)
            )
            .is_err()
        );
        assert_eq!(
            pool.snapshot(t0)[0].active_calls,
            1,
            "the call in progress goes on"
        );
        drop(in_progress);
        assert!(pool.enable("a"));
        assert!(
            pool.select_and_reserve(
                "premium",
                TierFallback::SameTierOnly,
                &[],
                t0 + Duration::from_secs(2)
            )
            .is_ok()
        );
        assert!(!pool.drain("nope"));
    }

    #[test]
    fn caller_ids_rotate_per_trunk() {
        let t0 = Instant::now();
        let mut config = trunk("a", "premium", 5, 0.0);
        config.caller_ids = vec!["01088880001".into(), "01088880002".into()];
        let pool = pool(&[config], t0);
        let ids: Vec<String> = (0..3)
            .map(|n| {
                let now = t0 + Duration::from_millis(n * 10);
                let r = pool
                    .select_and_reserve("premium", TierFallback::SameTierOnly, &[], now)
                    .unwrap();
                r.caller_id().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids, ["01088880001", "01088880002", "01088880001"]);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let t0 = Instant::now();
        let twice = [trunk("a", "p", 1, 0.0), trunk("a", "p", 1, 0.0)];
        assert_eq!(
            LinePool::new(&twice, HealthConfig::default(), t0).unwrap_err(),
            ConfigError::Duplicate("a".into())
        );
        let zero = [trunk("a", "p", 0, 0.0)];
        assert!(matches!(
            LinePool::new(&zero, HealthConfig::default(), t0),
            Err(ConfigError::Zero { .. })
        ));
        let pool = pool(&[trunk("a", "p", 1, 0.0)], t0);
        assert_eq!(
            pool.select_and_reserve("gold", TierFallback::LaterTiers, &[], t0)
                .unwrap_err(),
            SelectError::UnknownTier("gold".into())
        );
    }
}
