//! A pod is never split across backends: a CRI app container runs on the backend its
//! sandbox was routed to, whatever the `[[route]]` rules say; one whose annotation asks
//! for another backend is refused; one whose sandbox is not a container of this root is
//! routed as any other container.

use proxcage_test_support as support;

use support::{busybox_bundle, edit_config, Proxcage};

/// A bundle with CRI's annotations: `kind` is `sandbox` or `container`.
fn cri_bundle(p: &Proxcage, name: &str, kind: &str, sandbox: &str) -> std::path::PathBuf {
    let bundle = busybox_bundle(p.dir.path(), name, &["sleep", "1000"]);
    edit_config(&bundle, |spec| {
        spec["annotations"] = serde_json::json!({
            "io.kubernetes.cri.container-type": kind,
            "io.kubernetes.cri.sandbox-id": sandbox,
        });
    });
    bundle
}

#[test]
fn a_pods_containers_follow_its_sandbox() {
    support::require_root();
    support::require_tool("runc", "runc");
    support::require_tool("crun", "crun");
    // App containers are routed to crun by rule; the sandbox goes to runc by default.
    let p = Proxcage::new(&format!(
        "{}\n[[route]]\nbackend = \"crun\"\n[route.annotations]\n\"io.kubernetes.cri.container-type\" = \"container\"\n",
        support::HOST_CONFIG
    ));
    let create = |name: &str, kind: &str, sandbox: &str| {
        let bundle = cri_bundle(&p, name, kind, sandbox);
        p.run(&["create", "--bundle", bundle.to_str().unwrap(), name])
    };
    let out = create("pod1", "sandbox", "pod1");
    assert!(out.status.success(), "{}", support::pct::stderr(&out));
    assert_eq!(p.backend_of("pod1"), "runc");

    let out = create("app1", "container", "pod1");
    assert!(out.status.success(), "{}", support::pct::stderr(&out));
    assert_eq!(
        p.backend_of("app1"),
        "runc",
        "the member follows its sandbox"
    );

    let bundle = cri_bundle(&p, "app2", "container", "pod1");
    edit_config(&bundle, |spec| {
        spec["annotations"]["io.proxcage.backend"] = serde_json::json!("crun");
    });
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "app2"]);
    let err = support::pct::stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("the sandbox pod1 runs on runc, and a pod is never split across backends"),
        "{err}"
    );

    let out = create("stray", "container", "elsewhere");
    assert!(out.status.success(), "{}", support::pct::stderr(&out));
    assert_eq!(
        p.backend_of("stray"),
        "crun",
        "a container of a sandbox proxcage does not have is routed by the rules"
    );
    for id in ["stray", "app1", "pod1"] {
        p.ok(&["delete", "--force", id]);
    }
    assert_eq!(p.ok(&["list", "-q"]), "");
}
