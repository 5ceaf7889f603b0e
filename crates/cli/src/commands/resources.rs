//! `update`, `events`, `checkpoint` and `restore`: the flags become a request, the engine
//! does the work; `events` prints one JSON line per event.

use std::io::Read;

use proxcage_core::{
    CheckpointRequest, ContainerId, EventsRequest, Flow, RestoreRequest, Runtime, UpdateRequest,
};
use proxcage_oci::oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources,
};

use super::print;
use crate::args::{Checkpoint, Criu, Events, Restore, Update};
use crate::context::Ctx;

pub fn update(args: &Update, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let id = ContainerId::new(&args.id)?;
    let resources = match &args.resources {
        Some(path) => read_resources(path)?,
        None => from_flags(args),
    };
    let mut req = UpdateRequest::new(id, resources);
    req.l3_cache_schema.clone_from(&args.l3_cache_schema);
    req.mem_bw_schema.clone_from(&args.mem_bw_schema);
    ctx.engine()?.update(&req)?;
    Ok(0)
}

/// The most a resources document may hold: a LinuxResources of every field is a few KiB.
const RESOURCES_LIMIT: u64 = 1 << 20;

/// LinuxResources JSON from a file, or from stdin for `-` (containerd's shim).
fn read_resources(path: &std::path::Path) -> anyhow::Result<LinuxResources> {
    let (what, reader): (String, Box<dyn Read>) = if path == std::path::Path::new("-") {
        ("the resources on stdin".into(), Box::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path).map_err(|e| {
            anyhow::anyhow!("cannot read the resources file {}: {e}", path.display())
        })?;
        (
            format!("the resources file {}", path.display()),
            Box::new(file),
        )
    };
    let mut text = Vec::new();
    reader
        .take(RESOURCES_LIMIT + 1)
        .read_to_end(&mut text)
        .map_err(|e| anyhow::anyhow!("cannot read {what}: {e}"))?;
    if text.len() as u64 > RESOURCES_LIMIT {
        anyhow::bail!(
            "{what} is larger than {RESOURCES_LIMIT} bytes: not a LinuxResources document"
        );
    }
    serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("{what} is not LinuxResources JSON: {e}"))
}

/// runc's flags as LinuxResources; a flag not given (or runc's 0 for "unchanged") is unset.
fn from_flags(a: &Update) -> LinuxResources {
    let mut r = LinuxResources::default();
    let memory_given = [
        a.memory,
        a.memory_reservation,
        a.memory_swap,
        a.kernel_memory,
        a.kernel_memory_tcp,
    ]
    .iter()
    .any(Option::is_some);
    if memory_given {
        let mut m = LinuxMemory::default();
        m.set_limit(a.memory)
            .set_reservation(a.memory_reservation)
            .set_swap(a.memory_swap)
            .set_kernel(a.kernel_memory)
            .set_kernel_tcp(a.kernel_memory_tcp);
        r.set_memory(Some(m));
    }
    let cpu_given = a.cpu_share.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_period.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if cpu_given {
        let mut c = LinuxCpu::default();
        c.set_shares(a.cpu_share)
            .set_quota(a.cpu_quota)
            .set_period(a.cpu_period)
            .set_realtime_period(a.cpu_rt_period)
            .set_realtime_runtime(a.cpu_rt_runtime)
            .set_cpus(a.cpuset_cpus.clone())
            .set_mems(a.cpuset_mems.clone());
        r.set_cpu(Some(c));
    }
    if let Some(limit) = a.pids_limit.filter(|l| *l != 0) {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    if let Some(weight) = a.blkio_weight.filter(|w| *w != 0) {
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(weight));
        r.set_block_io(Some(b));
    }
    r
}

pub fn events(args: &Events, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let req = EventsRequest {
        id: ContainerId::new(&args.id)?,
        interval: args.interval,
        stats_only: args.stats,
    };
    ctx.engine()?.events(&req, &mut |event| {
        let line =
            serde_json::to_string(&event).map_err(|e| proxcage_core::Error::Input(Box::new(e)))?;
        // A reader that went away ends the stream.
        Ok(match print(&format!("{line}\n")) {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        })
    })?;
    Ok(0)
}

/// The shared CRIU flags in runc's spelling, for the backend's binary.
fn criu_args(c: &Criu) -> Vec<String> {
    let mut out = Vec::new();
    let mut value = |flag: &str, v: &Option<std::path::PathBuf>| {
        if let Some(v) = v {
            out.push(format!("--{flag}={}", v.display()));
        }
    };
    value("image-path", &c.image_path);
    value("work-path", &c.work_path);
    for (set, flag) in [
        (c.tcp_established, "--tcp-established"),
        (c.ext_unix_sk, "--ext-unix-sk"),
        (c.shell_job, "--shell-job"),
        (c.file_locks, "--file-locks"),
        (c.lazy_pages, "--lazy-pages"),
        (c.auto_dedup, "--auto-dedup"),
    ] {
        if set {
            out.push(flag.into());
        }
    }
    if let Some(mode) = &c.manage_cgroups_mode {
        out.push(format!("--manage-cgroups-mode={mode}"));
    }
    out.extend(c.empty_ns.iter().map(|ns| format!("--empty-ns={ns}")));
    out
}

pub fn checkpoint(args: &Checkpoint, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let mut criu = criu_args(&args.criu);
    if let Some(parent) = &args.parent_path {
        criu.push(format!("--parent-path={}", parent.display()));
    }
    for (set, flag) in [
        (args.leave_running, "--leave-running"),
        (args.pre_dump, "--pre-dump"),
    ] {
        if set {
            criu.push(flag.into());
        }
    }
    if let Some(fd) = args.status_fd {
        criu.push(format!("--status-fd={fd}"));
    }
    if let Some(server) = &args.page_server {
        criu.push(format!("--page-server={server}"));
    }
    ctx.engine()?.checkpoint(&CheckpointRequest {
        id: ContainerId::new(&args.id)?,
        criu_args: criu,
    })?;
    Ok(0)
}

pub fn restore(args: &Restore, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let mut criu = criu_args(&args.criu);
    for (set, flag) in [
        (args.no_subreaper, "--no-subreaper"),
        (args.no_pivot, "--no-pivot"),
    ] {
        if set {
            criu.push(flag.into());
        }
    }
    if let Some(profile) = &args.lsm_profile {
        criu.push(format!("--lsm-profile={profile}"));
    }
    if let Some(context) = &args.lsm_mount_context {
        criu.push(format!("--lsm-mount-context={context}"));
    }
    let bundle = std::path::absolute(&args.bundle)?;
    let code = ctx.engine()?.restore(&RestoreRequest {
        id: ContainerId::new(&args.id)?,
        bundle,
        detach: args.detach,
        pid_file: args
            .pid_file
            .as_ref()
            .map(std::path::absolute)
            .transpose()?,
        console_socket: args.console_socket.clone(),
        criu_args: criu,
    })?;
    Ok(code)
}
