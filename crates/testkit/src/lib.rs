//! An in-process cluster over real tonic on ephemeral ports, for integration tests.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use raftsched_client::ClusterClient;
use raftsched_client::TlsSettings;
use raftsched_server::network::FaultInjector;
use raftsched_server::network::LinkFault;
use raftsched_server::node::NodeConfig;
use raftsched_server::node::NodeListeners;
use raftsched_server::node::RaftTuning;
use raftsched_server::node::RunningNode;
use raftsched_server::quota::QuotaConfig;
use raftsched_store::raft_types::MemberNode;
use raftsched_store::raft_types::NodeId;
use tokio::time::Instant;

pub mod spec;

pub use spec::command_spec;
pub use spec::shell;

/// Long enough for a debug build on a loaded 2-core machine; conditions usually hold in
/// milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub const CLUSTER_ID: &str = "test-cluster";

pub struct TestCluster {
    /// Holds every node's data dir and the credentials; removed when the cluster is dropped.
    _root: tempfile::TempDir,
    /// The credentials dir (`certs init`); None for a plaintext (`--insecure`) cluster.
    tls_dir: Option<PathBuf>,
    configs: BTreeMap<NodeId, NodeConfig>,
    /// None while a node is stopped.
    nodes: BTreeMap<NodeId, Option<RunningNode>>,
    /// Each node's outgoing-link faults; kept across restarts.
    faults: BTreeMap<NodeId, FaultInjector>,
}

/// Timing for tests: elections a little slower than production defaults, so a busy CI
/// machine does not keep electing, but still well under a second.
pub fn test_tuning() -> RaftTuning {
    RaftTuning {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        // Tests that lower snapshot_after_entries want a snapshot after that many entries
        // of a few bytes each, not after 512 KiB of log.
        snapshot_min_log_bytes: 0,
        ..RaftTuning::default()
    }
}

impl TestCluster {
    /// Starts `size` nodes (ids 1..=size) and waits for a leader.
    pub async fn start(size: u64, tuning: RaftTuning) -> TestCluster {
        TestCluster::start_with_quotas(size, tuning, |_| QuotaConfig::default()).await
    }

    /// Like [`Self::start`], with each node's caps and high-water marks from `quotas(id)`
    /// (kept across restarts of that node).
    pub async fn start_with_quotas(
        size: u64,
        tuning: RaftTuning,
        quotas: impl Fn(NodeId) -> QuotaConfig,
    ) -> TestCluster {
        TestCluster::start_with(size, tuning, quotas, true).await
    }

    /// Like [`Self::start`], plaintext (`--insecure`): for the tests of the plaintext
    /// transport (raw HTTP/2, connection caps) and of what TLS costs.
    pub async fn start_insecure(size: u64, tuning: RaftTuning) -> TestCluster {
        TestCluster::start_with(size, tuning, |_| QuotaConfig::default(), false).await
    }

    async fn start_with(
        size: u64,
        tuning: RaftTuning,
        quotas: impl Fn(NodeId) -> QuotaConfig,
        tls: bool,
    ) -> TestCluster {
        init_tracing();
        let root = tempfile::tempdir().expect("temp dir");
        let tls_dir = tls.then(|| make_credentials(root.path(), size));
        let mut listeners = BTreeMap::new();
        for id in 1..=size {
            listeners.insert(id, bind_ephemeral().await);
        }
        let members: BTreeMap<NodeId, MemberNode> = listeners.iter().map(|(id, l)| (*id, member_of(l))).collect();
        let specs: BTreeMap<NodeId, String> = members.iter().map(|(id, m)| (*id, m.to_spec())).collect();
        let configs: BTreeMap<NodeId, NodeConfig> = members
            .iter()
            .map(|(id, member)| {
                let mut config = node_config(*id, member, root.path().join(format!("node{id}")));
                config.tls_dir = tls_dir.clone();
                config.insecure = tls_dir.is_none();
                config.initial_members = specs.clone();
                config.raft = tuning.clone();
                config.quotas = quotas(*id);
                (*id, config)
            })
            .collect();
        let mut nodes = BTreeMap::new();
        let mut faults = BTreeMap::new();
        for (id, listener) in listeners {
            let injector = FaultInjector::default();
            let node = RunningNode::start_with_faults(configs[&id].clone(), listener, injector.clone())
                .await
                .expect("node starts");
            nodes.insert(id, Some(node));
            faults.insert(id, injector);
        }
        let cluster = TestCluster {
            _root: root,
            tls_dir,
            configs,
            nodes,
            faults,
        };
        cluster.wait_for_leader().await;
        cluster
    }

