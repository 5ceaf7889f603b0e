//! How the store path of `proxcage list` and `proxcage state` grows with the number of
//! containers in the store: 10, 100, 1,000 and 10,000 records, written through the store
//! API. What is measured is the part proxcage owns: for `list`, reading every record
//! (`StateStore::records`: one directory scan, one read and parse per record); for
//! `state`, finding one container's record (`StateStore::read`), which must not depend on
//! how many others there are. The backend's own `list`/`state` (a runc process) is not
//! in it: it costs the same with or without proxcage.
//!
//! Targets (issue 8): list < 20 ms at 1,000 containers, state < 2 ms.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use proxcage::core::ContainerId;
use proxcage::store::{Record, StateStore};

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// A store with `n` containers, half of them `created`, all with a realistic bundle path.
fn filled(n: usize) -> (tempfile::TempDir, StateStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    for i in 0..n {
        let id = ContainerId::new(format!("{i:064x}")).unwrap();
        let lock = store.lock_new(&id).unwrap();
        let mut record = Record::creating(
            id.clone(),
            if i % 2 == 0 { "runc" } else { "crun" },
            format!("/run/containerd/io.containerd.runtime.v2.task/k8s.io/{i:064x}"),
        );
        if i % 2 == 0 {
            record.mark_created();
        }
        // The provisional write: setting up 10,000 records with an fsync each would take
        // minutes on a disk and measure nothing of interest.
        lock.write_provisional(&record).unwrap();
    }
    (dir, store)
}

fn scaling(c: &mut Criterion) {
    let mut list = c.benchmark_group("list: StateStore::records");
    list.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let mut stores = Vec::new();
    for n in SIZES {
        let (dir, store) = filled(n);
        list.throughput(Throughput::Elements(n as u64));
        list.bench_with_input(BenchmarkId::from_parameter(n), &store, |b, store| {
            b.iter(|| {
                let records = store.records().unwrap();
                assert_eq!(records.len(), n);
                black_box(records)
            })
        });
        stores.push((n, dir, store));
    }
    list.finish();

    let mut state = c.benchmark_group("state: StateStore::read of one container");
    state
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (n, _dir, store) in &stores {
        let id = ContainerId::new(format!("{:064x}", n / 2)).unwrap();
        state.bench_with_input(BenchmarkId::from_parameter(n), store, |b, store| {
            b.iter(|| store.read(black_box(&id)).unwrap().unwrap())
        });
    }
    state.finish();
}

criterion_group!(benches, scaling);
criterion_main!(benches);
