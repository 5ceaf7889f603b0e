//! `pack_rootfs` against `tar --zstd -cf` on the same tree at the same zstd level,
//! printed as a throughput ratio (>= 1.0: proxcage is at least as fast).
//!
//! `cargo bench --bench template_pack`; the tree is `$PROXCAGE_BENCH_ROOTFS` (default
//! `/usr/bin`), the level `$PROXCAGE_BENCH_LEVEL` (default 3). Each side runs once to warm
//! the page cache, then `$PROXCAGE_BENCH_RUNS` times (default 3); the medians are compared.
//! tar runs with what a fair comparison needs for the same archive: `--sort=name`,
//! `--numeric-owner`, `--xattrs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use proxcage::oci::template::{pack_rootfs, PackOptions};

/// User plus system CPU time of this process (`who` = RUSAGE_SELF) or of its waited-for
/// children (RUSAGE_CHILDREN).
fn cpu(who: libc::c_int) -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: ru is a valid, writable rusage.
    unsafe { libc::getrusage(who, ru.as_mut_ptr()) };
    // SAFETY: getrusage filled it (and it was zeroed before).
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.path().symlink_metadata().unwrap();
        if m.is_dir() {
            total += tree_bytes(&e.path());
        } else if m.is_file() {
            total += m.len();
        }
    }
    total
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and expects a
    // quick run: one iteration then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rootfs =
        PathBuf::from(std::env::var_os("PROXCAGE_BENCH_ROOTFS").unwrap_or("/usr/bin".into()));
    let level: i32 = env_or("PROXCAGE_BENCH_LEVEL", 3);
    // Default: PackOptions' default (no zstd workers: one thread compresses).
    let workers: Option<u32> = std::env::var("PROXCAGE_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok());
    let runs: usize = if quick {
        1
    } else {
        env_or("PROXCAGE_BENCH_RUNS", 3)
    };
    let work = tempfile::tempdir().unwrap();
    let mb = tree_bytes(&rootfs) as f64 / 1e6;

    let ours = |i: usize| {
        let dest = work.path().join(format!("ours-{i}"));
        std::fs::create_dir(&dest).unwrap();
        let (start, cpu0) = (Instant::now(), cpu(libc::RUSAGE_SELF));
        let mut opts = PackOptions::default().level(level).progress(false);
        if let Some(w) = workers {
            opts = opts.workers(w);
        }
        let t = pack_rootfs(&rootfs, &dest, &opts).unwrap();
        let took = start.elapsed();
        let cpu_used = cpu(libc::RUSAGE_SELF) - cpu0;
        let size = std::fs::metadata(t.path()).unwrap().len();
        std::fs::remove_dir_all(&dest).unwrap();
        (took, size, cpu_used)
    };
    let tar = |i: usize| {
        let out = work.path().join(format!("tar-{i}.tar.zst"));
        let (start, cpu0) = (Instant::now(), cpu(libc::RUSAGE_CHILDREN));
        let st = Command::new("tar")
            .env("ZSTD_CLEVEL", level.to_string())
            .args(["--zstd", "--sort=name", "--numeric-owner", "--xattrs", "-C"])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&out)
            .arg(".")
            .status()
            .expect("tar is not installed: apt-get install -y tar zstd");
        let took = start.elapsed();
        let cpu_used = cpu(libc::RUSAGE_CHILDREN) - cpu0;
        assert!(st.success(), "tar --zstd failed");
        let size = std::fs::metadata(&out).unwrap().len();
        std::fs::remove_file(&out).unwrap();
        (took, size, cpu_used)
    };

    if !quick {
        ours(usize::MAX);
        tar(usize::MAX);
    }
    let (mut t_ours, mut t_tar) = (Vec::new(), Vec::new());
    let (mut c_ours, mut c_tar) = (Vec::new(), Vec::new());
    let (mut s_ours, mut s_tar) = (0, 0);
    for i in 0..runs {
        let (t, s, c) = ours(i);
        t_ours.push(t);
        c_ours.push(c);
        s_ours = s;
        let (t, s, c) = tar(i);
        t_tar.push(t);
        c_tar.push(c);
        s_tar = s;
    }
    let (o, t) = (median(t_ours), median(t_tar));
    let (co, ct) = (median(c_ours), median(c_tar));
    println!(
        "template_pack {} ({mb:.0} MB, zstd -{level}): pack_rootfs {:.2}s ({:.0} MB/s, {} bytes), tar --zstd {:.2}s ({:.0} MB/s, {} bytes)",
        rootfs.display(),
        o.as_secs_f64(),
        mb / o.as_secs_f64(),
        s_ours,
        t.as_secs_f64(),
        mb / t.as_secs_f64(),
        s_tar
    );
    println!(
        "template_pack CPU time: pack_rootfs {:.2}s, tar --zstd {:.2}s (tar and zstd processes)",
        co.as_secs_f64(),
        ct.as_secs_f64()
    );
    println!(
        "template_pack throughput ratio pack_rootfs / tar --zstd: {:.2}x",
        t.as_secs_f64() / o.as_secs_f64()
    );
}
