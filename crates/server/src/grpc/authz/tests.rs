//! The role policy, pair by pair: every (role, RPC) of the client port against the table
//! below, which is the one in ARCHITECTURE.md (Security model).

use super::*;

/// Who may call what. Columns: node, admin, submitter, reader, worker; a letter allows, `-`
/// denies. Worker-protocol calls are allowed to a worker only as its own id (tested apart).
const TABLE: &[(&str, &str)] = &[
    ("SubmitTask", "-AS--"),
    ("SubmitTasks", "-AS--"),
    ("GetTask", "-ASR-"),
    ("ListTasks", "-ASR-"),
    ("CancelTask", "-AS--"),
    ("ClusterStatus", "-ASR-"),
    ("NodeStatus", "NASR-"),
    ("SetQueuePolicy", "-A---"),
    ("ListQueues", "-ASR-"),
    ("TransferLeader", "-A---"),
    ("AddNode", "-A---"),
    ("RemoveNode", "-A---"),
    ("SaveSnapshot", "-A---"),
    ("CreateSchedule", "-AS--"),
    ("UpdateSchedule", "-AS--"),
    ("GetSchedule", "-ASR-"),
    ("ListSchedules", "-ASR-"),
    ("PauseSchedule", "-AS--"),
    ("ResumeSchedule", "-AS--"),
    ("DeleteSchedule", "-AS--"),
    ("TriggerSchedule", "-AS--"),
    ("SubmitWorkflow", "-AS--"),
    ("GetWorkflow", "-ASR-"),
    ("SubmitBroadcast", "-AS--"),
    ("RegisterWorker", "----W"),
    ("Attach", "----W"),
    ("Heartbeat", "----W"),
    ("ReportResult", "----W"),
    ("DrainWorker", "----W"),
    ("ListWorkers", "-ASR-"),
];

const COLUMNS: [Role; 5] = [Role::Node, Role::Admin, Role::Submitter, Role::Reader, Role::Worker];

/// Every RPC, the worker protocol's naming `worker_id`.
fn every_rpc(worker_id: &str) -> Vec<Rpc<'_>> {
    vec![
        Rpc::SubmitTask,
        Rpc::SubmitTasks,
        Rpc::GetTask,
        Rpc::ListTasks,
        Rpc::CancelTask,
        Rpc::ClusterStatus,
        Rpc::NodeStatus,
        Rpc::SetQueuePolicy,
        Rpc::ListQueues,
        Rpc::TransferLeader,
        Rpc::AddNode,
        Rpc::RemoveNode,
        Rpc::SaveSnapshot,
        Rpc::CreateSchedule,
        Rpc::UpdateSchedule,
        Rpc::GetSchedule,
        Rpc::ListSchedules,
        Rpc::PauseSchedule,
        Rpc::ResumeSchedule,
        Rpc::DeleteSchedule,
        Rpc::TriggerSchedule,
        Rpc::SubmitWorkflow,
        Rpc::GetWorkflow,
        Rpc::SubmitBroadcast,
        Rpc::RegisterWorker { worker_id },
        Rpc::Attach { worker_id },
        Rpc::Heartbeat { worker_id },
        Rpc::ReportResult { worker_id },
        Rpc::DrainWorker { worker_id },
        Rpc::ListWorkers,
    ]
}

fn identity(role: Role, name: &str) -> Identity {
    Identity {
        role,
        name: name.to_string(),
        namespaces: crate::grpc::identity::Namespaces::Only(vec!["default".into()]),
    }
}

/// The RPC names of the client API's .proto, in order: the enum must list exactly these.
#[test]
fn the_rpcs_are_exactly_those_of_the_client_api() {
    let proto = include_str!("../../../../../proto/raftsched.proto");
    let declared: Vec<&str> = proto
        .lines()
        .filter_map(|line| line.trim().strip_prefix("rpc "))
        .map(|rest| rest.split('(').next().unwrap().trim())
        .collect();
    let listed: Vec<&str> = every_rpc("w").iter().map(Rpc::name).collect();
    assert_eq!(listed, declared, "add the new RPC to Rpc, every_rpc and TABLE");
    let tabled: Vec<&str> = TABLE.iter().map(|(name, _)| *name).collect();
    assert_eq!(tabled, declared);
}

