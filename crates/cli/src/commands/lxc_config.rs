//! `lxc-config`: what a bundle becomes in LXC's terms, for operators who want to see it
//! before it is applied. Nothing is written.

use std::path::PathBuf;

use proxcage_backend_pct::PctSettings;
use proxcage_lxc_config::{from_oci, split_for_proxmox, ProxmoxPolicy, ResolvedPaths};
use proxcage_oci::Bundle;

use super::print;
use crate::args::LxcConfigArgs;
use crate::context::Ctx;

pub fn show(args: &LxcConfigArgs, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let bundle = Bundle::load(&args.bundle)?;
    for warning in bundle.warnings() {
        tracing::warn!("{}: {warning}", bundle.config_path().display());
    }
    let pct: PctSettings = ctx.config()?.settings(proxcage_backend_pct::NAME)?;
    let files_dir = pct
        .files_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/proxcage/pct"))
        .join(&args.id);
    let translation = from_oci(
        bundle.spec(),
        &ResolvedPaths::from_bundle(&bundle, files_dir),
    )?;
    if !args.proxmox {
        print(&translation.config().render())?;
        return Ok(0);
    }
    let policy = ProxmoxPolicy {
        allow_dropped: pct.allow_dropped.clone(),
        ..ProxmoxPolicy::default()
    };
    let config = proxcage_backend_pct::without_proxmox_keys(translation.config());
    let split = split_for_proxmox(&config, &policy)?;
    print(&split.to_pve_config()?.render())?;
    for dropped in &split.dropped {
        tracing::warn!(
            "left out (allow_dropped): {} = {}",
            dropped.key(),
            dropped.value()
        );
    }
    Ok(0)
}
