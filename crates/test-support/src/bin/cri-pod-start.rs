//! The driver of benches/cri-pod-start.sh: how long a pod takes from RunPodSandbox to a
//! running app container, through containerd's CRI plugin, for each runtime named on
//! the command line, in alternating rounds (one containerd per runtime, started before
//! the first round): the time of one round of each runtime at a time, so that load
//! changes hit them alike. Prints each runtime's median and quartiles in milliseconds,
//! and each median's ratio to the first runtime's.
//!
//! Runtimes: `runc` (runc alone), `proxcage-runc`, `proxcage-crun` (proxcage routed to
//! that backend with this host's settings), `pct` (proxcage routed to the pct backend on
//! the pct stand-in: test code running LXC, not Proxmox). proxcage and the stand-in are
//! `$PROXCAGE_BIN` and `$PCT_STANDIN_BIN`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use proxcage_test_support as support;
use support::cri::api::ContainerState;
use support::cri::Cri;
use support::pct::PctStandin;

const USAGE: &str =
    "usage: cri-pod-start ROUNDS RUNTIME... (runc, proxcage-runc, proxcage-crun, pct)";

/// One runtime's containerd (and stand-in), and its times.
struct Subject {
    name: String,
    cri: Cri,
    // Dropped after `cri`: the CTs go with the pods first.
    _standin: Option<PctStandin>,
    times: Vec<Duration>,
}

fn subject(name: &str) -> Result<Subject, String> {
    let (cri, standin) = match name {
        "runc" => (Cri::start(&support::require_tool("runc", "runc"), ""), None),
        "proxcage-runc" | "proxcage-crun" => {
            let backend = name.trim_start_matches("proxcage-");
            let config = support::host_config_routing_to(backend);
            (Cri::start(&support::proxcage_bin(), &config), None)
        }
        "pct" => {
            let standin = PctStandin::new();
            (Cri::start_pct(&standin), Some(standin))
        }
        other => return Err(format!("unknown runtime {other:?}\n{USAGE}")),
    };
    Ok(Subject {
        name: name.to_string(),
        cri,
        _standin: standin,
        times: Vec::new(),
    })
}

/// One pod: RunPodSandbox, CreateContainer, StartContainer, until ContainerStatus says
/// running (timed); then the pod is stopped and removed (not timed).
fn round(cri: &Cri, n: usize) -> Duration {
    let start = Instant::now();
    let pod = cri.run_pod(&format!("bench-{n}"));
    let app = cri.create_container(&pod, "app", &["sleep", "1000"]);
    cri.start_container(&app);
    while cri.container_status(&app).state != ContainerState::ContainerRunning as i32 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = start.elapsed();
    cri.stop_container(&app, 0);
    cri.remove_container(&app);
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((rounds, runtimes)) = args
        .split_first()
        .and_then(|(r, rest)| Some((r.parse::<usize>().ok()?, rest)))
        .filter(|(r, rest)| *r > 0 && !rest.is_empty())
    else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut subjects = Vec::new();
    for name in runtimes {
        match subject(name) {
            Ok(s) => subjects.push(s),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    }
    // One round each unmeasured: images unpacked, caches warm.
    for s in &subjects {
        round(&s.cri, 0);
    }
    for n in 1..=rounds {
        for s in &mut subjects {
            let took = round(&s.cri, n);
            s.times.push(took);
        }
    }
    let median = |t: &[Duration]| t[t.len() / 2];
    let mut base = None;
    for s in &mut subjects {
        s.times.sort();
        let (q1, mid, q3) = (
            s.times[s.times.len() / 4],
            median(&s.times),
            s.times[s.times.len() * 3 / 4],
        );
        let base = *base.get_or_insert(mid);
        println!(
            "{:<14} median {:7.1} ms  (quartiles {:7.1} {:7.1})  ratio to {} {:.2}",
            s.name,
            ms(mid),
            ms(q1),
            ms(q3),
            runtimes[0],
            ms(mid) / ms(base)
        );
    }
    ExitCode::SUCCESS
}
