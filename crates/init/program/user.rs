//! The user switch: `uid:gid[:gids[:caps]]` from the process file.

use crate::caps::PR_SET_KEEPCAPS;
use crate::sys;
use crate::text::parse_number;
use crate::{check, fail};

const PR_CAPBSET_DROP: usize = 24;

static mut GROUPS: [u32; 1024] = [0; 1024];

/// Supplementary groups, the gid, the capabilities to drop from the bounding set (those
/// the init kept only for this), then the uid. A non-root uid loses every capability, as
/// with runc, unless `keep_caps`: then the permitted set survives the switch (for the
/// capability sets applied next).
pub fn become_user(user: &[u8], keep_caps: bool) {
    let bad = || -> ! {
        fail(
            125,
            &[b"malformed process file: the user is not uid:gid[:gids[:caps]]"],
        )
    };
    let mut parts = user.splitn(4, |&b| b == b':');
    let (Some(uid), Some(gid)) = (
        parts.next().and_then(|n| parse_number(n, 10)),
        parts.next().and_then(|n| parse_number(n, 10)),
    ) else {
        bad()
    };
    // SAFETY: single-threaded; only this function touches GROUPS.
    let groups = unsafe { &mut *core::ptr::addr_of_mut!(GROUPS) };
    let mut count = 0;
    for g in parts
        .next()
        .unwrap_or(b"")
        .split(|&b| b == b',')
        .filter(|g| !g.is_empty())
    {
        if count == groups.len() {
            fail(125, &[b"too many additional groups"]);
        }
        groups[count] = parse_number(g, 10).unwrap_or_else(|| bad()) as u32;
        count += 1;
    }
    // SAFETY: `count` gids from a live array.
    let groups_set = unsafe { sys::call(sys::SETGROUPS, count, groups.as_ptr() as usize, 0) };
    check(groups_set, b"cannot set the additional groups (CAP_SETGID)");
    // SAFETY: plain integers.
    check(
        unsafe { sys::call(sys::SETGID, gid, 0, 0) },
        b"cannot set the gid (CAP_SETGID)",
    );
    for cap in parts
        .next()
        .unwrap_or(b"")
        .split(|&b| b == b',')
        .filter(|c| !c.is_empty())
    {
        let cap = parse_number(cap, 10).unwrap_or_else(|| bad());
        let dropped = sys::prctl(PR_CAPBSET_DROP, cap, 0);
        check(dropped, b"cannot drop a capability from the bounding set");
    }
    if keep_caps {
        check(
            sys::prctl(PR_SET_KEEPCAPS, 1, 0),
            b"cannot keep the capabilities across the user switch",
        );
    }
    // SAFETY: plain integers.
    check(
        unsafe { sys::call(sys::SETUID, uid, 0, 0) },
        b"cannot set the uid (CAP_SETUID)",
    );
}
