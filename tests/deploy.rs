//! deploy/ is checked, not just shipped: the systemd unit starts a node with `--config`, and
//! the sample config in deploy/node.toml starts a node (its paths and ports changed to a temp
//! dir and free ports, its members cut to itself) that answers `/readyz` over TLS. The
//! Prometheus rules and the Grafana dashboard are checked against a running node's metrics
//! in crates/server/tests/it/observability.rs.

#[path = "common/local_cluster.rs"]
mod local_cluster;

use std::path::Path;
use std::process::Command;
use std::process::Stdio;

use local_cluster::*;

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn the_systemd_unit_runs_a_node_from_the_sample_configs_path() {
    let unit = deploy_file("raftsched.service");
    let exec = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    assert!(
        exec.starts_with("/usr/local/bin/raftsched node --config /etc/raftsched/node.toml"),
        "{exec}"
    );
    for needed in [
        "[Unit]",
        "[Service]",
        "[Install]",
        "StateDirectory=raftsched",
        "LimitNOFILE=",
    ] {
        assert!(unit.contains(needed), "{needed} in the unit");
    }
    // The flags it passes are the binary's: `--help` of `node` names them.
    let help = Command::new(BIN)
        .args(["node", "--help"])
        .output()
        .expect("raftsched node --help");
    for flag in exec.split_whitespace().filter(|word| word.starts_with("--")) {
        assert!(
            text(&help.stdout).contains(flag),
            "{flag} is not a flag of `raftsched node`"
        );
    }
}

#[test]
fn the_sample_config_starts_a_node_that_answers_its_readiness_probe() {
    let root = tempfile::tempdir().expect("a temp dir");
    let certs = root.path().join("certs");
    let init = Command::new(BIN)
        .args(["certs", "init", "--nodes", "1", "--dir"])
        .arg(&certs)
        .output()
        .expect("raftsched certs init");
    assert!(init.status.success(), "{}", describe(&init));
    let (client, peer, http) = (free_port_base(), free_port_base(), free_port_base());
    let config = deploy_file("node.toml")
        .replace("/var/lib/raftsched", &root.path().display().to_string())
        .replace("/etc/raftsched/certs", &certs.display().to_string())
        .replace("0.0.0.0:50051", &format!("127.0.0.1:{client}"))
        .replace("10.0.0.1:50051/50151", &format!("127.0.0.1:{client}/{peer}"))
        .replace("10.0.0.1:50051", &format!("127.0.0.1:{client}"))
        .replace("0.0.0.0:50151", &format!("127.0.0.1:{peer}"))
        .replace("10.0.0.1:50151", &format!("127.0.0.1:{peer}"))
        .replace("0.0.0.0:8081", &format!("127.0.0.1:{http}"));
    let config: String = config
        .lines()
        .filter(|line| !line.starts_with("2 = ") && !line.starts_with("3 = "))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(!config.contains("10.0.0."), "an address left unchanged: {config}");
    let file = root.path().join("node.toml");
    std::fs::write(&file, &config).expect("writing the config");
    let mut node = Command::new(BIN)
        .args(["node", "--config"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the node");
    let url = format!("https://127.0.0.1:{http}/readyz");
    let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("the sample-config node ready", WAIT, || {
            if let Ok(Some(status)) = node.try_wait() {
                return Ok(Err(format!("the node exited: {status}")));
            }
            let probe = Command::new("curl")
                .args(["-sS", "--max-time", "5", "--cacert"])
                .arg(certs.join("ca.crt"))
                .arg(&url)
                .output()
                .expect("curl (tests/readme.rs needs it too)");
            let body = text(&probe.stdout);
            if body == "ready\n" {
                Ok(Ok(()))
            } else {
                Err(format!("{body}{}", text(&probe.stderr)))
            }
        })
    }));
    let _ = node.kill();
    let output = node.wait_with_output().expect("the node's output");
    match ready {
        Ok(Ok(())) => {}
        Ok(Err(why)) => panic!("{why}: {}", text(&output.stderr)),
        Err(panic) => {
            eprintln!("the node's log: {}", text(&output.stderr));
            std::panic::resume_unwind(panic);
        }
    }
}

