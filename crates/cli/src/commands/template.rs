//! `template create`: a bundle's rootfs as a Proxmox template, the same packing the pct
//! backend does; prints the volume id.

use std::path::PathBuf;

use proxcage_backend_pct::PctSettings;
use proxcage_oci::template::{pack_oci_archive, pack_rootfs, PackOptions};
use proxcage_oci::Bundle;

use super::print;
use crate::args::{TemplateCreate, TemplateFormat};
use crate::context::Ctx;

pub fn create(args: &TemplateCreate, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let pct: PctSettings = ctx.config()?.settings(proxcage_backend_pct::NAME)?;
    let configured = pct
        .template_storage
        .clone()
        .unwrap_or_else(|| "local".into());
    let storage = args.storage.clone().unwrap_or_else(|| configured.clone());
    let dir = match (&args.dir, storage == configured) {
        (Some(dir), _) => dir.clone(),
        (None, true) => pct
            .template_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/vz/template/cache")),
        (None, false) => anyhow::bail!(
            "proxcage knows the template directory of storage '{configured}' only ([backends.pct] template_dir): pass --dir for storage '{storage}'"
        ),
    };
    let bundle = Bundle::load(&args.bundle)?;
    let opts = PackOptions::default();
    let template = match args.format {
        TemplateFormat::TarZst => pack_rootfs(bundle.rootfs(), &dir, &opts)?,
        TemplateFormat::OciArchive => pack_oci_archive(&bundle, &dir, &opts)?,
    };
    print(&format!("{storage}:vztmpl/{}\n", template.file_name()))?;
    Ok(0)
}
