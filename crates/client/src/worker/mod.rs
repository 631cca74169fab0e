//! The worker side: runs the tasks the leader assigns.

pub mod executor;
pub mod runtime;

pub use runtime::HandlerError;
pub use runtime::TaskContext;
pub use runtime::TaskHandler;
pub use runtime::Worker;
pub use runtime::WorkerOptions;
