//! End to end: a three-node cluster of the real `raftsched` binary, run by `scripts/cluster.sh`
//! and driven through the CLI — submit, read, leader failover, catch-up of a restarted node, and
//! refusal of another cluster's data dir.
//!
//! Every wait polls a condition until a deadline; a [`LocalCluster`] guard stops the nodes even
//! when an assertion fails.

use std::net::Ipv4Addr;
use std::net::SocketAddrV4;
use std::net::TcpListener;
use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::sync::atomic::AtomicU16;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_raftsched");
/// Deadline of every wait for the cluster (election, failover, catch-up).
const WAIT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// Polls `check` until it returns `Ok`, or panics with its last error after `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(e) if Instant::now() >= deadline => panic!("timed out after {timeout:?} waiting for {what}; last: {e}"),
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// Three consecutive free ports on 127.0.0.1. They are searched below the kernel's ephemeral
/// range, so that no port-0 bind or outgoing connection elsewhere (the other cluster tests
/// run concurrently) can take one between this check and the nodes' own bind. Each call
/// starts at another offset, so tests in this process never pick the same ports.
fn free_port_base() -> u16 {
    static CALLS: AtomicU16 = AtomicU16::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = if ephemeral_low > 12_000 {
        (10_000, ephemeral_low - 3)
    } else {
        (ephemeral_low.saturating_add(20_000), 65_000)
    };
    let slots = u32::from((high - low) / 3);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let seed = std::process::id().wrapping_mul(7919) ^ nanos;
    let call = u32::from(CALLS.fetch_add(1, Ordering::Relaxed));
    for attempt in 0..slots {
        let slot = (seed.wrapping_add((call * 97 + attempt) * 3)) % slots;
        let base = low + 3 * u16::try_from(slot).expect("a slot is below `slots`, a u16");
        let bound: Vec<TcpListener> = (0..3)
            .map_while(|i| TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, base + i)).ok())
            .collect();
        if bound.len() == 3 {
            return base;
        }
    }
    panic!("no three consecutive free ports in {low}..{high}");
}

/// A cluster run by `scripts/cluster.sh` in a temporary data dir; dropping it stops the nodes.
struct LocalCluster {
    data: tempfile::TempDir,
    port_base: u16,
}

impl LocalCluster {
    fn new() -> LocalCluster {
        LocalCluster {
            data: tempfile::tempdir().expect("creating a temporary data dir"),
            port_base: free_port_base(),
        }
    }

    fn data_dir(&self) -> &Path {
        self.data.path()
    }

    fn addr(&self, node: u8) -> String {
        format!("127.0.0.1:{}", self.port_base + u16::from(node) - 1)
    }

    /// All three addresses, as for --cluster.
    fn addrs(&self) -> String {
        (1..=3).map(|n| self.addr(n)).collect::<Vec<_>>().join(",")
    }

    fn script(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(script_path())
            .args(args)
            .env("RAFTSCHED_BIN", BIN)
            .env("RAFTSCHED_DATA", self.data_dir())
            .env("RAFTSCHED_PORT_BASE", self.port_base.to_string())
            .env_remove("RAFTSCHED_CLUSTER")
            .stdin(Stdio::null())
            .output()
            .expect("running scripts/cluster.sh")
    }

    /// Runs the script, asserts it succeeded, and returns its stdout.
    fn script_ok(&self, args: &[&str]) -> String {
        let output = self.script(args);
        assert!(
            output.status.success(),
            "cluster.sh {args:?} failed: {}",
            describe(&output)
        );
        text(&output.stdout)
    }

