//! The fault kinds and the seeded schedule a chaos run follows.
//!
//! The schedule is a pure function of the seed: kinds are drawn from shuffled rounds of the
//! enabled kinds (so every kind comes up once in each round of `kinds.len()` faults), and
//! each fault gets a pause before it, a hold time, and a number that picks its target among
//! the candidates the run finds at that moment (the leader is whoever leads then). Replaying
//! a seed replays this schedule; the timing of the processes themselves is not replayable.

use std::time::Duration;

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Deserialize;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the leader; restart it on its data dir after the hold.
    KillLeader,
    /// With the disk made slow by a noisy neighbour for the hold, SIGKILL the leader and start
    /// it again at once: it may be back before anyone else stands for election, and resume
    /// leading in its old term, having lost writes it had not yet made durable.
    CrashRestartLeader,
    /// SIGKILL one follower; restart it after the hold.
    KillFollower,
    /// SIGSTOP the leader for longer than the election timeout, then SIGCONT.
    PauseLeader,
    /// Blackhole every link to and from the leader: it is alone in the minority.
    IsolateLeader,
    /// Blackhole only the leader's outgoing links: it hears the others, they do not hear it.
    OneWayLeader,
    /// SIGTERM a node (a leader hands over first), wait for it to exit, start it again.
    RestartNode,
    /// SIGKILL a worker; start a new process with the same id (a new session).
    KillWorker,
    /// Add latency to every peer link for the hold.
    SlowLinks,
    /// Close every open peer connection at once (TCP RST); peers reconnect.
    ResetLinks,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::KillLeader,
        FaultKind::CrashRestartLeader,
        FaultKind::KillFollower,
        FaultKind::PauseLeader,
        FaultKind::IsolateLeader,
        FaultKind::OneWayLeader,
        FaultKind::RestartNode,
        FaultKind::KillWorker,
        FaultKind::SlowLinks,
        FaultKind::ResetLinks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "kill-leader",
            FaultKind::CrashRestartLeader => "crash-restart-leader",
            FaultKind::KillFollower => "kill-follower",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::IsolateLeader => "isolate-leader",
            FaultKind::OneWayLeader => "one-way-leader",
            FaultKind::RestartNode => "restart-node",
            FaultKind::KillWorker => "kill-worker",
            FaultKind::SlowLinks => "slow-links",
            FaultKind::ResetLinks => "reset-links",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "SIGKILL the leader, restart it on its data dir after the hold",
            FaultKind::CrashRestartLeader => {
                "slow the disk, SIGKILL the leader and restart it at once (it may resume leading)"
            }
            FaultKind::KillFollower => "SIGKILL a follower, restart it after the hold",
            FaultKind::PauseLeader => "SIGSTOP the leader for longer than the election timeout, then SIGCONT",
            FaultKind::IsolateLeader => "blackhole every link to and from the leader (it is the minority)",
            FaultKind::OneWayLeader => "blackhole the leader's outgoing links only",
            FaultKind::RestartNode => "SIGTERM a node (a leader hands over), wait for it to exit, start it",
            FaultKind::KillWorker => "SIGKILL a worker, start a new process with the same id",
            FaultKind::SlowLinks => "add latency to every peer link",
            FaultKind::ResetLinks => "close every peer connection with a TCP reset",
        }
    }

    /// Faults that take the leader away (or may, for a restart: when it hits the leader);
    /// failover times are measured from these.
    pub fn targets_leader(self) -> bool {
        matches!(
            self,
            FaultKind::KillLeader
                | FaultKind::CrashRestartLeader
                | FaultKind::PauseLeader
                | FaultKind::IsolateLeader
                | FaultKind::OneWayLeader
        )
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;

    fn from_str(text: &str) -> Result<FaultKind, String> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == text).ok_or_else(|| {
            let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown fault kind {text:?}; known: {}", known.join(", "))
        })
    }
}

/// One fault of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFault {
    pub kind: FaultKind,
    /// Quiet time after the cluster recovered from the previous fault.
    pub pause_before: Duration,
    /// How long the fault lasts before it is healed (kill: until the restart).
    pub hold: Duration,
    /// Picks the target among the candidates found when the fault fires (index modulo their
    /// number), and the delay of slow links.
    pub pick: u64,
}

/// Timing the schedule needs to know about.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleTiming {
    /// The nodes' maximum election timeout: a pause must outlast it.
    pub election_max: Duration,
}

/// `count` faults of `kinds` (all kinds when empty), from `seed`.
pub fn plan(seed: u64, kinds: &[FaultKind], count: usize, timing: ScheduleTiming) -> Vec<PlannedFault> {
    let kinds: Vec<FaultKind> = if kinds.is_empty() {
        FaultKind::ALL.to_vec()
    } else {
        kinds.to_vec()
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut faults = Vec::with_capacity(count);
    while faults.len() < count {
        let mut round = kinds.clone();
        round.shuffle(&mut rng);
        for kind in round {
            if faults.len() == count {
                break;
            }
            faults.push(PlannedFault {
                kind,
                pause_before: Duration::from_millis(rng.random_range(500..=2000)),
                hold: hold_for(kind, &mut rng, timing),
                pick: rng.random(),
            });
        }
    }
    faults
}

fn hold_for(kind: FaultKind, rng: &mut StdRng, timing: ScheduleTiming) -> Duration {
    let millis = match kind {
        FaultKind::KillLeader | FaultKind::KillFollower => rng.random_range(300..=2000),
        // Longer than the election timeout, so the others elect a leader meanwhile.
        FaultKind::PauseLeader => timing.election_max.as_millis() as u64 + rng.random_range(300..=1500),
        FaultKind::IsolateLeader | FaultKind::OneWayLeader => rng.random_range(1000..=3000),
        FaultKind::RestartNode => rng.random_range(0..=500),
        // How long the disk is slowed before the crash.
        FaultKind::CrashRestartLeader => rng.random_range(300..=1000),
        FaultKind::KillWorker => rng.random_range(100..=2000),
        FaultKind::SlowLinks => rng.random_range(1000..=3000),
        FaultKind::ResetLinks => 0,
    };
    Duration::from_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: ScheduleTiming = ScheduleTiming {
        election_max: Duration::from_millis(300),
    };

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        assert_eq!(plan(7, &[], 30, TIMING), plan(7, &[], 30, TIMING));
        assert_ne!(plan(7, &[], 30, TIMING), plan(8, &[], 30, TIMING));
    }

    #[test]
    fn every_round_has_every_kind() {
        let faults = plan(42, &[], FaultKind::ALL.len() * 3, TIMING);
        for round in faults.chunks(FaultKind::ALL.len()) {
            let mut kinds: Vec<FaultKind> = round.iter().map(|f| f.kind).collect();
            kinds.sort();
            assert_eq!(kinds, FaultKind::ALL.to_vec());
        }
    }

    #[test]
    fn pauses_outlast_the_election_timeout() {
        for fault in plan(3, &[FaultKind::PauseLeader], 50, TIMING) {
            assert!(fault.hold > TIMING.election_max);
        }
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.as_str().parse::<FaultKind>(), Ok(kind));
        }
        assert!("nope".parse::<FaultKind>().is_err());
    }
}
