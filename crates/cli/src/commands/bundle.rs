//! `bundle create`: an OCI bundle from an image, a rootfs directory or a tarball.

use std::path::Path;

use proxcage_oci::build::{create_bundle, parse_memory, BundleOptions, MountSpec, Source};

use super::print;
use crate::args::BundleCreate;

pub fn create(args: &BundleCreate) -> anyhow::Result<i32> {
    let source = match Source::parse(&args.from)? {
        Source::RootfsDir { path, .. } if args.reference => Source::RootfsDir { path, copy: false },
        _ if args.reference => anyhow::bail!(
            "--reference is for rootfs directories; {} is not one",
            args.from
        ),
        source => source,
    };
    let mut opts = BundleOptions::default();
    if !args.args.is_empty() {
        opts = opts.args(args.args.iter().cloned());
    }
    opts = opts.env(args.env.iter().cloned());
    if let Some(cwd) = &args.cwd {
        opts = opts.cwd(cwd.clone());
    }
    if let Some(user) = &args.user {
        opts = opts.user(user.clone());
    }
    if let Some(hostname) = &args.hostname {
        opts = opts.hostname(hostname.clone());
    }
    if let Some(memory) = &args.memory {
        opts = opts.memory(parse_memory(memory)?);
    }
    for mount in &args.mount {
        opts = opts.mount(mount.parse::<MountSpec>()?);
    }
    let built = create_bundle(Path::new(&args.out), &source, &opts)?;
    print(&format!("{}\n", built.dir().display()))?;
    Ok(0)
}
