//! The OCI -> LXC translation: runc's default spec and a spec with 200 mounts, and the
//! config text's render and parse.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use proxcage_lxc_config::{from_oci, split_for_proxmox, LxcConfig, ProxmoxPolicy, ResolvedPaths};

fn translation(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("proc")).unwrap();
    let files = dir.path().join("files");

    let spec = proxcage_oci::default_spec(false);
    let paths = ResolvedPaths::new(&rootfs, Vec::new(), &files);
    c.bench_function("from_oci (runc default spec)", |b| {
        b.iter(|| from_oci(black_box(&spec), &paths).unwrap())
    });

    let mut value = serde_json::to_value(proxcage_oci::default_spec(false)).unwrap();
    let mounts = value["mounts"].as_array_mut().unwrap();
    for i in 0..200 {
        mounts.push(serde_json::json!({
            "destination": format!("/srv/vol{i}/data"),
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "size=16m", "mode=755"]
        }));
    }
    let big: proxcage_lxc_config::oci_spec::runtime::Spec = serde_json::from_value(value).unwrap();
    c.bench_function("from_oci (200 mounts)", |b| {
        b.iter(|| from_oci(black_box(&big), &paths).unwrap())
    });

    let config = from_oci(&big, &paths).unwrap().config().clone();
    let text = config.render();
    c.bench_function("LxcConfig::render (200 mounts)", |b| {
        b.iter(|| black_box(&config).render())
    });
    c.bench_function("LxcConfig::parse (200 mounts)", |b| {
        b.iter(|| LxcConfig::parse(black_box(&text)).unwrap())
    });
    // runc's default asks for no_new_privs and a console and /dev setup of its own,
    // which Proxmox does not pass through: the operator's fallback allows dropping them.
    let policy = ProxmoxPolicy {
        allow_dropped: [
            "lxc.no_new_privs",
            "lxc.console.",
            "lxc.pty.",
            "lxc.autodev.",
        ]
        .map(String::from)
        .to_vec(),
        ..ProxmoxPolicy::default()
    };
    c.bench_function("split_for_proxmox (200 mounts)", |b| {
        b.iter(|| split_for_proxmox(black_box(&config), &policy).unwrap())
    });
}

criterion_group!(benches, translation);
criterion_main!(benches);
