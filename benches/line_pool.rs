//! Select-and-reserve (and release) on 2 threads contending over 16 trunks in two
//! tiers. Reports the time one thread takes per operation while the other thread
//! does the same.
//!
//! cargo bench -p dialhound-benches --bench line_pool

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use dialhound_line_pool::{HealthConfig, LinePool, TierFallback, TrunkConfig};

fn trunks() -> Vec<TrunkConfig> {
    (0..16)
        .map(|i| TrunkConfig {
            name: format!("trunk-{i}"),
            proxy: "127.0.0.1:5070".parse().expect("a literal address"),
            tier: if i < 8 { "premium" } else { "standard" }.into(),
            channels: 1_000,
            // High enough that the rate limit never refuses: this measures the
            // accounting, not the limit.
            cps: u32::MAX,
            from_domain: None,
            username: None,
            password: None,
            cost_per_minute: i as f64 * 0.01,
            caller_ids: Vec::new(),
            codecs: Vec::new(),
            enabled: true,
        })
        .collect()
}

fn select_and_reserve(c: &mut Criterion) {
    let t0 = Instant::now();
    let pool =
        Arc::new(LinePool::new(&trunks(), HealthConfig::default(), t0).expect("valid trunks"));
    // Each thread has its own tier and keeps its own clock (nanoseconds since
    // t0), carried over from one batch to the next so time never goes back.
    // The clocks are plain locals inside the threads: a shared counter would
    // measure cache-line traffic of the harness, not of the pool.
    let mut clocks = [0u64; 2];
    c.bench_function("line_pool/select_and_reserve_2_threads_16_trunks", |b| {
        b.iter_custom(|iters| {
            let barrier = Arc::new(Barrier::new(2));
            let threads: Vec<_> = (0..2)
                .map(|thread| {
                    let (pool, barrier) = (Arc::clone(&pool), Arc::clone(&barrier));
                    let mut clock = clocks[thread];
                    std::thread::spawn(move || {
                        let tier = if thread == 0 { "premium" } else { "standard" };
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..iters {
                            clock += 2;
                            let now = t0 + Duration::from_nanos(clock);
                            let reservation =
                                pool.select_and_reserve(tier, TierFallback::LaterTiers, &[], now);
                            std::hint::black_box(&reservation);
                        }
                        (start.elapsed(), clock)
                    })
                })
                .collect();
            let mut slowest = Duration::ZERO;
            for (thread, handle) in threads.into_iter().enumerate() {
                let (elapsed, clock) = handle.join().expect("bench thread");
                clocks[thread] = clock;
                slowest = slowest.max(elapsed);
            }
            slowest
        });
    });
}

criterion_group!(benches, select_and_reserve);
criterion_main!(benches);