    fn pid(&self, node: u8) -> String {
        let path = self.data_dir().join(format!("node{node}.pid"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let stop = self.script(&["stop"]);
        if std::thread::panicking() || !stop.status.success() {
            eprintln!("cluster.sh stop: {}", describe(&stop));
            for node in 1..=3 {
                let log = self.data_dir().join(format!("node{node}.log"));
                let content = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = content.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                eprintln!("--- last lines of {} ---\n{tail}", log.display());
            }
        }
    }
}

/// Runs a client command against `cluster` with `--json`; the parsed output, or why not.
fn cli_json(cluster: &str, args: &[&str]) -> Result<Value, String> {
    let output = Command::new(BIN)
        .arg("--cluster")
        .arg(cluster)
        .arg("--json")
        .args(args)
        .env_remove("RAFTSCHED_CLUSTER")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {BIN}: {e}"))?;
    if !output.status.success() {
        return Err(format!("raftsched {args:?} failed: {}", describe(&output)));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("raftsched {args:?} printed no JSON ({e}): {}", describe(&output)))
}

/// One member in `cluster status --json`.
#[derive(Debug)]
struct Member {
    node_id: u64,
    role: String,
    leader_id: u64,
}

fn members(cluster: &str) -> Result<Vec<Member>, String> {
    let status = cli_json(cluster, &["cluster", "status"])?;
    let members = status["members"]
        .as_array()
        .ok_or_else(|| format!("no members in {status}"))?;
    Ok(members
        .iter()
        .map(|m| Member {
            node_id: m["node_id"].as_u64().unwrap_or(0),
            role: m["role"].as_str().unwrap_or_default().to_string(),
            leader_id: m["leader_id"].as_u64().unwrap_or(0),
        })
        .collect())
}

fn task_id(task: &Value) -> Result<u64, String> {
    task["id"].as_u64().ok_or_else(|| format!("no task id in {task}"))
}

/// The ids in `task list --json` output.
fn listed_ids(list: &Value) -> Vec<u64> {
    list["tasks"]
        .as_array()
        .expect("task list --json prints {\"tasks\": [...]}")
        .iter()
        .filter_map(|t| t["id"].as_u64())
        .collect()
}

/// Submits a task through the CLI, gets it and lists it; returns its id.
fn submit_get_and_list(all: &str) -> u64 {
    let submit = [
        "task", "submit", "--name", "first", "--queue", "e2e", "--", "echo", "first",
    ];
    let submitted = cli_json(all, &submit).expect("submitting a task");
    assert_eq!(submitted["created"], Value::Bool(true), "{submitted}");
    let id = task_id(&submitted).unwrap();
    let fetched = cli_json(all, &["task", "get", &id.to_string()]).expect("getting the task");
    assert_eq!(fetched["id"].as_u64(), Some(id), "{fetched}");
    assert_eq!(fetched["name"], "first", "{fetched}");
    assert_eq!(fetched["queue"], "e2e", "{fetched}");
    assert_eq!(fetched["payload"]["command"], "echo first", "{fetched}");
    let listed = cli_json(all, &["task", "list", "--queue", "e2e"]).expect("listing tasks");
    assert_eq!(listed_ids(&listed), vec![id], "{listed}");
    id
}

/// Waits until cluster status shows one leader other than `old_leader`, and `old_leader`
/// unreachable; returns the new leader's id.
fn wait_for_new_leader(all: &str, old_leader: u64) -> u64 {
    wait_for("cluster status to show a new leader", WAIT, || {
        let members = members(all)?;
        let leaders: Vec<u64> = members
            .iter()
            .filter(|m| m.role == "leader")
            .map(|m| m.node_id)
            .collect();
        let old_is_down = members
            .iter()
            .any(|m| m.node_id == old_leader && m.role == "unreachable");
        match leaders.as_slice() {
            [leader] if *leader != old_leader && old_is_down => Ok(*leader),
            _ => Err(format!("members: {members:?}")),
        }
    })
}

#[test]
fn failover_to_a_new_leader_and_catch_up_of_the_restarted_node() {
    let cluster = LocalCluster::new();
    let all = cluster.addrs();
    let started = cluster.script_ok(&["start"]);
    assert!(
        started.contains(&format!("export RAFTSCHED_CLUSTER={all}")),
        "start prints the RAFTSCHED_CLUSTER hint: {started}"
    );
    let first = submit_get_and_list(&all);

    // Kill the leader.
    let old_leader: u8 = cluster
        .script_ok(&["leader"])
        .trim()
        .parse()
        .expect("cluster.sh leader prints a node number");
    assert!((1..=3).contains(&old_leader));
    cluster.script_ok(&["kill", &old_leader.to_string()]);

    // The survivors elect a new leader; the client finds it on its own.
    let refetched = wait_for("the first task to be readable after the leader died", WAIT, || {
        cli_json(&all, &["task", "get", &first.to_string()])
    });
    assert_eq!(refetched["name"], "first", "{refetched}");
    // A fixed request id: a retry after an answer lost in the failover cannot make a second task.
    let submit = [
        "task",
        "submit",
        "--name",
        "second",
        "--queue",
        "e2e",
        "--request-id",
        "cli-e2e-second",
        "--",
        "echo",
        "second",
    ];
    let second_submitted = wait_for("a submission to succeed after the leader died", WAIT, || {
        cli_json(&all, &submit)
    });
    let second = task_id(&second_submitted).unwrap();
    assert_ne!(second, first);
    let new_leader = wait_for_new_leader(&all, u64::from(old_leader));

    // Restart the killed node: it catches up with both tasks, read from it alone.
    cluster.script_ok(&["restart", &old_leader.to_string()]);
    let restarted = cluster.addr(old_leader);
    for (id, name) in [(first, "first"), (second, "second")] {
        let task = wait_for(&format!("the restarted node to have task {id}"), WAIT, || {
            cli_json(&restarted, &["task", "get", "--stale", &id.to_string()])
        });
        assert_eq!(task["name"], name, "{task}");
    }
    let stale_list =
        cli_json(&restarted, &["task", "list", "--stale", "--queue", "e2e"]).expect("listing on the restarted node");
    assert_eq!(listed_ids(&stale_list), vec![first, second], "{stale_list}");
    wait_for("the restarted node to follow the new leader", WAIT, || {
        let members = members(&restarted)?;
        let own = members.iter().find(|m| m.node_id == u64::from(old_leader));
        match own {
            Some(m) if m.role == "follower" && m.leader_id == new_leader => Ok(()),
            _ => Err(format!("members: {members:?}")),
        }
    });

    let stopped = cluster.script_ok(&["stop"]);
    for node in 1..=3 {
        assert!(stopped.contains(&format!("node {node} stopped")), "{stopped}");
    }
    let status = cluster.script_ok(&["status"]);
    assert_eq!(status.matches("stopped").count(), 3, "{status}");
}

#[test]
fn start_twice_is_harmless_and_another_clusters_data_dir_is_refused() {
    let usage = Command::new("bash")
        .arg(script_path())
        .output()
        .expect("running cluster.sh");
    assert_eq!(usage.status.code(), Some(2), "{}", describe(&usage));
    assert!(text(&usage.stderr).contains("Usage:"), "{}", describe(&usage));

    let cluster = LocalCluster::new();
    cluster.script_ok(&["start"]);
    let pids: Vec<String> = (1..=3).map(|n| cluster.pid(n)).collect();
    let again = cluster.script_ok(&["start"]);
    assert_eq!(again.matches("already running").count(), 3, "{again}");
    assert_eq!((1..=3).map(|n| cluster.pid(n)).collect::<Vec<_>>(), pids);
    let cluster_id = std::fs::read_to_string(cluster.data_dir().join("cluster-id")).expect("reading cluster-id");
    assert!(!cluster_id.trim().is_empty());

    cluster.script_ok(&["stop"]);
    let node1_dir = cluster.data_dir().join("node1");
    let mut child = Command::new(BIN)
        .args(["node", "--id", "1", "--listen", &cluster.addr(1), "--data-dir"])
        .arg(&node1_dir)
        .args(["--cluster-id", "some-other-cluster", "--initial-members"])
        .arg(format!(
            "1={},2={},3={}",
            cluster.addr(1),
            cluster.addr(2),
            cluster.addr(3)
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting a node");
    // Not wait_for: a node that wrongly starts must be killed, not left running.
    let deadline = Instant::now() + WAIT;
    let exited = loop {
        if let Some(status) = child.try_wait().expect("polling the node") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let output = child.wait_with_output().expect("collecting the node's output");
    let stderr = text(&output.stderr);
    let exited =
        exited.unwrap_or_else(|| panic!("a node on another cluster's data dir still runs after {WAIT:?}: {stderr}"));
    assert!(
        !exited.success(),
        "a node on another cluster's data dir must not start: {stderr}"
    );
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert!(stderr.contains("some-other-cluster"), "{stderr}");
    // The refused node left the data dir alone: the cluster starts again from it.
    cluster.script_ok(&["start"]);

    cluster.script_ok(&["clean"]);
    assert!(!cluster.data_dir().exists(), "clean removes the data dir");
}
