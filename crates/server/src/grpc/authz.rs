//! The role policy of the client port, default deny: which [`Role`] may make which call
//! (ARCHITECTURE.md, Security model, has the table). A pure function of the caller and the
//! call, so one table-driven test covers every pair; the services ask it once at the top of
//! every handler ([`check`]).

use tonic::Request;
use tonic::Status;

use crate::grpc::identity::Identity;
use crate::grpc::identity::Namespaces;
use crate::grpc::identity::Role;
use crate::grpc::identity::identity_of;
use raftsched_core::state::limits::shown;

/// Every RPC of the client port (`raftsched.v1.Scheduler` and `raftsched.v1.Workers`). The
/// worker protocol's calls carry the worker id the request names, since a worker may act
/// only as the id its credential names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rpc<'a> {
    SubmitTask,
    SubmitTasks,
    GetTask,
    ListTasks,
    CancelTask,
    ClusterStatus,
    NodeStatus,
    SetQueuePolicy,
    ListQueues,
    TransferLeader,
    AddNode,
    RemoveNode,
    SaveSnapshot,
    CreateSchedule,
    UpdateSchedule,
    GetSchedule,
    ListSchedules,
    PauseSchedule,
    ResumeSchedule,
    DeleteSchedule,
    TriggerSchedule,
    SubmitWorkflow,
    GetWorkflow,
    SubmitBroadcast,
    RegisterWorker { worker_id: &'a str },
    Attach { worker_id: &'a str },
    Heartbeat { worker_id: &'a str },
    ReportResult { worker_id: &'a str },
    DrainWorker { worker_id: &'a str },
    ListWorkers,
}

/// What kind of call an RPC is, which is what the roles are defined over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Reads of tasks, workflows, schedules, queues, workers and status.
    Read,
    /// New work and its withdrawal: tasks, batches, workflows, broadcasts, schedules (a
    /// schedule is recurring submission; pausing or deleting one is its cancel).
    Submit,
    /// Membership, leadership and queue policy: the cluster's shape and shares.
    Operate,
    /// The worker protocol, acting as the worker named.
    Worker,
    /// What nodes call on each other's client port: `NodeStatus` (peer status for
    /// `ClusterStatus`, and the alarm poll). No other client-port RPC is called by a node.
    Peer,
}

impl Rpc<'_> {
    /// The RPC's name as in the .proto, for messages.
    pub(crate) fn name(&self) -> &'static str {
        self.describe().0
    }

    fn kind(&self) -> Kind {
        self.describe().1
    }

    /// The worker id a worker-protocol call names.
    fn worker_id(&self) -> Option<&str> {
        match self {
            Rpc::RegisterWorker { worker_id }
            | Rpc::Attach { worker_id }
            | Rpc::Heartbeat { worker_id }
            | Rpc::ReportResult { worker_id }
            | Rpc::DrainWorker { worker_id } => Some(worker_id),
            _ => None,
        }
    }

    fn describe(&self) -> (&'static str, Kind) {
        match self {
            Rpc::SubmitTask => ("SubmitTask", Kind::Submit),
            Rpc::SubmitTasks => ("SubmitTasks", Kind::Submit),
            Rpc::GetTask => ("GetTask", Kind::Read),
            Rpc::ListTasks => ("ListTasks", Kind::Read),
            Rpc::CancelTask => ("CancelTask", Kind::Submit),
            Rpc::ClusterStatus => ("ClusterStatus", Kind::Read),
            // Read by every role that reads, and the one call nodes make on each other.
            Rpc::NodeStatus => ("NodeStatus", Kind::Peer),
            Rpc::SetQueuePolicy => ("SetQueuePolicy", Kind::Operate),
            Rpc::ListQueues => ("ListQueues", Kind::Read),
            Rpc::TransferLeader => ("TransferLeader", Kind::Operate),
            Rpc::AddNode => ("AddNode", Kind::Operate),
            Rpc::RemoveNode => ("RemoveNode", Kind::Operate),
            // A backup holds every task of every namespace, environments unredacted; the
            // handler also requires a credential of every namespace.
            Rpc::SaveSnapshot => ("SaveSnapshot", Kind::Operate),
            Rpc::CreateSchedule => ("CreateSchedule", Kind::Submit),
            Rpc::UpdateSchedule => ("UpdateSchedule", Kind::Submit),
            Rpc::GetSchedule => ("GetSchedule", Kind::Read),
            Rpc::ListSchedules => ("ListSchedules", Kind::Read),
            Rpc::PauseSchedule => ("PauseSchedule", Kind::Submit),
            Rpc::ResumeSchedule => ("ResumeSchedule", Kind::Submit),
            Rpc::DeleteSchedule => ("DeleteSchedule", Kind::Submit),
            Rpc::TriggerSchedule => ("TriggerSchedule", Kind::Submit),
            Rpc::SubmitWorkflow => ("SubmitWorkflow", Kind::Submit),
            Rpc::GetWorkflow => ("GetWorkflow", Kind::Read),
            Rpc::SubmitBroadcast => ("SubmitBroadcast", Kind::Submit),
            Rpc::RegisterWorker { .. } => ("RegisterWorker", Kind::Worker),
            Rpc::Attach { .. } => ("Attach", Kind::Worker),
            Rpc::Heartbeat { .. } => ("Heartbeat", Kind::Worker),
            Rpc::ReportResult { .. } => ("ReportResult", Kind::Worker),
            Rpc::DrainWorker { .. } => ("DrainWorker", Kind::Worker),
            Rpc::ListWorkers => ("ListWorkers", Kind::Read),
        }
    }
}

/// What an allowed call may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    /// Replace every environment value of every task in the answer by
    /// [`REDACTED_ENV_VALUE`] (keys kept): a reader sees which variables a task sets, not
    /// their values, which are where secrets go.
    pub(crate) redact_env: bool,
    /// The namespaces the call may act in and see. A request naming another is
    /// PERMISSION_DENIED ([`Access::require_namespace`]); a task, workflow or schedule of
    /// another, asked for by id, is NOT_FOUND like one that does not exist
    /// ([`Access::sees`]): its existence is not told.
    pub(crate) namespaces: Namespaces,
    /// Who, for messages: `submitter alice`.
    pub(crate) caller: String,
}

