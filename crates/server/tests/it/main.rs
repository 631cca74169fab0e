//! The server's integration tests, one binary (one link instead of eleven) with a module per
//! area. Every test runs in-process clusters from raftsched-testkit over real tonic on
//! ephemeral ports. Run one area with `cargo test -p raftsched-server --test it <area>::`.
//! The failpoint tests are a binary of their own (tests/failpoints.rs): their failpoints are
//! process-global.

mod adversarial;
mod bad_input;
mod cluster;
mod deep_workflow;
mod dispatch;
mod failover;
mod output_limits;
mod response_budgets;
mod schedules;
mod transport_limits;
