//! Namespaces end to end over mutual TLS (issue 12): a credential acts only in the
//! namespaces its certificate names (URI SANs `urn:raftsched:namespace:<name>`), a task of
//! another namespace is invisible to it (NOT_FOUND, worded like a missing one), names in one
//! namespace do not collide with another's, and a namespace's tasks run only on its workers.

use raftsched_testkit as common;

use common::shell;
use common::wait_for_finish;
use common::wait_until;
use raftsched_api::v1 as api;
use raftsched_api::v1::scheduler_client::SchedulerClient;
use raftsched_api::v1::workers_client::WorkersClient;
use raftsched_certs::layout::NAMESPACE_URI_PREFIX;
use tonic::Code;
use tonic::transport::Channel;

use crate::authz::Credential;
use crate::authz::Pki;
use crate::authz::assert_denied;
use crate::authz::secured;

/// A credential of `role` named `name` acting in `namespaces`.
fn in_namespaces(pki: &Pki, role: &str, name: &str, namespaces: &[&str]) -> Credential {
    pki.issue_with(Some(role), name, |params| {
        for namespace in namespaces {
            let uri = format!("{NAMESPACE_URI_PREFIX}{namespace}");
            params
                .subject_alt_names
                .push(rcgen::SanType::URI(uri.try_into().unwrap()));
        }
    })
}

fn get(task_id: u64) -> api::GetTaskRequest {
    api::GetTaskRequest {
        task_id,
        consistency: api::Consistency::Linearizable as i32,
    }
}

fn in_ns(namespace: &str, mut spec: api::TaskSpec) -> api::TaskSpec {
    spec.namespace = namespace.to_string();
    spec
}

