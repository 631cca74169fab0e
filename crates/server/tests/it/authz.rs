//! Roles end to end over real mutual TLS (issue 12), on the product's client port: the
//! test cluster runs with the credentials `certs init` made, and this test issues more from
//! the same CA (credentials the contract does not know) to check what each one may do. What
//! is tested is the identity read from the verified certificate, the role policy and each
//! handler's use of it.

use raftsched_testkit as common;

use std::net::SocketAddr;

use common::TestCluster;
use common::shell;
use common::test_tuning;
use raftsched_api::v1 as api;
use raftsched_api::v1::scheduler_client::SchedulerClient;
use raftsched_api::v1::workers_client::WorkersClient;
use rcgen::CertificateParams;
use rcgen::DnType;
use rcgen::Issuer;
use rcgen::KeyPair;
use tonic::Code;
use tonic::transport::Certificate;
use tonic::transport::Channel;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Identity;

/// A cluster CA that issues credentials by the identity contract (OU = role, CN = name).
struct Pki {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

/// A certificate and its key, PEM.
struct Credential {
    cert_pem: String,
    key_pem: String,
}

impl Pki {
    /// The cluster's own CA, from its credentials dir.
    fn of(cluster: &TestCluster) -> Pki {
        let dir = cluster.tls_dir().expect("a TLS cluster");
        let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
        let key = KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca.key")).unwrap()).unwrap();
        Pki {
            issuer: Issuer::from_ca_cert_pem(&ca_pem, key).unwrap(),
            ca_pem,
        }
    }

