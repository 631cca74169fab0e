//! `grpc.health.v1.Health` on the client port: SERVING exactly while the node is ready
//! (`observe::readiness`, the rule `/readyz` answers by), for the whole server (`""`) and
//! for each service of the API, so a Kubernetes gRPC probe and `grpc_health_probe` agree
//! with `/readyz`.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::grpc::api::scheduler_server::SchedulerServer;
use crate::grpc::api::workers_server::WorkersServer;
use crate::grpc::scheduler_service::SchedulerService;
use crate::grpc::workers_service::WorkersService;
use crate::observe::watch::Readiness;

/// The names a health check may ask about: the whole server, and each API service.
const CHECKED_SERVICES: [&str; 3] = [
    "",
    <SchedulerServer<SchedulerService> as NamedService>::NAME,
    <WorkersServer<WorkersService> as NamedService>::NAME,
];

/// Keeps `reporter` in step with `readiness` until `shutdown` is cancelled or the
/// readiness watch ends (the node's observation loop stopped: then not serving).
pub(super) async fn follow(
    reporter: HealthReporter,
    mut readiness: watch::Receiver<Readiness>,
    shutdown: CancellationToken,
) {
    loop {
        let status = match &*readiness.borrow_and_update() {
            Ok(()) => ServingStatus::Serving,
            Err(_) => ServingStatus::NotServing,
        };
        for service in CHECKED_SERVICES {
            reporter.set_service_status(service, status).await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = readiness.changed() => if changed.is_err() {
                break;
            },
        }
    }
    for service in CHECKED_SERVICES {
        reporter.set_service_status(service, ServingStatus::NotServing).await;
    }
}