async fn list(client: &mut SchedulerClient<Channel>, namespace: &str) -> Result<Vec<u64>, tonic::Status> {
    let request = api::ListTasksRequest {
        namespace: namespace.to_string(),
        consistency: api::Consistency::Linearizable as i32,
        ..api::ListTasksRequest::default()
    };
    let tasks = client.list_tasks(request).await?.into_inner().tasks;
    Ok(tasks.iter().map(|t| t.id).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_in_namespace_a_is_invisible_to_a_credential_of_namespace_b() {
    let (cluster, pki, addr) = secured().await;
    let mut alice = SchedulerClient::new(
        pki.channel(addr, &in_namespaces(&pki, "submitter", "alice", &["team-a"]))
            .await,
    );
    let mut bob = SchedulerClient::new(
        pki.channel(addr, &in_namespaces(&pki, "submitter", "bob", &["team-b"]))
            .await,
    );
    let mut admin = SchedulerClient::new(pki.channel(addr, &pki.issue(Some("admin"), "admin")).await);

    let mut spec = in_ns("team-a", shell("a-job", "true"));
    spec.queue = "jobs".into();
    spec.client_request_id = "same-id".into();
    let task = alice
        .submit_task(api::SubmitTaskRequest { spec: Some(spec) })
        .await
        .expect("alice submits in team-a")
        .into_inner()
        .task
        .unwrap();
    let shown = task.spec.as_ref().unwrap();
    assert_eq!((shown.namespace.as_str(), shown.queue.as_str()), ("team-a", "jobs"));

    // Bob (team-b) cannot see, list or cancel it: NOT_FOUND, as for an id never given out.
    let unseen = bob.get_task(get(task.id)).await;
    let missing = bob.get_task(get(task.id + 1000)).await;
    assert_denied(unseen, Code::NotFound, &[&task.id.to_string()]);
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
    let cancel = api::CancelTaskRequest {
        task_id: task.id,
        reason: String::new(),
    };
    assert_denied(bob.cancel_task(cancel).await, Code::NotFound, &[&task.id.to_string()]);
    assert_eq!(list(&mut bob, "team-b").await.unwrap(), Vec::<u64>::new());
    assert_denied(
        list(&mut bob, "team-a").await,
        Code::PermissionDenied,
        &[
            "submitter \"bob\" acts in namespace team-b",
            "names namespace \"team-a\"",
        ],
    );
    // Nor submit into team-a, by the field or by smuggling the namespace into the queue.
    let into_a = bob
        .submit_task(api::SubmitTaskRequest {
            spec: Some(in_ns("team-a", shell("x", "true"))),
        })
        .await;
    assert_denied(into_a, Code::PermissionDenied, &["acts in namespace team-b"]);
    let mut smuggled = in_ns("team-b", shell("x", "true"));
    smuggled.queue = "team-a:jobs".into();
    let smuggled = bob.submit_task(api::SubmitTaskRequest { spec: Some(smuggled) }).await;
    assert_denied(smuggled, Code::InvalidArgument, &["may not contain ':'", "--namespace"]);
    // Alice acts only in team-a: the default namespace is not hers either.
    let into_default = alice
        .submit_task(api::SubmitTaskRequest {
            spec: Some(shell("x", "true")),
        })
        .await;
    assert_denied(into_default, Code::PermissionDenied, &["names namespace \"default\""]);

    // The same request id in team-b is another task; the task in team-a is untouched.
    let mut again = in_ns("team-b", shell("a-job", "true"));
    again.queue = "jobs".into();
    again.client_request_id = "same-id".into();
    let other = bob
        .submit_task(api::SubmitTaskRequest { spec: Some(again) })
        .await
        .unwrap()
        .into_inner();
    assert!(other.created, "a request id is per namespace");
    assert_ne!(other.task.unwrap().id, task.id);
    let kept = admin.get_task(get(task.id)).await.unwrap().into_inner().task.unwrap();
    assert_eq!(
        kept.state,
        api::TaskState::Pending as i32,
        "bob's cancel changed nothing"
    );
    assert_eq!(
        list(&mut admin, "team-a").await.unwrap(),
        vec![task.id],
        "an admin sees every namespace"
    );
    assert!(!list(&mut admin, "default").await.unwrap().contains(&task.id));

    // Queues are per namespace too: team-a's "jobs" policy is not the default's.
    let policy = api::QueuePolicy {
        namespace: "team-a".into(),
        queue: "jobs".into(),
        weight: 7,
        ..api::QueuePolicy::default()
    };
    admin
        .set_queue_policy(api::SetQueuePolicyRequest { policy: Some(policy) })
        .await
        .unwrap();
    let queues = |namespace: &str| api::ListQueuesRequest {
        namespace: namespace.to_string(),
        page_token: String::new(),
    };
    let team_a = admin.list_queues(queues("team-a")).await.unwrap().into_inner().queues;
    let weights: Vec<(String, u32)> = team_a
        .iter()
        .filter_map(|q| q.policy.as_ref().map(|p| (p.queue.clone(), p.weight)))
        .collect();
    assert_eq!(weights, [("jobs".to_string(), 7)]);
    let default = admin.list_queues(queues("default")).await.unwrap().into_inner().queues;
    assert!(
        default.iter().all(|q| q.policy.as_ref().unwrap().weight != 7),
        "{default:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_s_tasks_run_only_on_its_own_workers() {
    let (cluster, pki, addr) = secured().await;
    // A worker credential of team-a, in the cluster's credentials dir, as an operator would
    // issue it (`raftsched certs issue --role worker --name a-worker --namespaces team-a`).
    let dir = cluster.tls_dir().unwrap();
    let credential = raftsched_certs::issue::Credential::new(raftsched_certs::Role::Worker, "a-worker")
        .in_namespaces(vec!["team-a".into()]);
    raftsched_certs::issue::issue_if_missing(dir, &credential).unwrap();

    // It may not register in the default namespace, only in its own.
    let mut as_worker = WorkersClient::new(
        pki.channel(addr, &in_namespaces(&pki, "worker", "a-worker", &["team-a"]))
            .await,
    );
    let register = |namespace: &str| api::RegisterWorkerRequest {
        worker_id: "a-worker".into(),
        session_id: "s-probe".into(),
        slots: 1,
        namespace: namespace.to_string(),
        ..api::RegisterWorkerRequest::default()
    };
    assert_denied(
        as_worker.register_worker(register("")).await,
        Code::PermissionDenied,
        &["worker \"a-worker\" acts in namespace team-a"],
    );

    let mut options = raftsched_client::worker::WorkerOptions::new("a-worker", 2);
    options.namespace = "team-a".into();
    let (stop, handle) = common::start_worker(&cluster, options);
    common::wait_for_workers(&cluster, 1).await;

    let client = cluster.client().with_namespace("team-a");
    let in_a = client.submit_task(shell("in-a", "true")).await.unwrap().task.unwrap();
    let in_default = cluster
        .client()
        .submit_task(shell("in-default", "true"))
        .await
        .unwrap()
        .task
        .unwrap();
    let finished = wait_for_finish(&cluster, in_a.id).await;
    assert_eq!(finished.state, api::TaskState::Succeeded as i32);
    assert_eq!(finished.attempts[0].worker_id, "a-worker");
    // The default namespace's task waits, and says why.
    let waiting = wait_until("the default task to explain why it waits", || async {
        let task = cluster
            .client()
            .get_task(in_default.id, api::Consistency::Linearizable)
            .await
            .ok()?;
        task.pending_reason
            .contains("no worker of namespace default")
            .then_some(task)
    })
    .await;
    assert_eq!(waiting.state, api::TaskState::Pending as i32);

    let workers = |namespace: &str| api::ListWorkersRequest {
        namespace: namespace.to_string(),
        page_token: String::new(),
    };
    let leader = cluster.wait_for_leader().await;
    let mut admin = WorkersClient::new(cluster.channel(&cluster.addr(leader)));
    let listed = admin
        .list_workers(workers("team-a"))
        .await
        .unwrap()
        .into_inner()
        .workers;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].worker_id.as_str(), listed[0].namespace.as_str()),
        ("a-worker", "team-a")
    );
    assert!(
        admin
            .list_workers(workers(""))
            .await
            .unwrap()
            .into_inner()
            .workers
            .is_empty()
    );
    stop.cancel();
    handle.await.unwrap();
    cluster.shutdown().await;
}