    /// Node `id`'s client port.
    pub fn addr(&self, id: NodeId) -> String {
        self.configs[&id].listen_addr.clone()
    }

    /// Node `id`'s peer (Raft) port.
    pub fn peer_addr(&self, id: NodeId) -> String {
        self.configs[&id]
            .peer_listen_addr
            .clone()
            .expect("the testkit sets the peer address")
    }

    /// Node `id`'s HTTP port (`/healthz`, `/readyz`, `/metrics`); a new one after a restart.
    pub fn http_addr(&self, id: NodeId) -> std::net::SocketAddr {
        self.node(id)
            .http_addr()
            .expect("the testkit gives every node an HTTP port")
    }

    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.configs[&id].data_dir.clone()
    }

    pub fn config(&self, id: NodeId) -> NodeConfig {
        self.configs[&id].clone()
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.configs.keys().copied().collect()
    }

    pub fn node(&self, id: NodeId) -> &RunningNode {
        self.nodes[&id].as_ref().expect("node is running")
    }

    pub fn running(&self) -> impl Iterator<Item = &RunningNode> {
        self.nodes.values().flatten()
    }

    /// A client that knows every member's address.
    pub fn client(&self) -> ClusterClient {
        let all: Vec<String> = self.configs.values().map(|c| c.listen_addr.clone()).collect();
        self.with_credentials(ClusterClient::new(&all.join(",")).expect("client"))
    }

    /// A raw gRPC channel to `addr` (a client or peer port), as the cluster's own clients
    /// connect (with the `admin` credential under TLS); for calls the client crate does not
    /// make.
    pub fn channel(&self, addr: &str) -> tonic::transport::Channel {
        self.channel_as(addr, "admin")
    }

    /// Like [`Self::channel`], with credential `identity` (`node-2`, `worker1`, ...).
    pub fn channel_as(&self, addr: &str, identity: &str) -> tonic::transport::Channel {
        let tls = self.tls_dir.as_ref().map(|dir| {
            let pems = raftsched_certs::Pems::from_dir(dir, identity).expect("test credentials");
            raftsched_api::client_tls_config(&pems, "localhost")
        });
        raftsched_api::endpoint(addr, tls.as_ref())
            .expect("endpoint")
            .connect_lazy()
    }

    /// The credentials dir; None for a plaintext cluster.
    pub fn tls_dir(&self) -> Option<&std::path::Path> {
        self.tls_dir.as_deref()
    }

    /// `client` with the cluster's `admin` credential (unchanged for a plaintext cluster).
    pub fn with_credentials(&self, client: ClusterClient) -> ClusterClient {
        self.with_credential(client, "admin")
    }

    /// A client of every member acting as worker `worker_id`: its own credential (role
    /// worker, CN = the id), issued on first use, as an operator would issue one per worker.
    pub fn worker_client(&self, worker_id: &str) -> ClusterClient {
        if let Some(dir) = &self.tls_dir {
            let credential = raftsched_certs::issue::Credential::new(raftsched_certs::Role::Worker, worker_id);
            raftsched_certs::issue::issue_if_missing(dir, &credential).expect("issuing a worker credential");
        }
        let all: Vec<String> = self.configs.values().map(|c| c.listen_addr.clone()).collect();
        self.with_credential(ClusterClient::new(&all.join(",")).expect("client"), worker_id)
    }

    fn with_credential(&self, client: ClusterClient, identity: &str) -> ClusterClient {
        match &self.tls_dir {
            Some(dir) => client.with_tls(TlsSettings::from_dir(dir, identity).expect("test credentials")),
            None => client,
        }
    }

    /// A client that knows only one node; it must follow leader hints from there.
    pub fn client_of(&self, id: NodeId) -> ClusterClient {
        self.with_credentials(ClusterClient::new(&self.addr(id)).expect("client"))
    }

    /// Waits until every running node names the same leader, itself running, and returns it.
    pub async fn wait_for_leader(&self) -> NodeId {
        wait_until("a leader known to every running node", || async {
            let leaders: Vec<Option<NodeId>> = self.running().map(|n| n.app().metrics().current_leader).collect();
            let leader = leaders.first().copied().flatten()?;
            let agreed = leaders.iter().all(|l| *l == Some(leader));
            let running = self.nodes.get(&leader).is_some_and(Option::is_some);
            let is_leader = running && self.node(leader).raft().is_leader();
            (agreed && is_leader).then_some(leader)
        })
        .await
    }

    /// Waits until every running node has applied at least the leader's last log index.
    pub async fn wait_for_replication(&self) {
        let leader = self.wait_for_leader().await;
        let target = self.node(leader).app().metrics().last_log_index.unwrap_or(0);
        wait_until("every running node applied the leader's log", || async {
            self.running()
                .all(|n| n.app().metrics().last_applied.is_some_and(|l| l.index >= target))
                .then_some(())
        })
        .await;
    }

    /// Gracefully stops a node; its data dir stays.
    pub async fn stop_node(&mut self, id: NodeId) {
        let node = self
            .nodes
            .get_mut(&id)
            .and_then(Option::take)
            .expect("node was running");
        node.shutdown().await;
    }

    /// Starts a stopped node again on the same address and data dir.
    pub async fn restart_node(&mut self, id: NodeId) {
        assert!(self.nodes[&id].is_none(), "node {id} is still running");
        let config = self.configs[&id].clone();
        let peer = self.peer_addr(id);
        let node = wait_until("the node's ports to be free again", || async {
            NodeListeners::bind(&config.listen_addr, &peer).await.ok()
        })
        .await;
        let faults = self.faults.entry(id).or_default().clone();
        let node = RunningNode::start_with_faults(config, node, faults)
            .await
            .expect("node restarts");
        self.nodes.insert(id, Some(node));
    }

    /// Starts a brand-new node `id` (empty data dir, no founding members) that waits to be
    /// added with `add_node`. Returns its addresses.
    pub async fn start_new_node(&mut self, id: NodeId) -> MemberNode {
        let listener = bind_ephemeral().await;
        let member = member_of(&listener);
        let data_dir = self._root.path().join(format!("node{id}-{}", self.configs.len()));
        let mut config = node_config(id, &member, data_dir);
        config.raft = self.configs.values().next().expect("a node").raft.clone();
        if let Some(dir) = &self.tls_dir {
            let node = raftsched_certs::issue::Credential::new(raftsched_certs::Role::Node, format!("node-{id}"));
            // A node id used before in this cluster already has its credential.
            raftsched_certs::issue::issue_if_missing(dir, &node).expect("issuing a node credential");
        }
        config.tls_dir = self.tls_dir.clone();
        config.insecure = self.tls_dir.is_none();
        self.configs.insert(id, config.clone());
        let faults = self.faults.entry(id).or_default().clone();
        let node = RunningNode::start_with_faults(config, listener, faults)
            .await
            .expect("new node starts");
        self.nodes.insert(id, Some(node));
        member
    }

    /// Forgets a stopped node (its data dir stays until the cluster is dropped).
    pub fn forget_node(&mut self, id: NodeId) {
        assert!(self.nodes.get(&id).is_none_or(Option::is_none), "node {id} still runs");
        self.nodes.remove(&id);
        self.configs.remove(&id);
        self.faults.remove(&id);
    }

    /// Task ids node `id` holds, read with a stale (local) read, oldest first.
    pub async fn stale_ids_on(&self, id: NodeId) -> Vec<u64> {
        use raftsched_api::v1 as api;
        let response = self
            .client_of(id)
            .call_node(&self.addr(id), |mut c| async move {
                c.list_tasks(api::ListTasksRequest {
                    page_size: 1000,
                    consistency: api::Consistency::Stale as i32,
                    oldest_first: true,
                    ..Default::default()
                })
                .await
            })
            .await
            .expect("stale list");
        response.tasks.iter().map(|t| t.id).collect()
    }

    /// Cuts every link between `id` and the others, both ways.
    pub fn isolate(&self, id: NodeId) {
        for other in self.ids().into_iter().filter(|o| *o != id) {
            self.faults[&id].set(other, Some(LinkFault::FailFast));
            self.faults[&other].set(id, Some(LinkFault::FailFast));
        }
    }

    /// Sets the fault on the link from `from` to `to` only.
    pub fn fault_link(&self, from: NodeId, to: NodeId, fault: Option<LinkFault>) {
        self.faults[&from].set(to, fault);
    }

    pub fn heal(&self) {
        for faults in self.faults.values() {
            faults.clear_all();
        }
    }

    /// Waits until every running node has applied the same index and holds byte-identical
    /// state there.
    pub async fn wait_for_identical_replicas(&self) {
        wait_until("identical replicas", || async {
            let images: Vec<(u64, Vec<u8>)> = self
                .running()
                .map(|n| {
                    let applied = n.app().state().read();
                    let index = applied.last_applied.as_ref().map_or(0, |l| l.index);
                    (index, applied.scheduler.to_snapshot_bytes())
                })
                .collect();
            let first = images.first()?;
            images.iter().all(|image| image == first).then_some(())
        })
        .await;
    }

    /// Stops every node at once.
    pub async fn shutdown(mut self) {
        let running: Vec<RunningNode> = self.nodes.values_mut().filter_map(Option::take).collect();
        futures::future::join_all(running.into_iter().map(RunningNode::shutdown)).await;
    }
}

