//! Rows per second for a whole import: read a 100,000-row CSV, parse and validate
//! every number, seal personal fields, write the store and flush it.
//!
//! cargo bench -p dialhound-benches --bench import

use std::path::Path;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use dialhound::config::Config;
use dialhound::directory::Directory;
use dialhound::import::ImportJob;
use dialhound::store::SledStore;
use dialhound::vault::Vault;

const ROWS: usize = 100_000;

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
    group.bench_function("csv_100k_rows", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let vault = Vault::from_master_key(&[7; 32]);
                let store = SledStore::open(dir.path(), &vault).expect("open store");
                (
                    dir,
                    Directory::new(vault, Arc::new(store), config.import_settings()),
                )
            },
            |(dir, directory)| {
                let summary = directory
                    .import(&job, &mut |_| {})
                    .expect("import succeeds");
                assert_eq!(summary.imported, ROWS as u64);
                (dir, directory)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, import);
criterion_main!(benches);
