//! Hostile bundles: what an image, an orchestrator or a local user could put in a bundle
//! to make a root process misbehave. Each test asserts the exact error an operator sees
//! (docs/bad-input.md lists them) and that loading stays fast and bounded. A config.json
//! that is a FIFO or over the size limit is tested beside the code, in src/bundle.rs.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use proxcage_oci::{Bundle, BundleError};
use serde_json::{json, Value};

fn minimal() -> Value {
    json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["sh"]},
    })
}

/// A bundle directory with a `rootfs` and `config` as its config.json.
fn bundle(config: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("rootfs")).unwrap();
    fs::write(dir.path().join("config.json"), config).unwrap();
    dir
}

/// The error message of loading the bundle, with its directory written `B`.
fn error(dir: &Path) -> String {
    let err = Bundle::load(dir).expect_err("the bundle must be refused");
    err.to_string().replace(&dir.display().to_string(), "B")
}

fn timed<T>(what: &str, limit: Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < limit, "{what} took {took:?}, more than {limit:?}");
    out
}

#[test]
fn a_symlinked_rootfs_is_refused_like_runc() {
    let dir = bundle(&serde_json::to_vec(&minimal()).unwrap());
    let real = tempfile::tempdir().unwrap();
    fs::remove_dir(dir.path().join("rootfs")).unwrap();
    symlink(real.path(), dir.path().join("rootfs")).unwrap();
    let message = error(dir.path());
    assert_eq!(
        message,
        format!(
            "B/config.json: root.path rootfs goes through a symbolic link (it resolves to {}): name the real directory, as runc requires",
            real.path().display()
        )
    );
}

#[test]
fn a_symlinked_rootfs_parent_is_refused_even_when_it_points_at_the_host_root() {
    // root.path = "sub/rootfs" with sub -> /: the rootfs would be the host's /rootfs, or
    // with "sub/." the host's / itself, packed into a template by the pct backend.
    let mut config = minimal();
    config["root"]["path"] = json!("sub/.");
    let dir = bundle(&serde_json::to_vec(&config).unwrap());
    symlink("/", dir.path().join("sub")).unwrap();
    assert_eq!(
        error(dir.path()),
        "B/config.json: root.path sub/. goes through a symbolic link (it resolves to /): name the real directory, as runc requires"
    );

    // An absolute root.path through a link is refused too.
    let real = tempfile::tempdir().unwrap();
    fs::create_dir(real.path().join("rootfs")).unwrap();
    let links = tempfile::tempdir().unwrap();
    symlink(real.path(), links.path().join("via")).unwrap();
    config["root"]["path"] = json!(links.path().join("via/rootfs"));
    let dir = bundle(&serde_json::to_vec(&config).unwrap());
    let message = error(dir.path());
    assert!(
        message.contains("goes through a symbolic link")
            && message.contains(&real.path().join("rootfs").display().to_string()),
        "{message}"
    );
}

#[test]
fn a_bundle_reached_through_a_symlink_still_loads() {
    // runc chdirs into the bundle: links above root.path are the caller's business.
    let dir = bundle(&serde_json::to_vec(&minimal()).unwrap());
    let links = tempfile::tempdir().unwrap();
    symlink(dir.path(), links.path().join("b")).unwrap();
    let loaded = Bundle::load(links.path().join("b")).unwrap();
    assert_eq!(loaded.rootfs(), links.path().join("b/rootfs"));
}

#[test]
fn a_relative_mount_destination_that_climbs_is_refused() {
    let mut config = minimal();
    config["mounts"] = json!([{"destination": "../../etc", "type": "bind", "source": "/tmp"}]);
    let dir = bundle(&serde_json::to_vec(&config).unwrap());
    assert_eq!(
        error(dir.path()),
        "B/config.json: mounts[0].destination \"../../etc\" is not absolute"
    );
}

