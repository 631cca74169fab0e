//! Bad input gets the right gRPC code and a message that says what to do; nothing panics a
//! node and nothing is lost.

mod common;

use common::TestCluster;
use common::command_spec;
use common::test_tuning;
use raftsched::client::ClientError;
use raftsched::grpc::api;
use raftsched::node::RunningNode;
use tonic::Code;

fn rejection(result: Result<impl std::fmt::Debug, ClientError>) -> (Code, String) {
    match result {
        Err(ClientError::Rejected(status)) => (status.code(), status.message().to_string()),
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

    let mut too_many_attempts = command_spec("x", "");
    too_many_attempts.max_attempts = 1000;
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

    let mut huge = command_spec("huge", "");
    huge.payload = Some(api::task_spec::Payload::Opaque(api::OpaquePayload {
        kind: "blob".into(),
        data: vec![7; 5 * 1024 * 1024],
    }));
    // A raw client without our client's own size limit, so the server's limit is what answers.
    let leader = cluster.wait_for_leader().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.addr(leader)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = api::scheduler_client::SchedulerClient::new(channel).max_encoding_message_size(usize::MAX);
    let status = raw
        .submit_task(api::SubmitTaskRequest { spec: Some(huge) })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    let mut large = command_spec("large", "");
    large.payload = Some(api::task_spec::Payload::Opaque(api::OpaquePayload {
        kind: "blob".into(),
        data: vec![7; 100 * 1024],
    }));
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
