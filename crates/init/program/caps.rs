//! Capabilities: the sets a process file asks for, applied just before the exec, the way
//! runc applies `process.capabilities` (effective, permitted and inheritable in one
//! capset, then each ambient capability raised).

use crate::process_file::CapSets;
use crate::sys::{self, errno_text, EINVAL};
use crate::{check, fail};

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const PR_CAP_AMBIENT: usize = 47;
const PR_CAP_AMBIENT_RAISE: usize = 2;
/// Keeps the permitted set across a change from uid 0 to another uid (cleared at exec).
pub const PR_SET_KEEPCAPS: usize = 8;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets the effective, permitted and inheritable sets, then raises each ambient
/// capability. A capability the kernel does not know is skipped, as runc skips it.
pub fn apply(sets: &CapSets) {
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let half = |mask: u64, upper: bool| (if upper { mask >> 32 } else { mask }) as u32;
    let data = [false, true].map(|upper| Data {
        effective: half(sets.effective, upper),
        permitted: half(sets.permitted, upper),
        inheritable: half(sets.inheritable, upper),
    });
    // SAFETY: a version 3 header and its two data structs.
    let set = unsafe {
        sys::call(
            sys::CAPSET,
            &header as *const Header as usize,
            data.as_ptr() as usize,
            0,
        )
    };
    check(set, b"cannot set the capabilities (process.capabilities)");
    for cap in (0..64).filter(|c| sets.ambient & (1 << c) != 0) {
        let raised = sys::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap);
        if raised < 0 && raised != -EINVAL {
            let mut digits = [0u8; 12];
            fail(
                125,
                &[
                    b"cannot raise ambient capability ",
                    crate::text::decimal(cap as u32, &mut digits),
                    b" (process.capabilities.ambient): ",
                    errno_text(raised),
                ],
            );
        }
    }
}
