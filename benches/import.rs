//! Rows per second for a whole import: read a 100,000-row CSV, parse and validate
//! every number, seal personal fields, write the store and flush it.
//!
//! cargo bench -p dialhound-benches --bench import

use std::path::Path;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use dialhound::config::Config;
use dialhound::ingest::Directory;
use dialhound::ingest::ImportJob;
use dialhound::store::Vault;
use dialhound::store::{MemoryStore, SledStore, Store};

const ROWS: usize = 100_000;

// The daemon's allocator, so the figure is the daemon's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn import(c: &mut Criterion) {
    let config =
        Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/dialhound.toml"))
            .expect("the example config loads");
    let input = tempfile::tempdir().expect("temp dir");
    let csv = input.path().join("customers.csv");
    std::fs::write(&csv, dialhound_benches::customers_csv(ROWS)).expect("write CSV");
    let job = ImportJob {
        path: csv,
        mapping: config.import.columns.clone(),
        rejects: Some(input.path().join("rejects.csv")),
    };

    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    // The whole import into the daemon's sled store, flushed.
    group.bench_function("csv_100k_rows_sled", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = SledStore::open(dir.path(), &Vault::from_master_key(&[7; 32]))
                    .expect("open store");
                (dir, Arc::new(store) as Arc<dyn Store>)
            },
            |(dir, store)| {
                run(&config, &job, store);
                dir
            },
            BatchSize::PerIteration,
        );
    });
    // Everything but the disk: reading, number parsing, validation, sealing.
    group.bench_function("csv_100k_rows_memory", |b| {
        b.iter_batched(
            || Arc::new(MemoryStore::new()) as Arc<dyn Store>,
            |store| run(&config, &job, store),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn run(config: &Config, job: &ImportJob, store: Arc<dyn Store>) {
    let directory = Directory::new(
        Vault::from_master_key(&[7; 32]),
        store,
        config.import_settings(),
    );
    let summary = directory.import(job, &mut |_| {}).expect("import succeeds");
    assert_eq!(summary.imported, ROWS as u64);
}

criterion_group!(benches, import);
criterion_main!(benches);
