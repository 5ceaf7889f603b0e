//! Reading OCI image layouts, as a directory or as an `oci-archive` tar: the index, the
//! manifest for this platform, the config, and blobs whose digest and size are checked
//! as they are read.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::build::BuildError;
use crate::digest::Digest;
use crate::oci_archive::{go_arch, REF_NAME};
use crate::tar_read::{Next, TarReader};
use crate::untrusted::{Links, UntrustedFile};
use crate::ustar::Kind;

/// The largest index, manifest or config read into memory.
const JSON_LIMIT: u64 = 16 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Manifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The parts of an image config a bundle uses.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ImageConfig {
    #[serde(default)]
    pub config: Option<ContainerConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ContainerConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

/// Where the layout's files are.
enum Store {
    Dir(PathBuf),
    /// An uncompressed tar: each member's offset and size.
    Archive {
        file: File,
        members: HashMap<String, (u64, u64)>,
    },
}

/// A file of a layout being read, and its length.
type LayoutFile<'a> = (Box<dyn Read + 'a>, u64);

/// An OCI image layout, opened.
pub(crate) struct Layout {
    /// The path given, for messages.
    path: PathBuf,
    store: Store,
    max_blob_size: u64,
}

/// The regular files of the uncompressed tar `file`: each one's offset and size, by name
/// (without a leading `./`).
fn archive_members(file: &File) -> io::Result<HashMap<String, (u64, u64)>> {
    let mut members = HashMap::new();
    let mut reader = TarReader::new(io::BufReader::new(file));
    loop {
        match reader.next()? {
            Next::End => return Ok(members),
            Next::Unsupported(_) => {}
            Next::Entry(entry) if entry.kind == Kind::Regular => {
                let name = String::from_utf8_lossy(&entry.path)
                    .trim_start_matches("./")
                    .to_owned();
                members.insert(name, (entry.data_at, entry.size));
            }
            Next::Entry(_) => {}
        }
    }
}

/// True when `path` looks like an image layout directory (it has `oci-layout`).
pub(crate) fn is_layout_dir(path: &Path) -> bool {
    path.join("oci-layout").is_file()
}

impl Layout {
    /// Opens the layout at `path`, a directory or an oci-archive. Blobs whose descriptors
    /// declare more than `max_blob_size` bytes are refused before they are read.
    pub(crate) fn open(path: &Path, max_blob_size: u64) -> Result<Layout, BuildError> {
        let io_err = |op| {
            move |source| BuildError::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        };
        let meta = std::fs::metadata(path).map_err(io_err("inspect"))?;
        let store = if meta.is_dir() {
            Store::Dir(path.to_path_buf())
        } else {
            let file = UntrustedFile::open(path, Links::Follow)?.into_file();
            let members = archive_members(&file).map_err(io_err("read the archive"))?;
            Store::Archive { file, members }
        };
        let layout = Layout {
            path: path.to_path_buf(),
            store,
            max_blob_size,
        };
        if !layout.exists("oci-layout") {
            return Err(BuildError::NotAnImageLayout {
                path: path.to_path_buf(),
                reason: "it has no oci-layout file".into(),
            });
        }
        Ok(layout)
    }

    fn exists(&self, name: &str) -> bool {
        match &self.store {
            Store::Dir(dir) => dir.join(name).is_file(),
            Store::Archive { members, .. } => members.contains_key(name),
        }
    }

    /// A reader of the file `name` of the layout and its length (which the reader does
    /// not enforce), or `None` when the layout has no such file.
    fn open_file(&self, name: &str) -> Result<Option<LayoutFile<'_>>, BuildError> {
        match &self.store {
            Store::Dir(dir) => {
                let file = match UntrustedFile::open(&dir.join(name), Links::Follow) {
                    Ok(file) => file,
                    Err(e) if e.is_not_found() => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let len = file.len();
                let reader = io::BufReader::with_capacity(1 << 20, file.into_file());
                Ok(Some((Box::new(reader), len)))
            }
            Store::Archive { file, members } => {
                let Some(&(offset, size)) = members.get(name) else {
                    return Ok(None);
                };
                let read_error = |source| BuildError::Io {
                    op: "read",
                    path: self.path.clone(),
                    source,
                };
                let mut f = file.try_clone().map_err(read_error)?;
                f.seek(SeekFrom::Start(offset)).map_err(read_error)?;
                let reader = io::BufReader::with_capacity(1 << 20, f.take(size));
                Ok(Some((Box::new(reader), size)))
            }
        }
    }