#[test]
fn every_role_and_rpc_pair_follows_the_table() {
    let mut pairs = 0;
    for ((name, allowed), rpc) in TABLE.iter().zip(every_rpc("worker1")) {
        assert_eq!(rpc.name(), *name);
        for (column, role) in COLUMNS.into_iter().enumerate() {
            // The worker's own id for a worker; a valid name of the role otherwise.
            let who = match role {
                Role::Node => identity(role, "node-2"),
                Role::Worker => identity(role, "worker1"),
                _ => identity(role, role.as_str()),
            };
            let expected = allowed.as_bytes()[column] != b'-';
            let got = authorize(Some(&who), rpc);
            assert_eq!(got.is_ok(), expected, "{role} calling {name}: {got:?}");
            match got {
                Ok(access) => assert_eq!(access.redact_env, role == Role::Reader, "{role} {name}"),
                Err(denied) => {
                    let message = denied.to_string();
                    assert!(
                        message.starts_with(&format!("role {role} may not call {name}; use ")),
                        "{message}"
                    );
                }
            }
            pairs += 1;
        }
        // Plaintext (`--insecure`): everything, unredacted.
        assert_eq!(authorize(None, rpc), Ok(Access::full()), "{name}");
    }
    assert_eq!(pairs, 5 * TABLE.len());
}

#[test]
fn a_refusal_names_the_role_the_rpc_and_the_credential_to_use() {
    let reader = identity(Role::Reader, "reader");
    let denied = authorize(Some(&reader), Rpc::AddNode).unwrap_err();
    assert_eq!(
        denied.to_string(),
        "role reader may not call AddNode; use an admin credential"
    );
    let status = Status::from(denied);
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    let submitter = identity(Role::Submitter, "client");
    let message = authorize(Some(&submitter), Rpc::AddNode).unwrap_err().to_string();
    assert_eq!(message, "role submitter may not call AddNode; use an admin credential");
    let worker = identity(Role::Worker, "worker1");
    let message = authorize(Some(&worker), Rpc::SubmitTask).unwrap_err().to_string();
    assert_eq!(
        message,
        "role worker may not call SubmitTask; use a submitter or admin credential"
    );
    let admin = identity(Role::Admin, "admin");
    let message = authorize(Some(&admin), Rpc::Heartbeat { worker_id: "worker1" })
        .unwrap_err()
        .to_string();
    assert!(message.contains("use the worker's own credential"), "{message}");
}

#[test]
fn a_worker_acts_only_as_the_id_its_credential_names() {
    let worker1 = identity(Role::Worker, "worker1");
    for rpc in every_rpc("worker2").into_iter().filter(|rpc| rpc.worker_id().is_some()) {
        let denied = authorize(Some(&worker1), rpc).unwrap_err();
        assert_eq!(
            denied,
            Denied::OtherWorker {
                rpc: rpc.name(),
                credential: "worker1".into(),
                requested: "worker2".into()
            }
        );
        let message = denied.to_string();
        for part in ["worker \"worker1\"", "worker \"worker2\"", rpc.name(), "certs issue"] {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
    }
    // Ids are exact: no prefix, case or empty match.
    for requested in ["worker", "worker10", "Worker1", ""] {
        let rpc = Rpc::RegisterWorker { worker_id: requested };
        assert!(authorize(Some(&worker1), rpc).is_err(), "{requested:?}");
    }
    // A long requested id is quoted by at most its first 64 bytes.
    let long = "x".repeat(10_000);
    let message = authorize(Some(&worker1), Rpc::Attach { worker_id: &long })
        .unwrap_err()
        .to_string();
    assert!(message.len() < 600, "{} bytes", message.len());
}

#[test]
fn a_request_in_another_namespace_is_denied_naming_both() {
    let submitter = identity(Role::Submitter, "alice");
    let access = authorize(Some(&submitter), Rpc::ListTasks).unwrap();
    assert!(access.sees("default") && !access.sees("team-b"));
    assert!(access.require_namespace("ListTasks", "default").is_ok());
    let denied = access.require_namespace("ListTasks", "team-b").unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let message = denied.message();
    assert!(
        message.contains("submitter \"alice\" acts in namespace default")
            && message.contains("names namespace \"team-b\"")
            && message.contains("--namespaces team-b"),
        "{message}"
    );
    assert!(
        authorize(None, Rpc::ListTasks).unwrap().sees("team-b"),
        "plaintext sees all"
    );
}