/// The settings `raftsched node --check-config` prints for `file`, the variables `env` and
/// the flags `flags`, parsed back; or its stderr.
fn checked_config(file: &Path, env: &[(&str, &str)], flags: &[&str]) -> Result<toml::Table, String> {
    let mut command = Command::new(BIN);
    command
        .args(["node", "--check-config", "--config"])
        .arg(file)
        .args(flags);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("RAFTSCHED_")) {
        command.env_remove(name);
    }
    let output = command.envs(env.iter().copied()).stdin(Stdio::null()).output().unwrap();
    if !output.status.success() {
        return Err(text(&output.stderr));
    }
    text(&output.stdout)
        .parse()
        .map_err(|e| format!("not TOML ({e}): {}", text(&output.stdout)))
}

#[test]
fn a_flag_beats_its_variable_which_beats_the_config_file_which_beats_the_default() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("node.toml");
    let data = root.path().join("data");
    std::fs::write(
        &file,
        format!(
            "node_id = 1\nlisten_addr = \"127.0.0.1:7001\"\ndata_dir = {data:?}\ninsecure = true\n\
             http_listen_addr = \"127.0.0.1:8001\"\n[raft]\nheartbeat_interval_ms = 70\nelection_timeout_min_ms = 200\n\
             election_timeout_max_ms = 400\n"
        ),
    )
    .unwrap();
    let env = [
        ("RAFTSCHED_NODE_HTTP_LISTEN", "127.0.0.1:8002"),
        ("RAFTSCHED_NODE_HEARTBEAT_MS", "60ms"),
        ("RAFTSCHED_NODE_MAX_LIVE_TASKS", "5000"),
    ];
    let config = checked_config(&file, &env, &["--http-listen", "127.0.0.1:8003"]).unwrap();
    assert_eq!(
        config["http_listen_addr"].as_str(),
        Some("127.0.0.1:8003"),
        "the flag wins over its variable"
    );
    let raft = config["raft"].as_table().unwrap();
    assert_eq!(
        raft["heartbeat_interval_ms"].as_integer(),
        Some(60),
        "the variable wins over the file"
    );
    assert_eq!(
        raft["election_timeout_min_ms"].as_integer(),
        Some(200),
        "the file wins over the default"
    );
    assert_eq!(
        raft["snapshot_after_entries"].as_integer(),
        Some(1000),
        "the default, unset anywhere"
    );
    assert_eq!(config["quotas"]["max_live_tasks"].as_integer(), Some(5000));
    assert_eq!(config["listen_addr"].as_str(), Some("127.0.0.1:7001"));

    // A bad value in a variable is refused like the flag's, naming the flag.
    let error = checked_config(&file, &[("RAFTSCHED_NODE_HEARTBEAT_MS", "soon")], &[]).unwrap_err();
    assert!(error.contains("--heartbeat-ms"), "{error}");
    // The settings are checked as a whole: a variable that breaks a relation is refused.
    let error = checked_config(&file, &[("RAFTSCHED_NODE_HEARTBEAT_MS", "10s")], &[]).unwrap_err();
    assert!(error.contains("heartbeat"), "{error}");
}

#[test]
fn man_pages_cover_every_command_and_name_each_flags_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN).arg("man").arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    assert!(text(&output.stdout).contains("man pages to"), "{}", describe(&output));
    let page = |name: &str| {
        std::fs::read_to_string(dir.path().join(format!("{name}.1"))).unwrap_or_else(|e| panic!("{name}.1: {e}"))
    };
    for name in [
        "raftsched",
        "raftsched-node",
        "raftsched-worker",
        "raftsched-cluster-status",
        "raftsched-certs-console-token",
    ] {
        assert!(page(name).starts_with(".ie"), "{name}.1 is roff: {}", &page(name)[..80]);
    }
    let submit = page("raftsched-task-submit");
    // roff escapes each '-' of a flag.
    for needed in [r"\-\-queue", "RAFTSCHED_TASK_SUBMIT_QUEUE", "RAFTSCHED_CLUSTER"] {
        assert!(submit.contains(needed), "{needed} in raftsched-task-submit.1");
    }
    assert!(page("raftsched-node").contains("RAFTSCHED_NODE_DATA_DIR"));
}
