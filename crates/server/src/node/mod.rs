//! [`RunningNode`]: one cluster member — storage, Raft, and the gRPC server — started and
//! stopped as a unit.
//!
//! Architecture invariant: the node wires the parts together and names no protobuf type,
//! no `tonic::Status` and no tonic server type: it calls [`grpc::serve`], which owns the
//! routes, layers and limits of the port.

mod config;
mod snapshot_trigger;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::ConfigError;
pub use config::NodeConfig;
pub use config::RaftTuning;
pub use config::member_nodes;
pub use config::parse_members;
use openraft::SnapshotPolicy;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::dispatch::Dispatcher;
use crate::grpc;
pub use crate::grpc::PortLimits;
use crate::http;
use crate::hub::WorkerHub;
use crate::network::FaultInjector;
use crate::network::NetworkFactory;
use crate::observe;
use crate::observe::NodeMetrics;
use crate::quota;
use crate::quota::Guard;
use crate::raft_types::NodeId;
use crate::raft_types::Raft;
use raftsched_client::trace;
use raftsched_core::state::Command;
use raftsched_store::Store;
use raftsched_store::StoreClosed;
use raftsched_store::StoreError;

/// How long a stopping leader waits for a follower to take over before it just stops (the
/// others then elect a leader after their election timeout).
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long shutdown waits for the last storage handle to be dropped.
const STORE_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);
/// Entries per append-entries RPC; the sender also stops at `network::MAX_APPEND_BYTES`
/// (4 MiB), so one Raft message stays under `network::MAX_RAFT_MESSAGE_BYTES`.
const MAX_ENTRIES_PER_APPEND: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("refusing to start: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr} ({flag}): {source}")]
    Bind {
        addr: String,
        /// The flag that names this address (`--listen`, `--peer-listen`).
        flag: &'static str,
        source: std::io::Error,
    },
    #[error("raft: {0}")]
    Raft(String),
    #[error(transparent)]
    HttpTls(#[from] http::HttpTlsError),
}

/// A started node. Dropping it does not stop it; call [`RunningNode::shutdown`].
pub struct RunningNode {
    node_id: NodeId,
    app: App,
    local_addr: SocketAddr,
    peer_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    /// Cancelled once, by shutdown; both gRPC servers watch it.
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), grpc::ServeError>>,
    /// The peer port's server (the Raft service only).
    peer_server: JoinHandle<Result<(), grpc::ServeError>>,
    /// The leader-only dispatch loop; stops on the same token.
    dispatcher: JoinHandle<()>,
    /// Decides when to snapshot; stops on the same token.
    snapshot_trigger: JoinHandle<()>,
    /// Samples memory and the data dir for the high-water alarms; stops on the same token.
    sampler: JoinHandle<()>,
    /// Asks the peers for their alarms; stops on the same token.
    alarm_poll: JoinHandle<()>,
    /// Follows Raft for readiness and leader changes; stops on the same token.
    observer: JoinHandle<()>,
    /// The HTTP port's server, when `--http-listen` is set; stops on the same token.
    http_server: Option<JoinHandle<()>>,
    /// Becomes closed when the last storage handle is dropped; shutdown waits for it.
    store_closed: StoreClosed,
}

/// The node's two bound ports: the client port (Scheduler, Workers, reflection, health) and
/// the peer port (Raft only). The HTTP port, if configured, is bound at start from
/// `http_listen_addr` (port 0 for tests: `RunningNode::http_addr` says which).
pub struct NodeListeners {
    pub client: TcpListener,
    pub peer: TcpListener,
}

async fn bind(addr: &str, flag: &'static str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr).await.map_err(|source| NodeError::Bind {
        addr: addr.to_string(),
        flag,
        source,
    })
}

