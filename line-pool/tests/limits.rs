//! Under concurrent reserve and release from several threads, no trunk ever exceeds
//! its channel or call-rate limit.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dialhound_line_pool::{HealthConfig, LinePool, TierFallback, TrunkConfig};
use proptest::prelude::*;

fn trunk(name: &str, tier: &str, channels: u32, cps: u32) -> TrunkConfig {
    TrunkConfig {
        name: name.into(),
        proxy: "127.0.0.1:5070".parse().unwrap(),
        tier: tier.into(),
        channels,
        cps,
        from_domain: None,
        username: None,
        password: None,
        cost_per_minute: 0.0,
        caller_ids: Vec::new(),
        codecs: Vec::new(),
        enabled: true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn limits_hold_under_contention(
        channels in proptest::collection::vec(1u32..6, 2..5),
        cps in proptest::collection::vec(1u32..40, 2..5),
        seed in any::<u64>(),
    ) {
        let count = channels.len().min(cps.len());
        let configs: Vec<TrunkConfig> = (0..count)
            .map(|i| trunk(&format!("t{i}"), if i % 2 == 0 { "premium" } else { "standard" }, channels[i], cps[i]))
            .collect();
        let t0 = Instant::now();
        let pool = Arc::new(LinePool::new(&configs, HealthConfig::default(), t0).unwrap());
        // Simulated time in nanoseconds, shared by every thread and only moving forward.
        let clock = Arc::new(AtomicU64::new(0));
        let holding: Arc<Vec<AtomicU32>> = Arc::new((0..count).map(|_| AtomicU32::new(0)).collect());
        let peak: Arc<Vec<AtomicU32>> = Arc::new((0..count).map(|_| AtomicU32::new(0)).collect());
        let starts: Arc<Mutex<Vec<Vec<u64>>>> = Arc::new(Mutex::new(vec![Vec::new(); count]));

        std::thread::scope(|scope| {
            for thread in 0..4u64 {
                let (pool, clock, holding, peak, starts) = (&pool, &clock, &holding, &peak, &starts);
                scope.spawn(move || {
                    let mut state = seed ^ (thread + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    let mut next = move || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
                    let mut held = Vec::new();
                    for _ in 0..400 {
                        let nanos = clock.fetch_add(next() % 20_000_000, Ordering::SeqCst);
                        let now = t0 + Duration::from_nanos(nanos);
                        if next() % 3 == 0 && !held.is_empty() {
                            let (index, reservation): (usize, _) = held.swap_remove((next() % held.len() as u64) as usize);
                            holding[index].fetch_sub(1, Ordering::SeqCst);
                            drop(reservation);
                            continue;
                        }
                        let tier = if next() % 2 == 0 { "premium" } else { "standard" };
                        if let Ok(reservation) = pool.select_and_reserve(tier, TierFallback::LaterTiers, &[], now) {
                            let index = reservation.trunk().0 as usize;
                            let now_holding = holding[index].fetch_add(1, Ordering::SeqCst) + 1;
                            peak[index].fetch_max(now_holding, Ordering::SeqCst);
                            starts.lock().unwrap()[index].push(nanos);
                            held.push((index, reservation));
                        }
                    }
                    for (index, reservation) in held {
                        holding[index].fetch_sub(1, Ordering::SeqCst);
                        drop(reservation);
                    }
                });
            }
        });

        let starts = starts.lock().unwrap();
        for (index, config) in configs.iter().enumerate() {
            prop_assert!(peak[index].load(Ordering::SeqCst) <= config.channels,
                "{} held {} of {} channels", config.name, peak[index].load(Ordering::SeqCst), config.channels);
            let mut times = starts[index].clone();
            times.sort_unstable();
            let cps = config.cps as usize;
            for window in times.windows(cps + 1) {
                prop_assert!(window[cps] - window[0] >= 1_000_000_000,
                    "{}: {} starts within {} ns", config.name, cps + 1, window[cps] - window[0]);
            }
        }
        prop_assert!(pool.snapshot(t0).iter().all(|t| t.active_calls == 0));
    }
}
