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
use raftsched_api::raft as raft_proto;
use raftsched_api::raft::raft_service_client::RaftServiceClient;
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
pub(crate) struct Pki {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

/// A certificate and its key, PEM.
pub(crate) struct Credential {
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

    /// A CA of its own, which the cluster does not trust.
    fn new_ca() -> Pki {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "some other CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf with this subject (`None` leaves the OU out), valid for `localhost`.
    pub(crate) fn issue(&self, ou: Option<&str>, cn: &str) -> Credential {
        self.issue_with(ou, cn, |_| {})
    }

    /// Like [`Self::issue`], but valid only in the year 2000.
    fn issue_expired(&self, ou: Option<&str>, cn: &str) -> Credential {
        self.issue_with(ou, cn, |params| {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        })
    }

    pub(crate) fn issue_with(
        &self,
        ou: Option<&str>,
        cn: &str,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Credential {
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        if let Some(ou) = ou {
            params.distinguished_name.push(DnType::OrganizationalUnitName, ou);
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Credential {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A channel to `addr` presenting `credential`, verifying the server as `localhost`.
    pub(crate) async fn channel(&self, addr: SocketAddr, credential: &Credential) -> Channel {
        self.connect(addr, Some(credential), "localhost")
            .await
            .expect("connect over TLS")
    }

    /// A connection to `addr` trusting this CA, presenting `credential` (or none), checking
    /// the server's certificate for `server_name`.
    async fn connect(
        &self,
        addr: SocketAddr,
        credential: Option<&Credential>,
        server_name: &str,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name(server_name);
        if let Some(credential) = credential {
            tls = tls.identity(Identity::from_pem(&credential.cert_pem, &credential.key_pem));
        }
        Channel::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(10))
            .connect()
            .await
    }
}

/// A three-node TLS cluster, its CA, and its leader's client port.
pub(crate) async fn secured() -> (TestCluster, Pki, SocketAddr) {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let leader = cluster.wait_for_leader().await;
    let pki = Pki::of(&cluster);
    let addr = cluster.addr(leader).parse().unwrap();
    (cluster, pki, addr)
}

pub(crate) fn assert_denied<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, parts: &[&str]) {
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

/// `message` as a peer call's request, with the cluster's header.
fn raft_message(message: &impl serde::Serialize) -> tonic::Request<raft_proto::RaftMessage> {
    let mut request = tonic::Request::new(raft_proto::RaftMessage {
        data: raftsched_core::state::wire::encode_versioned(message),
    });
    request
        .metadata_mut()
        .insert(raftsched_api::CLUSTER_HEADER, common::CLUSTER_ID.parse().unwrap());
    request
}

/// A Vote (or PreVote) request in `node`'s name at `term`.
fn raft_request(term: u64, node: u64) -> tonic::Request<raft_proto::RaftMessage> {
    let vote = raftsched_store::raft_types::Vote::new(term, node);
    raft_message(&openraft::raft::VoteRequest::<raftsched_store::raft_types::TypeConfig>::new(vote, None))
}

/// The peer port speaks Raft with node credentials only, each in its own name: a worker's
/// or an admin's certificate from the same CA is PERMISSION_DENIED, and so is node A asking
/// for votes (or pre-votes) as node B. A Vote at term 1000 from any of them would depose
/// the leader; none reaches Raft, so the term and the vote stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_node_speaks_raft_on_the_peer_port_and_only_in_its_own_name() {
    let (cluster, pki, _) = secured().await;
    let leader = cluster.wait_for_leader().await;
    let follower = (1..=3).find(|n| *n != leader).unwrap();
    let other = (1..=3).find(|n| *n != leader && *n != follower).unwrap();
    let peer: SocketAddr = cluster.peer_addr(follower).parse().unwrap();
    let before = cluster.node(follower).app().metrics();
    let term = 1000;

    for (ou, cn, part) in [
        (
            "worker",
            "worker1".to_string(),
            "role worker may not call the peer port",
        ),
        ("admin", "admin".to_string(), "role admin may not call the peer port"),
        (
            "submitter",
            "client".to_string(),
            "role submitter may not call the peer port",
        ),
    ] {
        let mut raft = RaftServiceClient::new(pki.channel(peer, &pki.issue(Some(ou), &cn)).await);
        assert_denied(
            raft.vote(raft_request(term, other)).await,
            Code::PermissionDenied,
            &[part],
        );
        assert_denied(
            raft.append_entries(raft_request(term, other)).await,
            Code::PermissionDenied,
            &[part],
        );
    }
    let as_other = pki.issue(Some("node"), &format!("node-{other}"));
    let mut raft = RaftServiceClient::new(pki.channel(peer, &as_other).await);
    let impersonating = format!("from node {other} carries the vote of node {leader}");
    assert_denied(
        raft.vote(raft_request(term, leader)).await,
        Code::PermissionDenied,
        &["Raft Vote request", &impersonating],
    );
    assert_denied(
        raft.pre_vote(raft_request(term, leader)).await,
        Code::PermissionDenied,
        &["Raft PreVote request", &impersonating],
    );

    let after = cluster.node(follower).app().metrics();
    assert_eq!(after.current_term, before.current_term, "a refused vote moved the term");
    assert_eq!(after.vote, before.vote);
    assert_eq!(cluster.wait_for_leader().await, leader, "the leader was deposed");
    // Node `other` asking in its own name is Raft's to answer (it refuses a vote while the
    // leader's lease holds): past the gate, so no PERMISSION_DENIED.
    let answered = raft.pre_vote(raft_request(before.current_term, other)).await;
    assert!(
        answered
            .as_ref()
            .map_or_else(|s| s.code() != Code::PermissionDenied, |_| true),
        "{answered:?}"
    );
    cluster.shutdown().await;
}

/// Without a certificate of the cluster's CA there is no connection at all, on either port:
/// none, one from another CA, an expired one, and a client that checks the node for another
/// name than its certificate's all fail the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_gets_through_without_a_certificate_of_the_cluster_ca() {
    let (cluster, pki, addr) = secured().await;
    let leader = cluster.wait_for_leader().await;
    let peer: SocketAddr = cluster.peer_addr(leader).parse().unwrap();
    let stranger = Pki::new_ca();
    let expired = pki.issue_expired(Some("admin"), "admin");
    let admin = pki.issue(Some("admin"), "admin");
    for port in [addr, peer] {
        let attempts = [
            ("no certificate", pki.connect(port, None, "localhost").await),
            (
                "another CA's certificate",
                pki.connect(port, Some(&stranger.issue(Some("admin"), "admin")), "localhost")
                    .await,
            ),
            (
                "an expired certificate",
                pki.connect(port, Some(&expired), "localhost").await,
            ),
            (
                "another server name",
                pki.connect(port, Some(&admin), "db.example").await,
            ),
        ];
        for (what, connected) in attempts {
            let answered = match connected {
                Err(_) => None,
                Ok(channel) => Some(
                    SchedulerClient::new(channel)
                        .node_status(api::NodeStatusRequest {})
                        .await
                        .map(|_| ()),
                ),
            };
            assert!(
                !matches!(answered, Some(Ok(()))),
                "{what} on port {port} was answered: {answered:?}"
            );
        }
        // And the cluster's own admin credential connects (the control).
        assert!(
            pki.connect(port, Some(&admin), "localhost").await.is_ok(),
            "port {port}"
        );
    }
    cluster.shutdown().await;
}

/// Rotation without downtime: each node in turn is stopped, given a new key and certificate
/// from the same CA (`certs issue --force`), and restarted; it rejoins (its peers verify the
/// new certificate, it verifies theirs), the cluster takes a submission after each one, and
/// every replica ends identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_restarted_with_a_new_certificate_from_the_same_ca_rejoins() {
    let mut cluster = TestCluster::start(3, test_tuning()).await;
    let dir = cluster.tls_dir().expect("a TLS cluster").to_path_buf();
    for id in cluster.ids() {
        let old = std::fs::read(dir.join(format!("node-{id}.crt"))).unwrap();
        cluster.stop_node(id).await;
        let credential = raftsched_certs::issue::Credential::new(raftsched_certs::Role::Node, format!("node-{id}"));
        raftsched_certs::issue::issue(&dir, &credential, &[], true).expect("a new node certificate");
        assert_ne!(std::fs::read(dir.join(format!("node-{id}.crt"))).unwrap(), old);
        cluster.restart_node(id).await;
        let submitted = cluster
            .client()
            .submit_task(shell(&format!("after-rotating-{id}"), "true"))
            .await
            .unwrap_or_else(|e| panic!("a submission after node {id} got a new certificate: {e}"));
        assert!(submitted.task.is_some());
        cluster.wait_for_identical_replicas().await;
    }
    let tasks = cluster
        .client()
        .list_tasks(api::ListTasksRequest::default())
        .await
        .expect("listing")
        .tasks;
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    cluster.shutdown().await;
}

/// An empty AppendEntries in `node`'s name at `term` (a heartbeat).
fn append_request(term: u64, node: u64) -> tonic::Request<raft_proto::RaftMessage> {
    raft_message(
        &openraft::raft::AppendEntriesRequest::<raftsched_store::raft_types::TypeConfig> {
            vote: raftsched_store::raft_types::Vote::new_committed(term, node),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        },
    )
}

/// An InstallSnapshot stream of one header chunk in `node`'s name at `term`.
fn snapshot_request(
    term: u64,
    node: u64,
) -> tonic::Request<futures::stream::Iter<std::vec::IntoIter<raft_proto::SnapshotChunk>>> {
    let vote = raftsched_store::raft_types::Vote::new(term, node);
    let meta = raftsched_store::raft_types::SnapshotMeta {
        last_log_id: None,
        last_membership: Default::default(),
    };
    let chunk = raft_proto::SnapshotChunk {
        header: raftsched_core::state::wire::encode_versioned(&(vote, meta, 0_u64)),
        data: Vec::new(),
    };
    let mut request = tonic::Request::new(futures::stream::iter(vec![chunk]));
    request
        .metadata_mut()
        .insert(raftsched_api::CLUSTER_HEADER, common::CLUSTER_ID.parse().unwrap());
    request
}

/// A peer must be a member: a node credential for an id that is no voter may not ask for
/// votes, and once a node is removed its credential (still signed by the CA: there is no
/// revocation) is no peer at all — Vote, AppendEntries and InstallSnapshot in its name are
/// PERMISSION_DENIED on the nodes that applied the removal, with nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_or_a_removed_node_is_no_peer() {
    let (cluster, pki, _) = secured().await;
    let leader = cluster.wait_for_leader().await;
    let removed = (1..=3).find(|n| *n != leader).unwrap();
    let remaining = (1..=3).find(|n| *n != leader && *n != removed).unwrap();
    let term = 1000;

