//! Writing tar archives byte-exactly: POSIX ustar headers, with pax extended headers for
//! what ustar cannot hold (paths and link targets over 100 bytes, large ids, sizes and
//! times, and xattrs as `SCHILY.xattr.<name>`, the form GNU tar's `--xattrs` reads).
//!
//! Nothing here depends on the host: no user or group names, no time of day, no pax
//! header names with process ids. The same entries give the same bytes.

use std::io::{self, Write};

pub(crate) const BLOCK: usize = 512;

/// Extended attributes as (name, value) pairs, sorted by name.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// The type of an entry, as its ustar type flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Kind::Regular => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::CharDevice => b'3',
            Kind::BlockDevice => b'4',
            Kind::Directory => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// One entry's header. `size` is the number of data bytes that follow (regular files
/// only); the caller writes them and then [`padding`] bytes.
#[derive(Debug)]
pub(crate) struct Header<'a> {
    pub path: &'a [u8],
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    /// Target of a symlink or hard link.
    pub link: &'a [u8],
    pub device: (u64, u64),
    /// Sorted by name.
    pub xattrs: &'a Xattrs,
}

/// Largest value of an octal field `width` bytes wide (digits plus a NUL).
fn octal_max(width: usize) -> u64 {
    (1u64 << (3 * (width - 1))) - 1
}

fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

/// Appends the pax record `<len> <key>=<value>\n`, whose length counts itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Writes the header block(s) of `h`: a pax extended header first when needed.
pub(crate) fn write_header(out: &mut impl Write, h: &Header<'_>) -> io::Result<()> {
    let mut pax = Vec::new();
    if h.path.len() > 100 {
        pax_record(&mut pax, b"path", h.path);
    }
    if h.link.len() > 100 {
        pax_record(&mut pax, b"linkpath", h.link);
    }
    if h.uid > octal_max(8) {
        pax_record(&mut pax, b"uid", h.uid.to_string().as_bytes());
    }
    if h.gid > octal_max(8) {
        pax_record(&mut pax, b"gid", h.gid.to_string().as_bytes());
    }
    if h.size > octal_max(12) {
        pax_record(&mut pax, b"size", h.size.to_string().as_bytes());
    }
    let mtime_fits = h.mtime >= 0 && (h.mtime as u64) <= octal_max(12);
    if !mtime_fits {
        pax_record(&mut pax, b"mtime", h.mtime.to_string().as_bytes());
    }
    for (name, value) in h.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        pax_record(&mut pax, &key, value);
    }
    if !pax.is_empty() {
        let mut name = b"PaxHeaders/".to_vec();
        let base = h
            .path
            .rsplit(|&c| c == b'/')
            .find(|s| !s.is_empty())
            .unwrap_or(b".");
        name.extend_from_slice(&base[..base.len().min(100 - name.len())]);
        let block = ustar_block(&Header {
            path: &name,
            kind: Kind::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: pax.len() as u64,
            mtime: 0,
            link: b"",
            device: (0, 0),
            xattrs: &Vec::new(),
        });
        let mut block = block;
        block[156] = b'x';
        checksum(&mut block);
        out.write_all(&block)?;
        out.write_all(&pax)?;
        out.write_all(&[0; BLOCK][..padding(pax.len() as u64)])?;
    }
    out.write_all(&ustar_block(h))
}

/// The ustar block for `h`, with fields that do not fit truncated or zeroed (the pax
/// header written before it carries them).
fn ustar_block(h: &Header<'_>) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    let path = &h.path[..h.path.len().min(100)];
    b[..path.len()].copy_from_slice(path);
    put_octal(&mut b[100..108], u64::from(h.mode & 0o7777));
    put_octal(
        &mut b[108..116],
        if h.uid > octal_max(8) { 0 } else { h.uid },
    );
    put_octal(
        &mut b[116..124],
        if h.gid > octal_max(8) { 0 } else { h.gid },
    );
    put_octal(
        &mut b[124..136],
        if h.size > octal_max(12) { 0 } else { h.size },
    );
    let mtime = if h.mtime >= 0 && (h.mtime as u64) <= octal_max(12) {
        h.mtime as u64
    } else {
        0
    };
    put_octal(&mut b[136..148], mtime);
    b[156] = h.kind.flag();
    let link = &h.link[..h.link.len().min(100)];
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    if matches!(h.kind, Kind::CharDevice | Kind::BlockDevice) {
        put_octal(&mut b[329..337], h.device.0.min(octal_max(8)));
        put_octal(&mut b[337..345], h.device.1.min(octal_max(8)));
    }
    checksum(&mut b);
    b
}

fn checksum(b: &mut [u8; BLOCK]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&c| u32::from(c)).sum();
    let text = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(text.as_bytes());
}

/// The header block of a regular file `name` (at most 100 bytes) of `size` bytes, owned
/// by root, mode 0644, mtime 0; a size beyond the octal field is written base-256, as
/// GNU tar does.
pub(crate) fn file_block(name: &[u8], size: u64) -> [u8; BLOCK] {
    assert!(name.len() <= 100, "archive member names here are short");
    let mut b = ustar_block(&Header {
        path: name,
        kind: Kind::Regular,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: size.min(octal_max(12)),
        mtime: 0,
        link: b"",
        device: (0, 0),
        xattrs: &Vec::new(),
    });
    if size > octal_max(12) {
        b[124..136].fill(0);
        b[124] = 0x80;
        b[128..136].copy_from_slice(&size.to_be_bytes());
        checksum(&mut b);
    }
    b
}

