//! SHA-256 digests as OCI writes them (`sha256:<64 lowercase hex>`): the names of image
//! blobs and of packed templates.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest. [`fmt::Display`] gives the OCI form `sha256:<hex>`, [`Digest::hex`]
/// the bare hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Digest {
        Digest(hasher.finalize().into())
    }

    /// The 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a digest proxcage can check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    #[error("digest {0:?} uses algorithm {1:?}: proxcage verifies sha256 digests only")]
    UnsupportedAlgorithm(String, String),
    #[error("digest {0:?} is not of the form sha256:<64 lowercase hex digits>")]
    Malformed(String),
}

impl FromStr for Digest {
    type Err = DigestParseError;

    /// Parses `sha256:<64 lowercase hex>`, the only form the OCI image spec registers
    /// for sha256.
    fn from_str(s: &str) -> Result<Digest, DigestParseError> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestParseError::Malformed(s.to_owned()));
        };
        if algorithm != "sha256" {
            return Err(DigestParseError::UnsupportedAlgorithm(
                s.to_owned(),
                algorithm.to_owned(),
            ));
        }
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return Err(DigestParseError::Malformed(s.to_owned()));
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let nibble = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            };
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(hi), Some(lo)) => out[i] = hi << 4 | lo,
                _ => return Err(DigestParseError::Malformed(s.to_owned())),
            }
        }
        Ok(Digest(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let d = Digest::of(b"");
        let text = d.to_string();
        assert_eq!(
            text,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(text.parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn parse_refuses_other_forms() {
        assert!(matches!(
            "sha512:00".parse::<Digest>(),
            Err(DigestParseError::UnsupportedAlgorithm(..))
        ));
        for bad in [
            "",
            "sha256:",
            "sha256:abc",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(
                matches!(bad.parse::<Digest>(), Err(DigestParseError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
