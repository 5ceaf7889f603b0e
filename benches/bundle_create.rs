//! `create_bundle` from an OCI image layout against `umoci unpack` of the same image,
//! printed as a ratio (>= 1.0: proxcage is at least as fast). Needs root and umoci.
//!
//! `cargo bench --bench bundle_create`. The image has one gzip layer per directory in
//! `$PROXCAGE_BENCH_DIRS` (colon-separated, default `/usr/bin:/usr/lib/python3.11`, a mix
//! of large binaries and many small files), built once with umoci. Each side runs once
//! to warm the page cache, then `$PROXCAGE_BENCH_RUNS` times (default 3); medians are
//! compared.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use proxcage::oci::build::{create_bundle, BundleOptions, Source};

fn umoci(args: &[&str]) {
    let st = Command::new("umoci")
        .args(args)
        .status()
        .expect("umoci is not installed: apt-get install -y umoci");
    assert!(st.success(), "umoci {args:?} failed");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this bench needs root (umoci unpack and owners): run it as root"
    );
    let quick = !std::env::args().any(|a| a == "--bench");
    let dirs = std::env::var("PROXCAGE_BENCH_DIRS")
        .unwrap_or_else(|_| "/usr/bin:/usr/lib/python3.11".into());
    let runs: usize = if quick {
        1
    } else {
        std::env::var("PROXCAGE_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3)
    };
    let work = tempfile::Builder::new()
        .prefix("proxcage-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let layout = work.path().join("oci");
    let l = layout.to_str().unwrap();
    let image = format!("{l}:bench");
    umoci(&["init", "--layout", l]);
    umoci(&["new", "--image", &image]);
    for dir in dirs.split(':').filter(|d| !d.is_empty()) {
        umoci(&["insert", "--image", &image, dir, dir]);
    }
    let layer_bytes: u64 = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    let ours = |i: usize| {
        let out = work.path().join(format!("ours-{i}"));
        let start = Instant::now();
        create_bundle(
            &out,
            &Source::parse(&image).unwrap(),
            &BundleOptions::default().progress(false),
        )
        .unwrap();
        let took = start.elapsed();
        std::fs::remove_dir_all(&out).unwrap();
        took
    };
    let theirs = |i: usize| {
        let out = work.path().join(format!("umoci-{i}"));
        let start = Instant::now();
        umoci(&["unpack", "--image", &image, out.to_str().unwrap()]);
        let took = start.elapsed();
        std::fs::remove_dir_all(&out).unwrap();
        took
    };
    if !quick {
        ours(usize::MAX);
        theirs(usize::MAX);
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..runs {
        a.push(ours(i));
        b.push(theirs(i));
    }
    let (o, t) = (median(a), median(b));
    println!(
        "bundle_create {dirs} ({:.0} MB of blobs): create_bundle {:.2}s, umoci unpack {:.2}s",
        layer_bytes as f64 / 1e6,
        o.as_secs_f64(),
        t.as_secs_f64()
    );
    println!(
        "bundle_create speed ratio create_bundle / umoci unpack: {:.2}x",
        t.as_secs_f64() / o.as_secs_f64()
    );
    let _ = Path::new(l);
}