impl NodeListeners {
    /// Binds `client_addr` and `peer_addr` (port 0: ephemeral).
    pub async fn bind(client_addr: &str, peer_addr: &str) -> Result<NodeListeners, NodeError> {
        Ok(NodeListeners {
            client: bind(client_addr, "--listen").await?,
            peer: bind(peer_addr, "--peer-listen").await?,
        })
    }

    /// The bound client and peer addresses.
    pub fn local_addrs(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.client.local_addr()?, self.peer.local_addr()?))
    }
}

impl RunningNode {
    /// Opens the data dir, binds `config.listen_addr` and the peer address, and starts. The
    /// data dir is checked first, so a wrong one is reported as such even when a port is
    /// also taken.
    pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
        config.validate()?;
        let store = Store::open(&config.data_dir, &config.cluster_id, config.node_id)?;
        let listeners = NodeListeners::bind(&config.listen_addr, &config.peer_listen_addr()?).await?;
        RunningNode::launch(
            config,
            store,
            listeners,
            FaultInjector::default(),
            PortLimits::default(),
        )
        .await
    }

    /// Starts on already bound listeners (tests bind port 0 first to learn the addresses).
    pub async fn start_on(config: NodeConfig, listener: NodeListeners) -> Result<RunningNode, NodeError> {
        RunningNode::start_with_faults(config, listener, FaultInjector::default()).await
    }

    /// Like [`Self::start_on`], with a handle to inject faults on this node's outgoing Raft
    /// links (fault tests).
    pub async fn start_with_faults(
        config: NodeConfig,
        listener: NodeListeners,
        faults: FaultInjector,
    ) -> Result<RunningNode, NodeError> {
        RunningNode::start_with_port_limits(config, listener, faults, PortLimits::default()).await
    }

    /// Like [`Self::start_with_faults`], with other connection limits than the production
    /// constants (tests of the caps: a test cannot open 11,000 connections under a 20,000
    /// file descriptor limit, nor wait out a production timeout quickly).
    pub async fn start_with_port_limits(
        config: NodeConfig,
        listener: NodeListeners,
        faults: FaultInjector,
        port_limits: PortLimits,
    ) -> Result<RunningNode, NodeError> {
        config.validate()?;
        let store = Store::open(&config.data_dir, &config.cluster_id, config.node_id)?;
        RunningNode::launch(config, store, listener, faults, port_limits).await
    }

    async fn launch(
        config: NodeConfig,
        store: Store,
        listeners: NodeListeners,
        faults: FaultInjector,
        port_limits: PortLimits,
    ) -> Result<RunningNode, NodeError> {
        let (local_addr, peer_addr) = listeners.local_addrs().map_err(|source| NodeError::Bind {
            addr: config.listen_addr.clone(),
            flag: "--listen",
            source,
        })?;
        let tls = config.tls()?.map(Arc::new);
        if tls.is_none() {
            tracing::warn!(
                node_id = config.node_id,
                "--insecure: both ports are plaintext and take no client certificate; anyone who can reach \
                 them can run commands on every worker and act as a peer"
            );
        }
        // The HTTP port and its TLS before anything starts: a taken port or bad credentials
        // then stop the node with nothing left running.
        let http_listener = match &config.http_listen_addr {
            Some(addr) => Some(bind(addr, "--http-listen").await?),
            None => None,
        };
        let http_tls = tls.as_deref().map(http::HttpTls::from_node).transpose()?;
        let console_token = config.console_token()?;
        if tls.is_some() && http_listener.is_some() && console_token.is_none() {
            tracing::info!(
                "no console.token in the credentials dir: the web console takes client certificates only;                  `raftsched certs console-token --dir DIR` writes one"
            );
        }
        let store_closed = store.closed_signal();
        let shared_state = store.state_machine.shared();
        let removed_peers = store.state_machine.removed_peers();
        let store_growth = Arc::clone(&store.growth);
        let store_events = Arc::clone(&store.events);
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config(&config)?),
            NetworkFactory::new(
                &config.cluster_id,
                faults,
                config.peer_dial_overrides.clone(),
                tls.clone(),
            ),
            store.log_store,
            store.state_machine,
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        let shutdown = CancellationToken::new();
        let guard = Guard::new(config.node_id, config.quotas.clone());
        let sampler = quota::sampler::spawn(guard.clone(), config.data_dir.clone(), shutdown.clone());
        let node_metrics = NodeMetrics::new();
        let to_metrics = node_metrics.clone();
        store_events.set_sink(move |event| to_metrics.store_event(event));
        if trace::exporting() {
            let node_id = config.node_id;
            store_events.set_apply_tracer(move |command| apply_spans(node_id, command));
        }
        let (readiness, observer) = observe::watch::spawn(raft.clone(), node_metrics.clone(), shutdown.clone());
        let app = App::new(
            raft.clone(),
            shared_state,
            WorkerHub::default(),
            guard,
            node_metrics.clone(),
            shutdown.clone(),
        );
        let alarm_poll = grpc::spawn_alarm_poll(app.clone(), tls.clone(), shutdown.clone());
        let dispatcher = Dispatcher::spawn(app.clone(), shutdown.clone());
        let snapshot_trigger = snapshot_trigger::spawn(
            raft.clone(),
            store_growth,
            snapshot_trigger::Floors {
                entries: config.raft.snapshot_after_entries,
                log_bytes: config.raft.snapshot_min_log_bytes,
            },
            shutdown.clone(),
        );
        let http_addr = http_listener.as_ref().and_then(|l| l.local_addr().ok());
        let http_server = http_listener.map(|listener| {
            let state = http::HttpState::new(app.clone(), node_metrics, readiness.clone(), tls.clone(), console_token);
            tokio::spawn(http::serve(listener, state, http_tls, shutdown.clone()))
        });
        let server = grpc::serve(
            listeners.client,
            app.clone(),
            readiness,
            tls.clone(),
            port_limits,
            shutdown.clone(),
        )
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        let server = tokio::spawn(server);
        let peer_server = grpc::serve_peer(
            listeners.peer,
            raft.clone(),
            removed_peers,
            &config.cluster_id,
            tls,
            port_limits,
            shutdown.clone(),
        )
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        let peer_server = tokio::spawn(peer_server);
        initialize_if_founder(&raft, &config).await?;
        match http_addr {
            Some(http_addr) => {
                tracing::info!(node_id = config.node_id, %local_addr, %peer_addr, %http_addr, "node started")
            }
            None => tracing::info!(node_id = config.node_id, %local_addr, %peer_addr, "node started"),
        }
        Ok(RunningNode {
            node_id: config.node_id,
            app,
            local_addr,
            peer_addr,
            http_addr,
            shutdown,
            server,
            peer_server,
            dispatcher,
            snapshot_trigger,
            sampler,
            alarm_poll,
            observer,
            http_server,
            store_closed,
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The client port's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The peer port's bound address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The HTTP port's bound address, if the node has one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    pub fn raft(&self) -> &Raft {
        self.app.raft()
    }

    /// Stops serving, stops Raft, and waits for both. Storage is closed when the last
    /// handle drops, so the data dir can be reopened right after.
    pub async fn shutdown(self) {
        self.hand_over_leadership().await;
        self.shutdown.cancel();
        if let Err(e) = self.dispatcher.await {
            tracing::warn!(node_id = self.node_id, "dispatcher task failed: {e}");
        }
        if let Err(e) = self.snapshot_trigger.await {
            tracing::warn!(node_id = self.node_id, "snapshot trigger task failed: {e}");
        }
        let background = [
            ("high-water sampler", Some(self.sampler)),
            ("alarm poll", Some(self.alarm_poll)),
            ("observer", Some(self.observer)),
            ("HTTP server", self.http_server),
        ];
        for (name, task) in background.into_iter().filter_map(|(name, task)| Some((name, task?))) {
            if let Err(e) = task.await {
                tracing::warn!(node_id = self.node_id, "{name} task failed: {e}");
            }
        }
        if let Err(e) = self.app.raft().shutdown().await {
            tracing::warn!(node_id = self.node_id, "raft shutdown: {e}");
        }
        for (port, server) in [("client", self.server), ("peer", self.peer_server)] {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(node_id = self.node_id, "{port} port's gRPC server stopped with: {e}"),
                Err(e) => tracing::warn!(node_id = self.node_id, "{port} port's gRPC server task failed: {e}"),
            }
        }
        drop(self.app);
        // Raft's tasks and in-flight flushes drop their storage handles as they wind down;
        // wait for the last, so the data dir can be reopened as soon as this returns.
        let released = tokio::time::timeout(STORE_RELEASE_TIMEOUT, async {
            while !self.store_closed.is_closed() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        if released.is_err() {
            tracing::warn!(
                node_id = self.node_id,
                "storage still in use {STORE_RELEASE_TIMEOUT:?} after shutdown"
            );
        }
        tracing::info!(node_id = self.node_id, "node stopped");
    }
}

impl RunningNode {
    /// A leader asked to stop first hands leadership to a follower, so clients see a quick,
    /// orderly change instead of waiting out an election timeout.
    async fn hand_over_leadership(&self) {
        if !self.raft().is_leader() || self.app.members().len() < 2 {
            return;
        }
        match self.app.transfer_leader_within(None, HAND_OVER_TIMEOUT).await {
            Ok(leader) => tracing::info!(node_id = self.node_id, leader, "handed leadership over before stopping"),
            Err(e) => tracing::warn!(node_id = self.node_id, "could not hand leadership over: {e}"),
        }
    }
}

fn raft_config(config: &NodeConfig) -> Result<openraft::Config, NodeError> {
    let tuning = &config.raft;
    openraft::Config {
        cluster_name: config.cluster_id.clone(),
        heartbeat_interval: tuning.heartbeat_interval_ms,
        election_timeout_min: tuning.election_timeout_min_ms,
        election_timeout_max: tuning.election_timeout_max_ms,
        // Our own trigger decides (node/snapshot_trigger.rs): by entries and log size.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: tuning.entries_kept_after_snapshot,
        max_payload_entries: MAX_ENTRIES_PER_APPEND,
        enable_pre_vote: Some(true),
        // A leader restarted after a crash must not resume leading in its old term: entries it
        // had sent to followers but not yet fsynced itself are gone from its log, and it would
        // reuse their log ids for different entries, so replicas would diverge (found by the
        // chaos tool, seed 23). Making it stand for election costs one election timeout.
        enable_leader_restore: Some(false),
        ..openraft::Config::default()
    }
    .validate()
    .map_err(|e| NodeError::Config(ConfigError::Invalid(e.to_string())))
}

/// The founding member with the lowest id initialises the cluster, once: a node whose
/// storage already holds a vote or log (a restart) is never initialised again.
async fn initialize_if_founder(raft: &Raft, config: &NodeConfig) -> Result<(), NodeError> {
    let founder = config.initial_members.keys().next() == Some(&config.node_id);
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    if !founder || initialized {
        return Ok(());
    }
    let members = config.initial_member_nodes()?;
    tracing::info!(node_id = config.node_id, ?members, "initialising a new cluster");
    raft.initialize(members)
        .await
        .map_err(|e| NodeError::Raft(format!("initialise: {e}")))
}

/// The "apply" span of each traced submission in `command`, on this node (every node
/// applies every entry: a trace shows all three).
fn apply_spans(node_id: NodeId, command: &Command) -> Vec<tracing::Span> {
    command
        .trace_parents()
        .into_iter()
        .map(|parent| {
            let span = tracing::info_span!(target: trace::TARGET, "apply", node_id);
            trace::set_parent(&span, parent);
            span
        })
        .collect()
}
