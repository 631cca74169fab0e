//! The console's JSON API: the client API's read calls, in the proto3 JSON mapping, for the
//! HTTP port's dashboard (`POST /api/v1/<Call>` with the request message as JSON).
//!
//! A call goes to the same service methods the gRPC port serves, with the caller's
//! credential, so it is checked, paged, budgeted and redacted exactly like the gRPC call:
//! the dashboard cannot see more than `raftsched task get` would show the same credential.
//! Only reads are served; every write stays on the gRPC port.
//!
//! Architecture invariant: the HTTP layer hands this module bytes and gets JSON text back;
//! protobuf types and `tonic::Status` stay in `grpc/`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Code;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::transport::CertificateDer;

use super::SchedulerService;
use super::admission::Transport;
use super::api::scheduler_server::Scheduler;
use super::identity::IdentityCache;
use crate::app::App;
use crate::network::NodeTls;

/// How long a console call may take: 5 s, the dashboard polls every 2 s and a call that
/// waits longer (a linearizable read with no leader) answers better as an error it shows.
pub const GATEWAY_DEADLINE: Duration = Duration::from_secs(5);

/// The read calls the console may make, by their gRPC method name.
pub const GATEWAY_CALLS: [&str; 6] = [
    "GetTask",
    "ListTasks",
    "ClusterStatus",
    "GetSchedule",
    "ListSchedules",
    "GetWorkflow",
];

/// Who a console call is made as.
#[derive(Debug, Clone)]
pub enum GatewayCaller {
    /// The port is plaintext (`--insecure`): nobody is checked.
    Plaintext,
    /// A TLS client certificate chain, verified against the cluster CA, leaf first.
    Certificate(Arc<Vec<CertificateDer<'static>>>),
    /// Signed in with the node's console token: a reader of every namespace.
    ConsoleToken,
}

/// A refused or failed call: its gRPC code's name (`NotFound`), the HTTP status that goes
/// with it, and the service's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub http_status: u16,
    pub code: String,
    pub message: String,
}

/// The console's calls into the node's client API.
pub struct Gateway {
    scheduler: SchedulerService,
}

impl Gateway {
    pub fn new(app: App, tls: Option<Arc<NodeTls>>) -> Gateway {
        Gateway {
            scheduler: SchedulerService::new(app).with_peer_tls(tls),
        }
    }

    /// Makes the call `method` with the JSON request `body`; the JSON response.
    pub async fn call(&self, method: &str, body: &[u8], caller: GatewayCaller) -> Result<String, GatewayError> {
        let call = async {
            let service = &self.scheduler;
            match method {
                "GetTask" => answer(service.get_task(request(body, &caller)?).await),
                "ListTasks" => answer(service.list_tasks(request(body, &caller)?).await),
                "ClusterStatus" => answer(service.cluster_status(request(body, &caller)?).await),
                "GetSchedule" => answer(service.get_schedule(request(body, &caller)?).await),
                "ListSchedules" => answer(service.list_schedules(request(body, &caller)?).await),
                "GetWorkflow" => answer(service.get_workflow(request(body, &caller)?).await),
                _ => Err(refusal(
                    Code::NotFound,
                    format!(
                        "the console API has no call {:?}; it serves {} (writes are on the gRPC port)",
                        method.chars().take(64).collect::<String>(),
                        GATEWAY_CALLS.join(", ")
                    ),
                )),
            }
        };
        match tokio::time::timeout(GATEWAY_DEADLINE, call).await {
            Ok(result) => result,
            Err(_) => Err(refusal(
                Code::DeadlineExceeded,
                format!("{method} took longer than {GATEWAY_DEADLINE:?}; is there a leader? (see /readyz)"),
            )),
        }
    }
}

/// The request message in `body` (JSON; empty means the default message), carrying how its
/// caller came in, as the gRPC port's listener would put it.
fn request<T: DeserializeOwned + Default>(body: &[u8], caller: &GatewayCaller) -> Result<Request<T>, GatewayError> {
    let message = if body.iter().all(u8::is_ascii_whitespace) {
        T::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            refusal(
                Code::InvalidArgument,
                format!("the request body is not this call's request message in JSON: {e}"),
            )
        })?
    };
    let mut request = Request::new(message);
    request.set_timeout(GATEWAY_DEADLINE);
    let transport = match caller {
        GatewayCaller::Plaintext => Transport::Plaintext,
        // One request per HTTP call here: a cache of its own, read once.
        GatewayCaller::Certificate(chain) => Transport::Tls(Some(Arc::clone(chain)), IdentityCache::default()),
        GatewayCaller::ConsoleToken => Transport::Console,
    };
    request.extensions_mut().insert(transport);
    Ok(request)
}

fn answer<T: Serialize>(result: Result<Response<T>, Status>) -> Result<String, GatewayError> {
    let response = result.map_err(|status| refusal(status.code(), status.message().to_string()))?;
    serde_json::to_string(response.get_ref())
        .map_err(|e| refusal(Code::Internal, format!("the response does not render as JSON: {e}")))
}

fn refusal(code: Code, message: String) -> GatewayError {
    GatewayError {
        http_status: http_status(code),
        code: format!("{code:?}"),
        message,
    }
}

/// The HTTP status of a gRPC code, as grpc-gateway maps them.
fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Cancelled => 499,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}
