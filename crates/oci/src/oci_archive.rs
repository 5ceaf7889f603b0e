//! Bundle -> `oci-archive`: an uncompressed tar holding an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/...`) with one zstd layer (the rootfs) and an image config
//! made from the bundle's process. Proxmox VE 9.1 imports such archives as container
//! templates; skopeo, podman and proxcage's own `build` read them too.
//!
//! Names in the archive have no `./` prefix: Proxmox's importer looks members up by their
//! exact path (`index.json`, `blobs/sha256/<hex>`). Device nodes and FIFOs are left out of
//! the layer: Proxmox's importer (the `tar` crate's `unpack_in`) would turn them into
//! regular files, and a container's `/dev` is made by LXC anyway. An xattr value with a
//! newline byte is an error ([`TemplateError::Unrepresentable`]): the `tar` crate splits
//! pax records at newlines and the import would fail.
//!
//! The archive is named after the image config's digest (the image id), which covers the
//! layer (through its `diff_ids`) and the process; the same bundle gives the same bytes
//! and is packed once.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use indicatif::ProgressBar;
use oci_spec::runtime::Spec;
use serde_json::json;

use crate::bundle::Bundle;
use crate::digest::Digest;
use crate::template::{
    begin_pack, check_dest, check_level, check_rootfs, compress, digest_pass, io_error, new_bar,
    put_in_place, reuse, Counting, Hashing, PackOptions, Template, TemplateError, Walker, CHUNK,
};
use crate::ustar::{self, Header, Kind};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The annotation of an index entry that holds its tag.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// This host's architecture as Go (and so OCI's `platform.architecture`) names it.
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// Packs `bundle` into `<dest_dir>/proxcage-<image id>.tar`, an oci-archive Proxmox VE
/// 9.1 can import, or returns the existing file of that name (`reused`). The image config
/// carries the bundle's `process` (args as `Cmd`, env, cwd, `uid:gid`) and its
/// annotations as labels (`org.opencontainers.image.stopSignal` as `StopSignal`).
///
/// ```no_run
/// use proxcage_oci::template::{pack_oci_archive, PackOptions};
/// use proxcage_oci::Bundle;
/// use std::path::Path;
///
/// let bundle = Bundle::load("/var/lib/bundles/web")?;
/// let t = pack_oci_archive(&bundle, Path::new("/var/lib/vz/template/cache"), &PackOptions::default())?;
/// println!("local:vztmpl/{}", t.file_name());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pack_oci_archive(
    bundle: &Bundle,
    dest_dir: &Path,
    opts: &PackOptions,
) -> Result<Template, TemplateError> {
    let rootfs = bundle.rootfs();
    check_rootfs(rootfs)?;
    check_level(opts)?;
    check_dest(dest_dir)?;
    let bar = opts.progress.then(new_bar).flatten();
    let (diff_id, stamps, tar_len) =
        digest_pass(layer_walker(rootfs, Path::new("/dev/null"), bar.as_ref()))?;

    let config = image_config(bundle.spec(), &diff_id);
    let image_id = Digest::of(&config);
    let path = dest_dir.join(format!("proxcage-{}.tar", image_id.hex()));
    if let Some(template) = reuse(&path, image_id, bar.as_ref()) {
        return Ok(template);
    }

    let (tmp, tmp_path, file) = begin_pack(bar.as_ref(), tar_len, dest_dir, ".tar.tmp")?;
    let werr = |e| io_error("write", &tmp_path)(e);
    let mut out = Counting {
        inner: BufWriter::with_capacity(CHUNK, file),
        len: 0,
    };
    directory(&mut out, b"blobs/").map_err(werr)?;
    directory(&mut out, b"blobs/sha256/").map_err(werr)?;
    member(
        &mut out,
        b"oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .map_err(werr)?;
    let layer = write_layer(&mut out, opts, &tmp_path, tar_len, |sink| {
        layer_walker(rootfs, &tmp_path, bar.as_ref()).archive_again(sink, stamps, tar_len)
    })?;
    write_image(&mut out, &config, image_id, layer).map_err(werr)?;
    put_in_place(out.inner, tmp, &path, image_id, tar_len, bar.as_ref())
}

/// Writes the layer blob, the compressed archive that `produce` writes (`tar_len` bytes
/// uncompressed), as a member of the archive `out`; returns its digest and size. The
/// member's header is written once they are known.
fn write_layer(
    out: &mut Counting<BufWriter<File>>,
    opts: &PackOptions,
    tmp_path: &Path,
    tar_len: u64,
    produce: impl FnOnce(&mut dyn Write) -> Result<(), TemplateError>,
) -> Result<(Digest, u64), TemplateError> {
    let werr = |e| io_error("write", tmp_path)(e);
    let header_at = out.len;
    out.write_all(&[0; ustar::BLOCK]).map_err(werr)?;
    let compressed = compress(Hashing::new(&mut *out), opts, tar_len, tmp_path, produce)?;
    let (digest, len) = (Digest::from_hasher(compressed.sha), compressed.len);
    out.write_all(&[0; ustar::BLOCK][..ustar::padding(len)])
        .map_err(werr)?;
    let end = out.len;
    out.inner.flush().map_err(werr)?;
    let file = out.inner.get_mut();
    file.seek(SeekFrom::Start(header_at)).map_err(werr)?;
    file.write_all(&ustar::file_block(blob_name(&digest).as_bytes(), len))
        .map_err(werr)?;
    file.seek(SeekFrom::Start(end)).map_err(werr)?;
    Ok((digest, len))
}

/// Writes the image config, the manifest of the config and `layer` (digest and size),
/// `index.json`, and the end of the archive.
fn write_image(
    out: &mut impl Write,
    config: &[u8],
    image_id: Digest,
    (layer_digest, layer_len): (Digest, u64),
) -> io::Result<()> {
    member(out, blob_name(&image_id).as_bytes(), config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": { "mediaType": CONFIG, "digest": image_id.to_string(), "size": config.len() },
        "layers": [{ "mediaType": LAYER, "digest": layer_digest.to_string(), "size": layer_len }],
    }))
    .expect("JSON values serialize");
    let manifest_digest = Digest::of(&manifest);
    member(out, blob_name(&manifest_digest).as_bytes(), &manifest)?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": MANIFEST,
            "digest": manifest_digest.to_string(),
            "size": manifest.len(),
            "platform": { "architecture": go_arch(), "os": "linux" },
            "annotations": { REF_NAME: "latest" },
        }],
    }))
    .expect("JSON values serialize");
    member(out, b"index.json", &index)?;
    ustar::write_end(out)?;
    out.flush()
}

