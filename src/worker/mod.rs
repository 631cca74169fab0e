//! The worker side: runs the tasks the leader assigns.

pub mod executor;
