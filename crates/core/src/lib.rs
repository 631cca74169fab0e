//! The heart of raftsched: the scheduler state machine and the pure policies the leader
//! plans with.
//!
//! - [`state`]: tasks, workers, queues, schedules and workflows as one deterministic state
//!   ([`state::SchedulerState`]), changed only by applying a [`state::Command`]; its limits
//!   ([`state::limits`]), snapshot image and digest.
//! - [`scheduling`]: fair share across queues and placement of tasks on workers, as pure
//!   functions of their inputs and a seed.
//!
//! Architecture invariant: this crate does no I/O, reads no clock and draws no random
//! number; its dependencies are serde, thiserror and postcard (the canonical byte form of
//! commands and snapshots), which Cargo enforces. Time, seeds and ids arrive inside
//! commands, decided by the leader, so the same log gives the same state on every node.
//!
//! Deliberately absent: Raft, storage, networking, async, cron evaluation (the server
//! computes occurrence times and writes them into commands).

pub mod scheduling;
pub mod state;
