//! The state store against what someone with write access to parts of the host could
//! plant in it: links in place of container directories and records, hard links where
//! the temp file goes, FIFOs, ids that are too long. Nothing may be read or written
//! outside `<root>/containers/<id>/`.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use proxcage_core::ContainerId;
use proxcage_store::{Record, StateStore};

fn id(s: &str) -> ContainerId {
    ContainerId::new(s).unwrap()
}

fn record(s: &str) -> Record {
    Record::creating(id(s), "runc", "/srv/bundle")
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn the_root_is_0700_and_records_are_0600() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("a/proxcage");
    let store = StateStore::open(&root).unwrap();
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("containers")), 0o700);
    let lock = store.lock_new(&id("c1")).unwrap();
    lock.write(&record("c1")).unwrap();
    assert_eq!(mode(&root.join("containers/c1")), 0o700);
    assert_eq!(mode(&root.join("containers/c1/record.json")), 0o600);
    // No temp file is left beside the record.
    let names: Vec<_> = fs::read_dir(root.join("containers/c1"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["record.json"]);
}

#[test]
fn a_symlinked_container_directory_is_neither_read_nor_written() {
    let top = tempfile::tempdir().unwrap();
    let store = StateStore::open(top.path().join("root")).unwrap();
    // Elsewhere: a directory with a forged record, reached through a planted link.
    let elsewhere = top.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let forged = serde_json::to_vec(&record("evil")).unwrap();
    fs::write(elsewhere.join("record.json"), &forged).unwrap();
    symlink(&elsewhere, top.path().join("root/containers/evil")).unwrap();

    let err = store.read(&id("evil")).unwrap_err().to_string();
    let dir = top.path().join("root/containers/evil");
    let refused = format!(
        "refusing the container directory {}: it is a symbolic link or not a directory, which proxcage never makes: remove it",
        dir.display()
    );
    assert_eq!(err, refused);
    let err = store.lock_new(&id("evil")).unwrap_err().to_string();
    assert_eq!(err, refused);
    assert!(store.lock_existing(&id("evil")).is_err());
    // list does not show it; the link and its target are untouched.
    assert!(store.ids().unwrap().is_empty());
    assert!(store.records().unwrap().is_empty());
    assert_eq!(fs::read(elsewhere.join("record.json")).unwrap(), forged);
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 1);
}

#[test]
fn a_symlinked_or_special_record_is_refused() {
    let top = tempfile::tempdir().unwrap();
    let store = StateStore::open(top.path().join("root")).unwrap();
    let dir = top.path().join("root/containers/c1");
    fs::create_dir(&dir).unwrap();
    let secret = top.path().join("secret");
    fs::write(&secret, serde_json::to_vec(&record("c1")).unwrap()).unwrap();
    symlink(&secret, dir.join("record.json")).unwrap();
    let err = store.read(&id("c1")).unwrap_err().to_string();
    assert!(
        err.starts_with("cannot open the record") && err.contains("symbolic link"),
        "{err}"
    );

    fs::remove_file(dir.join("record.json")).unwrap();
    nix::unistd::mkfifo(
        &dir.join("record.json"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let err = store.read(&id("c1")).unwrap_err().to_string();
    assert!(
        err.starts_with("cannot read the record") && err.contains("not a regular file"),
        "{err}"
    );
}

#[test]
fn a_hard_link_planted_as_the_temp_file_is_not_written_through() {
    let top = tempfile::tempdir().unwrap();
    let store = StateStore::open(top.path().join("root")).unwrap();
    let lock = store.lock_new(&id("c1")).unwrap();
    // The temp name is record.json.tmp.<pid>: plant it as a hard link to a victim file.
    let victim = top.path().join("root/victim");
    fs::write(&victim, "precious").unwrap();
    let tmp = top
        .path()
        .join("root/containers/c1")
        .join(format!("record.json.tmp.{}", std::process::id()));
    fs::hard_link(&victim, &tmp).unwrap();
    let written = record("c1");
    lock.write(&written).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(store.read(&id("c1")).unwrap(), Some(written));
}

#[test]
fn a_symlinked_containers_directory_is_refused() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
    let elsewhere = top.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, root.join("containers")).unwrap();
    let err = StateStore::open(&root).unwrap_err().to_string();
    assert!(
        err.starts_with("refusing to use the state directory") && err.contains("symbolic link"),
        "{err}"
    );
}

#[test]
fn an_id_of_a_thousand_characters_never_reaches_a_path() {
    let long = "a".repeat(1000);
    let err = ContainerId::new(long.clone()).unwrap_err().to_string();
    assert!(
        err.starts_with("invalid container id") && err.ends_with("the id is longer than 255 bytes"),
        "{}",
        &err[err.len() - 60..]
    );
    // Nor through a record that names it.
    let top = tempfile::tempdir().unwrap();
    let store = StateStore::open(top.path().join("root")).unwrap();
    let dir = top.path().join("root/containers/c1");
    fs::create_dir(&dir).unwrap();
    let text = serde_json::to_string(&record("c1"))
        .unwrap()
        .replace("\"c1\"", &format!("\"{long}\""));
    fs::write(dir.join("record.json"), text).unwrap();
    let err = store.read(&id("c1")).unwrap_err().to_string();
    assert!(
        err.contains("record.json") && err.contains("longer than 255 bytes"),
        "{err}"
    );
}

#[test]
fn a_symlinked_backend_directory_is_refused() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    let store = StateStore::open(&root).unwrap();
    // Nothing yet: the backend makes its own directory.
    assert_eq!(
        store.backend_dir("runc").unwrap(),
        root.join("backends/runc")
    );
    fs::create_dir(root.join("backends")).unwrap();
    let elsewhere = top.path().join("etc");
    fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, root.join("backends/runc")).unwrap();
    assert_eq!(
        store.backend_dir("runc").unwrap_err().to_string(),
        format!(
            "refusing the backend state directory {}: it is a symbolic link or not a directory, which proxcage never makes: remove it",
            root.join("backends/runc").display()
        )
    );
    // The same for `backends` itself.
    fs::remove_file(root.join("backends/runc")).unwrap();
    fs::remove_dir(root.join("backends")).unwrap();
    symlink(&elsewhere, root.join("backends")).unwrap();
    assert!(store
        .backend_dir("crun")
        .unwrap_err()
        .to_string()
        .starts_with("refusing the backend state directory"));
}
