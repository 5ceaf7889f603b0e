//! Where the signal relay takes the signals it blocked. On Linux they are read from a
//! signalfd, which the relay's wait polls beside the child's pidfd. Other systems
//! (FreeBSD) have neither: the signals are taken with `sigtimedwait`, and the wait, which
//! then has no descriptor to poll, looks again every few milliseconds.

use std::os::fd::RawFd;

use nix::sys::signal::SigSet;

#[cfg(target_os = "linux")]
pub(crate) struct Pending(nix::sys::signalfd::SignalFd);

#[cfg(target_os = "linux")]
impl Pending {
    pub(crate) fn new(set: &SigSet) -> nix::Result<Self> {
        use nix::sys::signalfd::{SfdFlags, SignalFd};
        SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map(Pending)
    }

    /// A signal of the set that is pending now, taken; `None` when there is none.
    pub(crate) fn take(&self) -> nix::Result<Option<i32>> {
        Ok(self.0.read_signal()?.map(|info| info.ssi_signo as i32))
    }

    /// A descriptor that becomes readable when a signal is pending.
    pub(crate) fn raw_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) struct Pending(SigSet);

#[cfg(not(target_os = "linux"))]
impl Pending {
    pub(crate) fn new(set: &SigSet) -> nix::Result<Self> {
        Ok(Pending(*set))
    }

    /// A signal of the set that is pending now, taken; `None` when there is none.
    pub(crate) fn take(&self) -> nix::Result<Option<i32>> {
        let now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid set, no siginfo wanted, a valid timeout.
        let signal = unsafe { libc::sigtimedwait(self.0.as_ref(), std::ptr::null_mut(), &now) };
        match signal {
            -1 => match nix::errno::Errno::last() {
                nix::errno::Errno::EAGAIN => Ok(None),
                e => Err(e),
            },
            n => Ok(Some(n)),
        }
    }

    /// No descriptor tells of pending signals here: poll skips a negative one.
    pub(crate) fn raw_fd(&self) -> RawFd {
        -1
    }
}
