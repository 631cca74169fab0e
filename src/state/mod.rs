//! The scheduler's replicated state: a pure, deterministic state machine.
//!
//! Architecture invariant: nothing in this module does I/O, reads a clock, draws a random
//! number or iterates a hash map. Time and every other choice arrive inside a
//! [`Command`], decided by the leader. The same log therefore yields the same state on
//! every node, which `tests/state_cases.rs` checks from data files.

mod command;
pub mod limits;
mod scheduler_state;
mod task;
mod worker;

pub use command::AssignOutcome;
pub use command::AttemptReport;
pub use command::CancelOutcome;
pub use command::Command;
pub use command::CommandResponse;
pub use command::StateError;
pub use command::SubmitOutcome;
pub use scheduler_state::ListFilter;
pub use scheduler_state::SchedulerState;
pub use scheduler_state::SnapshotDecodeError;
pub use task::Attempt;
pub use task::AttemptOutcome;
pub use task::Payload;
pub use task::Resources;
pub use task::Task;
pub use task::TaskId;
pub use task::TaskSpec;
pub use task::TaskStatus;
pub use worker::Worker;
pub use worker::WorkerRegistration;
