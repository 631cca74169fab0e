//! The gRPC port under hostile traffic: one connection opening 1000 streams of maximal
//! messages (Raft appends with and without the cluster header, client submissions), too
//! many connections, silent connections, and snapshot streams that lie about their size.
//! Each is refused; node memory stays within what the limits allow; writes keep committing.
//!
//! The attacker speaks HTTP/2 directly (the `h2` crate) and sends every stream's body from
//! one shared buffer, so the test process's own memory stays small and the resident set
//! measured (nodes are in-process, `VmRSS` of this process) is the nodes'. For the same
//! reason this is a test binary of its own and not a module of `it`: another test's cluster
//! in the same process would count against the bound (seen: +132 MiB against 128 MiB).

use raftsched_testkit as common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::CLUSTER_ID;
use common::TestCluster;
use common::test_tuning;
use common::wait_until;
use futures::future::join_all;
use prost::Message;
use raftsched_api::CLUSTER_HEADER;
use raftsched_api::raft as raft_proto;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use raftsched_server::grpc::admission::CONNECTION_RECEIVE_BYTES;
use raftsched_server::network::FaultInjector;
use raftsched_server::network::MAX_RAFT_MESSAGE_BYTES;
use raftsched_server::network::MAX_SNAPSHOT_BYTES;
use raftsched_server::node::PortLimits;
use raftsched_server::node::RunningNode;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tonic::codegen::Bytes;
use tonic::codegen::http;

const MIB: u64 = 1024 * 1024;
/// Streams the attacker opens on its one connection.
const STREAMS: usize = 1000;
/// Allowance for what is not the attack: allocator slack, the client's own connection,
/// tracing, log entries of the writes that go on meanwhile.
const SLACK_BYTES: u64 = 64 * MIB;

/// The tests in this binary measure the process's memory: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS kB");
    kib * 1024
}

/// Samples the resident set every 5 ms until stopped; returns the largest seen.
fn sample_peak_rss() -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let sampler = tokio::spawn(async move {
        let mut peak = rss_bytes();
        while !stopped.load(Ordering::Relaxed) {
            peak = peak.max(rss_bytes());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peak.max(rss_bytes())
    });
    (stop, sampler)
}

