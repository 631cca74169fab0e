//! A task's path is one trace: the real binary's nodes and worker export their spans over
//! OTLP to a collector in this test, and the trace goes from the client's context through
//! submit, propose, commit, apply (on every node), assign, push, run and report to the
//! task's own `TRACEPARENT`.

#[path = "common/local_cluster.rs"]
mod local_cluster;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use local_cluster::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use serde_json::Value;

/// One span as received: hex ids, its process's service name, its attributes as text.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                let attributes = span
                    .attributes
                    .iter()
                    .map(|a| {
                        (
                            a.key.clone(),
                            format!("{:?}", a.value.as_ref().and_then(|v| v.value.as_ref())),
                        )
                    })
                    .collect();
                spans.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves the collector on an ephemeral port of its own runtime; returns its endpoint.
fn start_collector(collector: Collector) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), runtime)
}

const CLIENT_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN_ID: &str = "b7ad6b7169203331";

#[test]
fn a_task_s_path_is_one_trace_from_the_client_to_its_command() {
    let collector = Collector::default();
    let (endpoint, _runtime) = start_collector(collector.clone());
    let cluster = LocalCluster::new()
        .with_workers(1)
        .with_env("RAFTSCHED_OTLP_ENDPOINT", &endpoint)
        // Export every 100 ms instead of every 5 s: the test waits for the spans.
        .with_env("OTEL_BSP_SCHEDULE_DELAY", "100");
    cluster.script_ok(&["start"]);
    let all = cluster.target();

    let client_context = format!("00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01");
    let output = cli_command(&all)
        .env("TRACEPARENT", &client_context)
        .args([
            "--json",
            "task",
            "submit",
            "--wait",
            "--wait-timeout-ms",
            "20000",
            "--name",
            "traced",
        ])
        .args(["--", "echo \"context=$TRACEPARENT\""])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let task: Value = serde_json::from_slice(&output.stdout).unwrap();
    let task_id = task["id"]
        .as_str()
        .map(|s| s.to_string())
        .or_else(|| task["id"].as_u64().map(|n| n.to_string()));
    let attempts = task["attempts"].as_array().expect("attempts");
    let stdout = attempts[0]["stdoutTail"]
        .as_str()
        .or(attempts[0]["stdout_tail"].as_str())
        .unwrap_or_default();
    let seen = stdout
        .trim()
        .strip_prefix("context=")
        .unwrap_or_else(|| panic!("no context in {task}"));
    let fields: Vec<&str> = seen.split('-').collect();
    assert_eq!(fields.len(), 4, "{seen}");
    assert_eq!(
        fields[1], CLIENT_TRACE_ID,
        "the task's TRACEPARENT is in the client's trace: {seen}"
    );
    assert_ne!(
        fields[2], CLIENT_SPAN_ID,
        "the task's parent is the worker's run, not the client: {seen}"
    );

    let names = [
        "submit", "propose", "commit", "apply", "assign", "push", "run", "report",
    ];
    let trace = wait_for("every span of the task's path", Duration::from_secs(30), || {
        let spans: Vec<Received> = collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == CLIENT_TRACE_ID)
            .cloned()
            .collect();
        let applies = spans.iter().filter(|s| s.name == "apply").count();
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !spans.iter().any(|s| s.name == *n))
            .collect();
        if missing.is_empty() && applies == 3 {
            Ok(spans)
        } else {
            Err(format!("missing {missing:?}, {applies} applies; have {spans:#?}"))
        }
    });
    let one = |name: &str| {
        let found: Vec<&Received> = trace.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one {name} span: {found:#?}");
        found[0].clone()
    };
    let (submit, propose, commit) = (one("submit"), one("propose"), one("commit"));
    let (assign, push, run, report) = (one("assign"), one("push"), one("run"), one("report"));
    let parent_of = |child: &Received, parent: &Received| {
        assert_eq!(
            child.parent_span_id, parent.span_id,
            "{} under {}: {trace:#?}",
            child.name, parent.name
        );
    };
    assert_eq!(submit.parent_span_id, CLIENT_SPAN_ID, "submit joins the client's span");
    parent_of(&propose, &submit);
    parent_of(&commit, &propose);
    for apply in trace.iter().filter(|s| s.name == "apply") {
        parent_of(apply, &submit);
    }
    let apply_nodes: std::collections::BTreeSet<&String> = trace
        .iter()
        .filter(|s| s.name == "apply")
        .filter_map(|s| s.attributes.get("node_id"))
        .collect();
    assert_eq!(apply_nodes.len(), 3, "one apply per node: {apply_nodes:?}");
    parent_of(&assign, &submit);
    parent_of(&push, &assign);
    parent_of(&run, &push);
    parent_of(&report, &run);
    assert_eq!(fields[2], run.span_id, "the task's TRACEPARENT names its run");
    for span in [&submit, &assign, &push, &report] {
        assert!(span.service.contains("raftsched-node"), "{span:?}");
    }
    assert!(run.service.contains("raftsched-worker"), "{run:?}");
    for span in [&assign, &push, &run, &report] {
        assert_eq!(
            span.attributes
                .get("task_id")
                .map(|v| v.contains(task_id.as_deref().unwrap())),
            Some(true),
            "{span:?}"
        );
    }
    cluster.script_ok(&["stop"]);
}