/// A walker of the layer's tree, for Proxmox's importer: device nodes and FIFOs left out,
/// an xattr value with a newline an error (see the module documentation).
fn layer_walker<'a>(rootfs: &'a Path, dest: &'a Path, bar: Option<&'a ProgressBar>) -> Walker<'a> {
    let mut walker = Walker::new(rootfs, dest, bar);
    walker.special = false;
    walker.newlines = false;
    walker
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn directory(out: &mut impl Write, name: &[u8]) -> io::Result<()> {
    ustar::write_header(
        out,
        &Header {
            path: name,
            kind: Kind::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            link: b"",
            device: (0, 0),
            xattrs: &Vec::new(),
        },
    )
}

fn member(out: &mut impl Write, name: &[u8], data: &[u8]) -> io::Result<()> {
    out.write_all(&ustar::file_block(name, data.len() as u64))?;
    out.write_all(data)?;
    out.write_all(&[0; ustar::BLOCK][..ustar::padding(data.len() as u64)])
}

/// The image config for the bundle's process, with `diff_id` as its one layer.
fn image_config(spec: &Spec, diff_id: &Digest) -> Vec<u8> {
    let mut config = serde_json::Map::new();
    if let Some(p) = spec.process() {
        if let Some(env) = p.env() {
            config.insert("Env".into(), json!(env));
        }
        if let Some(args) = p.args() {
            config.insert("Cmd".into(), json!(args));
        }
        config.insert("WorkingDir".into(), json!(p.cwd()));
        config.insert(
            "User".into(),
            json!(format!("{}:{}", p.user().uid(), p.user().gid())),
        );
    }
    let mut labels = serde_json::Map::new();
    for (k, v) in spec.annotations().iter().flatten() {
        if k == "org.opencontainers.image.stopSignal" {
            config.insert("StopSignal".into(), json!(v));
        } else {
            labels.insert(k.clone(), json!(v));
        }
    }
    if !labels.is_empty() {
        let mut sorted: Vec<_> = labels.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        config.insert(
            "Labels".into(),
            serde_json::Value::Object(sorted.into_iter().collect()),
        );
    }
    serde_json::to_vec(&json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
        "history": [{ "created_by": "proxcage template create --format oci-archive" }],
    }))
    .expect("JSON values serialize")
}
