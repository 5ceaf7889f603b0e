//! Reading tar streams (ustar, pax, GNU) entry by entry, for layers and rootfs tarballs.
//!
//! Written here rather than taken from the `tar` crate because pax records are
//! length-prefixed and may hold any byte, newlines included (binary xattr values such as
//! `security.capability` do), and the `tar` crate splits them at newlines.

use std::collections::BTreeMap;
use std::io::{self, Read};

use crate::ustar::{Kind, BLOCK};

/// One entry's header, with pax and GNU long-name records applied.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    pub size: u64,
    pub device: (u32, u32),
    /// `SCHILY.xattr.*` records, in stream order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Where the entry's data starts in the stream.
    pub data_at: u64,
}

/// An entry of a type a root filesystem cannot hold (GNU sparse files, volume headers).
#[derive(Debug)]
pub(crate) struct UnsupportedType {
    pub path: Vec<u8>,
    pub flag: u8,
}

pub(crate) enum Next {
    Entry(Entry),
    Unsupported(UnsupportedType),
    End,
}

/// What extension entries (pax, GNU long names) said about the entry that follows them.
#[derive(Default)]
struct Extensions {
    pax: BTreeMap<Vec<u8>, Vec<u8>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Extensions {
    /// The pax record `key` as a number (a time's fraction dropped), if there is one.
    fn number(&self, key: &[u8]) -> io::Result<Option<i64>> {
        let Some(v) = self.pax.get(key) else {
            return Ok(None);
        };
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.split('.').next()?.parse().ok())
            .map(Some)
            .ok_or_else(|| {
                invalid(format!(
                    "invalid pax {} record",
                    String::from_utf8_lossy(key)
                ))
            })
    }

    /// The `SCHILY.xattr.*` records, by name.
    fn xattrs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.pax
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(b"SCHILY.xattr.")
                    .map(|n| (n.to_vec(), v.clone()))
            })
            .collect()
    }
}

