//! The in-process work of one proxcage invocation: validating an id and a signal,
//! loading a bundle, routing, and reading and writing a record.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use proxcage::core::{ContainerId, Signal};
use proxcage::engine::{RouteRule, Router};
use proxcage::store::{Record, StateStore};

fn ids_and_signals(c: &mut Criterion) {
    c.bench_function("ContainerId::new (64 hex chars)", |b| {
        let id = "3f2a".repeat(16);
        b.iter(|| ContainerId::new(black_box(id.as_str())).unwrap())
    });
    c.bench_function("Signal parse SIGRTMIN+3", |b| {
        b.iter(|| black_box("SIGRTMIN+3").parse::<Signal>().unwrap())
    });
}

fn bundle_load(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rootfs")).unwrap();
    proxcage::oci::write_default_spec(dir.path(), false).unwrap();
    c.bench_function("Bundle::load (runc default spec)", |b| {
        b.iter(|| proxcage::oci::Bundle::load(black_box(dir.path())).unwrap())
    });
}

fn routing(c: &mut Criterion) {
    let rules: Vec<RouteRule> = (0..20)
        .map(|i| RouteRule {
            backend: if i % 2 == 0 { "crun" } else { "runc" }.into(),
            id: Some(format!("tenant-{i}-*")),
            annotations: BTreeMap::from([("tier".to_string(), format!("t{i}*"))]),
        })
        .collect();
    let router = Router::new(
        "runc",
        &rules,
        &["runc", "crun"],
        Path::new("/etc/proxcage/config.toml"),
    )
    .unwrap();
    let id = ContainerId::new("tenant-19-web").unwrap();
    let annotations = BTreeMap::from([("tier".to_string(), "t19-prod".to_string())]);
    c.bench_function("Router::choose (20 rules, last matches)", |b| {
        b.iter(|| {
            router
                .choose(black_box(&id), black_box(&annotations))
                .unwrap()
        })
    });
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let id = ContainerId::new("bench").unwrap();
    let lock = store.lock_new(&id).unwrap();
    let record = Record::creating(id.clone(), "runc", "/bundle");
    lock.write(&record).unwrap();
    drop(lock);
    c.bench_function("StateStore::read", |b| {
        b.iter(|| store.read(black_box(&id)).unwrap().unwrap())
    });
    c.bench_function("lock + write record (fsync)", |b| {
        b.iter(|| {
            let lock = store.lock_existing(&id).unwrap().unwrap();
            lock.write(&record).unwrap();
        })
    });
}

criterion_group!(benches, ids_and_signals, bundle_load, routing, store);
criterion_main!(benches);