/// Credentials for nodes 1..=`nodes`, workers worker1..worker4, admin, client, reader in
/// `root/certs` (rcgen: a few milliseconds each).
fn make_credentials(root: &std::path::Path, nodes: u64) -> PathBuf {
    let dir = root.join("certs");
    let options = raftsched_certs::issue::InitOptions {
        nodes: (1..=nodes).collect(),
        workers: (1..=4).map(|n| format!("worker{n}")).collect(),
        sans: Vec::new(),
    };
    raftsched_certs::issue::init(&dir, &options, false).expect("test credentials");
    dir
}

/// A node's two ports on ephemeral addresses of 127.0.0.1.
pub async fn bind_ephemeral() -> NodeListeners {
    NodeListeners::bind("127.0.0.1:0", "127.0.0.1:0")
        .await
        .expect("bind two ephemeral ports")
}

/// The member whose ports `listeners` holds.
pub fn member_of(listeners: &NodeListeners) -> MemberNode {
    let (client, peer) = listeners.local_addrs().expect("local addrs");
    MemberNode::new(client.to_string(), peer.to_string())
}

/// A test node's config: `member`'s ports, an ephemeral HTTP port, `data_dir`, the test
/// cluster id; no founders.
pub fn node_config(id: NodeId, member: &MemberNode, data_dir: PathBuf) -> NodeConfig {
    let mut config = NodeConfig::new(id, member.addr.clone(), data_dir);
    config.peer_listen_addr = Some(member.peer_addr.clone());
    config.http_listen_addr = Some("127.0.0.1:0".into());
    config.cluster_id = CLUSTER_ID.into();
    config
}

