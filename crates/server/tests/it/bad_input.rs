//! Bad input gets the right gRPC code and a message that says what to do; nothing panics a
//! node and nothing is lost.

use raftsched_testkit as common;

use std::collections::HashMap;

use common::TestCluster;
use common::command_spec;
use common::next_assignment;
use common::test_tuning;
use raftsched_api::v1 as api;
use raftsched_api::v1::workers_client::WorkersClient;
use raftsched_client::ClientError;
use raftsched_client::ClusterClient;
use raftsched_client::ErrorCode as Code;
use raftsched_server::node::RunningNode;

fn rejection(result: Result<impl std::fmt::Debug, ClientError>) -> (Code, String) {
    match result {
        Err(ClientError::Rejected { code, message, .. }) => (code, message),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_get_precise_codes() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();

    let mut no_name = command_spec("x", "");
    no_name.name.clear();
    let (code, message) = rejection(client.submit_task(no_name).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("name"), "{message}");

    let mut no_payload = command_spec("x", "");
    no_payload.payload = None;
    let (code, message) = rejection(client.submit_task(no_payload).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("payload"), "{message}");

    let too_many_attempts = common::spec::builder("x").max_attempts(1000).build();
    let (code, message) = rejection(client.submit_task(too_many_attempts).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("max_attempts"), "{message}");

    let (code, message) = rejection(client.get_task(404, api::Consistency::Linearizable).await);
    assert_eq!(code, Code::NotFound);
    assert!(message.contains("404"), "{message}");

    let (code, _) = rejection(client.cancel_task(404, "").await);
    assert_eq!(code, Code::NotFound);

    let task = client
        .submit_task(command_spec("x", "same"))
        .await
        .unwrap()
        .task
        .unwrap();
    client.cancel_task(task.id, "first").await.unwrap();
    let (code, message) = rejection(client.cancel_task(task.id, "again").await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("already cancelled"), "{message}");

    let (code, message) = rejection(client.submit_task(command_spec("different", "same")).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("new request id"), "{message}");

    let bad_page = api::ListTasksRequest {
        page_token: "not-a-token".into(),
        ..Default::default()
    };
    let (code, _) = rejection(client.list_tasks(bad_page).await);
    assert_eq!(code, Code::InvalidArgument);

    let bad_state = api::ListTasksRequest {
        state: 99,
        ..Default::default()
    };
    let (code, _) = rejection(client.list_tasks(bad_state).await);
    assert_eq!(code, Code::InvalidArgument);

    // Text filters longer than any stored name or request id, or with control characters.
    for (request, field) in [
        (
            api::ListTasksRequest {
                name_contains: "n".repeat(257),
                ..Default::default()
            },
            "name_contains",
        ),
        (
            api::ListTasksRequest {
                client_request_id: "r".repeat(129),
                ..Default::default()
            },
            "client_request_id",
        ),
        (
            api::ListTasksRequest {
                name_contains: "a\nb".into(),
                ..Default::default()
            },
            "name_contains",
        ),
    ] {
        let (code, message) = rejection(client.list_tasks(request).await);
        assert_eq!(code, Code::InvalidArgument, "{message}");
        assert!(message.contains(field), "{message}");
    }
    // At the limit they are accepted, and find the task by its request id or name part.
    let found = |request: api::ListTasksRequest| {
        let client = client.clone();
        async move {
            client
                .list_tasks(request)
                .await
                .unwrap()
                .tasks
                .iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        }
    };
    let by_request = api::ListTasksRequest {
        client_request_id: "same".into(),
        ..Default::default()
    };
    assert_eq!(found(by_request).await, vec![task.id]);
    let longest = api::ListTasksRequest {
        name_contains: "n".repeat(256),
        ..Default::default()
    };
    assert_eq!(found(longest).await, Vec::<u64>::new());
    let by_name = api::ListTasksRequest {
        name_contains: "x".into(),
        ..Default::default()
    };
    assert_eq!(found(by_name).await, vec![task.id]);

    let (code, message) = rejection(client.submit_tasks(vec![]).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("tasks"), "{message}");

    // Nothing above created a task but the one cancelled.
    let all = client.list_tasks(api::ListTasksRequest::default()).await.unwrap();
    assert_eq!(all.tasks.len(), 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_and_the_node_keeps_serving() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();

    let huge = common::spec::builder("huge")
        .opaque("blob", vec![7; 5 * 1024 * 1024])
        .build();
    // A raw client without our client's own size limit, so the server's limit is what answers.
    let leader = cluster.wait_for_leader().await;
    let channel = cluster.channel(&cluster.addr(leader));
    let mut raw = api::scheduler_client::SchedulerClient::new(channel).max_encoding_message_size(usize::MAX);
    let status = raw
        .submit_task(api::SubmitTaskRequest { spec: Some(huge) })
        .await
        .unwrap_err();
    // tonic itself says OUT_OF_RANGE; the API's code for "too big" is RESOURCE_EXHAUSTED.
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("4 MiB"), "{status:?}");

    let large = common::spec::builder("large")
        .opaque("blob", vec![7; 100 * 1024])
        .build();
    let (code, message) = rejection(client.submit_task(large).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("payload"), "{message}");

    let ok = client.submit_task(command_spec("fine", "")).await.unwrap();
    assert!(ok.created);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_data_dir_of_another_cluster_or_node() {
    let mut cluster = TestCluster::start(3, test_tuning()).await;
    cluster.stop_node(3).await;

    let mut foreign = cluster.config(3);
    foreign.cluster_id = "another-cluster".into();
    let error = RunningNode::start(foreign).await.err().expect("refused");
    let message = error.to_string();
    assert!(message.contains("refusing to start"), "{message}");
    assert!(message.contains("another-cluster"), "{message}");

    let mut wrong_id = cluster.config(3);
    wrong_id.data_dir = cluster.data_dir(2);
    let error = RunningNode::start(wrong_id).await.err().expect("refused");
    assert!(error.to_string().contains("node 2"), "{error}");

    let not_ours = tempfile::tempdir().unwrap();
    std::fs::write(not_ours.path().join("important.txt"), "keep me").unwrap();
    let mut foreign_dir = cluster.config(3);
    foreign_dir.data_dir = not_ours.path().to_path_buf();
    let error = RunningNode::start(foreign_dir).await.err().expect("refused");
    assert!(error.to_string().contains("not a raftsched data dir"), "{error}");
    assert_eq!(
        std::fs::read_to_string(not_ours.path().join("important.txt")).unwrap(),
        "keep me"
    );
    cluster.shutdown().await;
}

/// The code and message of a refusal, checking the code and that the message names each of
/// `needles` (the field, its limit, the value).
fn refused_with(result: Result<impl std::fmt::Debug, ClientError>, code: Code, needles: &[&str]) {
    let (got, message) = rejection(result);
    assert_eq!(got, code, "{message}");
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
}

/// Every node answers its own status, and a write still commits.
async fn every_node_answers(cluster: &TestCluster) {
    for id in cluster.ids() {
        let client = cluster.client_of(id);
        client
            .call_node(&cluster.addr(id), |mut c| async move {
                c.node_status(api::NodeStatusRequest {}).await
            })
            .await
            .unwrap_or_else(|e| panic!("node {id} does not answer: {e:?}"));
    }
    let written = cluster.client().submit_task(command_spec("still-up", "")).await;
    assert!(written.expect("a write commits").created);
}

fn now_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.expect("clock after 1970").as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_shard_counts_are_checked_before_anything_is_allocated() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    // 4294967295 (u32::MAX) once made every node allocate 100 GB and abort.
    for shards in [u32::MAX, 1_000_000, 1001] {
        let result = client.submit_broadcast(command_spec("wide", ""), shards).await;
        refused_with(
            result,
            Code::InvalidArgument,
            &["shards", "from 1 to 1000", &shards.to_string()],
        );
    }
    // 0 is a broadcast to the matching workers; there are none.
    let result = client.submit_broadcast(command_spec("nobody", ""), 0).await;
    refused_with(result, Code::InvalidArgument, &["broadcast", "no registered worker"]);
    for shards in [1, 1000] {
        let parent = client
            .submit_broadcast(command_spec(&format!("s{shards}"), ""), shards)
            .await
            .expect("a valid shard count")
            .task
            .unwrap();
        assert_eq!(parent.shards.len(), shards as usize);
    }
    every_node_answers(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_at_is_bounded_like_delay_and_excludes_it() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    let year_ms = raftsched_core::state::limits::MAX_DELAY_MS;
    let with = |run_at_ms: u64, delay_ms: u64| {
        common::spec::builder("later")
            .run_at_ms(run_at_ms)
            .delay_ms(delay_ms)
            .build()
    };
    refused_with(
        client.submit_task(with(now_ms() + 1000, 1000)).await,
        Code::InvalidArgument,
        &["run_at_ms", "delay_ms", "at most one"],
    );
    // A minute past the bound, to be clear of the gap between this clock and the leader's.
    for run_at in [u64::MAX, now_ms() + year_ms + 60_000] {
        let result = client.submit_task(with(run_at, 0)).await;
        refused_with(
            result,
            Code::InvalidArgument,
            &["run_at_ms", &run_at.to_string(), "one year"],
        );
    }
    for delay in [u64::MAX, year_ms + 1] {
        let result = client.submit_task(with(0, delay)).await;
        refused_with(
            result,
            Code::InvalidArgument,
            &["delay_ms", &delay.to_string(), "one year"],
        );
    }
    for (run_at, delay) in [(0, 0), (1, 0), (now_ms() + year_ms - 60_000, 0), (0, 1), (0, year_ms)] {
        let task = client
            .submit_task(with(run_at, delay))
            .await
            .expect("within the bounds");
        let ready_at = task.task.unwrap().ready_at_ms;
        assert!(ready_at >= run_at, "run_at {run_at}: ready at {ready_at}");
    }
    // The same bound in a workflow and a batch, where nothing of the request is created.
    let workflow = api::SubmitWorkflowRequest {
        namespace: String::new(),
        name: "wf".into(),
        tasks: vec![api::WorkflowTaskSpec {
            key: "a".into(),
            spec: Some(with(u64::MAX, 0)),
            after: vec![],
        }],
        request_id: String::new(),
    };
    refused_with(
        client.submit_workflow(workflow).await,
        Code::InvalidArgument,
        &["\"a\"", "run_at_ms"],
    );
    let batch = vec![command_spec("fine", ""), with(u64::MAX, 0)];
    refused_with(client.submit_tasks(batch).await, Code::InvalidArgument, &["run_at_ms"]);
    every_node_answers(&cluster).await;
    cluster.shutdown().await;
}

async fn set_policy(client: &ClusterClient, weight: u32, placement: &str) -> Result<(), ClientError> {
    set_policy_with_retention(client, weight, placement, 0).await
}

async fn set_policy_with_retention(
    client: &ClusterClient,
    weight: u32,
    placement: &str,
    retention_ms: u64,
) -> Result<(), ClientError> {
    let policy = api::QueuePolicy {
        namespace: String::new(),
        queue: "q".into(),
        weight,
        placement: placement.into(),
        retention_ms,
    };
    client.set_queue_policy(policy).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_weights_outside_1_to_1000_and_unknown_placements_are_refused() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    // The proto gives 0 no meaning: it used to be stored as 1 without a word.
    for weight in [0, 1001, u32::MAX] {
        let result = set_policy(&client, weight, "").await;
        refused_with(
            result,
            Code::InvalidArgument,
            &["weight", "from 1 to 1000", &weight.to_string()],
        );
    }
    for weight in [1, 1000] {
        set_policy(&client, weight, "spread").await.expect("a valid weight");
    }
    for placement in ["99", "nearest"] {
        let result = set_policy(&client, 1, placement).await;
        refused_with(result, Code::InvalidArgument, &["placement", placement, "least-loaded"]);
    }
    let queues = client
        .call(|mut c| async move { c.list_queues(api::ListQueuesRequest::default()).await })
        .await
        .unwrap();
    let policy = queues.queues[0].policy.clone().unwrap();
    assert_eq!((policy.weight, policy.placement.as_str()), (1000, "spread"));
    every_node_answers(&cluster).await;
    cluster.shutdown().await;
}

/// Retention: 0 is the cluster default; 1 s..3650 d is kept as given; anything else is
/// refused naming the field and the limits in human units, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_retentions_outside_1s_to_3650d_are_refused() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    let max_ms = 3650 * 86_400_000_u64;
    for retention_ms in [1, 999, max_ms + 1, 11 * 365 * 86_400_000, u64::MAX] {
        let result = set_policy_with_retention(&client, 1, "", retention_ms).await;
        refused_with(
            result,
            Code::InvalidArgument,
            &["retention", "between 1s and 3650d", "default 7d"],
        );
    }
    let retention_of = || async {
        let queues = client
            .call(|mut c| async move { c.list_queues(api::ListQueuesRequest::default()).await })
            .await
            .unwrap();
        queues
            .queues
            .iter()
            .find_map(|q| q.policy.clone())
            .map(|p| p.retention_ms)
    };
    assert_eq!(retention_of().await, None, "a refused policy was stored");
    for retention_ms in [1000, max_ms, 0] {
        set_policy_with_retention(&client, 1, "", retention_ms)
            .await
            .expect("a valid retention");
        assert_eq!(retention_of().await, Some(retention_ms));
    }
    every_node_answers(&cluster).await;
    cluster.shutdown().await;
}

async fn add_node(client: &ClusterClient, node_id: u64, address: &str) -> Result<api::AddNodeResponse, ClientError> {
    add_node_with_peer(client, node_id, address, "").await
}

async fn add_node_with_peer(
    client: &ClusterClient,
    node_id: u64,
    address: &str,
    peer_address: &str,
) -> Result<api::AddNodeResponse, ClientError> {
    let (address, peer_address) = (address.to_string(), peer_address.to_string());
    client
        .call(|mut c| {
            let request = api::AddNodeRequest {
                node_id,
                address: address.clone(),
                peer_address: peer_address.clone(),
            };
            async move { c.add_node(request).await }
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_node_that_is_not_a_member_is_not_found() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    for node_id in [0, 4, u64::MAX] {
        let result = client
            .call(|mut c| async move { c.remove_node(api::RemoveNodeRequest { node_id }).await })
            .await;
        let needles = [format!("node {node_id} is not a member"), "1, 2, 3".to_string()];
        refused_with(result, Code::NotFound, &[&needles[0], &needles[1]]);
    }
    let long_address = format!("{}:1", "a".repeat(600));
    let result = add_node(&client, 4, &long_address).await;
    refused_with(result, Code::InvalidArgument, &["address", "1 to 512", "602"]);
    for address in ["http://", "127.0.0.1:0", "127.0.0.1:99999", "[::1", "a b:1", "no-port"] {
        let result = add_node(&client, 4, address).await;
        refused_with(result, Code::InvalidArgument, &["address", "host:port"]);
        let result = add_node_with_peer(&client, 4, "127.0.0.1:7", address).await;
        refused_with(result, Code::InvalidArgument, &["peer_address", "host:port"]);
    }
    // No room above the client port for the default peer port (+100).
    let result = add_node(&client, 4, "127.0.0.1:65500").await;
    refused_with(result, Code::FailedPrecondition, &["peer_address", "client port + 100"]);
    // A member's id with another address: refused, not a silent no-op.
    let result = add_node(&client, 2, "127.0.0.1:1").await;
    refused_with(result, Code::FailedPrecondition, &["node 2 is already a member at"]);
    let status = client.cluster_status().await.unwrap();
    assert_eq!(status.members.len(), 3);
    every_node_answers(&cluster).await;
    cluster.shutdown().await;
}

/// A worker speaking the protocol by hand.
struct RawWorker {
    client: ClusterClient,
    id: String,
    session: String,
}

impl RawWorker {
    async fn register(cluster: &TestCluster, id: &str, session: &str) -> RawWorker {
        let worker = RawWorker {
            client: cluster.worker_client(id),
            id: id.into(),
            session: session.into(),
        };
        worker.register_with(Default::default()).await.expect("register");
        worker
    }

    async fn register_with(&self, labels: HashMap<String, String>) -> Result<(), ClientError> {
        let request = api::RegisterWorkerRequest {
            worker_id: self.id.clone(),
            session_id: self.session.clone(),
            slots: 1,
            labels,
            lease_ms: 60_000,
            ..Default::default()
        };
        let call = |c| {
            let request = request.clone();
            async move { WorkersClient::new(c).register_worker(request).await }
        };
        self.client.call_channel(call).await.map(|_| ())
    }

    async fn heartbeat(&self, running_tokens: Vec<u64>) -> Result<Vec<u64>, ClientError> {
        let request = api::HeartbeatRequest {
            worker_id: self.id.clone(),
            session_id: self.session.clone(),
            running_tokens,
        };
        let call = |c| {
            let request = request.clone();
            async move { WorkersClient::new(c).heartbeat(request).await }
        };
        self.client.call_channel(call).await.map(|r| r.void_tokens)
    }

    async fn drain(&self, running_tokens: Vec<u64>) -> Result<(), ClientError> {
        let request = api::DrainWorkerRequest {
            worker_id: self.id.clone(),
            session_id: self.session.clone(),
            holding: Some(api::Holding { running_tokens }),
        };
        let call = |c| {
            let request = request.clone();
            async move { WorkersClient::new(c).drain_worker(request).await }
        };
        self.client.call_channel(call).await.map(|_| ())
    }

    async fn attach(&self, running_tokens: Vec<u64>) -> Result<tonic::Streaming<api::WorkerInstruction>, ClientError> {
        let request = api::AttachRequest {
            worker_id: self.id.clone(),
            session_id: self.session.clone(),
            running_tokens,
        };
        let call = |c| {
            let request = request.clone();
            async move { WorkersClient::new(c).attach(request).await }
        };
        self.client.call_channel(call).await
    }

    async fn report(&self, task_id: u64, token: u64, outcome: i32) -> Result<(), ClientError> {
        let request = api::ReportResultRequest {
            task_id,
            token,
            outcome,
            worker_id: self.id.clone(),
            session_id: self.session.clone(),
            ..Default::default()
        };
        let call = |c| {
            let request = request.clone();
            async move { WorkersClient::new(c).report_result(request).await }
        };
        self.client.call_channel(call).await.map(|_| ())
    }
}

fn entries(count: usize) -> HashMap<String, String> {
    (0..count).map(|i| (format!("k{i}"), "v".to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_token_lists_are_capped_at_the_slot_limit() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let worker = RawWorker::register(&cluster, "w", "s1").await;
    let tokens = |n: u64| (1..=n).collect::<Vec<u64>>();
    for count in [0, 1, 10_000] {
        let void = worker.heartbeat(tokens(count)).await.expect("within the limit");
        assert_eq!(void.len() as u64, count, "none of these tokens is valid");
    }
    let over = worker.heartbeat(tokens(10_001)).await;
    refused_with(
        over,
        Code::InvalidArgument,
        &["running_tokens", "10001", "at most 10000"],
    );
    let over = worker.attach(tokens(10_001)).await;
    refused_with(
        over,
        Code::InvalidArgument,
        &["running_tokens", "10001", "at most 10000"],
    );
    worker.attach(tokens(10_000)).await.expect("attach within the limit");

    let labels = worker.register_with(entries(33)).await;
    refused_with(labels, Code::InvalidArgument, &["labels", "33", "at most 32"]);
    worker.register_with(entries(32)).await.expect("32 labels");

    // What a draining worker holds is a token list too (last: it leaves the worker draining).
    let over = worker.drain(tokens(10_001)).await;
    refused_with(
        over,
        Code::InvalidArgument,
        &["running_tokens", "10001", "at most 10000"],
    );
    worker.drain(tokens(10_000)).await.expect("drain within the limit");
    every_node_answers(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_and_lists_of_requests_are_capped_before_conversion() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    let mut labels = command_spec("labels", "");
    labels.labels = entries(33);
    refused_with(
        client.submit_task(labels).await,
        Code::InvalidArgument,
        &["labels", "33", "at most 32"],
    );
    let mut constraints = command_spec("constraints", "");
    constraints.constraints = entries(33);
    let result = client.submit_task(constraints).await;
    refused_with(result, Code::InvalidArgument, &["constraints", "33", "at most 32"]);
    let mut env = command_spec("env", "");
    env.payload = Some(api::task_spec::Payload::Command(api::CommandPayload {
        command_line: "true".into(),
        env: (0..65).map(|i| (format!("V{i}"), "v".to_string())).collect(),
    }));
    refused_with(
        client.submit_task(env).await,
        Code::InvalidArgument,
        &["env", "65", "at most 64"],
    );

    let batch: Vec<api::TaskSpec> = (0..1001).map(|i| command_spec(&format!("t{i}"), "")).collect();
    let result = client.submit_tasks(batch).await;
    refused_with(result, Code::InvalidArgument, &["tasks", "1001", "from 1 to 1000"]);

    let task = |key: String, after: Vec<String>| api::WorkflowTaskSpec {
        spec: Some(command_spec(&key, "")),
        key,
        after,
    };
    let workflow = |tasks| api::SubmitWorkflowRequest {
        namespace: String::new(),
        name: "wf".into(),
        tasks,
        request_id: String::new(),
    };
    let wide: Vec<_> = (0..1001).map(|i| task(format!("k{i}"), vec![])).collect();
    let result = client.submit_workflow(workflow(wide)).await;
    refused_with(
        result,
        Code::InvalidArgument,
        &["workflow tasks", "1001", "at most 1000"],
    );
    let edges = vec![task("a".into(), vec!["b".into(); 10_001])];
    let result = client.submit_workflow(workflow(edges)).await;
    refused_with(result, Code::InvalidArgument, &["edges", "10001", "at most 10000"]);

    let all = client.list_tasks(api::ListTasksRequest::default()).await.unwrap();
    assert!(all.tasks.is_empty(), "nothing above created a task");
    every_node_answers(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_voids_its_attempts_as_worker_restarted() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    let first = RawWorker::register(&cluster, "w", "s1").await;
    let mut stream = first.attach(vec![]).await.expect("attach");
    let task = client.submit_task(command_spec("t", "")).await.unwrap().task.unwrap();
    let assignment = next_assignment(&mut stream).await;
    assert_eq!(assignment.task.unwrap().id, task.id);

    // The same worker id under a new session: its process restarted.
    let second = RawWorker::register(&cluster, "w", "s2").await;
    let task = client.get_task(task.id, api::Consistency::Linearizable).await.unwrap();
    let outcome = task.attempts[0].outcome;
    assert_eq!(outcome, api::AttemptOutcome::WorkerRestarted as i32, "{task:?}");
    assert!(task.attempts[0].error.contains("new session"), "{task:?}");

    // Only the leader records it; and no worker may report an unknown outcome.
    for outcome in [api::AttemptOutcome::WorkerRestarted as i32, 99, -1, i32::MAX, 0] {
        let result = second.report(task.id, assignment.token, outcome).await;
        refused_with(result, Code::InvalidArgument, &["outcome", &outcome.to_string()]);
    }
    every_node_answers(&cluster).await;
    cluster.shutdown().await;
}

/// A report must name its worker and session (a token alone records nothing): missing,
/// over-long or malformed, each is INVALID_ARGUMENT naming the field, and the attempt
/// still runs. On a plaintext cluster: with TLS, a worker credential names one worker and
/// a report naming any other id is refused before its fields are read (it/authz.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_without_its_worker_or_session_is_invalid_naming_the_field() {
    let cluster = TestCluster::start_insecure(3, test_tuning()).await;
    let client = cluster.client();
    let worker = RawWorker::register(&cluster, "w", "s1").await;
    let mut stream = worker.attach(vec![]).await.expect("attach");
    let task = client.submit_task(command_spec("t", "")).await.unwrap().task.unwrap();
    let assignment = next_assignment(&mut stream).await;
    let long_id = "w".repeat(129);
    let long_session = "s".repeat(129);
    let cases: [(&str, &str, &[&str]); 6] = [
        ("", "", &["worker_id", "1 to 128 bytes, got 0"]),
        ("", "s1", &["worker_id", "got 0"]),
        ("w", "", &["session_id", "1 to 128 bytes, got 0"]),
        (&long_id, "s1", &["worker_id", "got 129"]),
        ("w", &long_session, &["session_id", "got 129"]),
        ("w w", "s1", &["worker_id", "[A-Za-z0-9_.-/]"]),
    ];
    let report_as = |worker_id: &str, session_id: &str| {
        let request = api::ReportResultRequest {
            task_id: task.id,
            token: assignment.token,
            outcome: api::AttemptOutcome::Succeeded as i32,
            worker_id: worker_id.to_string(),
            session_id: session_id.to_string(),
            ..Default::default()
        };
        client.call_channel(move |c| {
            let request = request.clone();
            async move { WorkersClient::new(c).report_result(request).await }
        })
    };
    for (worker_id, session_id, needles) in cases {
        refused_with(report_as(worker_id, session_id).await, Code::InvalidArgument, needles);
    }
    // At the limit (128 bytes) the fields are well formed: refused only as not the holder.
    let result = report_as(&"w".repeat(128), &"s".repeat(128)).await;
    refused_with(result, Code::PermissionDenied, &["held by worker \"w\""]);
    let task = client.get_task(task.id, api::Consistency::Linearizable).await.unwrap();
    assert_eq!(task.state, api::TaskState::Running as i32, "{task:?}");
    every_node_answers(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_enum_values_are_invalid_argument_naming_the_field() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    for consistency in [2, 99, -1, i32::MAX] {
        let result = client
            .call(|mut c| async move {
                c.get_task(api::GetTaskRequest {
                    task_id: 1,
                    consistency,
                })
                .await
            })
            .await;
        refused_with(
            result,
            Code::InvalidArgument,
            &["consistency", &consistency.to_string()],
        );
        let request = api::ListTasksRequest {
            consistency,
            ..Default::default()
        };
        refused_with(
            client.list_tasks(request).await,
            Code::InvalidArgument,
            &["consistency"],
        );
    }
    for state in [8, 99, -1, i32::MAX] {
        let request = api::ListTasksRequest {
            state,
            ..Default::default()
        };
        let result = client.list_tasks(request).await;
        refused_with(result, Code::InvalidArgument, &["state", &state.to_string()]);
    }
    for (misfire, overlap, field) in [("99", "", "misfire"), ("", "99", "overlap")] {
        let spec = api::ScheduleSpec {
            recurrence: Some(api::schedule_spec::Recurrence::EveryMs(60_000)),
            template: Some(command_spec("tick", "")),
            misfire: misfire.into(),
            overlap: overlap.into(),
            ..Default::default()
        };
        let result = client
            .call(|mut c| {
                let request = api::CreateScheduleRequest {
                    namespace: String::new(),
                    name: "s".into(),
                    spec: Some(spec.clone()),
                };
                async move { c.create_schedule(request).await }
            })
            .await;
        refused_with(result, Code::InvalidArgument, &[field, "99"]);
    }
    every_node_answers(&cluster).await;
    cluster.shutdown().await;
}

/// Sends and receives raw bytes as a gRPC message: a body no generated client would send.
#[derive(Clone, Default)]
struct RawCodec;

struct RawBytes;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

async fn send_raw(cluster: &TestCluster, address: &str, path: &'static str, body: Vec<u8>) -> tonic::Status {
    let channel = cluster.channel(address);
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let response = grpc.unary(tonic::Request::new(body), path, RawCodec).await;
    response.expect_err("a bad body is refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_bodies_get_client_error_codes() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let leader = cluster.addr(cluster.wait_for_leader().await);
    // Field 1 (spec), length-delimited, with a length that runs past the end.
    let truncated = vec![0x0a, 0xff, 0x01, 0x02];
    // A tag of field 0, which protobuf forbids.
    let field_zero = vec![0x00, 0x01];
    for (path, body) in [
        ("/raftsched.v1.Scheduler/SubmitTask", truncated.clone()),
        ("/raftsched.v1.Scheduler/SubmitTask", field_zero),
        ("/raftsched.v1.Workers/Heartbeat", truncated),
    ] {
        let status = send_raw(&cluster, &leader, path, body).await;
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{path}: {status:?}");
        assert!(status.message().contains("protobuf"), "{status:?}");
    }
    for path in ["/raftsched.v1.Workers/Heartbeat", "/raftsched.v1.Scheduler/SubmitTasks"] {
        let status = send_raw(&cluster, &leader, path, vec![0; 4 * 1024 * 1024 + 1]).await;
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{path}: {status:?}");
        assert!(status.message().contains("4194305 bytes"), "{status:?}");
        assert!(status.message().contains("4 MiB"), "{status:?}");
    }
    // A message exactly at the limit is decoded: 4 MiB of zero bytes is not valid protobuf
    // (field 0), so it is refused as malformed, not as too large.
    let status = send_raw(
        &cluster,
        &leader,
        "/raftsched.v1.Workers/Heartbeat",
        vec![0; 4 * 1024 * 1024],
    )
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    every_node_answers(&cluster).await;
    cluster.shutdown().await;
}
