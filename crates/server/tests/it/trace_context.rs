//! A task's trace context through a cluster that does not export traces: what the client
//! gives (the spec's `trace_parent`, else `traceparent` metadata) is carried unchanged to the
//! task and to the worker's command as `TRACEPARENT`; a malformed field is refused naming it,
//! a malformed header is ignored (W3C Trace Context's rule). The exporting path is
//! tests/tracing.rs at the workspace root (a process-global subscriber needs a process).

use raftsched_testkit as common;

use common::TestCluster;
use common::shell;
use common::start_worker;
use common::test_tuning;
use common::wait_for_finish;
use raftsched_api::v1 as api;
use raftsched_client::ClientError;
use raftsched_client::ErrorCode;
use raftsched_client::worker::WorkerOptions;

const CONTEXT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const OTHER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

/// Submits `spec` with `traceparent` metadata when given; the created task.
async fn submit_with(
    cluster: &TestCluster,
    spec: api::TaskSpec,
    header: Option<&str>,
) -> Result<api::Task, ClientError> {
    let header = header.map(str::to_string);
    let response = cluster
        .client()
        .call(move |mut client| {
            let mut request = tonic::Request::new(api::SubmitTaskRequest {
                spec: Some(spec.clone()),
            });
            if let Some(value) = header
                .as_deref()
                .and_then(|h| tonic::metadata::MetadataValue::try_from(h).ok())
            {
                request.metadata_mut().insert("traceparent", value);
            }
            async move { client.submit_task(request).await }
        })
        .await?;
    Ok(response.task.expect("a task"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_trace_context_reaches_the_task_unchanged_and_a_bad_one_is_refused_or_ignored() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let (stop, handle) = start_worker(&cluster, WorkerOptions::new("traced", 2));
    let echo = || shell("echo", "echo \"$TRACEPARENT\"");
    let trace_of = |task: &api::Task| task.spec.as_ref().map(|s| s.trace_parent.clone()).unwrap_or_default();

    // The header, carried to the command.
    let task = submit_with(&cluster, echo(), Some(CONTEXT)).await.unwrap();
    assert_eq!(trace_of(&task), CONTEXT);
    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(done.attempts.last().unwrap().stdout_tail.trim(), CONTEXT, "{done:?}");

    // The spec's own field wins over the header.
    let mut own = echo();
    own.trace_parent = OTHER.to_string();
    let task = submit_with(&cluster, own, Some(CONTEXT)).await.unwrap();
    assert_eq!(trace_of(&task), OTHER);
    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(done.attempts.last().unwrap().stdout_tail.trim(), OTHER, "{done:?}");

    // Untraced: no context, and the command sees none.
    let task = submit_with(&cluster, echo(), None).await.unwrap();
    assert_eq!(trace_of(&task), "");
    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(done.attempts.last().unwrap().stdout_tail.trim(), "", "{done:?}");

    // A malformed header (too short, too long, wrong version, uppercase) starts no trace.
    let long = format!("{CONTEXT}{}", "0".repeat(8000));
    for header in [
        "",
        "00-x-y-01",
        &long,
        &CONTEXT.replacen("00", "ff", 1),
        &CONTEXT.to_uppercase(),
    ] {
        let task = submit_with(&cluster, echo(), Some(header)).await.unwrap();
        assert_eq!(trace_of(&task), "", "header {:?}", &header[..header.len().min(60)]);
    }

    // A malformed field is refused, naming it and its form.
    for field in ["x", &CONTEXT[..54], &format!("{CONTEXT}0"), &"0".repeat(1 << 16)] {
        let mut bad = echo();
        bad.trace_parent = field.to_string();
        match submit_with(&cluster, bad, None).await {
            Err(ClientError::Rejected { code, message, .. }) => {
                assert_eq!(code, ErrorCode::InvalidArgument, "{message}");
                assert!(
                    message.contains("trace_parent") && message.contains("W3C traceparent"),
                    "{message}"
                );
                assert!(message.len() < 500, "the message quotes a prefix only: {message}");
            }
            other => panic!("a bad trace_parent of {} bytes was taken: {other:?}", field.len()),
        }
    }

    // A retry of a traced submission in another trace answers the first task.
    let mut first = echo();
    first.client_request_id = "retried".to_string();
    let task = submit_with(&cluster, first.clone(), Some(CONTEXT)).await.unwrap();
    let retry = submit_with(&cluster, first, Some(OTHER)).await.unwrap();
    assert_eq!((retry.id, trace_of(&retry)), (task.id, CONTEXT.to_string()));

    stop.cancel();
    handle.await.unwrap();
    cluster.shutdown().await;
}