    /// The layout's `index.json`, at most [`JSON_LIMIT`] bytes read.
    fn read_index(&self) -> Result<Vec<u8>, BuildError> {
        let no_index = || BuildError::InvalidImage {
            layout: self.path.clone(),
            reason: "it has no index.json".into(),
        };
        if let Store::Dir(dir) = &self.store {
            return UntrustedFile::open(&dir.join("index.json"), Links::Follow)
                .and_then(|file| file.read_to_end(JSON_LIMIT))
                .map_err(|e| {
                    if e.is_not_found() {
                        no_index()
                    } else {
                        e.into()
                    }
                });
        }
        // In an archive, the reader ends at the member's size.
        let (mut reader, size) = self.open_file("index.json")?.ok_or_else(no_index)?;
        if size > JSON_LIMIT {
            return Err(BuildError::InvalidImage {
                layout: self.path.clone(),
                reason: format!(
                    "index.json is {size} bytes, more than the {JSON_LIMIT} bytes proxcage reads from it"
                ),
            });
        }
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|source| BuildError::Io {
                op: "read index.json of",
                path: self.path.clone(),
                source,
            })?;
        Ok(bytes)
    }

    /// Where a blob is, for messages.
    pub(crate) fn blob_location(&self, digest: &Digest) -> String {
        let name = blob_name(digest);
        match &self.store {
            Store::Dir(dir) => dir.join(name).display().to_string(),
            Store::Archive { .. } => format!("{} in {}", name, self.path.display()),
        }
    }

    /// A reader of the blob `desc` that fails once it has read more than the descriptor's
    /// size, and at the end when its digest or size is wrong. A declared size above the
    /// layout's limit, or one that differs from the blob's length, is refused before
    /// anything is read.
    pub(crate) fn blob(&self, desc: &Descriptor) -> Result<VerifiedBlob<'_>, BuildError> {
        let digest: Digest = desc
            .digest
            .parse()
            .map_err(|source| BuildError::BadDigest {
                layout: self.path.clone(),
                source,
            })?;
        let location = self.blob_location(&digest);
        if desc.size > self.max_blob_size {
            return Err(BuildError::BlobTooLarge {
                digest,
                location,
                size: desc.size,
                limit: self.max_blob_size,
            });
        }
        let Some((reader, len)) = self.open_file(&blob_name(&digest))? else {
            return Err(BuildError::BlobMissing { digest, location });
        };
        if len != desc.size {
            return Err(BuildError::BlobCorrupt {
                digest,
                location,
                reason: format!("it is {len} bytes, the manifest says {}", desc.size),
            });
        }
        Ok(VerifiedBlob {
            // One byte past the declared size is enough to tell that it is longer.
            inner: Box::new(reader.take(desc.size.saturating_add(1))),
            sha: Sha256::new(),
            len: 0,
            digest,
            size: desc.size,
            location,
        })
    }

    /// A small JSON blob, read whole and verified.
    pub(crate) fn json_blob<T: for<'de> Deserialize<'de>>(
        &self,
        desc: &Descriptor,
        what: &'static str,
    ) -> Result<T, BuildError> {
        if desc.size > JSON_LIMIT {
            return Err(BuildError::InvalidImage {
                layout: self.path.clone(),
                reason: format!(
                    "the {what} {} is {} bytes, more than {JSON_LIMIT}",
                    desc.digest, desc.size
                ),
            });
        }
        let mut blob = self.blob(desc)?;
        let mut bytes = Vec::new();
        blob.read_to_end(&mut bytes).map_err(|e| blob.error(e))?;
        let location = blob.location.clone();
        blob.verify()?;
        serde_json::from_slice(&bytes).map_err(|source| BuildError::Json {
            what: format!("{what} {location}"),
            source,
        })
    }

    /// The manifest `reference` (a tag, or a digest `sha256:...`) names, or the only one.
    pub(crate) fn manifest(
        &self,
        reference: Option<&Reference>,
    ) -> Result<(Descriptor, Manifest), BuildError> {
        let bytes = self.read_index()?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|source| BuildError::Json {
            what: format!("index.json of {}", self.path.display()),
            source,
        })?;
        let tags: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).cloned())
            .collect();
        let candidates: Vec<&Descriptor> = match reference {
            Some(Reference::Tag(tag)) => index
                .manifests
                .iter()
                .filter(|d| d.annotations.get(REF_NAME) == Some(tag))
                .collect(),
            Some(Reference::Digest(digest)) => index
                .manifests
                .iter()
                .filter(|d| d.digest == digest.to_string())
                .collect(),
            None => index.manifests.iter().collect(),
        };
        let not_found = || BuildError::ManifestNotFound {
            layout: self.path.clone(),
            reference: reference.map_or_else(|| "(none)".to_owned(), |r| r.to_string()),
            tags: tags.clone(),
        };
        let desc = match candidates.len() {
            0 => return Err(not_found()),
            1 => candidates[0].clone(),
            _ => match candidates
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(matches_host))
            {
                Some(d) => (*d).clone(),
                None if reference.is_none() => {
                    return Err(BuildError::AmbiguousImage {
                        layout: self.path.clone(),
                        tags: tags.clone(),
                    })
                }
                None => return Err(not_found()),
            },
        };
        self.resolve_manifest(desc, 0)
    }

    /// Follows nested indexes to the manifest for this platform.
    fn resolve_manifest(
        &self,
        desc: Descriptor,
        depth: usize,
    ) -> Result<(Descriptor, Manifest), BuildError> {
        if depth > 4 {
            return Err(BuildError::InvalidImage {
                layout: self.path.clone(),
                reason: "indexes nested too deep".into(),
            });
        }
        if desc.media_type.ends_with("image.index.v1+json")
            || desc.media_type.ends_with("manifest.list.v2+json")
        {
            let index: Index = self.json_blob(&desc, "index")?;
            let Some(next) = index
                .manifests
                .into_iter()
                .find(|d| d.platform.as_ref().is_none_or(matches_host))
            else {
                return Err(BuildError::NoPlatform {
                    layout: self.path.clone(),
                    platform: host_platform(),
                });
            };
            return self.resolve_manifest(next, depth + 1);
        }
        let manifest: Manifest = self.json_blob(&desc, "manifest")?;
        Ok((desc, manifest))
    }
}

