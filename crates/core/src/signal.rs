//! Signals as `kill` accepts them: `9`, `KILL`, `SIGKILL`, `sigkill`, `37`, `SIGRTMIN+3`,
//! `RTMAX-1`.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Standard signal names (without `SIG`) and their numbers on this host (three are Linux's
/// own).
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    #[cfg(target_os = "linux")]
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    #[cfg(target_os = "linux")]
    ("POLL", libc::SIGPOLL),
    #[cfg(target_os = "linux")]
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The first real-time signal as glibc (and containerd's signal parser) number it: 34.
pub const SIGRTMIN: i32 = 34;
/// The last signal number on Linux.
pub const SIGRTMAX: i32 = 64;

/// A signal number in `0..=64`. 0 is accepted, as `kill(2)` accepts it: it checks that the
/// process exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    pub const TERM: Signal = Signal(libc::SIGTERM);
    pub const KILL: Signal = Signal(libc::SIGKILL);

    pub fn from_number(n: i32) -> Result<Self, Error> {
        if (0..=SIGRTMAX).contains(&n) {
            Ok(Signal(n))
        } else {
            Err(Error::InvalidSignal {
                input: n.to_string(),
                reason: "signal numbers go from 0 to 64",
            })
        }
    }

    pub fn number(self) -> i32 {
        self.0
    }
}

impl Default for Signal {
    /// `kill` without a signal sends SIGTERM.
    fn default() -> Self {
        Signal::TERM
    }
}

impl FromStr for Signal {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        if let Ok(n) = input.parse::<i32>() {
            return Signal::from_number(n);
        }
        let unknown = || Error::InvalidSignal {
            input: input.to_string(),
            reason: "not a signal name or number (try TERM, SIGKILL, 9 or SIGRTMIN+3)",
        };
        let upper = input.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some(&(_, n)) = NAMES.iter().find(|(known, _)| *known == name) {
            return Ok(Signal(n));
        }
        let realtime = |base: i32, rest: &str, sign: i32| -> Result<Signal, Error> {
            let offset = if rest.is_empty() {
                0
            } else {
                rest.parse::<i32>().map_err(|_| unknown())?
            };
            let n = base + sign * offset;
            if (SIGRTMIN..=SIGRTMAX).contains(&n) {
                Ok(Signal(n))
            } else {
                Err(Error::InvalidSignal {
                    input: input.to_string(),
                    reason: "real-time signals go from SIGRTMIN (34) to SIGRTMAX (64)",
                })
            }
        };
        if let Some(rest) = name.strip_prefix("RTMIN") {
            return match rest.strip_prefix('+') {
                Some(offset) if !offset.is_empty() => realtime(SIGRTMIN, offset, 1),
                None if rest.is_empty() => realtime(SIGRTMIN, "", 1),
                _ => Err(unknown()),
            };
        }
        if let Some(rest) = name.strip_prefix("RTMAX") {
            return match rest.strip_prefix('-') {
                Some(offset) if !offset.is_empty() => realtime(SIGRTMAX, offset, -1),
                None if rest.is_empty() => realtime(SIGRTMAX, "", -1),
                _ => Err(unknown()),
            };
        }
        Err(unknown())
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == self.0) {
            return write!(f, "SIG{name}");
        }
        match self.0 {
            0 => f.write_str("0"),
            n if n == SIGRTMIN => f.write_str("SIGRTMIN"),
            n if n > SIGRTMIN => write!(f, "SIGRTMIN+{}", n - SIGRTMIN),
            n => write!(f, "signal {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sig(s: &str) -> i32 {
        s.parse::<Signal>().unwrap().number()
    }

    #[test]
    fn names_with_and_without_sig_and_any_case() {
        assert_eq!(sig("KILL"), 9);
        assert_eq!(sig("SIGKILL"), 9);
        assert_eq!(sig("sigkill"), 9);
        assert_eq!(sig("term"), 15);
        assert_eq!(sig("9"), 9);
        assert_eq!(sig("SIGWINCH"), 28);
        assert_eq!(Signal::default().number(), 15);
    }

    #[test]
    fn real_time_signals() {
        assert_eq!(sig("37"), 37);
        assert_eq!(sig("SIGRTMIN"), 34);
        assert_eq!(sig("SIGRTMIN+3"), 37);
        assert_eq!(sig("RTMIN+3"), 37);
        assert_eq!(sig("SIGRTMAX"), 64);
        assert_eq!(sig("SIGRTMAX-2"), 62);
        assert_eq!(Signal::from_number(37).unwrap().to_string(), "SIGRTMIN+3");
    }

    #[test]
    fn refuses_what_is_not_a_signal() {
        for bad in [
            "", "65", "-1", "SIGFOO", "RTMIN+31", "RTMIN+", "RTMIN-1", "RTMAX+1", "SIG",
        ] {
            let err = bad.parse::<Signal>().unwrap_err().to_string();
            assert!(err.contains("invalid signal"), "{bad}: {err}");
        }
    }

    proptest! {
        #[test]
        fn display_parses_back(n in 1i32..=64) {
            let s = Signal::from_number(n).unwrap();
            let shown = s.to_string();
            if !shown.starts_with("signal ") {
                prop_assert_eq!(shown.parse::<Signal>().unwrap(), s);
            }
        }
    }
}
