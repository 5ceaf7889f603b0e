//! `template create`: a bundle's rootfs as a Proxmox template, the same packing the pct
//! backend does; prints the volume id.

use proxcage_backend_pct::PctSettings;
use proxcage_oci::template::{pack_oci_archive, pack_rootfs, PackOptions};
use proxcage_oci::Bundle;

use super::print;
use crate::args::{TemplateCreate, TemplateFormat};
use crate::context::Ctx;

pub fn create(args: &TemplateCreate, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let pct: PctSettings = ctx.config()?.settings(proxcage_backend_pct::NAME)?;
    let (storage, dir) = pct.template_target(args.storage.as_deref(), args.dir.as_deref())?;
    let bundle = Bundle::load(&args.bundle)?;
    let opts = PackOptions::default();
    let template = match args.format {
        TemplateFormat::TarZst => pack_rootfs(bundle.rootfs(), &dir, &opts)?,
        TemplateFormat::OciArchive => pack_oci_archive(&bundle, &dir, &opts)?,
    };
    print(&format!("{storage}:vztmpl/{}\n", template.file_name()))?;
    Ok(0)
}