/// Submits tasks in a loop until stopped; counts the acknowledged ones.
fn keep_writing(client: ClusterClient) -> (Arc<AtomicBool>, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let (stopped, count) = (Arc::clone(&stop), Arc::clone(&acked));
    let writer = tokio::spawn(async move {
        let mut i = 0;
        while !stopped.load(Ordering::Relaxed) {
            i += 1;
            if client
                .submit_task(common::command_spec(&format!("w{i}"), ""))
                .await
                .is_ok()
            {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (stop, acked, writer)
}

/// One HTTP/2 connection, driven in the background.
async fn h2_connect(addr: &str) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// What one attacking stream got: a gRPC status code, or a reset/closed stream (the server
/// refuses streams past its concurrent-stream cap that the client opened before it learned
/// the cap from the server's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Code(i32),
    Reset,
}

/// Sends one gRPC call whose body is `message` (already framed), with or without the
/// cluster header, and returns its status.
async fn h2_call(client: h2::client::SendRequest<Bytes>, path: &str, cluster: bool, message: Bytes) -> Outcome {
    let Ok(mut client) = client.ready().await else {
        return Outcome::Reset;
    };
    let mut request = http::Request::post(format!("http://node{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if cluster {
        request = request.header(CLUSTER_HEADER, CLUSTER_ID);
    }
    let Ok((response, mut body)) = client.send_request(request.body(()).unwrap(), false) else {
        return Outcome::Reset;
    };
    // h2 queues the bytes (a reference to the shared buffer) and sends them as the
    // server's windows allow.
    if body.send_data(message, true).is_err() {
        return Outcome::Reset;
    }
    let Ok(response) = response.await else {
        return Outcome::Reset;
    };
    if let Some(code) = grpc_status(response.headers()) {
        return Outcome::Code(code);
    }
    let mut body = response.into_body();
    while let Some(Ok(data)) = body.data().await {
        let _ = body.flow_control().release_capacity(data.len());
    }
    match body.trailers().await {
        Ok(Some(trailers)) => grpc_status(&trailers).map_or(Outcome::Reset, Outcome::Code),
        _ => Outcome::Reset,
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// A gRPC frame: the 5-byte prefix and the encoded message.
fn framed(message: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(message.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    Bytes::from(frame)
}

/// A `RaftMessage` as large as the cap allows, whose data is not a postcard message.
fn maximal_raft_message() -> Bytes {
    let overhead = 1 + prost::encoding::encoded_len_varint(MAX_RAFT_MESSAGE_BYTES as u64);
    let message = raft_proto::RaftMessage {
        data: vec![0xFF; MAX_RAFT_MESSAGE_BYTES - overhead],
    };
    let encoded = message.encode_to_vec();
    assert_eq!(encoded.len(), MAX_RAFT_MESSAGE_BYTES);
    framed(&encoded)
}

/// A `SubmitTaskRequest` of 4 MiB, refused by validation (its name is far too long).
fn maximal_submit() -> Bytes {
    let limit = raftsched_api::MAX_API_MESSAGE_BYTES;
    let mut spec = common::command_spec("x", "");
    spec.name = "n".repeat(limit - 64);
    let encoded = api::SubmitTaskRequest { spec: Some(spec) }.encode_to_vec();
    assert!(encoded.len() <= limit, "{} bytes", encoded.len());
    framed(&encoded)
}

/// Opens [`STREAMS`] streams of `message` on one connection, all at once; returns how many
/// got each outcome.
async fn flood(addr: &str, path: &str, cluster: bool, message: Bytes) -> std::collections::BTreeMap<Outcome, usize> {
    let client = h2_connect(addr).await;
    let calls = (0..STREAMS).map(|_| h2_call(client.clone(), path, cluster, message.clone()));
    let mut outcomes = std::collections::BTreeMap::new();
    for outcome in join_all(calls).await {
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    outcomes
}

/// Runs a flood while a client keeps writing; asserts nothing was accepted, the resident
/// set grew by at most `bound`, and writes were acknowledged during and after.
async fn flood_is_refused_within(
    cluster: &TestCluster,
    what: &str,
    path: &str,
    cluster_header: bool,
    message: Bytes,
    bound: u64,
) {
    let leader = cluster.wait_for_leader().await;
    // Raft is served on the peer port only.
    let addr = if path.starts_with("/raftsched.raft.") {
        cluster.peer_addr(leader)
    } else {
        cluster.addr(leader)
    };
    let baseline = rss_bytes();
    let (stop_writing, acked, writer) = keep_writing(cluster.client());
    wait_until("a first write", || async {
        (acked.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    let (stop_sampling, sampler) = sample_peak_rss();
    let started = Instant::now();
    let acked_before = acked.load(Ordering::Relaxed);
    let outcomes = flood(&addr, path, cluster_header, message).await;
    let acked_during = acked.load(Ordering::Relaxed) - acked_before;
    stop_sampling.store(true, Ordering::Relaxed);
    let peak = sampler.await.expect("sampler");
    let after = acked.load(Ordering::Relaxed);
    wait_until("a write after the flood", || async {
        (acked.load(Ordering::Relaxed) > after).then_some(())
    })
    .await;
    stop_writing.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let growth = peak.saturating_sub(baseline);
    println!(
        "{what}: {outcomes:?} in {:?}; RSS {} MiB -> peak {} MiB (+{} MiB, bound {} MiB); {acked_during} writes \
         acknowledged meanwhile",
        started.elapsed(),
        baseline / MIB,
        peak / MIB,
        growth / MIB,
        bound / MIB
    );
    // Refused at once, not accepted, and not left to time out (OK, CANCELLED,
    // DEADLINE_EXCEEDED).
    for code in [0, 1, 4] {
        assert!(
            !outcomes.contains_key(&Outcome::Code(code)),
            "{what}: a call ended with code {code}: {outcomes:?}"
        );
    }
    assert!(
        growth <= bound,
        "{what}: RSS grew {} MiB, more than the {} MiB the limits allow",
        growth / MIB,
        bound / MIB
    );
    assert!(acked_during > 0, "{what}: no write was acknowledged during the flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_maximal_streams_on_one_connection_are_refused_within_bounded_memory() {
    let _serial = SERIAL.lock().await;
    let cluster = TestCluster::start_insecure(3, test_tuning()).await;
    let append = "/raftsched.raft.v1.RaftService/AppendEntries";
    // Without the header nothing is read: what the connection window lets in, at most.
    flood_is_refused_within(
        &cluster,
        "appends without the header",
        append,
        false,
        maximal_raft_message(),
        SLACK_BYTES,
    )
    .await;
    // With it, and for client calls: what the connection's receive share admits at once,
    // each message buffered and copied once while decoding.
    let bound = 2 * CONNECTION_RECEIVE_BYTES as u64 + SLACK_BYTES;
    flood_is_refused_within(
        &cluster,
        "appends with the header",
        append,
        true,
        maximal_raft_message(),
        bound,
    )
    .await;
    let submit = "/raftsched.v1.Scheduler/SubmitTask";
    flood_is_refused_within(&cluster, "4 MiB submissions", submit, false, maximal_submit(), bound).await;
    cluster.wait_for_identical_replicas().await;
    cluster.shutdown().await;
}

/// Low limits for the tests of the caps: the production ones (11,024 connections, 5 s, 10 s)
/// would need more file descriptors than the test may open, or long waits.
const TEST_LIMITS: PortLimits = PortLimits {
    max_connections: 8,
    handshake_timeout: Duration::from_millis(500),
    keepalive_interval: Duration::from_millis(300),
    keepalive_timeout: Duration::from_millis(300),
};

/// The cap test's limits: the same cap, but a handshake timeout and keepalive far longer
/// than the test. A held connection then cannot lose its slot to a ping answered late on a
/// loaded machine, and an extra connection that was wrongly accepted would stay open for
/// 30 s, so one closed within [`REFUSAL_BOUND`] was refused, not timed out.
const CAP_LIMITS: PortLimits = PortLimits {
    handshake_timeout: Duration::from_secs(30),
    keepalive_interval: Duration::from_secs(30),
    keepalive_timeout: Duration::from_secs(30),
    ..TEST_LIMITS
};

/// How long a refused connection may take to be closed: a refusal needs no I/O, but a
/// 2-core CI machine running other test binaries can delay the accept loop by a few hundred
/// milliseconds. Far below [`CAP_LIMITS`]' handshake timeout, so it still tells the two apart.
const REFUSAL_BOUND: Duration = Duration::from_secs(5);
const _: () = assert!(REFUSAL_BOUND.as_millis() * 4 < CAP_LIMITS.handshake_timeout.as_millis());

/// A one-node cluster with [`TEST_LIMITS`] on its port.
async fn start_limited_node(root: &tempfile::TempDir) -> RunningNode {
    start_node_with_limits(root, TEST_LIMITS).await
}

async fn start_node_with_limits(root: &tempfile::TempDir, limits: PortLimits) -> RunningNode {
    let listener = raftsched_testkit::bind_ephemeral().await;
    let member = raftsched_testkit::member_of(&listener);
    let mut config = raftsched_testkit::node_config(1, &member, root.path().join("node1"));
    config.initial_members = [(1, member.to_spec())].into_iter().collect();
    // These tests speak raw HTTP/2 and measure the plaintext port.
    config.insecure = true;
    config.raft = test_tuning();
    RunningNode::start_with_port_limits(config, listener, FaultInjector::default(), limits)
        .await
        .expect("node starts")
}

/// Whether the server closed `stream` (EOF or reset) within `within`; bytes it sends (its
/// HTTP/2 settings and pings) are read and ignored, never answered.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0_u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// An HTTP/2 connection on which the server has answered a call (UNIMPLEMENTED for a path
/// it does not serve), so the server accepted it and it holds a slot.
async fn answered_connection(addr: &str) -> h2::client::SendRequest<Bytes> {
    wait_until("a connection the server answers", || async {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let (client, connection) = h2::client::handshake(tcp).await.ok()?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let outcome = h2_call(client.clone(), "/raftsched.v1.Absent/Absent", true, framed(&[])).await;
        matches!(outcome, Outcome::Code(_)).then_some(client)
    })
    .await
}

async fn submit_works(client: &ClusterClient) {
    wait_until("a submission to succeed", || async {
        client.submit_task(common::command_spec("after", "")).await.ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_once_and_the_port_recovers() {
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let node = start_node_with_limits(&root, CAP_LIMITS).await;
    let addr = node.local_addr().to_string();
    let client = ClusterClient::new(&addr).unwrap();
    submit_works(&client).await;
    drop(client);
    // Fill every slot with live HTTP/2 connections. Each is proven to hold a slot by a call
    // the server answers: an h2 handshake alone completes before the server has accepted,
    // and the dropped client's slot is freed asynchronously, so a "held" connection could
    // otherwise be one the server refused, leaving a slot for an extra one.
    let mut held = Vec::new();
    for _ in 0..CAP_LIMITS.max_connections {
        held.push(answered_connection(&addr).await);
    }
    // The next ones are closed before they could send anything.
    for extra in 0..5 {
        let mut stream = TcpStream::connect(&addr).await.expect("the kernel still accepts");
        assert!(
            closed_within(&mut stream, REFUSAL_BOUND).await,
            "extra connection {extra} was not closed at once"
        );
    }
    // Closing the held ones frees their slots: clients work again.
    drop(held);
    let client = ClusterClient::new(&addr).unwrap();
    submit_works(&client).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_handshake_timeout_and_a_dead_peer_after_keepalive() {
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let node = start_limited_node(&root).await;
    let addr = node.local_addr().to_string();
    let slack = Duration::from_secs(2);
    // Connects and says nothing: closed once the handshake timeout passed.
    let started = Instant::now();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    assert!(closed_within(&mut silent, TEST_LIMITS.handshake_timeout + slack).await);
    assert!(started.elapsed() >= TEST_LIMITS.handshake_timeout);
    // Sends the preface and its settings, then never answers a ping: a frozen peer.
    let mut frozen = TcpStream::connect(&addr).await.unwrap();
    frozen.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    frozen.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let within = TEST_LIMITS.keepalive_interval + TEST_LIMITS.keepalive_timeout + slack;
    assert!(
        closed_within(&mut frozen, within).await,
        "a peer that never answers pings stays connected"
    );
    node.shutdown().await;
}

/// Our clients ping every 200 ms; the server must not close them for it (hyper has no
/// "too many pings" policy; this keeps it so). One connection pings every 50 ms across 3 s
/// idle, ten times the server's keepalive interval here, then still carries a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pings_often_stays_connected_while_idle() {
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let node = start_limited_node(&root).await;
    let addr = node.local_addr().to_string();
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let (client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut pings = connection.ping_pong().expect("ping handle");
    let driver = tokio::spawn(connection);
    let idle_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < idle_until {
        pings.ping(h2::Ping::opaque()).await.expect("the server answers pings");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let request = api::GetTaskRequest {
        task_id: 1,
        consistency: api::Consistency::Stale as i32,
    };
    // A handle kept while the driver is checked: h2 ends a client connection on its own
    // once every handle is dropped and no stream is open, which is not the server closing it.
    let keep_open = client.clone();
    let outcome = h2_call(
        client,
        "/raftsched.v1.Scheduler/GetTask",
        false,
        framed(&request.encode_to_vec()),
    )
    .await;
    // Task 1 does not exist: NOT_FOUND (5) is an answer on the same connection.
    assert_eq!(outcome, Outcome::Code(5));
    assert!(!driver.is_finished(), "the connection was closed");
    drop(keep_open);
    node.shutdown().await;
}

/// Sends InstallSnapshot chunks and keeps the stream open afterwards: an answer that comes
/// before the stream ends was decided on what was sent, without waiting for (or buffering)
/// the rest.
async fn snapshot_answer(addr: &str, cluster: bool, chunks: Vec<raft_proto::SnapshotChunk>) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut client = raft_proto::raft_service_client::RaftServiceClient::new(channel);
    let (sender, receiver) = tokio::sync::mpsc::channel(chunks.len() + 1);
    for chunk in chunks {
        sender.send(chunk).await.unwrap();
    }
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(receiver));
    if cluster {
        request
            .metadata_mut()
            .insert(CLUSTER_HEADER, CLUSTER_ID.parse().unwrap());
    }
    let answer = tokio::time::timeout(Duration::from_secs(10), client.install_snapshot(request))
        .await
        .expect("answered while the stream is still open");
    drop(sender);
    answer.expect_err("the snapshot is refused")
}

fn snapshot_header(total_bytes: u64) -> raft_proto::SnapshotChunk {
    let vote = raftsched_store::raft_types::Vote::new(1, 1);
    let meta = raftsched_store::raft_types::SnapshotMeta {
        last_log_id: None,
        last_membership: Default::default(),
    };
    raft_proto::SnapshotChunk {
        header: raftsched_core::state::wire::encode_versioned(&(vote, meta, total_bytes)),
        data: Vec::new(),
    }
}

fn data_chunk(bytes: usize) -> raft_proto::SnapshotChunk {
    raft_proto::SnapshotChunk {
        header: Vec::new(),
        data: vec![7; bytes],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_streams_that_lie_about_their_size_are_refused_before_buffering() {
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let node = start_limited_node(&root).await;
    let addr = node.peer_addr().to_string();
    let over = snapshot_answer(&addr, true, vec![snapshot_header(MAX_SNAPSHOT_BYTES + 1)]).await;
    assert_eq!(over.code(), tonic::Code::InvalidArgument, "{over:?}");
    assert!(over.message().contains("total_bytes"), "{over:?}");
    let past = snapshot_answer(&addr, true, vec![snapshot_header(10), data_chunk(8), data_chunk(8)]).await;
    assert_eq!(past.code(), tonic::Code::InvalidArgument, "{past:?}");
    assert!(past.message().contains("declared total_bytes 10"), "{past:?}");
    let big_chunk = raftsched_server::network::MAX_SNAPSHOT_CHUNK_BYTES + 1;
    let chunk = snapshot_answer(&addr, true, vec![snapshot_header(64 * MIB), data_chunk(big_chunk)]).await;
    assert_eq!(chunk.code(), tonic::Code::InvalidArgument, "{chunk:?}");
    assert!(chunk.message().contains("snapshot chunk data"), "{chunk:?}");
    let stranger = snapshot_answer(&addr, false, vec![snapshot_header(10)]).await;
    assert_eq!(stranger.code(), tonic::Code::FailedPrecondition, "{stranger:?}");
    // The node is still fine.
    submit_works(&ClusterClient::new(&node.local_addr().to_string()).unwrap()).await;
    node.shutdown().await;
}

/// A Raft message in a wire format the node does not read (from a newer release, or from
/// one before versioned messages) is refused with FAILED_PRECONDITION naming both versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_message_in_an_unreadable_wire_format_is_failed_precondition() {
    use raftsched_core::state::wire::wire_header;
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let node = start_limited_node(&root).await;
    let addr = node.peer_addr().to_string();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut client = raft_proto::raft_service_client::RaftServiceClient::new(channel);
    let vote = raftsched_store::raft_types::Vote::new(1, 2);
    let request = openraft::raft::VoteRequest::<raftsched_store::raft_types::TypeConfig>::new(vote, None);
    let mut newer = wire_header(99).to_vec();
    newer.extend(postcard::to_allocvec(&request).unwrap());
    let bare = postcard::to_allocvec(&request).unwrap();
    for (data, needle) in [(newer, "wire format v99"), (bare, "no wire format header")] {
        let mut call = tonic::Request::new(raft_proto::RaftMessage { data });
        call.metadata_mut().insert(CLUSTER_HEADER, CLUSTER_ID.parse().unwrap());
        let status = client.vote(call).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
        assert!(status.message().contains(needle), "{status:?}");
        let reads = format!(
            "reads formats v1 to v{}",
            raftsched_core::state::wire::WIRE_FORMAT_VERSION
        );
        assert!(status.message().contains(&reads), "{status:?}");
    }
    // The node is still fine.
    submit_works(&ClusterClient::new(&node.local_addr().to_string()).unwrap()).await;
    node.shutdown().await;
}

/// A Raft append's entries are decoded with postcard on a runtime thread (2 MiB stack). A
/// batch nested in a batch, 4 million levels deep, fits in one 8 MiB message (2 bytes a
/// level): the decoder must refuse it, not recurse once per level.
#[test]
fn a_deeply_nested_batch_is_refused_by_the_decoder_on_a_runtime_sized_stack() {
    use raftsched_core::state::Command;
    let empty = postcard::to_allocvec(&Command::Batch { commands: Vec::new() }).unwrap();
    assert_eq!(empty.len(), 2, "variant index and length, one byte each: {empty:?}");
    let levels = MAX_RAFT_MESSAGE_BYTES / 2 - 1;
    let mut nested = Vec::with_capacity(MAX_RAFT_MESSAGE_BYTES);
    for _ in 0..levels {
        nested.extend_from_slice(&[empty[0], 1]);
    }
    nested.extend_from_slice(&empty);
    let decoded = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || postcard::from_bytes::<Command>(&nested).map(|_| ()))
        .unwrap()
        .join()
        .expect("the decoder returned");
    let error = decoded.expect_err("a nested batch is refused");
    println!("refused: {error}");
    // One level of nesting decodes (apply answers a nested batch with Empty, changing nothing).
    let once = postcard::to_allocvec(&Command::Batch {
        commands: vec![Command::Batch { commands: Vec::new() }],
    })
    .unwrap();
    postcard::from_bytes::<Command>(&once).expect("a batch in a batch decodes");
}
