//! A state record (`<root>/containers/<id>/record.json`) with any content, read through
//! the store as `state`, `list` and `delete` read it: no panic, a bad record is an error
//! naming its file, and a record read back is the one written.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proxcage_core::ContainerId;
use proxcage_store::StateStore;

fn store() -> &'static (StateStore, PathBuf) {
    static STORE: OnceLock<(StateStore, PathBuf)> = OnceLock::new();
    STORE.get_or_init(|| {
        let root = tempfile::Builder::new()
            .prefix("proxcage-fuzz-store-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        let store = StateStore::open(&root).expect("a store");
        let dir = root.join("containers").join("fuzz");
        std::fs::create_dir_all(&dir).expect("a container directory");
        (store, dir.join("record.json"))
    })
}

fuzz_target!(|data: &[u8]| {
    let (store, path) = store();
    std::fs::write(path, data).expect("write the record");
    let id = ContainerId::new("fuzz").expect("a valid id");
    match store.read(&id) {
        Ok(Some(record)) => {
            // What was read can be written back and read again unchanged.
            let lock = store.lock_existing(&id).expect("lock").expect("exists");
            lock.write(&record).expect("write back");
            assert_eq!(store.read(&id).expect("read again"), Some(record));
        }
        Ok(None) => panic!("the record exists"),
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("record.json"), "{message}");
        }
    }
    for record in store.records().expect("list") {
        let _ = record.map(|r| r.id().as_str().len());
    }
});