pub(crate) struct TarReader<R> {
    input: R,
    pos: u64,
    /// Data (and padding) of the last entry not read yet.
    left: u64,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A numeric header field: octal (spaces and NULs around it), or base-256 when the
/// first byte has its high bit set.
fn number(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] == 0xff {
            return Err(invalid("negative base-256 number in a tar header".into()));
        }
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n
                .checked_mul(256)
                .and_then(|n| n.checked_add(u64::from(b)))
                .ok_or_else(|| invalid("base-256 number too large in a tar header".into()))?;
        }
        return Ok(n);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ' || b == 0)
        .take_while(|&b| b != b' ' && b != 0)
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text)
        .map_err(|_| invalid("non-ASCII number in a tar header".into()))?;
    u64::from_str_radix(s, 8)
        .map_err(|_| invalid(format!("invalid octal number {s:?} in a tar header")))
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Parses pax records `<len> <key>=<value>\n`; the length governs, values may hold any
/// byte.
fn pax_records(mut data: &[u8], out: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> io::Result<()> {
    let bad = || invalid("malformed pax extended header record".into());
    while !data.is_empty() {
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let space = data.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        out.insert(record[..eq].to_vec(), record[eq + 1..].to_vec());
        data = &data[len..];
    }
    Ok(())
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(input: R) -> Self {
        TarReader {
            input,
            pos: 0,
            left: 0,
        }
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.input).take(n), &mut io::sink())?;
        self.pos += copied;
        if copied < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends inside an entry",
            ));
        }
        Ok(())
    }

    /// Reads a whole header block; `None` at a clean end of the input.
    fn block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut b = [0u8; BLOCK];
        let mut got = 0;
        while got < BLOCK {
            match self.input.read(&mut b[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the tar stream ends inside a header",
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pos += BLOCK as u64;
        Ok(Some(b))
    }

    /// The data of an extension entry (pax, GNU long name), at most 1 MiB.
    fn small_data(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > 1 << 20 {
            return Err(invalid(format!("a tar extension header of {size} bytes")));
        }
        let mut data = vec![0; size as usize];
        self.input.read_exact(&mut data)?;
        self.pos += size;
        self.skip(crate::ustar::padding(size) as u64)?;
        Ok(data)
    }

    /// The next entry; the data of the previous one is skipped if it was not read.
    pub(crate) fn next(&mut self) -> io::Result<Next> {
        if self.left > 0 {
            let n = self.left;
            self.left = 0;
            self.skip(n)?;
        }
        let mut ext = Extensions::default();
        loop {
            let Some(b) = self.block()? else {
                return Ok(Next::End);
            };
            if b.iter().all(|&c| c == 0) {
                return Ok(Next::End);
            }
            self.check_checksum(&b)?;
            let flag = b[156];
            let size = number(&b[124..136])?;
            match flag {
                b'x' => pax_records(&self.small_data(size)?, &mut ext.pax)?,
                b'g' => drop(self.small_data(size)?),
                b'L' => ext.long_name = Some(cstr(&self.small_data(size)?).to_vec()),
                b'K' => ext.long_link = Some(cstr(&self.small_data(size)?).to_vec()),
                _ => return self.entry(&b, flag, size, ext),
            }
        }
    }

    /// Refuses a header block whose checksum is wrong, taken as unsigned or (as some old
    /// writers did) signed bytes.
    fn check_checksum(&self, b: &[u8; BLOCK]) -> io::Result<()> {
        let stored = number(&b[148..156])?;
        // The checksum field counts as spaces.
        let field = 148..156;
        let unsigned: u64 = b
            .iter()
            .enumerate()
            .map(|(i, &c)| if field.contains(&i) { 32 } else { u64::from(c) })
            .sum();
        let signed: i64 = b
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if field.contains(&i) {
                    32
                } else {
                    i64::from(c as i8)
                }
            })
            .sum();
        if stored != unsigned && stored as i64 != signed {
            return Err(invalid(format!(
                "invalid tar header checksum at byte {}",
                self.pos - BLOCK as u64
            )));
        }
        Ok(())
    }

    /// The entry of the header block `b` (type `flag`, `size` in its header), with the
    /// extension records that came before it applied.
    fn entry(
        &mut self,
        b: &[u8; BLOCK],
        flag: u8,
        size: u64,
        mut ext: Extensions,
    ) -> io::Result<Next> {
        let ustar = &b[257..263] == b"ustar\0";
        let mut path = cstr(&b[..100]).to_vec();
        if ustar && b[345] != 0 {
            let mut full = cstr(&b[345..500]).to_vec();
            full.push(b'/');
            full.extend_from_slice(&path);
            path = full;
        }
        if let Some(p) = ext.pax.remove(b"path".as_slice()).or(ext.long_name.take()) {
            path = p;
        }
        let mut link = cstr(&b[157..257]).to_vec();
        if let Some(l) = ext
            .pax
            .remove(b"linkpath".as_slice())
            .or(ext.long_link.take())
        {
            link = l;
        }
        let size = match ext.number(b"size")? {
            Some(n) => u64::try_from(n).map_err(|_| invalid("negative pax size".into()))?,
            None => size,
        };
        let uid = match ext.number(b"uid")? {
            Some(n) => n as u64,
            None => number(&b[108..116])?,
        };
        let gid = match ext.number(b"gid")? {
            Some(n) => n as u64,
            None => number(&b[116..124])?,
        };
        let mtime = match ext.number(b"mtime")? {
            Some(n) => n,
            None => number(&b[136..148])? as i64,
        };
        let kind = match flag {
            b'0' | 0 | b'7' => Kind::Regular,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' => Kind::CharDevice,
            b'4' => Kind::BlockDevice,
            b'5' => Kind::Directory,
            b'6' => Kind::Fifo,
            other => {
                // Its data is skipped by the next call.
                self.left = size + crate::ustar::padding(size) as u64;
                return Ok(Next::Unsupported(UnsupportedType { path, flag: other }));
            }
        };
        // Only regular files have data; other types' sizes are ignored, as GNU tar does,
        // and their data skipped.
        let data = if kind == Kind::Regular { size } else { 0 };
        self.left = size + crate::ustar::padding(size) as u64;
        Ok(Next::Entry(Entry {
            path,
            link,
            kind,
            mode: number(&b[100..108])? as u32,
            uid,
            gid,
            mtime,
            size: data,
            device: (number(&b[329..337])? as u32, number(&b[337..345])? as u32),
            xattrs: ext.xattrs(),
            data_at: self.pos,
        }))
    }

    /// Copies the data of the entry just returned (all `size` bytes) to `out`.
    pub(crate) fn copy_data(&mut self, size: u64, out: &mut impl io::Write) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.input).take(size), out)?;
        self.pos += copied;
        self.left -= copied;
        if copied < size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends inside a file's data",
            ));
        }
        Ok(())
    }

    /// The underlying reader, for what follows the archive.
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.input
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ustar::{padding, write_end, write_header, Header};

    #[test]
    fn reads_binary_xattrs_with_newlines_and_long_names() {
        let xattrs = vec![(
            b"security.capability".to_vec(),
            vec![1, 0, 0, 2, 10, 10, 0, 0],
        )];
        let long = format!("./{}/f", "x".repeat(200));
        let mut out = Vec::new();
        write_header(
            &mut out,
            &Header {
                path: long.as_bytes(),
                kind: Kind::Regular,
                mode: 0o4755,
                uid: 3_000_000,
                gid: 5,
                size: 5,
                mtime: 1_600_000_000,
                link: b"",
                device: (0, 0),
                xattrs: &xattrs,
            },
        )
        .unwrap();
        out.extend_from_slice(b"hello");
        out.extend_from_slice(&[0; BLOCK][..padding(5)]);
        write_end(&mut out).unwrap();
        let mut r = TarReader::new(&out[..]);
        let Next::Entry(e) = r.next().unwrap() else {
            panic!("no entry")
        };
        assert_eq!(e.path, long.as_bytes());
        assert_eq!(
            (e.mode, e.uid, e.gid, e.mtime, e.size),
            (0o4755, 3_000_000, 5, 1_600_000_000, 5)
        );
        assert_eq!(e.xattrs, xattrs);
        let mut data = Vec::new();
        r.copy_data(e.size, &mut data).unwrap();
        assert_eq!(data, b"hello");
        assert!(matches!(r.next().unwrap(), Next::End));
    }

    #[test]
    fn base_256_and_bad_checksums() {
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[8..].copy_from_slice(&(10u32 << 20).to_be_bytes());
        assert_eq!(number(&field).unwrap(), 10 << 20);
        assert_eq!(number(b"0000644\0").unwrap(), 0o644);
        assert_eq!(number(b"     17 ").unwrap(), 0o17);
        let mut out = Vec::new();
        write_header(
            &mut out,
            &Header {
                path: b"a",
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
        .unwrap();
        out[0] = b'b';
        assert!(TarReader::new(&out[..]).next().is_err());
    }
}
