//! runc's command-line grammar as proxcage reads it: the clap structs (flags, defaults,
//! help text) and [`parse`], which reads a command line into them. The `proxcage` binary
//! acts on the result; the man pages and shell completions are generated from
//! [`Cli`]'s clap command (`cargo run -p xtask`).
//!
//! ```
//! let cli = proxcage_cli_args::parse(["proxcage", "-root", "/r", "kill", "c1", "9"]).unwrap();
//! assert_eq!(cli.global.root.as_deref(), Some(std::path::Path::new("/r")));
//! assert!(matches!(cli.command, Some(proxcage_cli_args::Command::Kill(_))));
//! ```

// The fields' doc comments are the help text `proxcage --help` prints, written for the
// terminal: `UID[:GID]` and `<sha256>` are not links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod argv;

pub use argv::parse;

#[derive(Debug, Parser)]
#[command(
    name = "proxcage",
    about = "OCI container runtime for Proxmox VE hosts, with runc's command line",
    disable_version_flag = true,
    // No command: the binary prints the help on stdout and exits 0, as runc does.
    subcommand_required = false
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Root directory for container state (default: /run/proxcage as root, else
    /// $XDG_RUNTIME_DIR/proxcage)
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Append errors (and, with --debug, debug output) to this file
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Format of --log: text or json
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Debug output, passed on to the backend too
    #[arg(long, global = true)]
    pub debug: bool,

    /// Use systemd for cgroups (cgroupsPath is slice:prefix:name)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,

    /// Rootless mode: true, false or auto, passed on to the backend
    #[arg(long, value_name = "true|false|auto")]
    pub rootless: Option<String>,

    /// Config file (default: $PROXCAGE_CONFIG, else /etc/proxcage/config.toml)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Each subcommand's flags are put together only when that subcommand is parsed (clap's
/// `defer`): a command pays for its own flags, not for every command's.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create a container: everything but the user process, which waits for `start`
    Create(Create),
    /// Start the user process of a created container
    Start(Id),
    /// Print a container's state as JSON
    State(Id),
    /// Send a signal (default SIGTERM) to a container's init, or with --all to every process
    Kill(Kill),
    /// Delete a stopped or created container (--force: any container)
    Delete(Delete),
    /// Create and start a container, and wait for it unless --detach
    Run(Box<Run>),
    /// List containers of every backend
    List(List),
    /// Run a process in a running container
    Exec(Box<Exec>),
    /// List a container's processes
    Ps(Ps),
    /// Freeze every process of a container
    Pause(Id),
    /// Thaw a paused container
    Resume(Id),
    /// Print what this runtime supports, as runtime-spec features JSON
    Features,
    /// Change a running container's resources (flags, or LinuxResources JSON with -r)
    Update(Box<Update>),
    /// Print a container's stats (--stats), or stream stats and OOM events as JSON lines
    Events(Events),
    /// Checkpoint a running container with CRIU (runc and crun backends)
    Checkpoint(Box<Checkpoint>),
    /// Restore a container from a checkpoint (runc and crun backends)
    Restore(Box<Restore>),
    /// Write a default config.json into a bundle
    Spec(Spec),
    /// Build OCI bundles from images, rootfs directories and tarballs
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Turn bundles into Proxmox templates
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Print the LXC configuration a bundle translates to (with --proxmox: the pct options
    /// and raw keys of the CT's .conf)
    LxcConfig(LxcConfigArgs),
    /// Check the host, the state store and every backend's containers; --repair fixes
    /// what can be fixed safely. Exit code 0: healthy, 1: problems, 2: a check could not run
    Health(Health),
}

#[derive(Debug, Args)]
pub struct Health {
    /// Output: text or json
    #[arg(long, value_enum, default_value_t = HealthFormat::Text)]
    pub format: HealthFormat,
    /// Repair what can be repaired safely, then report what is left
    #[arg(long)]
    pub repair: bool,
    /// Check only this backend (and the store)
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HealthFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct LxcConfigArgs {
    /// Bundle directory (holds config.json)
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// Show what the pct backend writes: pct options and the raw keys Proxmox passes
    #[arg(long)]
    pub proxmox: bool,
    /// The container id the files directory is named after
    #[arg(long, default_value = "ID")]
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Create the bundle OUT from an OCI image layout or oci-archive (with :tag or
    /// @digest), a rootfs directory, or a rootfs tarball (.tar, .tar.gz, .tar.zst)
    Create(BundleCreate),
}

#[derive(Debug, Args)]
pub struct BundleCreate {
    /// The bundle directory to create (must not exist, or be empty)
    pub out: PathBuf,
    /// Image layout[:tag|@digest], oci-archive tar, rootfs directory or rootfs tarball
    #[arg(long, value_name = "SOURCE")]
    pub from: String,
    /// Use a rootfs directory where it is instead of copying it
    #[arg(long)]
    pub reference: bool,
    /// The process's arguments (repeat for each; replaces the image's Entrypoint+Cmd)
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// An environment variable K=V (repeatable; added to the image's)
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory of the process
    #[arg(long)]
    pub cwd: Option<String>,
    /// UID[:GID] of the process
    #[arg(long)]
    pub user: Option<String>,
    /// The container's hostname
    #[arg(long)]
    pub hostname: Option<String>,
    /// Memory limit, e.g. 512M or 2GiB
    #[arg(long)]
    pub memory: Option<String>,
    /// A bind mount SRC:DST[:ro] (repeatable)
    #[arg(long, value_name = "SRC:DST[:ro]")]
    pub mount: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Pack BUNDLE's rootfs as a Proxmox template and print its volume id
    Create(TemplateCreate),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TemplateFormat {
    /// proxcage-<sha256>.tar.zst: what `pct create` takes (and the pct backend makes)
    #[value(name = "tar.zst")]
    TarZst,
    /// An OCI image archive that Proxmox VE 9.1 imports natively
    #[value(name = "oci-archive")]
    OciArchive,
}

#[derive(Debug, Args)]
pub struct TemplateCreate {
    /// The bundle directory
    pub bundle: PathBuf,
    /// Template storage (default: [backends.pct] template_storage, else local)
    #[arg(long)]
    pub storage: Option<String>,
    /// The storage's template directory (default: [backends.pct] template_dir, else
    /// /var/lib/vz/template/cache)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = TemplateFormat::TarZst)]
    pub format: TemplateFormat,
}

#[derive(Debug, Args)]
pub struct Id {
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Create {
    /// Bundle directory (holds config.json)
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// Write the container's init pid here (no trailing newline)
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is set
    #[arg(long, value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the init process
    #[arg(long, value_name = "SOCKET")]
    pub pidfd_socket: Option<PathBuf>,
    /// Pass this many extra fds (from fd 3 on) to the container
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Do not use pivot_root to jail the process
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long)]
    pub no_new_keyring: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Run {
    #[command(flatten)]
    pub create: Create,
    /// Return once the container started
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container after it exits
    #[arg(long)]
    pub keep: bool,
    /// Do not make proxcage's backend a child subreaper
    #[arg(long)]
    pub no_subreaper: bool,
}

#[derive(Debug, Args)]
pub struct Kill {
    /// Signal every process of the container
    #[arg(short, long)]
    pub all: bool,
    pub id: String,
    /// 9, KILL, SIGKILL, 37, SIGRTMIN+3 ...
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct Delete {
    /// Kill a running container first; an unknown id is not an error
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct List {
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Ids only
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct Ps {
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    pub id: String,
    /// Options for ps(1) in table format (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Exec {
    /// process.json with the process to run (instead of ARGS)
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return once the process started
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid here
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket that receives the pty master
    #[arg(long, value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the process
    #[arg(long, value_name = "SOCKET")]
    pub pidfd_socket: Option<PathBuf>,
    /// Working directory inside the container
    #[arg(long)]
    pub cwd: Option<String>,
    /// Environment variable K=V (repeatable)
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// UID[:GID]
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group id (repeatable)
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (repeatable)
    #[arg(short, long = "cap")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// AppArmor profile
    #[arg(short, long)]
    pub apparmor: Option<String>,
    /// SELinux label
    #[arg(long)]
    pub process_label: Option<String>,
    /// Run in this sub-cgroup
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Exec even in a paused container
    #[arg(long)]
    pub ignore_paused: bool,
    /// Pass this many extra fds (from fd 3 on) to the process
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    pub id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Spec {
    /// Bundle directory to write config.json into
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// A spec for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

/// A memory size as runc reads it: bytes, or a number with a binary suffix (`512m`,
/// `1.5G`, `64KiB`); `-1` is unlimited.
pub fn memory_size(text: &str) -> Result<i64, String> {
    if text.trim() == "-1" {
        return Ok(-1);
    }
    let t = text.trim().to_ascii_lowercase();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits);
    let number: f64 = number.parse().map_err(|_| {
        format!("invalid size {text:?}: expected bytes or a number with k, m, g, t or p")
    })?;
    let shift = match suffix.trim_end_matches('b').trim_end_matches('i') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(format!("invalid size {text:?}: unknown unit {suffix:?}")),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !(0.0..=i64::MAX as f64).contains(&bytes) {
        return Err(format!("invalid size {text:?}: out of range"));
    }
    Ok(bytes as i64)
}

/// A duration as Go writes it (runc's `--interval`): `5s`, `500ms`, `1m30s`, `1.5h`.
pub fn go_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {text:?}: expected e.g. 5s, 500ms or 1m30s");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..end].parse().map_err(|_| bad())?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    if total <= 0.0 || total > 1e9 {
        return Err(format!("invalid duration {text:?}: must be positive"));
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

#[derive(Debug, Args)]
pub struct Update {
    /// File with the LinuxResources JSON to apply, or - for stdin; all other flags are
    /// then ignored
    #[arg(short, long, value_name = "FILE|-")]
    pub resources: Option<PathBuf>,
    /// Block IO weight, 10 to 1000
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds
    #[arg(long, value_name = "USECS")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1: no limit)
    #[arg(long, value_name = "USECS", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long, value_name = "N")]
    pub cpu_share: Option<u64>,
    /// Realtime period in microseconds
    #[arg(long, value_name = "USECS")]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds per period
    #[arg(long, value_name = "USECS", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs the container may use (0-3, 0,1)
    #[arg(long, value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use
    #[arg(long, value_name = "NODES")]
    pub cpuset_mems: Option<String>,
    /// Memory limit: bytes or 512m, 2g ...
    #[arg(long, value_name = "SIZE", value_parser = memory_size, allow_hyphen_values = true)]
    pub memory: Option<i64>,
    /// Memory soft limit
    #[arg(long, value_name = "SIZE", value_parser = memory_size, allow_hyphen_values = true)]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap limit; -1: unlimited swap
    #[arg(long, value_name = "SIZE", value_parser = memory_size, allow_hyphen_values = true)]
    pub memory_swap: Option<i64>,
    /// Kernel memory limit (deprecated; cgroup v1 only)
    #[arg(long, value_name = "SIZE", value_parser = memory_size, allow_hyphen_values = true)]
    pub kernel_memory: Option<i64>,
    /// Kernel TCP buffer memory limit (deprecated; cgroup v1 only)
    #[arg(long, value_name = "SIZE", value_parser = memory_size, allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<i64>,
    /// Maximum number of processes (0: unchanged, -1: no limit)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT/CAT L3 cache schema
    #[arg(long, value_name = "SCHEMA")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT/MBA memory bandwidth schema
    #[arg(long, value_name = "SCHEMA")]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Events {
    /// Time between stats events (Go duration: 5s, 500ms, 1m)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = go_duration)]
    pub interval: std::time::Duration,
    /// Print the container's stats once, then exit
    #[arg(long)]
    pub stats: bool,
    pub id: String,
}

/// The CRIU options `checkpoint` and `restore` share.
#[derive(Debug, Args)]
pub struct Criu {
    /// Directory of the CRIU image files
    #[arg(long, value_name = "DIR")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's work files and logs
    #[arg(long, value_name = "DIR")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long)]
    pub shell_job: bool,
    /// Handle file locks
    #[arg(long)]
    pub file_locks: bool,
    /// Use userfaultfd to load memory pages lazily
    #[arg(long)]
    pub lazy_pages: bool,
    /// cgroups mode: soft, full or strict
    #[arg(long, value_name = "MODE")]
    pub manage_cgroups_mode: Option<String>,
    /// Create this namespace, but do not restore its properties
    #[arg(long, value_name = "NS")]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images
    #[arg(long)]
    pub auto_dedup: bool,
}

#[derive(Debug, Args)]
pub struct Checkpoint {
    #[command(flatten)]
    pub criu: Criu,
    /// Directory of the images of a previous pre-dump
    #[arg(long, value_name = "DIR")]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint
    #[arg(long)]
    pub leave_running: bool,
    /// CRIU writes \0 to this fd once lazy pages are ready
    #[arg(long, value_name = "FD", allow_hyphen_values = true)]
    pub status_fd: Option<i32>,
    /// ADDRESS:PORT of a CRIU page server
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub page_server: Option<String>,
    /// Dump the memory only and leave the container running
    #[arg(long)]
    pub pre_dump: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Restore {
    #[command(flatten)]
    pub criu: Criu,
    /// Bundle directory (holds config.json)
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master
    #[arg(long, value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,
    /// Return once the container is restored
    #[arg(short, long)]
    pub detach: bool,
    /// Write the container's init pid here
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Do not make the runtime a child subreaper
    #[arg(long)]
    pub no_subreaper: bool,
    /// Do not use pivot_root to jail the process
    #[arg(long)]
    pub no_pivot: bool,
    /// LSM profile for the restored process, TYPE:NAME
    #[arg(long, value_name = "TYPE:NAME")]
    pub lsm_profile: Option<String>,
    /// LSM mount context for the restore
    #[arg(long, value_name = "CONTEXT")]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}
