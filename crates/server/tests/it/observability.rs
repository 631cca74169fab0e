//! The HTTP port and `grpc.health.v1`: liveness, readiness through a leader cut off and a
//! failover, Prometheus metrics with the names the docs promise, and who may read them.
//!
//! The HTTP client here is deliberately a few lines of HTTP/1.1 over TCP or rustls: what is
//! tested is the server, and a raw client sees exactly what a probe or `curl` would.

use raftsched_testkit as common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use common::TestCluster;
use common::test_tuning;
use common::wait_until;
use raftsched_server::http::MAX_REPORTED_QUEUES;
use raftsched_server::network::LinkFault;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// An HTTP answer: status code and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

/// GET `path` from `addr`: plaintext when `tls` is None, else TLS trusting the cluster CA in
/// the credentials dir, presenting credential `identity` if one is named.
async fn get(addr: SocketAddr, path: &str, tls: Option<(&Path, Option<&str>)>) -> Answer {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    send(addr, &request, tls).await
}

/// Sends the whole HTTP/1.1 `request` (which asks for `Connection: close`) to `addr`, as
/// [`get`] does, and reads the answer.
pub(crate) async fn send(addr: SocketAddr, request: &str, tls: Option<(&Path, Option<&str>)>) -> Answer {
    let tcp = TcpStream::connect(addr).await.expect("connect to the HTTP port");
    let raw = match tls {
        None => exchange(tcp, request).await,
        Some((dir, identity)) => {
            let connector = tokio_rustls::TlsConnector::from(client_config(dir, identity));
            let name = ServerName::try_from("localhost").expect("a DNS name");
            let stream = connector.connect(name, tcp).await.expect("TLS handshake");
            exchange(stream, request).await
        }
    };
    parse(&raw)
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S, request: &str) -> Vec<u8> {
    stream.write_all(request.as_bytes()).await.expect("send the request");
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify once it sent the answer: what came is kept.
    if let Err(e) = stream.read_to_end(&mut raw).await {
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "reading the answer: {e}");
    }
    raw
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "this client reads sized bodies only: {head}"
    );
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn client_config(dir: &Path, identity: Option<&str>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(dir.join("ca.crt")).expect("ca.crt") {
        roots.add(ca.expect("a CA certificate")).expect("a usable CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let chain = CertificateDer::pem_file_iter(dir.join(format!("{name}.crt")))
                .expect("the credential's certificate")
                .collect::<Result<Vec<_>, _>>()
                .expect("PEM");
            let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).expect("the credential's key");
            builder.with_client_auth_cert(chain, key).expect("a client credential")
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The value of the sample `series` (name and labels exactly as rendered) in `metrics`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Every metric the shipped Prometheus rules and Grafana dashboard name, with the file: a
/// histogram's `_bucket`, `_sum` and `_count` series are named by the histogram.
fn deploy_metric_names() -> Vec<(&'static str, String)> {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut names = Vec::new();
    for file in ["prometheus/alerts.yml", "grafana/raftsched.json"] {
        let text = std::fs::read_to_string(deploy.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut rest = text.as_str();
        while let Some(at) = rest.find("raftsched_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name)
                .to_string();
            if !names.iter().any(|(f, n)| *f == file && *n == name) {
                names.push((file, name));
            }
        }
    }
    assert!(names.len() >= 10, "the deploy files name only {names:?}");
    names
}

async fn readyz(cluster: &TestCluster, id: u64) -> Answer {
    let tls = cluster.tls_dir().map(|dir| (dir, None));
    get(cluster.http_addr(id), "/readyz", tls).await
}

async fn health(cluster: &TestCluster, id: u64, service: &str) -> Result<i32, tonic::Status> {
    let mut client = HealthClient::new(cluster.channel(&cluster.addr(id)));
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    Ok(client.check(request).await?.into_inner().status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_is_live_and_ready_and_its_metrics_name_the_cluster_state() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let dir = cluster.tls_dir().expect("a TLS cluster").to_path_buf();
    let leader = cluster.wait_for_leader().await;
    for id in cluster.ids() {
        let live = get(cluster.http_addr(id), "/healthz", Some((&dir, None))).await;
        assert_eq!((live.status, live.body.as_str()), (200, "ok\n"), "node {id}");
        wait_until(&format!("node {id} ready"), || async {
            (readyz(&cluster, id).await.status == 200).then_some(())
        })
        .await;
    }
    let client = cluster.client();
    let spec = common::spec::builder("observed").queue("metrics-q").build();
    client.submit_task(spec).await.expect("submit");
    cluster.wait_for_replication().await;

    for id in cluster.ids() {
        let scrape = wait_until(&format!("node {id}'s metrics to count the task"), || async {
            let answer = get(cluster.http_addr(id), "/metrics", Some((&dir, Some("prometheus")))).await;
            assert_eq!(answer.status, 200, "node {id}: {}", answer.body);
            let pending = sample(&answer.body, r#"raftsched_tasks{queue="metrics-q",state="pending"}"#);
            (pending == Some(1.0)).then_some(answer.body)
        })
        .await;
        let is_leader = if id == leader { 1.0 } else { 0.0 };
        assert_eq!(sample(&scrape, "raftsched_is_leader"), Some(is_leader), "node {id}");
        assert_eq!(sample(&scrape, "raftsched_has_leader"), Some(1.0), "node {id}");
        assert_eq!(sample(&scrape, "raftsched_ready"), Some(1.0), "node {id}");
        assert_eq!(
            sample(&scrape, r#"raftsched_tasks{queue="metrics-q",state="running"}"#),
            Some(0.0),
            "every state of a queue is reported, 0 included"
        );
        assert!(
            sample(&scrape, "raftsched_raft_applied_index").unwrap_or(0.0) >= 1.0,
            "{scrape}"
        );
        assert!(sample(&scrape, "raftsched_raft_term").unwrap_or(0.0) >= 1.0, "{scrape}");
        assert_eq!(sample(&scrape, "raftsched_live_tasks"), Some(1.0), "node {id}");
        assert!(
            sample(&scrape, r#"raftsched_queue_ready_tasks{queue="metrics-q"}"#) == Some(1.0),
            "{scrape}"
        );
        for name in [
            "raftsched_queue_backlog_age_seconds",
            "raftsched_workers",
            "raftsched_state_bytes",
        ] {
            assert!(scrape.contains(&format!("# TYPE {name} gauge")), "{name} in {scrape}");
        }
    }
    let leader_scrape = get(cluster.http_addr(leader), "/metrics", Some((&dir, Some("admin")))).await;
    assert_eq!(leader_scrape.status, 200, "an admin reads metrics too");
    let body = &leader_scrape.body;
    assert!(
        sample(body, r#"raftsched_grpc_requests_total{method="SubmitTask",code="OK"}"#).unwrap_or(0.0) >= 1.0,
        "{body}"
    );
    assert!(
        sample(body, "raftsched_proposals_committed_total").unwrap_or(0.0) >= 1.0,
        "{body}"
    );
    assert!(
        body.contains("raftsched_raft_commit_duration_seconds_bucket{le=\"0.0005\"}"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE raftsched_dispatch_round_duration_seconds histogram"),
        "{body}"
    );
    // Every node fsyncs its log for the task's entry; a snapshot reports its duration and size.
    for id in cluster.ids() {
        let answer = get(cluster.http_addr(id), "/metrics", Some((&dir, Some("prometheus")))).await;
        let fsyncs = sample(&answer.body, "raftsched_disk_log_fsync_duration_seconds_count");
        assert!(fsyncs.unwrap_or(0.0) >= 1.0, "node {id}: {fsyncs:?}");
    }
    cluster
        .node(leader)
        .raft()
        .trigger()
        .snapshot()
        .await
        .expect("asking for a snapshot");
    let snapshotted = wait_until("the leader's metrics to show the snapshot", || async {
        let answer = get(cluster.http_addr(leader), "/metrics", Some((&dir, Some("prometheus")))).await;
        let built = sample(&answer.body, "raftsched_snapshot_build_duration_seconds_count").unwrap_or(0.0);
        (built >= 1.0).then_some(answer.body)
    })
    .await;
    assert!(
        sample(&snapshotted, "raftsched_snapshot_image_bytes").unwrap_or(0.0) > 0.0,
        "{snapshotted}"
    );
    for (file, name) in deploy_metric_names() {
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "{file} names {name}, which the leader does not report"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_credential_for_every_namespace_and_say_which() {
    let cluster = TestCluster::start(1, test_tuning()).await;
    let dir = cluster.tls_dir().expect("a TLS cluster").to_path_buf();
    let addr = cluster.http_addr(1);
    let anonymous = get(addr, "/metrics", Some((&dir, None))).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    for needed in [
        "no client certificate",
        "prometheus.crt",
        "--role reader --name prometheus --namespaces '*'",
    ] {
        assert!(anonymous.body.contains(needed), "{needed:?} in {}", anonymous.body);
    }
    let worker = get(addr, "/metrics", Some((&dir, Some("worker1")))).await;
    assert_eq!(worker.status, 403, "{}", worker.body);
    assert!(
        worker.body.contains("a worker credential (\"worker1\")"),
        "{}",
        worker.body
    );
    let client = get(addr, "/metrics", Some((&dir, Some("client")))).await;
    assert_eq!(client.status, 403, "a submitter: {}", client.body);
    let one_namespace = get(addr, "/metrics", Some((&dir, Some("reader")))).await;
    assert_eq!(one_namespace.status, 403, "{}", one_namespace.body);
    assert!(
        one_namespace.body.contains("namespace default"),
        "{}",
        one_namespace.body
    );
    for id in ["prometheus", "admin", "node-1"] {
        let allowed = get(addr, "/metrics", Some((&dir, Some(id)))).await;
        assert_eq!(allowed.status, 200, "{id}: {}", allowed.body);
    }
    // Probes carry no credential, over TLS too.
    assert_eq!(get(addr, "/healthz", Some((&dir, None))).await.status, 200);
    let missing = get(addr, "/nothing-here", Some((&dir, None))).await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("the dashboard at /, /healthz, /readyz, /metrics"),
        "{}",
        missing.body
    );
    let long_path = format!("/{}", "x".repeat(8 * 1024));
    let long = get(addr, &long_path, Some((&dir, None))).await;
    assert_eq!(long.status, 404);
    assert!(
        long.body.len() < 512,
        "the path is cut in the answer: {} bytes",
        long.body.len()
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_node_serves_metrics_without_a_credential_and_bounds_the_queues_reported() {
    let cluster = TestCluster::start_insecure(1, test_tuning()).await;
    let addr = cluster.http_addr(1);
    let scrape = wait_until("a ready plaintext node", || async {
        let answer = get(addr, "/metrics", None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        (sample(&answer.body, "raftsched_ready") == Some(1.0)).then_some(answer.body)
    })
    .await;
    assert_eq!(sample(&scrape, "raftsched_is_leader"), Some(1.0), "{scrape}");
    assert_eq!(
        sample(&scrape, "raftsched_metrics_queues_omitted"),
        Some(0.0),
        "{scrape}"
    );
    assert_eq!(get(addr, "/readyz", None).await.status, 200);

    // One queue past the cap, two tasks in each (so each queue has several series).
    let queues = MAX_REPORTED_QUEUES + 1;
    let specs = (0..2 * queues)
        .map(|n| common::spec::builder("q").queue(&format!("q{:04}", n % queues)).build())
        .collect();
    cluster
        .client()
        .submit_tasks(specs)
        .await
        .expect("submit a task per queue");
    let scrape = get(addr, "/metrics", None).await.body;
    assert_eq!(
        sample(&scrape, "raftsched_metrics_queues_omitted"),
        Some(1.0),
        "{scrape}"
    );
    let reported = |state: &str| {
        (0..queues)
            .filter(|n| {
                sample(
                    &scrape,
                    &format!(r#"raftsched_tasks{{queue="q{n:04}",state="{state}"}}"#),
                )
                .is_some()
            })
            .count()
    };
    assert_eq!(reported("pending"), MAX_REPORTED_QUEUES, "the first queues by name");
    let series = |n: usize| format!(r#"raftsched_tasks{{queue="q{n:04}",state="pending"}}"#);
    assert_eq!(sample(&scrape, &series(MAX_REPORTED_QUEUES - 1)), Some(2.0));
    assert_eq!(
        sample(&scrape, &series(MAX_REPORTED_QUEUES)),
        None,
        "the last queue is omitted"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_grpc_health_follow_a_leader_cut_off_and_the_failover() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let old = cluster.wait_for_leader().await;
    for id in cluster.ids() {
        wait_until(&format!("node {id} serving"), || async {
            let serving = health(&cluster, id, "").await.ok() == Some(ServingStatus::Serving as i32);
            let api = health(&cluster, id, "raftsched.v1.Scheduler").await.ok() == Some(ServingStatus::Serving as i32);
            (serving && api).then_some(())
        })
        .await;
    }
    let unknown = health(&cluster, old, "no.such.Service")
        .await
        .expect_err("an unknown service");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown}");

    let losses = |id: u64| cluster.node(id).app().member_view().quorum_losses;
    for id in cluster.ids() {
        assert_eq!(losses(id), 0, "node {id} lost its quorum without a fault");
    }

    // The old leader, cut off from both followers, stops being ready once its quorum has
    // been silent for a lease, and says why.
    for other in cluster.ids().into_iter().filter(|id| *id != old) {
        cluster.fault_link(old, other, Some(LinkFault::FailFast));
        cluster.fault_link(other, old, Some(LinkFault::FailFast));
    }
    let why = wait_until("the cut-off leader not ready", || async {
        let answer = readyz(&cluster, old).await;
        (answer.status == 503).then_some(answer.body)
    })
    .await;
    assert!(why.starts_with("not ready: "), "{why}");
    // One episode, counted once (NodeStatus and raftsched_leader_quorum_losses_total).
    wait_until("the quorum loss counted", || async { (losses(old) == 1).then_some(()) }).await;
    wait_until("the cut-off leader not serving over gRPC", || async {
        (health(&cluster, old, "").await.ok() == Some(ServingStatus::NotServing as i32)).then_some(())
    })
    .await;
    let new = wait_until("a new leader among the others", || async {
        let others: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != old).collect();
        others.into_iter().find(|id| cluster.node(*id).raft().is_leader())
    })
    .await;
    wait_until("the new leader ready", || async {
        (readyz(&cluster, new).await.status == 200).then_some(())
    })
    .await;

    cluster.heal();
    for id in cluster.ids() {
        wait_until(&format!("node {id} ready after the heal"), || async {
            (readyz(&cluster, id).await.status == 200).then_some(())
        })
        .await;
    }
    assert_eq!(losses(old), 1, "one episode is one loss");
    assert_eq!(losses(new), 0, "the new leader kept its quorum");
    cluster.shutdown().await;
}
