use super::*;

use clap::error::ErrorKind;

fn norm(args: &[&str]) -> Vec<String> {
    normalize(args.iter().map(OsString::from).collect(), &Cli::command())
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect()
}

#[test]
fn single_dash_long_flags_become_double_dash() {
    assert_eq!(
        norm(&[
            "proxcage",
            "-root",
            "/r",
            "-log-format=json",
            "create",
            "-bundle",
            "/b",
            "-pid-file=/p",
            "c1"
        ]),
        [
            "proxcage",
            "--root",
            "/r",
            "--log-format=json",
            "create",
            "--bundle",
            "/b",
            "--pid-file=/p",
            "c1"
        ]
    );
}

#[test]
fn values_and_container_arguments_are_left_alone() {
    // `-root` as the value of --log is a file name, and exec's command keeps its flags.
    assert_eq!(
        norm(&["proxcage", "--log", "-root", "exec", "-t", "c1", "ls", "-root", "-la"]),
        ["proxcage", "--log", "-root", "exec", "-t", "c1", "ls", "-root", "-la"]
    );
    assert_eq!(
        norm(&["proxcage", "create", "-b", "-bundle", "c1"]),
        ["proxcage", "create", "-b", "-bundle", "c1"]
    );
    assert_eq!(
        norm(&["proxcage", "kill", "c1", "-9"]),
        ["proxcage", "kill", "c1", "-9"]
    );
}

#[test]
fn global_flags_are_known_after_the_subcommand() {
    assert_eq!(
        norm(&["proxcage", "state", "-root", "/r", "c1"]),
        ["proxcage", "state", "--root", "/r", "c1"]
    );
}

/// How a command line parses: the parsed structs (as Debug text), or the error's kind.
fn outcome(args: &[&str]) -> Result<String, ErrorKind> {
    parse(args)
        .map(|cli| format!("{cli:?}"))
        .map_err(|e| e.kind())
}

/// The command lines containerd's shim (runc v2) and podman send, as they call runc.
const SHIM_LINES: &[&[&str]] = &[
    &[
        "proxcage",
        "--root",
        "/run/containerd/runc/k8s.io",
        "--log",
        "/run/x/log.json",
        "--log-format",
        "json",
        "create",
        "--bundle",
        "/run/b",
        "--pid-file",
        "/run/b/init.pid",
        "--console-socket",
        "/tmp/pty.sock",
        "c1",
    ],
    &[
        "proxcage",
        "--root",
        "/r",
        "--log",
        "/l",
        "--log-format",
        "json",
        "start",
        "c1",
    ],
    &[
        "proxcage",
        "--root",
        "/r",
        "--log",
        "/l",
        "--log-format",
        "json",
        "kill",
        "c1",
        "9",
    ],
    &["proxcage", "--root", "/r", "kill", "--all", "c1", "SIGKILL"],
    &[
        "proxcage",
        "--root",
        "/r",
        "--log",
        "/l",
        "--log-format",
        "json",
        "delete",
        "--force",
        "c1",
    ],
    &["proxcage", "--root", "/r", "state", "c1"],
    &[
        "proxcage",
        "--root",
        "/r",
        "exec",
        "--process",
        "/tmp/p.json",
        "--detach",
        "--pid-file",
        "/p",
        "c1",
    ],
    &[
        "proxcage", "--root", "/r", "exec", "-t", "-e", "A=1", "--cwd", "/", "-u", "0:0", "c1",
        "ls", "-la", "--root",
    ],
    &["proxcage", "--root", "/r", "ps", "--format", "json", "c1"],
    &["proxcage", "ps", "c1", "-o", "pid"],
    &["proxcage", "--root", "/r", "pause", "c1"],
    &["proxcage", "--root", "/r", "resume", "c1"],
    &["proxcage", "--root", "/r", "list", "-q"],
    &["proxcage", "list", "--format=json"],
    &[
        "proxcage",
        "--systemd-cgroup",
        "--debug",
        "run",
        "--bundle",
        "/b",
        "-d",
        "--keep",
        "c1",
    ],
    &[
        "proxcage",
        "--rootless",
        "auto",
        "--config",
        "/c.toml",
        "run",
        "--preserve-fds",
        "2",
        "--no-subreaper",
        "c1",
    ],
];