    /// A leaf with this subject (`None` leaves the OU out), valid for `localhost`.
    fn issue(&self, ou: Option<&str>, cn: &str) -> Credential {
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        if let Some(ou) = ou {
            params.distinguished_name.push(DnType::OrganizationalUnitName, ou);
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Credential {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A channel to `addr` presenting `credential`, verifying the server as `localhost`.
    async fn channel(&self, addr: SocketAddr, credential: &Credential) -> Channel {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&credential.cert_pem, &credential.key_pem))
            .domain_name("localhost");
        Channel::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(10))
            .connect()
            .await
            .expect("connect over TLS")
    }
}

/// A three-node TLS cluster, its CA, and its leader's client port.
async fn secured() -> (TestCluster, Pki, SocketAddr) {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let leader = cluster.wait_for_leader().await;
    let pki = Pki::of(&cluster);
    let addr = cluster.addr(leader).parse().unwrap();
    (cluster, pki, addr)
}

fn assert_denied<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, parts: &[&str]) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{}", status.message());
    for part in parts {
        assert!(status.message().contains(part), "{:?} lacks {part:?}", status.message());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_may_submit_but_not_add_a_node() {
    let (cluster, pki, addr) = secured().await;
    let mut submitter = SchedulerClient::new(pki.channel(addr, &pki.issue(Some("submitter"), "client")).await);
    let members_before = cluster.client().cluster_status().await.unwrap().members.len();

    let refused = submitter
        .add_node(api::AddNodeRequest {
            node_id: 9,
            address: "127.0.0.1:1".into(),
            peer_address: String::new(),
        })
        .await;
    assert_denied(
        refused,
        Code::PermissionDenied,
        &["role submitter may not call AddNode; use an admin credential"],
    );
    for refused in [
        submitter
            .transfer_leader(api::TransferLeaderRequest { node_id: 0 })
            .await
            .map(|_| ()),
        submitter
            .remove_node(api::RemoveNodeRequest { node_id: 3 })
            .await
            .map(|_| ()),
    ] {
        assert_denied(refused, Code::PermissionDenied, &["role submitter may not call"]);
    }
    let status = cluster.client().cluster_status().await.unwrap();
    assert_eq!(status.members.len(), members_before, "membership unchanged");

    let submitted = submitter
        .submit_task(api::SubmitTaskRequest {
            spec: Some(shell("t", "true")),
        })
        .await
        .expect("a submitter submits");
    assert!(submitted.into_inner().task.is_some());
    cluster.shutdown().await;
}

fn env_of(task: &api::Task) -> std::collections::HashMap<String, String> {
    match task.spec.as_ref().and_then(|s| s.payload.clone()) {
        Some(api::task_spec::Payload::Command(command)) => command.env,
        other => panic!("a command task, got {other:?}"),
    }
}

/// The value of the task's `API_TOKEN` as this caller's GetTask shows it.
async fn token_seen(client: &mut SchedulerClient<Channel>, task_id: u64) -> String {
    let request = api::GetTaskRequest {
        task_id,
        consistency: api::Consistency::Linearizable as i32,
    };
    let task = client.get_task(request).await.unwrap().into_inner().task.unwrap();
    env_of(&task).remove("API_TOKEN").expect("the key is kept")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_sees_environment_keys_but_not_values() {
    let (cluster, pki, addr) = secured().await;
    let mut spec = shell("secretive", "echo $API_TOKEN");
    if let Some(api::task_spec::Payload::Command(command)) = &mut spec.payload {
        command.env.insert("API_TOKEN".into(), "s3cret-value".into());
    }
    let mut admin = SchedulerClient::new(pki.channel(addr, &pki.issue(Some("admin"), "admin")).await);
    let task = admin
        .submit_task(api::SubmitTaskRequest { spec: Some(spec) })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let mut reader = SchedulerClient::new(pki.channel(addr, &pki.issue(Some("reader"), "reader")).await);
    assert_eq!(token_seen(&mut reader, task.id).await, "<redacted>");
    let listed = reader
        .list_tasks(api::ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tasks.len(), 1);
    assert_eq!(
        env_of(&listed.tasks[0]).get("API_TOKEN").map(String::as_str),
        Some("<redacted>")
    );
    assert!(!format!("{listed:?}").contains("s3cret-value"));
    // A reader writes nothing.
    let refused = reader
        .cancel_task(api::CancelTaskRequest {
            task_id: task.id,
            reason: String::new(),
        })
        .await;
    assert_denied(
        refused,
        Code::PermissionDenied,
        &["role reader may not call CancelTask; use a submitter or admin credential"],
    );
    // The admin sees the value.
    assert_eq!(token_seen(&mut admin, task.id).await, "s3cret-value");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_credential_registers_only_its_own_id() {
    let (cluster, pki, addr) = secured().await;
    let mut worker1 = WorkersClient::new(pki.channel(addr, &pki.issue(Some("worker"), "worker1")).await);
    let registration = |worker_id: &str| api::RegisterWorkerRequest {
        worker_id: worker_id.into(),
        session_id: "s".into(),
        slots: 1,
        lease_ms: 60_000,
        ..Default::default()
    };
    let refused = worker1.register_worker(registration("worker2")).await;
    assert_denied(
        refused,
        Code::PermissionDenied,
        &["names worker \"worker1\"", "names worker \"worker2\"", "RegisterWorker"],
    );
    let leader = cluster.wait_for_leader().await;
    let registered = |id: &str| {
        let state = cluster.node(leader).app().state().read();
        state.scheduler.worker(id).is_some()
    };
    assert!(!registered("worker2"), "no worker2 was registered");
    worker1
        .register_worker(registration("worker1"))
        .await
        .expect("worker1 registers as itself");
    // A registration is answered once applied on the leader.
    assert!(registered("worker1"));
    // The worker protocol only.
    let mut as_scheduler = SchedulerClient::new(pki.channel(addr, &pki.issue(Some("worker"), "worker1")).await);
    let refused = as_scheduler.list_tasks(api::ListTasksRequest::default()).await;
    assert_denied(refused, Code::PermissionDenied, &["role worker may not call ListTasks"]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_naming_no_role_is_unauthenticated() {
    let (cluster, pki, addr) = secured().await;
    for (ou, cn, part) in [
        (None, "client", "no OU"),
        (Some("operators"), "client", "\"operators\" is not a role"),
        (Some("node"), "db-1", "node-<id>"),
    ] {
        let mut client = SchedulerClient::new(pki.channel(addr, &pki.issue(ou, cn)).await);
        let refused = client.cluster_status(api::ClusterStatusRequest {}).await;
        assert_denied(refused, Code::Unauthenticated, &[part]);
    }
    // A node credential may ask a node's status, and nothing else.
    let mut node = SchedulerClient::new(pki.channel(addr, &pki.issue(Some("node"), "node-2")).await);
    node.node_status(api::NodeStatusRequest {})
        .await
        .expect("a node asks a peer's status");
    let refused = node.cluster_status(api::ClusterStatusRequest {}).await;
    assert_denied(
        refused,
        Code::PermissionDenied,
        &["role node may not call ClusterStatus"],
    );
    cluster.shutdown().await;
}