#[test]
fn a_ten_megabyte_config_loads_in_bounded_time() {
    // Big but under the 16 MiB limit: 10 MB of environment.
    let mut config = minimal();
    let value = "x".repeat(1000);
    let env: Vec<String> = (0..10_000).map(|i| format!("V{i}={value}")).collect();
    config["process"]["env"] = json!(env);
    let bytes = serde_json::to_vec(&config).unwrap();
    assert!(bytes.len() > 10_000_000);
    let dir = bundle(&bytes);
    let loaded = timed(
        "loading a 10 MB config.json",
        Duration::from_secs(10),
        || Bundle::load(dir.path()).unwrap(),
    );
    let process = loaded.spec().process().as_ref().unwrap();
    assert_eq!(process.env().as_ref().unwrap().len(), 10_000);
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    // In a field the spec knows: the parser's recursion limit.
    for depth in [200, 100_000] {
        let text = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"cwd":"/","args":{}{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let dir = bundle(text.as_bytes());
        let message = error(dir.path());
        assert!(
            message.starts_with("B/config.json: invalid JSON at line 1, column ")
                && message.ends_with(": recursion limit exceeded"),
            "{depth}: {message}"
        );
    }
    // In a field it does not know: skipped without recursing, then the usual checks.
    let text = format!(
        r#"{{"ociVersion":"1.0.2","x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let dir = bundle(text.as_bytes());
    assert_eq!(error(dir.path()), "B/config.json: root is missing");
}

#[test]
fn invalid_utf8_in_args_and_env_is_an_error_with_its_position() {
    let mut raw = br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh","#.to_vec();
    raw.extend_from_slice(b"\"\xff\xfe\"");
    raw.extend_from_slice(b"]}}");
    let dir = bundle(&raw);
    assert_eq!(
        error(dir.path()),
        "B/config.json: invalid JSON at line 1, column 108: invalid unicode code point"
    );

    // A lone surrogate escape is not a character either.
    let mut config = serde_json::to_string(&minimal()).unwrap();
    config = config.replace(r#""args":["sh"]"#, r#""env":["A=\ud800"],"args":["sh"]"#);
    let dir = bundle(config.as_bytes());
    assert_eq!(
        error(dir.path()),
        "B/config.json: invalid JSON at line 1, column 50: unexpected end of hex escape"
    );
}

#[test]
fn nul_bytes_are_refused_naming_the_field() {
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "process.args[1]",
            Box::new(|c| c["process"]["args"] = json!(["sh", "a\u{0}b"])),
        ),
        (
            "process.env[0]",
            Box::new(|c| c["process"]["env"] = json!(["A=\u{0}"])),
        ),
        (
            "process.cwd",
            Box::new(|c| c["process"]["cwd"] = json!("/srv\u{0}")),
        ),
        ("hostname", Box::new(|c| c["hostname"] = json!("h\u{0}"))),
        (
            "mounts[0].destination",
            Box::new(|c| c["mounts"] = json!([{"destination": "/a\u{0}b", "type": "tmpfs"}])),
        ),
        (
            "mounts[0].options[1]",
            Box::new(|c| {
                c["mounts"] = json!([{"destination": "/a", "type": "tmpfs", "options": ["ro", "size=1\u{0}"]}])
            }),
        ),
        (
            "annotations[\"k\"]",
            Box::new(|c| c["annotations"] = json!({"k": "v\u{0}"})),
        ),
    ];
    for (field, change) in cases {
        let mut config = minimal();
        change(&mut config);
        let text = serde_json::to_string(&config).unwrap();
        assert!(text.contains("\\u0000"), "{field}: {text}");
        let dir = bundle(text.as_bytes());
        assert_eq!(
            error(dir.path()),
            format!("B/config.json: {field} contains a NUL byte, which no program, path or LXC key can hold")
        );
    }
}

#[test]
fn a_hundred_thousand_mounts_load_in_bounded_time() {
    let mut config = minimal();
    let mounts: Vec<Value> = (0..100_000)
        .map(|i| json!({"destination": format!("/m/{i}"), "type": "bind", "source": format!("src/{i}"), "options": ["rbind"]}))
        .collect();
    config["mounts"] = json!(mounts);
    let dir = bundle(&serde_json::to_vec(&config).unwrap());
    let loaded = timed("loading 100,000 mounts", Duration::from_secs(20), || {
        Bundle::load(dir.path()).unwrap()
    });
    assert_eq!(loaded.mount_sources().len(), 100_000);
    assert_eq!(
        loaded.mount_sources()[99_999].as_deref(),
        Some(dir.path().join("src/99999").as_path())
    );
}

#[test]
fn a_symlinked_config_json_is_followed_like_runc_but_must_be_a_file() {
    // runc reads config.json through links; a link to a FIFO or a device must not block
    // or read the device.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("rootfs")).unwrap();
    symlink("/dev/zero", dir.path().join("config.json")).unwrap();
    let message = timed("refusing /dev/zero", Duration::from_secs(5), || {
        error(dir.path())
    });
    assert_eq!(
        message,
        "B/config.json is a character device, not a regular file"
    );
    assert!(matches!(
        Bundle::load(dir.path()),
        Err(BundleError::ConfigNotRegular { .. })
    ));
}

#[test]
fn a_referenced_rootfs_named_through_a_link_is_recorded_by_its_real_path() {
    // `bundle create --reference` through a link must make a bundle that loads.
    use proxcage_oci::build::{create_bundle, BundleOptions, Source};
    let work = tempfile::tempdir().unwrap();
    let real = work.path().join("real-rootfs");
    fs::create_dir(&real).unwrap();
    symlink(&real, work.path().join("link")).unwrap();
    let built = create_bundle(
        &work.path().join("bundle"),
        &Source::RootfsDir {
            path: work.path().join("link"),
            copy: false,
        },
        &BundleOptions::default().args(["sh"]),
    )
    .unwrap();
    assert_eq!(built.rootfs(), real);
    assert_eq!(Bundle::load(built.dir()).unwrap().rootfs(), real);
}
