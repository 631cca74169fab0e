//! [`Stop`]: how the executor stopped a timed-out or cancelled command, and the signals it
//! sends to the command's process group.

use std::fmt;
use std::time::Duration;

/// The signal that ended a stopped command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// It ended within the grace after SIGTERM (on the signal, or by its own exit in a trap).
    Term,
    /// It was still running when the grace ran out (or the grace was zero).
    Kill,
}

impl StopSignal {
    pub fn number(self) -> i32 {
        match self {
            StopSignal::Term => libc::SIGTERM,
            StopSignal::Kill => libc::SIGKILL,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Kill => "SIGKILL",
        }
    }
}

/// How a timed-out or cancelled command was stopped: the signal that ended its main process,
/// and how long after the first signal it ended. Whatever else of its process group still ran
/// then was SIGKILLed at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    pub signal: StopSignal,
    /// From the first signal (SIGTERM, or SIGKILL with no grace) to the main process's end.
    pub after: Duration,
    /// The grace it had between SIGTERM and SIGKILL (`--kill-grace`).
    pub grace: Duration,
}

impl fmt::Display for Stop {
    /// For the attempt's error, e.g. "SIGTERM ended it 12ms later (grace 3s)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let after = shown_ms(self.after);
        match (self.signal, self.grace.is_zero()) {
            (StopSignal::Term, _) => write!(f, "SIGTERM ended it {after} later (grace {:?})", self.grace),
            (StopSignal::Kill, true) => write!(f, "SIGKILL ended it at once (grace 0s)"),
            (StopSignal::Kill, false) => write!(
                f,
                "it ignored SIGTERM for the {:?} grace; SIGKILL ended it {after} after SIGTERM",
                self.grace
            ),
        }
    }
}

/// Milliseconds are the precision that means something to a reader of a task's error.
fn shown_ms(duration: Duration) -> String {
    match u64::try_from(duration.as_millis()).unwrap_or(u64::MAX) {
        0 => "<1ms".into(),
        ms => format!("{:?}", Duration::from_millis(ms)),
    }
}

/// Sends `signal` to every process in the group `pgid`. Errors (ESRCH: the group is already
/// gone) need no handling: the caller then waits for, or has reaped, the leader.
///
/// The leader may already be reaped here; its pgid cannot be reused while any group member
/// lives, and if none does, ESRCH is the expected result.
pub(crate) fn signal_group(pgid: libc::pid_t, signal: StopSignal) {
    // killpg(0) or a negative pgid would target the worker's own group.
    if pgid <= 0 {
        return;
    }
    // SAFETY: killpg only sends a signal; it takes plain integers and touches no memory of
    // ours. pgid > 0 is the group created for our own child.
    unsafe {
        libc::killpg(pgid, signal.number());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_read_as_what_happened() {
        let term = Stop {
            signal: StopSignal::Term,
            after: Duration::from_micros(12_345),
            grace: Duration::from_secs(3),
        };
        assert_eq!(term.to_string(), "SIGTERM ended it 12ms later (grace 3s)");
        let quick = Stop {
            after: Duration::from_micros(999),
            ..term
        };
        assert_eq!(quick.to_string(), "SIGTERM ended it <1ms later (grace 3s)");
        let kill = Stop {
            signal: StopSignal::Kill,
            after: Duration::from_millis(3001),
            grace: Duration::from_secs(3),
        };
        assert_eq!(
            kill.to_string(),
            "it ignored SIGTERM for the 3s grace; SIGKILL ended it 3.001s after SIGTERM"
        );
        let at_once = Stop {
            signal: StopSignal::Kill,
            after: Duration::from_micros(300),
            grace: Duration::ZERO,
        };
        assert_eq!(at_once.to_string(), "SIGKILL ended it at once (grace 0s)");
        assert_eq!((StopSignal::Term.number(), StopSignal::Kill.number()), (15, 9));
    }
}
