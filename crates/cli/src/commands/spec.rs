//! `spec`: a default config.json, as runc writes it.

use crate::args::Spec;

pub fn spec(args: &Spec) -> anyhow::Result<i32> {
    proxcage_oci::write_default_spec(&args.bundle, args.rootless)?;
    Ok(0)
}