    let peer: SocketAddr = cluster.peer_addr(remaining).parse().unwrap();
    let mut stranger = RaftServiceClient::new(pki.channel(peer, &pki.issue(Some("node"), "node-9")).await);
    assert_denied(
        stranger.vote(raft_request(term, 9)).await,
        Code::PermissionDenied,
        &["Raft Vote request from node 9, which is no voter"],
    );

    cluster
        .node(leader)
        .app()
        .remove_node(removed)
        .await
        .expect("removing a follower");
    let as_removed = pki.issue(Some("node"), &format!("node-{removed}"));
    for target in [leader, remaining] {
        let peer: SocketAddr = cluster.peer_addr(target).parse().unwrap();
        let mut raft = RaftServiceClient::new(pki.channel(peer, &as_removed).await);
        let before = cluster.node(target).app().metrics();
        // The refusal comes once the removal is applied on `target`.
        let was_removed = format!("from node {removed}, which was removed");
        common::wait_until("the removal to be applied", || {
            let mut raft = raft.clone();
            let was_removed = was_removed.clone();
            async move {
                let status = raft.vote(raft_request(term, removed)).await.err()?;
                status.message().contains(&was_removed).then_some(())
            }
        })
        .await;
        assert_denied(
            raft.append_entries(append_request(term, removed)).await,
            Code::PermissionDenied,
            &["Raft AppendEntries request", &was_removed],
        );
        assert_denied(
            raft.install_snapshot(snapshot_request(term, removed)).await,
            Code::PermissionDenied,
            &["Raft InstallSnapshot request", &was_removed],
        );
        let after = cluster.node(target).app().metrics();
        assert_eq!(after.current_term, before.current_term, "node {target}: the term moved");
        assert_eq!(after.vote, before.vote, "node {target}");
    }
    assert_eq!(cluster.wait_for_leader().await, leader);
    cluster.shutdown().await;
}
