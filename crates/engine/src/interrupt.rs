//! SIGINT, SIGTERM and SIGHUP during `create`: noted instead of killing proxcage halfway,
//! so that `create` can finish the backend step it is in, undo everything, and exit with
//! an error. Without this a signal would leave a record stuck in `creating` and, for the
//! runc and crun backends, a container the caller never heard of.
//!
//! While a backend's child runs (runc, crun), proxcage's signal relay takes these signals
//! instead (passing SIGTERM and SIGHUP on to the child, which then fails); it remembers
//! them, and `create` undoes just the same.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

const DEFERRED: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

extern "C" fn note(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe. A wait for a container's lock sees it and
    // gives up.
    proxcage_process::note_signal(signal);
}

/// While alive, the deferred signals are noted rather than acted on; dropping it restores
/// what was there before.
#[derive(Debug)]
pub(crate) struct Deferred {
    previous: Vec<(Signal, SigAction)>,
    on: bool,
}

impl Deferred {
    /// With `on` false, nothing is installed and no signal is ever reported.
    pub(crate) fn install(on: bool) -> proxcage_core::Result<Deferred> {
        if !on {
            return Ok(Deferred {
                previous: Vec::new(),
                on,
            });
        }
        let action = SigAction::new(
            SigHandler::Handler(note),
            // Interrupted system calls (waiting for the backend's child) restart.
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut previous = Vec::new();
        for signal in DEFERRED {
            // SAFETY: `note` only stores into an atomic, which is async-signal-safe, and
            // the previous handler is put back when `Deferred` is dropped.
            let old = unsafe { sigaction(signal, &action) }.map_err(|e| {
                proxcage_core::Error::io("cannot set the handler of", signal.as_str(), e.into())
            })?;
            previous.push((signal, old));
        }
        Ok(Deferred { previous, on })
    }

    /// The deferred signal received since [`Deferred::install`], if any: by our handler,
    /// or by the relay that passes signals on to a backend's child while it runs.
    pub(crate) fn received(&self) -> Option<Signal> {
        if !self.on {
            return None;
        }
        let relayed = proxcage_process::last_relayed_signal().filter(|s| DEFERRED.contains(s));
        proxcage_process::noted_signal().or(relayed)
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        for (signal, old) in self.previous.drain(..) {
            // SAFETY: puts back the disposition that was there before `install`.
            let _ = unsafe { sigaction(signal, &old) };
        }
    }
}
