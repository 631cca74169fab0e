//! The scheduler's replicated state: a pure, deterministic state machine.
//!
//! Architecture invariant: nothing in this module does I/O, reads a clock, draws a random
//! number or iterates a hash map. Time and every other choice arrive inside a
//! [`Command`], decided by the leader. The same log therefore yields the same state on
//! every node, which `crates/core/tests/state_cases/` checks from data files.

mod command;
pub mod limits;
pub mod namespace;
mod policy;
mod schedule;
mod scheduler_state;
mod task;
mod task_builder;
pub mod wire;
mod worker;

pub use command::AssignOutcome;
pub use command::AttemptReport;
pub use command::CancelOutcome;
pub use command::Command;
pub use command::CommandResponse;
pub use command::FireOutcome;
pub use command::PlacedOutcome;
pub use command::PurgeOutcome;
pub use command::PurgeUnit;
pub use command::StateError;
pub use command::StoppedAttempt;
pub use command::SubmitOutcome;
pub use command::WorkflowOutcome;
pub use policy::MAX_QUEUE_WEIGHT;
pub use policy::Placement;
pub use policy::QueuePolicy;
pub use policy::retry_delay_ms;
pub use schedule::MisfirePolicy;
pub use schedule::Occurrence;
pub use schedule::OccurrenceAction;
pub use schedule::OverlapPolicy;
pub use schedule::Recurrence;
pub use schedule::RunOutcome;
pub use schedule::Schedule;
pub use schedule::ScheduleRun;
pub use schedule::ScheduleSpec;
pub use schedule::Workflow;
pub use schedule::WorkflowId;
pub use schedule::WorkflowSpec;
pub use schedule::WorkflowTaskSpec;
pub use scheduler_state::ListFilter;
pub use scheduler_state::ListOrder;
pub use scheduler_state::MAX_LIST_SCANNED;
pub use scheduler_state::SchedulerState;
pub use scheduler_state::SnapshotDecodeError;
pub use scheduler_state::WorkflowStatus;
pub use scheduler_state::estimated_spec_bytes;
pub use scheduler_state::estimated_task_bytes;
pub use task::Attempt;
pub use task::AttemptOutcome;
pub use task::Links;
pub use task::Payload;
pub use task::Resources;
pub use task::Task;
pub use task::TaskId;
pub use task::TaskLinks;
pub use task::TaskOrigin;
pub use task::TaskSpec;
pub use task::TaskStatus;
pub use task_builder::TaskSpecBuilder;
pub use worker::Worker;
pub use worker::WorkerRegistration;
