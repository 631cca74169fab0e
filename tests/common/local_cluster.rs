//! A three-node cluster of the real `raftsched` binary and its workers, run by
//! `scripts/cluster.sh` in a temporary data dir on free ports, and the helpers to drive it
//! through the CLI. Shared by `cli_e2e.rs` and `readme.rs` (each includes this file with
//! `#[path]`, so neither links the in-process harness of raftsched-testkit).
#![allow(dead_code)] // each test binary uses a different part

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_raftsched");
/// Deadline of every wait for the cluster (election, failover, catch-up).
pub const WAIT: Duration = Duration::from_secs(30);
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// Polls `check` until it returns `Ok`, or panics with its last error after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(e) if Instant::now() >= deadline => panic!("timed out after {timeout:?} waiting for {what}; last: {e}"),
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// Three consecutive free ports on 127.0.0.1 (raftsched-chaos's search, one copy for both).
pub fn free_port_base() -> u16 {
    raftsched_chaos::procs::free_port_base().unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`free_port_base`], with the three ports 100 above free too: the peer ports a node
/// picks by default (client port + 100), for a config that does not name them.
pub fn free_port_base_with_default_peers() -> u16 {
    let peer_ports_free =
        |base: u16| (100..103).all(|offset| std::net::TcpListener::bind(("127.0.0.1", base + offset)).is_ok());
    (0..100)
        .map(|_| free_port_base())
        .find(|base| peer_ports_free(*base))
        .expect("three free ports with three free ones 100 above, in 100 tries")
}

/// Where a CLI call goes: the nodes (`--cluster`) and the credentials (`RAFTSCHED_TLS_DIR`:
/// the script's `$RAFTSCHED_DATA/certs`; None: plaintext, `RAFTSCHED_INSECURE=1`); the call
/// uses the `admin` credential.
#[derive(Debug, Clone)]
pub struct Target {
    pub addrs: String,
    pub tls_dir: Option<PathBuf>,
}

/// A cluster run by `scripts/cluster.sh` in a temporary data dir, with its workers; dropping it
/// stops them all.
pub struct LocalCluster {
    pub data: tempfile::TempDir,
    pub port_base: u16,
    /// RAFTSCHED_PEER_PORT_BASE: the nodes' peer (Raft) ports, searched like the client ones.
    pub peer_port_base: u16,
    /// RAFTSCHED_HTTP_PORT_BASE: the nodes' HTTP ports, likewise.
    pub http_port_base: u16,
    /// RAFTSCHED_WORKERS for the script.
    pub workers: u8,
    /// RAFTSCHED_WORKER_LEASE_MS for the script; None: the script's default.
    pub worker_lease_ms: Option<u64>,
    /// RAFTSCHED_INSECURE=1 for the script: a plaintext cluster.
    pub insecure: bool,
    /// More environment for the script, and so for its nodes and workers.
    pub env: Vec<(String, String)>,
}

/// How long a stopping worker may finish its attempts (RAFTSCHED_WORKER_DRAIN_MS): short, so
/// that stopping a cluster with a task still running does not hold a test up.
pub const WORKER_DRAIN_MS: u64 = 2000;

impl LocalCluster {
    /// A cluster with the script's defaults: two workers, the default lease.
    pub fn new() -> LocalCluster {
        LocalCluster {
            data: tempfile::tempdir().expect("creating a temporary data dir"),
            port_base: free_port_base(),
            peer_port_base: free_port_base(),
            http_port_base: free_port_base(),
            workers: 2,
            worker_lease_ms: None,
            insecure: false,
            env: Vec::new(),
        }
    }

