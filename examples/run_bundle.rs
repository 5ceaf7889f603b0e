//! A Rust program that runs containers through proxcage as the `proxcage` binary does:
//! the engine routes the bundle to a backend (its `io.proxcage.backend` annotation, the
//! config file's rules, `default_backend`), checks the `[security]` policy, keeps the
//! record under its root, and answers every later call from that record.
//!
//! ```text
//! cargo run --example run_bundle -- BUNDLE [ROOT]
//! ```
//!
//! Creates a container from BUNDLE, starts it, waits for its process to exit and deletes
//! it. The config file is `$PROXCAGE_CONFIG`, else `/etc/proxcage/config.toml` if there is
//! one; ROOT defaults to a fresh directory under /tmp, removed at the end. Needs root and
//! the backend's tool (runc by default).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use proxcage::core::{ContainerId, DeleteRequest, Runtime, Status};
use proxcage::engine::{Config, Engine, Registry};
use proxcage::oci::Bundle;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("run_bundle: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let bundle_dir = PathBuf::from(args.next().ok_or("usage: run_bundle BUNDLE [ROOT]")?);
    let (root, _scratch) = match args.next() {
        Some(root) => (PathBuf::from(root), None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("proxcage-example-")
                .tempdir()?;
            (dir.path().to_owned(), Some(dir))
        }
    };

    let registry = Registry::builtin();
    let config = Config::load(None, &registry)?;
    let engine = Engine::builder(&root)
        .config(config)
        .registry(registry)
        .build()?;

    let id = ContainerId::new(format!("example-{}", std::process::id()))?;
    let bundle = Bundle::load(&bundle_dir)?;
    engine.create(&bundle.create_request(id.clone()))?;
    let record = engine.record(&id)?;
    println!("created {id} on {}", record.backend());

    // Whatever happens next, the container does not outlive the program.
    let outcome = start_and_wait(&engine, &id, Duration::from_secs(60));
    engine.delete(DeleteRequest {
        id: &id,
        force: true,
    })?;
    println!("deleted {id}");
    outcome
}

/// Starts the container and polls its state until its process has exited.
fn start_and_wait(
    engine: &Engine,
    id: &ContainerId,
    limit: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    engine.start(id)?;
    println!("started {id}");
    let deadline = Instant::now() + limit;
    loop {
        if engine.state(id)?.status == Status::Stopped {
            println!("{id} exited");
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{id} still runs after {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