#[test]
fn the_command_lines_shims_send_parse() {
    for line in SHIM_LINES {
        parse(*line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    }
    let exec = parse(SHIM_LINES[7]).unwrap();
    let Some(crate::Command::Exec(exec)) = exec.command else {
        panic!("not an exec: {exec:?}");
    };
    assert_eq!(
        exec.args,
        ["ls", "-la", "--root"],
        "the container's own flags"
    );
    let kill = parse(SHIM_LINES[2]).unwrap();
    let Some(crate::Command::Kill(kill)) = kill.command else {
        panic!("not a kill: {kill:?}");
    };
    assert_eq!((kill.id.as_str(), kill.signal.as_str()), ("c1", "9"));
}

#[test]
fn runcs_other_spellings_parse_as_the_plain_one() {
    let pairs: &[(&[&str], &[&str])] = &[
        (
            &[
                "proxcage",
                "-root",
                "/r",
                "-log-format=json",
                "create",
                "-bundle",
                "/b",
                "-pid-file=/p",
                "c1",
            ],
            &[
                "proxcage",
                "--root",
                "/r",
                "--log-format",
                "json",
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/p",
                "c1",
            ],
        ),
        (
            &["proxcage", "state", "-root", "/r", "c1"],
            &["proxcage", "--root", "/r", "state", "c1"],
        ),
        (
            &["proxcage", "delete", "c1", "--root", "/r"],
            &["proxcage", "--root", "/r", "delete", "c1"],
        ),
        (
            &[
                "proxcage", "--log", "/l", "exec", "-t", "c1", "ls", "-root", "-la",
            ],
            &[
                "proxcage", "--log=/l", "exec", "--tty", "c1", "ls", "-root", "-la",
            ],
        ),
    ];
    for (runc, plain) in pairs {
        let expected = outcome(plain);
        assert!(expected.is_ok(), "{plain:?}: {expected:?}");
        assert_eq!(outcome(runc), expected, "{runc:?}");
    }
}

/// Help, version and usage errors, with what clap makes of each: the binary prints
/// help and version and exits 0, and prints any other error and exits 1.
#[test]
fn help_version_and_mistakes() {
    use ErrorKind as K;
    let lines: &[(&[&str], Result<(), ErrorKind>)] = &[
        // No command parses: the binary prints the help and exits 0.
        (&["proxcage"], Ok(())),
        (&["proxcage", "--help"], Err(K::DisplayHelp)),
        (&["proxcage", "-h"], Err(K::DisplayHelp)),
        (&["proxcage", "-v"], Ok(())),
        (&["proxcage", "--version"], Ok(())),
        (&["proxcage", "start", "--help"], Err(K::DisplayHelp)),
        (&["proxcage", "create", "--help"], Err(K::DisplayHelp)),
        (&["proxcage", "start"], Err(K::MissingRequiredArgument)),
        (&["proxcage", "start", "c1", "c2"], Err(K::UnknownArgument)),
        (&["proxcage", "start", "--", "c1"], Ok(())),
        (&["proxcage", "start", "-"], Ok(())),
        (&["proxcage", "start", ""], Ok(())),
        (
            &["proxcage", "--debug", "--debug", "state", "c1"],
            Err(K::ArgumentConflict),
        ),
        (
            &["proxcage", "--root", "state", "c1"],
            Err(K::InvalidSubcommand),
        ),
        (
            &["proxcage", "--root=", "state", "c1"],
            Err(K::InvalidValue),
        ),
        (
            &["proxcage", "--root", "-r", "state", "c1"],
            Err(K::UnknownArgument),
        ),
        (
            &["proxcage", "--log-format", "xml", "state", "c1"],
            Err(K::InvalidValue),
        ),
        (
            &["proxcage", "--debug=true", "state", "c1"],
            Err(K::TooManyValues),
        ),
        (&["proxcage", "state", "--root", "/r", "c1"], Ok(())),
        (&["proxcage", "delete", "c1", "--force"], Ok(())),
        (
            &["proxcage", "delete", "-ff", "c1"],
            Err(K::ArgumentConflict),
        ),
        (&["proxcage", "kill", "-af", "c1"], Err(K::UnknownArgument)),
        (&["proxcage", "kill", "c1", "-9"], Err(K::UnknownArgument)),
        (
            &["proxcage", "kill", "c1", "9", "x"],
            Err(K::UnknownArgument),
        ),
        (
            &["proxcage", "kill", "--bogus", "c1"],
            Err(K::UnknownArgument),
        ),
        (&["proxcage", "create", "-b/b", "c1"], Ok(())),
        (&["proxcage", "create", "-b=/b", "c1"], Ok(())),
        (
            &["proxcage", "create", "--b", "/b", "c1"],
            Err(K::UnknownArgument),
        ),
        (
            &["proxcage", "create", "-b", "-bundle", "c1"],
            Err(K::InvalidValue),
        ),
        (
            &["proxcage", "create", "--preserve-fds", "+2", "c1"],
            Ok(()),
        ),
        (
            &["proxcage", "create", "--preserve-fds", "x", "c1"],
            Err(K::ValueValidation),
        ),
        (&["proxcage", "run", "--all", "c1"], Err(K::UnknownArgument)),
        (&["proxcage", "creat", "c1"], Err(K::InvalidSubcommand)),
        (
            &["proxcage", "list", "--format", "yaml"],
            Err(K::InvalidValue),
        ),
        (
            &["proxcage", "--log", "-root", "exec", "-t", "c1", "ls"],
            Err(K::UnknownArgument),
        ),
        (&["proxcage", "exec", "c1", "ls"], Ok(())),
        (&["proxcage", "health"], Ok(())),
        (&["proxcage", "health", "--repair"], Ok(())),
    ];
    for (line, expected) in lines {
        assert_eq!(outcome(line).map(|_| ()), *expected, "{line:?}");
    }
    use std::os::unix::ffi::OsStringExt;
    let not_utf8 = parse([
        OsString::from("proxcage"),
        OsString::from("start"),
        OsString::from_vec(vec![b'c', 0xff]),
    ]);
    assert_eq!(
        not_utf8.map(|_| ()).map_err(|e| e.kind()),
        Err(K::InvalidUtf8)
    );
}

/// Global flags with a value each could have (`None`: a switch).
const GLOBAL_FLAGS: &[(&str, Option<&str>)] = &[
    ("root", Some("/r")),
    ("log", Some("/l")),
    ("log-format", Some("json")),
    ("log-format", Some("text")),
    ("debug", None),
    ("systemd-cgroup", None),
    ("rootless", Some("auto")),
    ("config", Some("/c.toml")),
];

/// A command's flag: its long name, its one-letter name if it has one, and a value
/// it could take (`None`: a switch).
type FlagSpec = (&'static str, Option<char>, Option<&'static str>);

/// The runtime commands and their flags, as runc has them.
const COMMAND_FLAGS: &[(&str, &[FlagSpec])] = &[
    ("start", &[]),
    ("state", &[]),
    ("pause", &[]),
    ("resume", &[]),
    ("kill", &[("all", Some('a'), None)]),
    ("delete", &[("force", Some('f'), None)]),
    ("create", CREATE_FLAGS),
    (
        "run",
        &[
            ("bundle", Some('b'), Some("/b")),
            ("pid-file", None, Some("/p")),
            ("preserve-fds", None, Some("3")),
            ("no-pivot", None, None),
            ("detach", Some('d'), None),
            ("keep", None, None),
            ("no-subreaper", None, None),
        ],
    ),
    (
        "exec",
        &[
            ("process", Some('p'), Some("/p.json")),
            ("detach", Some('d'), None),
            ("pid-file", None, Some("/p")),
            ("tty", Some('t'), None),
            ("console-socket", None, Some("/s")),
            ("cwd", None, Some("/")),
            ("env", Some('e'), Some("A=1")),
            ("user", Some('u'), Some("0:0")),
            ("preserve-fds", None, Some("1")),
        ],
    ),
    ("ps", &[("format", Some('f'), Some("json"))]),
    (
        "list",
        &[
            ("format", Some('f'), Some("json")),
            ("quiet", Some('q'), None),
        ],
    ),
];
const CREATE_FLAGS: &[FlagSpec] = &[
    ("bundle", Some('b'), Some("/b")),
    ("pid-file", None, Some("/p")),
    ("console-socket", None, Some("/s")),
    ("pidfd-socket", None, Some("/f")),
    ("preserve-fds", None, Some("2")),
    ("no-pivot", None, None),
    ("no-new-keyring", None, None),
];

/// One flag in one of the spellings runc's command line takes: `--name value` (0),
/// `-name value` (1), `--name=value` (2), `-name=value` (3), `-n value` (4).
fn spell(line: &mut Vec<String>, long: &str, short: Option<char>, value: Option<&str>, how: u8) {
    match (how % 5, value, short) {
        (4, value, Some(short)) => {
            line.push(format!("-{short}"));
            line.extend(value.map(str::to_owned));
        }
        (2, Some(value), _) => line.push(format!("--{long}={value}")),
        (3, Some(value), _) => line.push(format!("-{long}={value}")),
        (1 | 3, value, _) => {
            line.push(format!("-{long}"));
            line.extend(value.map(str::to_owned));
        }
        (_, value, _) => {
            line.push(format!("--{long}"));
            line.extend(value.map(str::to_owned));
        }
    }
}

/// Words a command line is made of: flags in each spelling, values that look like
/// flags, subcommand names, and ids.
const WORDS: &[&str] = &[
    "--root",
    "-root",
    "--root=/r",
    "/r",
    "--log",
    "-log",
    "/l",
    "--log-format",
    "json",
    "xml",
    "-log-format=json",
    "--debug",
    "-debug",
    "--systemd-cgroup",
    "--rootless",
    "auto",
    "--config",
    "-v",
    "--version",
    "--help",
    "-h",
    "create",
    "start",
    "state",
    "kill",
    "delete",
    "run",
    "exec",
    "ps",
    "list",
    "health",
    "spec",
    "bundle",
    "template",
    "--bundle",
    "-bundle",
    "-b",
    "--bundle=/b",
    "--pid-file",
    "--preserve-fds",
    "2",
    "x",
    "-d",
    "--all",
    "9",
    "-9",
    "-f",
    "--force",
    "--format",
    "table",
    "-q",
    "-t",
    "-e",
    "A=1",
    "-u",
    "0:0",
    "-g",
    "--cap",
    "ls",
    "-la",
    "--",
    "-",
    "c1",
    "",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// A runtime command line, every flag in every spelling runc takes and in any order
    /// among the flags before the id, parses exactly as its plain spelling (`--name
    /// value`) does; and that parse succeeds unless a flag is given twice.
    #[test]
    fn every_spelling_of_a_runc_command_line_parses_the_same(
        globals in proptest::collection::vec((0..GLOBAL_FLAGS.len(), 0..5u8), 0..4),
        command in 0..COMMAND_FLAGS.len(),
        flags in proptest::collection::vec((0..16usize, 0..5u8), 0..4),
        signal in proptest::option::of(proptest::sample::select(&["9", "KILL", "SIGKILL"][..])),
    ) {
        let (name, table) = COMMAND_FLAGS[command];
        let mut spelled = vec!["proxcage".to_string()];
        let mut plain = spelled.clone();
        let mut seen = Vec::new();
        for &(i, how) in &globals {
            let (long, value) = GLOBAL_FLAGS[i];
            seen.push(long);
            spell(&mut spelled, long, None, value, how);
            spell(&mut plain, long, None, value, 0);
        }
        spelled.push(name.to_string());
        plain.push(name.to_string());
        for &(i, how) in &flags {
            if let Some(&(long, short, value)) = table.get(i % table.len().max(1)) {
                seen.push(long);
                spell(&mut spelled, long, short, value, how);
                spell(&mut plain, long, short, value, 0);
            }
        }
        if name != "list" {
            spelled.push("c1".to_string());
            plain.push("c1".to_string());
        }
        if name == "kill" {
            spelled.extend(signal.map(str::to_owned));
            plain.extend(signal.map(str::to_owned));
        }
        let spelled: Vec<&str> = spelled.iter().map(String::as_str).collect();
        let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
        let expected = outcome(&plain);
        let twice = (1..seen.len()).any(|i| seen[..i].contains(&seen[i]));
        proptest::prop_assert!(twice || expected.is_ok(), "{:?}: {:?}", plain, expected);
        proptest::prop_assert_eq!(outcome(&spelled), expected, "{:?} against {:?}", spelled, plain);
    }

    /// Any sequence of words: an answer, never a panic.
    #[test]
    fn any_command_line_gets_an_answer(
        words in proptest::collection::vec(proptest::sample::select(WORDS), 0..8),
    ) {
        let mut line = vec!["proxcage"];
        line.extend(words);
        let _ = parse(&line);
    }
}

#[test]
fn update_reads_runcs_flags_sizes_and_the_resources_file() {
    let cli = parse([
        "proxcage",
        "update",
        "--memory",
        "512m",
        "--memory-swap=-1",
        "--cpu-quota",
        "-1",
        "--cpu-period=100000",
        "--cpu-share",
        "512",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "64",
        "--blkio-weight",
        "300",
        "c1",
    ])
    .unwrap();
    let Some(crate::Command::Update(u)) = cli.command else {
        panic!("not an update");
    };
    assert_eq!(u.memory, Some(512 << 20));
    assert_eq!((u.memory_swap, u.cpu_quota), (Some(-1), Some(-1)));
    assert_eq!(
        (u.cpu_period, u.cpu_share, u.pids_limit),
        (Some(100_000), Some(512), Some(64))
    );
    assert_eq!(
        (u.cpuset_cpus.as_deref(), u.blkio_weight),
        (Some("0"), Some(300))
    );
    // containerd's shim: the JSON on stdin.
    let cli = parse(["proxcage", "--root", "/r", "update", "--resources=-", "c1"]).unwrap();
    let Some(crate::Command::Update(u)) = cli.command else {
        panic!("not an update");
    };
    assert_eq!(u.resources.as_deref(), Some(std::path::Path::new("-")));
    assert!(parse(["proxcage", "update", "--memory", "12q", "c1"]).is_err());
}

#[test]
fn sizes_and_durations_read_as_runc_reads_them() {
    assert_eq!(crate::memory_size("1.5G"), Ok(3 << 29));
    assert_eq!(crate::memory_size("64KiB"), Ok(64 << 10));
    assert_eq!(crate::memory_size("4096"), Ok(4096));
    assert!(crate::memory_size("-2").is_err());
    let d = |s| crate::go_duration(s).unwrap().as_millis();
    assert_eq!(
        (d("5s"), d("500ms"), d("1m30s"), d("1.5s")),
        (5000, 500, 90_000, 1500)
    );
    assert!(crate::go_duration("5").is_err() && crate::go_duration("0s").is_err());
}

#[test]
fn events_checkpoint_and_restore_parse() {
    let cli = parse(["proxcage", "events", "--stats", "--interval", "1s", "c1"]).unwrap();
    let Some(crate::Command::Events(e)) = cli.command else {
        panic!("not events");
    };
    assert!(e.stats && e.interval.as_secs() == 1 && e.id == "c1");
    let cli = parse([
        "proxcage",
        "checkpoint",
        "--image-path",
        "/img",
        "--leave-running",
        "c1",
    ])
    .unwrap();
    let Some(crate::Command::Checkpoint(c)) = cli.command else {
        panic!("not a checkpoint");
    };
    assert!(c.leave_running && c.criu.image_path.is_some());
    let cli = parse([
        "proxcage",
        "restore",
        "-d",
        "-b",
        "/b",
        "--image-path=/img",
        "c1",
    ])
    .unwrap();
    let Some(crate::Command::Restore(r)) = cli.command else {
        panic!("not a restore");
    };
    assert!(r.detach && r.bundle == std::path::Path::new("/b"));
}