    /// Sets `name` to `value` in the environment of the script, its nodes and workers.
    pub fn with_env(mut self, name: &str, value: &str) -> LocalCluster {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// A plaintext cluster (`RAFTSCHED_INSECURE=1`).
    pub fn insecure(mut self) -> LocalCluster {
        self.insecure = true;
        self
    }

    pub fn with_workers(mut self, workers: u8) -> LocalCluster {
        self.workers = workers;
        self
    }

    pub fn with_worker_lease_ms(mut self, lease_ms: u64) -> LocalCluster {
        self.worker_lease_ms = Some(lease_ms);
        self
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn addr(&self, node: u8) -> String {
        format!("127.0.0.1:{}", self.port_base + u16::from(node) - 1)
    }

    /// Node `node`'s HTTP address.
    pub fn http_addr(&self, node: u8) -> String {
        format!("127.0.0.1:{}", self.http_port_base + u16::from(node) - 1)
    }

    /// All three addresses, as for --cluster.
    pub fn addrs(&self) -> String {
        (1..=3).map(|n| self.addr(n)).collect::<Vec<_>>().join(",")
    }

    /// The credentials dir `cluster.sh start` creates.
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir().join("certs")
    }

    /// CLI calls to the whole cluster.
    pub fn target(&self) -> Target {
        Target {
            addrs: self.addrs(),
            tls_dir: (!self.insecure).then(|| self.tls_dir()),
        }
    }

    /// CLI calls to node `node` alone.
    pub fn target_of(&self, node: u8) -> Target {
        Target {
            addrs: self.addr(node),
            tls_dir: (!self.insecure).then(|| self.tls_dir()),
        }
    }

    pub fn script(&self, args: &[&str]) -> Output {
        let mut command = Command::new("bash");
        command
            .arg(script_path())
            .args(args)
            .env("RAFTSCHED_BIN", BIN)
            .env("RAFTSCHED_DATA", self.data_dir())
            .env("RAFTSCHED_PORT_BASE", self.port_base.to_string())
            .env("RAFTSCHED_PEER_PORT_BASE", self.peer_port_base.to_string())
            .env("RAFTSCHED_HTTP_PORT_BASE", self.http_port_base.to_string())
            .env("RAFTSCHED_WORKERS", self.workers.to_string())
            .env("RAFTSCHED_WORKER_DRAIN_MS", WORKER_DRAIN_MS.to_string())
            .env_remove("RAFTSCHED_WORKER_SLOTS")
            .env_remove("RAFTSCHED_WORKER_LEASE_MS")
            .env_remove("RAFTSCHED_CLUSTER")
            .env_remove("RAFTSCHED_INSECURE")
            .env_remove("RAFTSCHED_TLS_DIR")
            .env_remove("RAFTSCHED_OTLP_ENDPOINT")
            .stdin(Stdio::null());
        if let Some(lease_ms) = self.worker_lease_ms {
            command.env("RAFTSCHED_WORKER_LEASE_MS", lease_ms.to_string());
        }
        if self.insecure {
            command.env("RAFTSCHED_INSECURE", "1");
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        command.output().expect("running scripts/cluster.sh")
    }

    /// Runs the script, asserts it succeeded, and returns its stdout.
    pub fn script_ok(&self, args: &[&str]) -> String {
        let output = self.script(args);
        assert!(
            output.status.success(),
            "cluster.sh {args:?} failed: {}",
            describe(&output)
        );
        text(&output.stdout)
    }

    /// The pid in `<name>.pid` (`node1`, `worker2`, ...).
    pub fn pid(&self, name: &str) -> String {
        let path = self.data_dir().join(format!("{name}.pid"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// The names of the script's processes: node1..node3, worker1..workerN.
    pub fn process_names(&self) -> Vec<String> {
        let nodes = (1..=3).map(|n| format!("node{n}"));
        let workers = (1..=self.workers).map(|n| format!("worker{n}"));
        nodes.chain(workers).collect()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let stop = self.script(&["stop"]);
        if std::thread::panicking() || !stop.status.success() {
            eprintln!("cluster.sh stop: {}", describe(&stop));
            for name in self.process_names() {
                let log = self.data_dir().join(format!("{name}.log"));
                let content = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = content.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                eprintln!("--- last lines of {} ---\n{tail}", log.display());
            }
        }
        if !stop.status.success() {
            // The script could not stop them: kill what its pid files still name, so that no
            // node or worker outlives the test.
            for name in self.process_names() {
                let path = self.data_dir().join(format!("{name}.pid"));
                if let Ok(pid) = std::fs::read_to_string(&path) {
                    let _ = Command::new("kill")
                        .args(["-KILL", pid.trim()])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}

/// The CLI aimed at `target` (`--cluster`, its credentials or plaintext) with nothing of
/// this process's RAFTSCHED_* settings, and no stdin.
pub fn cli_command(target: &Target) -> Command {
    let mut command = Command::new(BIN);
    match &target.tls_dir {
        Some(dir) => command.env("RAFTSCHED_TLS_DIR", dir).env_remove("RAFTSCHED_INSECURE"),
        None => command.env("RAFTSCHED_INSECURE", "1").env_remove("RAFTSCHED_TLS_DIR"),
    };
    command
        .arg("--cluster")
        .arg(&target.addrs)
        .env_remove("RAFTSCHED_CLUSTER")
        .env_remove("RAFTSCHED_TLS_IDENTITY")
        .env_remove("RAFTSCHED_TLS_SERVER_NAME")
        .env_remove("TRACEPARENT")
        .stdin(Stdio::null());
    command
}

/// Runs a client command against `target` with `--json`; its output, and what it printed
/// parsed, or why not (whether or not it succeeded).
pub fn cli_json_output(target: &Target, args: &[&str]) -> (Output, Result<Value, String>) {
    let output = cli_command(target)
        .arg("--json")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    let parsed = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("raftsched {args:?} printed no JSON ({e}): {}", describe(&output)));
    (output, parsed)
}

/// Runs a client command against `target` with `--json`; the parsed output, or why not.
pub fn cli_json(target: &Target, args: &[&str]) -> Result<Value, String> {
    let (output, parsed) = cli_json_output(target, args);
    if !output.status.success() {
        return Err(format!("raftsched {args:?} failed: {}", describe(&output)));
    }
    parsed
}