impl Access {
    /// A plaintext server's: everything.
    pub(crate) fn full() -> Access {
        Access {
            redact_env: false,
            namespaces: Namespaces::All,
            caller: "this caller".into(),
        }
    }

    pub(crate) fn sees(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    /// PERMISSION_DENIED unless the caller acts in `namespace`, naming both and the remedy.
    pub(crate) fn require_namespace(&self, rpc: &'static str, namespace: &str) -> Result<(), Status> {
        if self.sees(namespace) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "{} acts in {}, and this {rpc} names namespace {}: use a credential of that namespace \
             (`raftsched certs issue --role R --name N --namespaces {}`) or --namespace one of yours",
            self.caller,
            self.namespaces,
            shown(namespace),
            namespace
        )))
    }
}

/// What a redacted environment value reads as.
pub(crate) const REDACTED_ENV_VALUE: &str = "<redacted>";

/// A refused call: PERMISSION_DENIED with a message naming the role, the RPC and what to do.
/// No secret can be in it: it names only the role, the RPC and worker ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Denied {
    #[error("role {role} may not call {rpc}; use {remedy}")]
    Role {
        role: Role,
        rpc: &'static str,
        remedy: &'static str,
    },
    #[error(
        "this worker credential names worker {}, but the {rpc} request names worker {}; a worker may act only \
         as the id its certificate's CN names: use that worker's own credential, or issue one with \
         `raftsched certs issue --role worker --name <id>`",
        shown(credential),
        shown(requested)
    )]
    OtherWorker {
        rpc: &'static str,
        credential: String,
        requested: String,
    },
}

impl From<Denied> for Status {
    fn from(denied: Denied) -> Status {
        Status::permission_denied(denied.to_string())
    }
}

/// Whether `identity` may call `rpc`. `None` is a plaintext (`--insecure`) server: every
/// call is allowed, as before credentials existed.
pub(crate) fn authorize(identity: Option<&Identity>, rpc: Rpc<'_>) -> Result<Access, Denied> {
    let Some(identity) = identity else {
        return Ok(Access::full());
    };
    let kind = rpc.kind();
    let allowed = match identity.role {
        Role::Admin => matches!(kind, Kind::Read | Kind::Submit | Kind::Operate | Kind::Peer),
        Role::Submitter => matches!(kind, Kind::Read | Kind::Submit | Kind::Peer),
        Role::Reader => matches!(kind, Kind::Read | Kind::Peer),
        Role::Worker => kind == Kind::Worker,
        Role::Node => kind == Kind::Peer,
    };
    if !allowed {
        return Err(Denied::Role {
            role: identity.role,
            rpc: rpc.name(),
            remedy: remedy_for(kind),
        });
    }
    if let Some(requested) = rpc.worker_id()
        && requested != identity.name
    {
        return Err(Denied::OtherWorker {
            rpc: rpc.name(),
            credential: identity.name.clone(),
            requested: requested.to_string(),
        });
    }
    Ok(Access {
        redact_env: identity.role == Role::Reader,
        namespaces: identity.namespaces.clone(),
        caller: format!("{} {}", identity.role, shown(&identity.name)),
    })
}

/// The credential that may make a call of this kind.
fn remedy_for(kind: Kind) -> &'static str {
    match kind {
        Kind::Operate => "an admin credential",
        Kind::Submit => "a submitter or admin credential",
        Kind::Read | Kind::Peer => "a reader, submitter or admin credential",
        Kind::Worker => "the worker's own credential (role worker, CN = its worker id)",
    }
}

/// The one call at the top of every client-port handler: who calls (UNAUTHENTICATED when a
/// TLS caller's certificate names no identity) and whether it may (PERMISSION_DENIED).
pub(crate) fn check<T>(request: &Request<T>, rpc: Rpc<'_>) -> Result<Access, Status> {
    let identity = identity_of(request)?;
    authorize(identity.as_ref(), rpc).map_err(Status::from)
}

#[cfg(test)]
mod tests;