/// Zero bytes after `size` data bytes up to the next block boundary.
pub(crate) fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// The two zero blocks that end an archive.
pub(crate) fn write_end(out: &mut impl Write) -> io::Result<()> {
    out.write_all(&[0; 2 * BLOCK])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        pax_record(&mut out, b"path", &[b'a'; 95]);
        assert_eq!(out.len(), 105);
        assert!(out.starts_with(b"105 path="));
        let mut out = Vec::new();
        pax_record(&mut out, b"k", b"");
        assert_eq!(out, b"5 k=\n");
    }

    #[test]
    fn the_tar_crate_reads_what_we_write() {
        let long = format!("./{}/file", "d".repeat(150));
        let xattrs = vec![(b"user.a".to_vec(), vec![0u8, 1, 2, 255])];
        let mut out = Vec::new();
        write_header(
            &mut out,
            &Header {
                path: long.as_bytes(),
                kind: Kind::Regular,
                mode: 0o4755,
                uid: 100_000_000,
                gid: 7,
                size: 3,
                mtime: 1_700_000_000,
                link: b"",
                device: (0, 0),
                xattrs: &xattrs,
            },
        )
        .unwrap();
        out.extend_from_slice(b"abc");
        out.extend_from_slice(&[0; BLOCK][..padding(3)]);
        write_end(&mut out).unwrap();

        let mut archive = tar::Archive::new(&out[..]);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path_bytes().as_ref(), long.as_bytes());
        assert_eq!(entry.header().mode().unwrap(), 0o4755);
        assert_eq!(entry.header().mtime().unwrap(), 1_700_000_000);
        let pax: Vec<(String, Vec<u8>)> = entry
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.key().unwrap().to_owned(), e.value_bytes().to_vec())
            })
            .collect();
        assert!(pax.contains(&("uid".into(), b"100000000".to_vec())));
        assert!(pax.contains(&("SCHILY.xattr.user.a".into(), vec![0, 1, 2, 255])));
        let mut data = String::new();
        std::io::Read::read_to_string(&mut entry, &mut data).unwrap();
        assert_eq!(data, "abc");
        assert!(entries.next().is_none());
    }

    proptest::proptest! {
        /// Whatever the names, ids, sizes, times and xattrs (binary, newlines included),
        /// the reader reads back what the writer wrote.
        #[test]
        fn headers_round_trip(
            path in "[a-zA-Z0-9._/-]{1,300}",
            link in "[a-zA-Z0-9._/-]{0,250}",
            uid in proptest::prop_oneof![0u64..70_000, 2_000_000u64..5_000_000_000],
            gid in 0u64..5_000_000_000,
            mode in 0u32..0o10000,
            mtime in proptest::prop_oneof![0i64..0o77777777777, -100i64..0, 0o77777777777i64..0o777777777777],
            size in 0usize..2000,
            xattrs in proptest::collection::btree_map("user\\.[a-z]{1,20}", proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..4),
            symlink in proptest::bool::ANY,
        ) {
            let xattrs: Xattrs = xattrs.into_iter().map(|(k, v)| (k.into_bytes(), v)).collect();
            let (kind, size, link) = if symlink { (Kind::Symlink, 0, link.as_bytes()) } else { (Kind::Regular, size, &b""[..]) };
            let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let mut out = Vec::new();
            write_header(&mut out, &Header {
                path: path.as_bytes(), kind, mode, uid, gid, size: size as u64, mtime, link,
                device: (0, 0), xattrs: &xattrs,
            }).unwrap();
            out.extend_from_slice(&data);
            out.extend_from_slice(&[0; BLOCK][..padding(size as u64)]);
            write_end(&mut out).unwrap();

            let mut reader = crate::tar_read::TarReader::new(&out[..]);
            let crate::tar_read::Next::Entry(entry) = reader.next().unwrap() else {
                panic!("no entry read back");
            };
            proptest::prop_assert_eq!(entry.path.as_slice(), path.as_bytes());
            proptest::prop_assert_eq!(entry.link.as_slice(), link);
            proptest::prop_assert_eq!(entry.kind, kind);
            proptest::prop_assert_eq!((entry.mode, entry.uid, entry.gid, entry.mtime), (mode, uid, gid, mtime));
            proptest::prop_assert_eq!(&entry.xattrs, &xattrs);
            let mut got = Vec::new();
            reader.copy_data(entry.size, &mut got).unwrap();
            proptest::prop_assert_eq!(got, data);
            proptest::prop_assert!(matches!(reader.next().unwrap(), crate::tar_read::Next::End));
        }
    }

    #[test]
    fn large_sizes_are_written_base_256() {
        let block = file_block(b"blobs/sha256/x", 10 << 30);
        let header = tar::Header::from_byte_slice(&block);
        assert_eq!(header.size().unwrap(), 10 << 30);
        assert_eq!(header.path_bytes().as_ref(), b"blobs/sha256/x");
    }
}
