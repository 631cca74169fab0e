//! The server's integration tests, one binary (one link instead of eleven) with a module per
//! area. Every test runs in-process clusters from raftsched-testkit over real tonic on
//! ephemeral ports. Run one area with `cargo test -p raftsched-server --test it <area>::`.
//! Two areas are binaries of their own, because what they test is process-global: the
//! failpoint tests (tests/failpoints.rs: a failpoint fires in whichever node of the process
//! reaches it) and the transport limits (tests/transport_limits.rs: they bound the growth
//! of this process's resident set, which tests running beside them would add to).

mod adversarial;
mod authz;
mod bad_input;
mod cluster;
mod console;
mod deep_workflow;
mod dispatch;
mod failover;
mod namespaces;
mod observability;
mod output_limits;
mod ports;
mod quotas;
mod response_budgets;
mod retention;
mod schedules;
mod trace_context;
mod worker_hygiene;
