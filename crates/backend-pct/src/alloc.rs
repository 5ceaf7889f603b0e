//! VMID allocation: ask the cluster for a free VMID (`pvesh get /cluster/nextid`), create
//! the CT at it, and when another node took it between the two (pct then says the VMID
//! already exists), ask again. proxcage processes on this node race each other the same
//! way: `pct create` claims the VMID (its config, `lock: create`) before it unpacks the
//! template, so a loser learns at once and nextid then offers the next free VMID.

use crate::error::PctError;
use crate::pct::{CallError, CallResult};
use crate::vmid::{Vmid, VmidRange};

/// How many lost races are tolerated before giving up: every create racing at once on
/// this node (a node brought back up starts tens of pods) or on others may take the VMID
/// offered, and each takes one.
pub const ATTEMPTS: usize = 128;

/// Finds a VMID in `range` and runs `create` on it until one succeeds. `next_id(want)`
/// is `pvesh get /cluster/nextid [--vmid want]`; `create(vmid)` is `pct create`.
pub fn allocate(
    range: VmidRange,
    mut next_id: impl FnMut(Option<Vmid>) -> CallResult<Vmid>,
    mut create: impl FnMut(Vmid) -> CallResult<()>,
) -> CallResult<Vmid> {
    let whole = range == VmidRange::default();
    let mut candidate = if whole { None } else { Some(range.first()) };
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let vmid = match next_id(candidate) {
            Ok(vmid) => vmid,
            // `--vmid N` of a taken N: try the next one in the range.
            Err(e) if taken(&e) => {
                candidate = Some(next_in(range, candidate, &e)?);
                last_error = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        if !range.contains(vmid) {
            return Err(out_of_range(range, vmid));
        }
        match create(vmid) {
            Ok(()) => return Ok(vmid),
            Err(e) if taken(&e) => {
                tracing::debug!("VMID {vmid} was taken meanwhile: {e}");
                candidate = if whole {
                    None
                } else {
                    Some(next_in(range, Some(vmid), &e)?)
                };
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| out_of_range(range, range.last())))
}

fn taken(e: &CallError) -> bool {
    matches!(
        e.pct(),
        Some(PctError::VmidTakenByCt { .. } | PctError::VmidTakenByVm { .. })
    )
}

fn next_in(range: VmidRange, current: Option<Vmid>, e: &CallError) -> CallResult<Vmid> {
    current
        .and_then(|v| range.after(v))
        .ok_or_else(|| CallError::Output {
            command: "pvesh get /cluster/nextid".into(),
            detail: format!("every VMID of the configured range {range} is taken (last: {e})"),
        })
}

fn out_of_range(range: VmidRange, vmid: Vmid) -> CallError {
    CallError::Output {
        command: "pvesh get /cluster/nextid".into(),
        detail: format!("no free VMID in the configured range {range} (pvesh offered {vmid})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u32) -> Vmid {
        Vmid::new(n).unwrap()
    }

    fn taken_error(vmid: u32) -> CallError {
        CallError::Pct {
            command: "pct create".into(),
            status: "exit status 255".into(),
            error: PctError::VmidTakenByCt {
                vmid: vmid.to_string(),
                node: "pve2".into(),
            },
        }
    }

    #[test]
    fn a_vmid_taken_by_another_node_is_retried() {
        let mut offered = vec![v(101), v(100)];
        let mut tried = Vec::new();
        let vmid = allocate(
            VmidRange::default(),
            |_| Ok(offered.pop().unwrap()),
            |vmid| {
                tried.push(vmid.get());
                if vmid.get() == 100 {
                    Err(taken_error(100))
                } else {
                    Ok(())
                }
            },
        )
        .unwrap();
        assert_eq!(vmid.get(), 101);
        assert_eq!(tried, [100, 101]);
    }

    #[test]
    fn a_reserved_range_is_walked_with_vmid_hints() {
        let range = VmidRange::new(v(9000), v(9002)).unwrap();
        let mut asked = Vec::new();
        let vmid = allocate(
            range,
            |want| {
                let want = want.unwrap();
                asked.push(want.get());
                if want.get() < 9002 {
                    Err(CallError::Pct {
                        command: "pvesh".into(),
                        status: "exit status 255".into(),
                        error: PctError::VmidTakenByVm {
                            vmid: want.to_string(),
                            node: String::new(),
                        },
                    })
                } else {
                    Ok(want)
                }
            },
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(vmid.get(), 9002);
        assert_eq!(asked, [9000, 9001, 9002]);
        // Nothing left: an error that names the range.
        let err = allocate(range, |_| Err(taken_error(9002)), |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("9000..=9002"), "{err}");
    }

    #[test]
    fn other_errors_stop_at_once() {
        let err = allocate(
            VmidRange::default(),
            |_| Ok(v(100)),
            |_| {
                Err(CallError::Pct {
                    command: "pct create".into(),
                    status: "exit status 255".into(),
                    error: PctError::NoStorage {
                        storage: "x".into(),
                    },
                })
            },
        )
        .unwrap_err();
        assert!(matches!(err.pct(), Some(PctError::NoStorage { .. })));
    }
}
