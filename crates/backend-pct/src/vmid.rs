//! VMIDs: Proxmox's guest numbers, shared by containers and QEMU VMs cluster-wide.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A VMID: 100..=999999999 (`^[1-9][0-9]{2,8}$`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vmid(u32);

impl Vmid {
    pub const MIN: u32 = 100;
    pub const MAX: u32 = 999_999_999;

    pub fn new(n: u32) -> Result<Self, String> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(Vmid(n))
        } else {
            Err(format!("VMID {n} is outside 100..=999999999"))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Vmid {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, String> {
        Vmid::new(n)
    }
}

impl From<Vmid> for u32 {
    fn from(v: Vmid) -> u32 {
        v.0
    }
}

impl FromStr for Vmid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let well_formed = (3..=9).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit())
            && !s.starts_with('0');
        if !well_formed {
            return Err(format!(
                "{s:?} is not a VMID (three to nine digits, no leading zero)"
            ));
        }
        Vmid::new(s.parse().map_err(|e| format!("{s:?}: {e}"))?)
    }
}

impl fmt::Display for Vmid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The VMIDs proxcage may take, for operators who reserve ranges for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RangeSpec")]
pub struct VmidRange {
    first: Vmid,
    last: Vmid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeSpec {
    first: u32,
    last: u32,
}

impl TryFrom<RangeSpec> for VmidRange {
    type Error = String;
    fn try_from(spec: RangeSpec) -> Result<Self, String> {
        VmidRange::new(Vmid::new(spec.first)?, Vmid::new(spec.last)?)
    }
}

impl Default for VmidRange {
    fn default() -> Self {
        VmidRange {
            first: Vmid(Vmid::MIN),
            last: Vmid(Vmid::MAX),
        }
    }
}

impl VmidRange {
    pub fn new(first: Vmid, last: Vmid) -> Result<Self, String> {
        if first > last {
            return Err(format!("VMID range {first}..={last} is empty"));
        }
        Ok(VmidRange { first, last })
    }

    pub fn first(self) -> Vmid {
        self.first
    }

    pub fn last(self) -> Vmid {
        self.last
    }

    pub fn contains(self, vmid: Vmid) -> bool {
        (self.first..=self.last).contains(&vmid)
    }

    /// The VMID after `vmid` within the range, if any.
    pub fn after(self, vmid: Vmid) -> Option<Vmid> {
        let next = Vmid(vmid.0.checked_add(1)?);
        self.contains(next).then_some(next)
    }
}

impl fmt::Display for VmidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmid_format_follows_proxmox() {
        assert_eq!("100".parse::<Vmid>().unwrap().get(), 100);
        assert_eq!("999999999".parse::<Vmid>().unwrap().get(), 999_999_999);
        for bad in ["99", "0100", "1000000000", "abc", "", "-100", "1e3"] {
            assert!(bad.parse::<Vmid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let r = VmidRange::new(Vmid::new(9000).unwrap(), Vmid::new(9001).unwrap()).unwrap();
        assert_eq!(
            r.after(Vmid::new(9000).unwrap()),
            Some(Vmid::new(9001).unwrap())
        );
        assert_eq!(r.after(Vmid::new(9001).unwrap()), None);
        assert!(VmidRange::new(Vmid::new(200).unwrap(), Vmid::new(100).unwrap()).is_err());
    }
}