/// The one slot for tests that load the machine on purpose (300,000 tasks filled in
/// batches, a thousand tasks through three workers). Each asserts what its own load does
/// (no election, every task done within its wait); two of them at once on CI's 2 cores
/// measured each other instead: a 1000-task batch went unanswered for 15 s while the other
/// ran. A test that takes the slot holds it to its end.
pub async fn heavy_load_slot() -> tokio::sync::MutexGuard<'static, ()> {
    static SLOT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SLOT.lock().await
}

/// Polls `probe` every 20 ms until it returns Some, or panics after [`DEADLINE`].
pub async fn wait_until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Starts a library worker against the cluster; returns its shutdown token and task.
pub fn start_worker(
    cluster: &TestCluster,
    options: raftsched_client::worker::WorkerOptions,
) -> (tokio_util::sync::CancellationToken, tokio::task::JoinHandle<()>) {
    let client = cluster
        .worker_client(&options.worker_id)
        .with_overall_deadline(Duration::from_secs(3600));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = raftsched_client::worker::Worker::new(client, options);
    let stop = shutdown.clone();
    let handle = tokio::spawn(async move {
        worker.run(stop).await.expect("worker runs");
    });
    (shutdown, handle)
}

/// Waits until the leader knows `count` connected workers.
pub async fn wait_for_workers(cluster: &TestCluster, count: usize) {
    wait_until("workers to connect", || async {
        let leader = cluster.wait_for_leader().await;
        let connected = cluster
            .node(leader)
            .app()
            .workers()
            .iter()
            .filter(|w| w.connected)
            .count();
        (connected >= count).then_some(())
    })
    .await;
}

/// Waits until a task reaches a terminal state and returns it.
pub async fn wait_for_finish(cluster: &TestCluster, task_id: u64) -> raftsched_api::v1::Task {
    use raftsched_api::v1 as api;
    let client = cluster.client();
    wait_until(&format!("task {task_id} to finish"), || async {
        let task = client.get_task(task_id, api::Consistency::Linearizable).await.ok()?;
        let done = [
            api::TaskState::Succeeded,
            api::TaskState::Failed,
            api::TaskState::Cancelled,
            api::TaskState::Skipped,
        ]
        .iter()
        .any(|s| *s as i32 == task.state);
        done.then_some(task)
    })
    .await
}

/// The next instruction on a worker's Attach stream, which must be an assignment.
pub async fn next_assignment(
    stream: &mut tonic::Streaming<raftsched_api::v1::WorkerInstruction>,
) -> raftsched_api::v1::Assignment {
    use raftsched_api::v1::worker_instruction::Instruction;
    let message = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("an instruction within the deadline")
        .expect("stream open")
        .expect("an instruction");
    match message.instruction {
        Some(Instruction::Assign(assignment)) => assignment,
        other => panic!("expected an assignment, got {other:?}"),
    }
}