/// What follows the layout path: `:tag` or `@sha256:...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => write!(f, ":{t}"),
            Reference::Digest(d) => write!(f, "@{d}"),
        }
    }
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// `linux/amd64` style, Go's names for this host.
fn host_platform() -> String {
    format!("linux/{}", go_arch())
}

fn matches_host(p: &Platform) -> bool {
    p.os == "linux" && p.architecture == go_arch()
}

/// A blob being read: hashes and counts, and checks both at the end.
pub(crate) struct VerifiedBlob<'a> {
    inner: Box<dyn Read + 'a>,
    sha: Sha256,
    len: u64,
    pub digest: Digest,
    size: u64,
    pub location: String,
}

impl VerifiedBlob<'_> {
    /// Reads what is left and checks size and digest.
    pub(crate) fn verify(mut self) -> Result<(), BuildError> {
        io::copy(&mut self, &mut io::sink()).map_err(|e| self.error(e))?;
        if self.len != self.size {
            return Err(BuildError::BlobCorrupt {
                digest: self.digest,
                location: self.location.clone(),
                reason: format!("it is {} bytes, the manifest says {}", self.len, self.size),
            });
        }
        let actual = Digest::from_hasher(std::mem::take(&mut self.sha));
        if actual != self.digest {
            return Err(BuildError::BlobCorrupt {
                digest: self.digest,
                location: self.location.clone(),
                reason: format!("its content has digest {actual}"),
            });
        }
        Ok(())
    }

    pub(crate) fn error(&self, e: io::Error) -> BuildError {
        BuildError::BlobCorrupt {
            digest: self.digest,
            location: self.location.clone(),
            reason: format!("reading it failed: {e}"),
        }
    }
}

impl Read for VerifiedBlob<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        if self.len > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("longer than the {} bytes the manifest says", self.size),
            ));
        }
        Ok(n)
    }
}
