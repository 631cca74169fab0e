//! The two ports: the client port serves the client API and its reflection, never Raft; the
//! peer port serves Raft and nothing else.

use futures::StreamExt;
use raftsched_api::raft as raft_proto;
use raftsched_api::v1 as api;
use raftsched_testkit::TestCluster;
use raftsched_testkit::test_tuning;
use tonic::Code;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use raftsched_testkit::DEADLINE;

const RAFT_SERVICE: &str = "raftsched.raft.v1.RaftService";

/// One reflection request's answer on `channel`: Ok(the response) or the call's status.
async fn reflect(
    channel: tonic::transport::Channel,
    request: MessageRequest,
) -> Result<MessageResponse, tonic::Status> {
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let call = client.server_reflection_info(futures::stream::iter([request]));
    let mut answers = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("in time")?
        .into_inner();
    let answer = answers.next().await.expect("one answer")?;
    Ok(answer.message_response.expect("a response"))
}

fn a_vote() -> raft_proto::RaftMessage {
    let vote = raftsched_store::raft_types::Vote::new(99, 1);
    let request = openraft::raft::VoteRequest::<raftsched_store::raft_types::TypeConfig>::new(vote, None);
    raft_proto::RaftMessage {
        data: raftsched_core::state::wire::encode_versioned(&request),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_is_on_the_peer_port_only_and_not_in_the_client_ports_reflection() {
    let cluster = TestCluster::start(1, test_tuning()).await;
    let node = cluster.node(1);
    let before = node.app().metrics();
    let client_port = cluster.channel(&cluster.addr(1));
    let peer_port = cluster.channel(&cluster.peer_addr(1));

    // A Raft call on the client port: no such service there.
    let mut raft = raft_proto::raft_service_client::RaftServiceClient::new(client_port.clone());
    let refused = raft.vote(a_vote()).await.expect_err("no Raft on the client port");
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");

    // The client port's reflection lists the API, not Raft, and does not know its symbol.
    let listed = reflect(client_port.clone(), MessageRequest::ListServices(String::new()))
        .await
        .expect("reflection on the client port");
    let MessageResponse::ListServicesResponse(listed) = listed else {
        panic!("not a service list: {listed:?}");
    };
    let names: Vec<&str> = listed.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"raftsched.v1.Scheduler"), "{names:?}");
    assert!(names.contains(&"raftsched.v1.Workers"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("raft.v1")), "{names:?}");
    let symbol = reflect(client_port, MessageRequest::FileContainingSymbol(RAFT_SERVICE.into()))
        .await
        .expect_err("an unknown symbol");
    assert_eq!(symbol.code(), Code::NotFound, "{symbol:?}");
    assert!(symbol.message().contains(RAFT_SERVICE), "{symbol:?}");

    // The peer port: no client API, no reflection.
    let mut scheduler = api::scheduler_client::SchedulerClient::new(peer_port.clone());
    let refused = scheduler
        .get_task(api::GetTaskRequest::default())
        .await
        .expect_err("no client API on the peer port");
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");
    let refused = reflect(peer_port.clone(), MessageRequest::ListServices(String::new()))
        .await
        .expect_err("no reflection on the peer port");
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");

    // Nothing moved: the refused vote (term 99) never reached Raft.
    let after = node.app().metrics();
    assert_eq!(after.current_term, before.current_term);
    assert_eq!(after.vote, before.vote);
    assert_eq!(after.last_log_index, before.last_log_index);
    cluster.shutdown().await;
}
