//! The worker side: runs the tasks the leader assigns.

pub mod execution;
pub mod executor;
pub mod runtime;
pub mod stop;

pub use execution::ExecutionOptions;
pub use runtime::HandlerError;
pub use runtime::TaskContext;
pub use runtime::TaskHandler;
pub use runtime::Worker;
pub use runtime::WorkerOptions;
