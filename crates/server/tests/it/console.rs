//! The web console on the HTTP port: its assets, who may read its API, and what the API
//! answers, refuses and bounds. (The browser test at tests/dashboard.rs drives the page.)

use raftsched_testkit as common;

use std::net::SocketAddr;
use std::path::Path;

use common::TestCluster;
use common::test_tuning;
use common::wait_until;
use raftsched_server::http::MAX_API_BODY_BYTES;
use serde_json::Value;

use super::observability::Answer;
use super::observability::send;

/// How a console request signs in: a client certificate of the credentials dir, a bearer
/// token, or nothing.
#[derive(Clone, Copy)]
enum As<'a> {
    Nobody,
    Certificate(&'a str),
    Token(&'a str),
}

async fn console(addr: SocketAddr, dir: &Path, who: As<'_>, method: &str, path: &str, body: &str) -> Answer {
    let auth = match who {
        As::Token(token) => format!("Authorization: Bearer {token}\r\n"),
        _ => String::new(),
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let identity = match who {
        As::Certificate(name) => Some(name),
        _ => None,
    };
    send(addr, &request, Some((dir, identity))).await
}

fn json(answer: &Answer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"))
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then_some(value.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_open_and_its_api_needs_the_console_token_or_a_certificate() {
    let cluster = TestCluster::start(1, test_tuning()).await;
    let dir = cluster.tls_dir().expect("a TLS cluster").to_path_buf();
    let token = std::fs::read_to_string(dir.join("console.token")).expect("certs init writes console.token");
    let token = token.trim();
    let addr = cluster.http_addr(1);
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let page = console(addr, &dir, As::Nobody, "GET", path, "").await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            header(&page, "content-type").is_some_and(|v| v.starts_with(kind)),
            "{path}: {}",
            page.head
        );
        let policy = header(&page, "content-security-policy").unwrap_or_default();
        assert!(
            policy.contains("default-src 'none'") && policy.contains("script-src 'self'"),
            "{policy}"
        );
        assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"));
    }
    let nobody = console(addr, &dir, As::Nobody, "GET", "/api/v1/overview", "").await;
    assert_eq!(nobody.status, 401, "{}", nobody.body);
    let refusal = json(&nobody);
    assert_eq!(refusal["code"], "Unauthenticated");
    assert!(
        refusal["message"].as_str().unwrap().contains("console.token"),
        "{refusal}"
    );
    for wrong in ["", "x", &token[1..], &format!("{token}0"), &token.to_uppercase()] {
        let answer = console(addr, &dir, As::Token(wrong), "GET", "/api/v1/overview", "").await;
        assert_eq!(answer.status, 401, "token {wrong:?}: {}", answer.body);
    }
    let overview = console(addr, &dir, As::Token(token), "GET", "/api/v1/overview", "").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert_eq!(json(&overview)["nodeId"], 1);
    // A certificate: the overview covers every namespace, like /metrics.
    for (name, status) in [
        ("admin", 200),
        ("prometheus", 200),
        ("node-1", 200),
        ("reader", 403),
        ("worker1", 403),
    ] {
        let answer = console(addr, &dir, As::Certificate(name), "GET", "/api/v1/overview", "").await;
        assert_eq!(answer.status, status, "{name}: {}", answer.body);
    }
    // A call is checked as the gRPC call: a worker may not read tasks, a reader may.
    let list = r#"{"consistency":"CONSISTENCY_STALE"}"#;
    let worker = console(
        addr,
        &dir,
        As::Certificate("worker1"),
        "POST",
        "/api/v1/ListTasks",
        list,
    )
    .await;
    assert_eq!(
        (worker.status, json(&worker)["code"].as_str()),
        (403, Some("PermissionDenied")),
        "{}",
        worker.body
    );
    let reader = console(addr, &dir, As::Certificate("reader"), "POST", "/api/v1/ListTasks", list).await;
    assert_eq!(reader.status, 200, "{}", reader.body);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_reads_in_proto3_json_and_refuses_the_rest_plainly() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let dir = cluster.tls_dir().expect("a TLS cluster").to_path_buf();
    let token = std::fs::read_to_string(dir.join("console.token")).unwrap();
    let who = As::Token(token.trim());
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let addr = cluster.http_addr(follower);
    let spec = common::spec::builder("console-probe").queue("console-q").build();
    let submitted = cluster.client().submit_task(spec).await.expect("submit");
    let id = submitted.task.expect("the task").id;

    // A follower's console reads its own applied state: the task shows once replicated.
    let task = wait_until("the follower's console to show the task", || async {
        let body = format!(r#"{{"taskId":"{id}","consistency":"CONSISTENCY_STALE"}}"#);
        let answer = console(addr, &dir, who, "POST", "/api/v1/GetTask", &body).await;
        (answer.status == 200).then(|| json(&answer))
    })
    .await;
    assert_eq!(task["task"]["id"], id.to_string(), "a u64 is a JSON string: {task}");
    assert_eq!(task["task"]["spec"]["name"], "console-probe");
    assert_eq!(task["task"]["state"], "TASK_STATE_PENDING", "enums by name: {task}");
    let search = r#"{"consistency":"CONSISTENCY_STALE","nameContains":"probe","pageSize":5}"#;
    let found = json(&console(addr, &dir, who, "POST", "/api/v1/ListTasks", search).await);
    assert_eq!(found["tasks"][0]["id"], id.to_string(), "{found}");
    let overview = json(&console(addr, &dir, who, "GET", "/api/v1/overview", "").await);
    assert_eq!(overview["role"], "follower");
    assert_eq!(overview["leaderId"], leader);
    let queue = overview["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "console-q");
    assert_eq!(
        queue.map(|q| q["tasks"]["pending"].clone()),
        Some(1.into()),
        "{overview}"
    );
    // What the queue's link searches for: the queue within its namespace.
    assert_eq!(
        queue.map(|q| (q["namespace"].clone(), q["queue"].clone())),
        Some(("default".into(), "console-q".into())),
        "{overview}"
    );
    let status = json(&console(addr, &dir, who, "POST", "/api/v1/ClusterStatus", "").await);
    assert_eq!(status["members"].as_array().map(Vec::len), Some(3), "{status}");

    // Refusals: the gRPC code's name and a message saying what to do.
    let cases: [(&str, String, u16, &str, &str); 6] = [
        (
            "SubmitTask",
            "{}".into(),
            404,
            "NotFound",
            "writes are on the gRPC port",
        ),
        ("NoSuchCall", "{}".into(), 404, "NotFound", "GetTask, ListTasks"),
        (
            "GetTask",
            "{not json".into(),
            400,
            "InvalidArgument",
            "not this call's request message",
        ),
        (
            "GetTask",
            r#"{"taskId":"18446744073709551615","consistency":"CONSISTENCY_STALE"}"#.into(),
            404,
            "NotFound",
            "",
        ),
        (
            "ListTasks",
            r#"{"state":"TASK_STATE_DONE"}"#.into(),
            400,
            "InvalidArgument",
            "TASK_STATE_DONE",
        ),
        ("GetTask", r#"{"taskId":"-1"}"#.into(), 400, "InvalidArgument", ""),
    ];
    for (call, body, status, code, says) in cases {
        let answer = console(addr, &dir, who, "POST", &format!("/api/v1/{call}"), &body).await;
        let refusal = json(&answer);
        assert_eq!(
            (answer.status, refusal["code"].as_str()),
            (status, Some(code)),
            "{call} {body}: {refusal}"
        );
        assert!(refusal["message"].as_str().unwrap().contains(says), "{call}: {refusal}");
    }
    let oversized = format!(r#"{{"nameContains":"{}"}}"#, "x".repeat(MAX_API_BODY_BYTES));
    let answer = console(addr, &dir, who, "POST", "/api/v1/ListTasks", &oversized).await;
    assert_eq!(
        answer.status, 413,
        "a body past {MAX_API_BODY_BYTES} bytes: {}",
        answer.body
    );
    cluster.shutdown().await;
}
