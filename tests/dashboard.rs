//! The web console in a real browser: Debian's headless Chromium, driven by Selenium
//! (tests/browser/dashboard.py), against a cluster that `scripts/cluster.sh start` runs.
//! A task submitted through the CLI is found by name on a follower's dashboard, and its
//! page and its workflow's DAG show them succeeded, a schedule's runs show up; then the leader is killed and the page
//! shows the new one. The screenshots land in target/tmp/dashboard-screenshots; with
//! RAFTSCHED_UPDATE_SCREENSHOTS=1 they also replace the README's, in docs/images.
//!
//! Needs chromium, chromium-driver and a Python with selenium (`RAFTSCHED_BROWSER_PYTHON`,
//! else python3); .ci/run installs them. Without them the test says what is missing and
//! passes, except under CI=true, where it fails.

#[path = "common/local_cluster.rs"]
mod local_cluster;

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;

use local_cluster::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The Python that drives the browser, or why there is none.
fn browser_python() -> Result<String, String> {
    let python = std::env::var("RAFTSCHED_BROWSER_PYTHON").unwrap_or_else(|_| "python3".to_string());
    if !Path::new(CHROMEDRIVER).exists() {
        return Err(format!("no {CHROMEDRIVER}: apt-get install chromium chromium-driver"));
    }
    let check = Command::new(&python).args(["-c", "import selenium"]).output();
    match check {
        Ok(output) if output.status.success() => Ok(python),
        Ok(output) => Err(format!(
            "{python} has no selenium ({}): pip install selenium, and point RAFTSCHED_BROWSER_PYTHON at that python",
            text(&output.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {python}: {e}")),
    }
}

/// Runs one phase of the browser script; its stdout.
fn drive(python: &str, phase: &str, args: &[(&str, String)]) -> String {
    let mut command = Command::new(python);
    command.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.py"));
    command.arg(phase).args(["--chromedriver", CHROMEDRIVER]);
    for (flag, value) in args {
        command.arg(flag).arg(value);
    }
    let output = command.output().expect("running the browser script");
    assert!(output.status.success(), "dashboard.py {phase}: {}", describe(&output));
    text(&output.stdout)
}

fn leader_in(stdout: &str) -> u8 {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("leader="))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no leader=<id> line in {stdout}"))
}

#[test]
fn a_browser_finds_a_task_on_a_followers_dashboard_and_sees_the_new_leader_after_a_failover() {
    let python = match browser_python() {
        Ok(python) => python,
        Err(missing) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI must run the browser test: {missing}")
        }
        Err(missing) => return eprintln!("skipping the browser test: {missing}"),
    };
    let cluster = LocalCluster::new();
    let started = cluster.script_ok(&["start"]);
    let token = std::fs::read_to_string(cluster.tls_dir().join("console.token")).expect("console.token");
    let printed = format!("Dashboard: https://{}/#token={}", cluster.http_addr(1), token.trim());
    assert!(
        started.contains(&printed),
        "start prints the dashboard URL {printed:?}: {started}"
    );

    let target = cluster.target();
    let name = format!("dashboard-probe-{}", std::process::id());
    let submitted = cli_json(
        &target,
        &[
            "task",
            "submit",
            "--name",
            &name,
            "--wait",
            "--",
            &format!("echo {name}"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The API's JSON mapping writes 64-bit integers as strings.
    let id_of = |value: &serde_json::Value| value["id"].as_str().and_then(|id| id.parse::<u64>().ok());
    let task_id = id_of(&submitted).unwrap_or_else(|| panic!("no id in {submitted}"));
    let workflow_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workflow.toml");
    let workflow = cli_json(
        &target,
        &[
            "workflow",
            "submit",
            "--file",
            workflow_file.to_str().unwrap(),
            "--wait",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let workflow_id = id_of(&workflow).unwrap_or_else(|| panic!("no id in {workflow}"));
    let workflow_tasks = workflow["tasks"].as_array().map_or(0, Vec::len);
    assert_eq!(workflow_tasks, 4, "{workflow}");

    let schedule = "heartbeat";
    cli_json(
        &target,
        &["schedule", "create", schedule, "--every-ms", "1s", "--", "echo beat"],
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let leader: u8 = cluster.script_ok(&["leader"]).trim().parse().expect("a node number");
    let follower = (1..=3).find(|n| *n != leader).unwrap();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let url = format!("https://{}/#token={}", cluster.http_addr(follower), token.trim());
    let found = drive(
        &python,
        "find",
        &[
            ("--url", url.clone()),
            ("--shots", shots.display().to_string()),
            ("--task-name", name),
            ("--task-id", task_id.to_string()),
            ("--workflow-id", workflow_id.to_string()),
            ("--workflow-tasks", workflow_tasks.to_string()),
            ("--schedule", schedule.to_string()),
        ],
    );
    assert_eq!(
        leader_in(&found),
        leader,
        "the page names the leader the script does: {found}"
    );

    cluster.script_ok(&["kill", &leader.to_string()]);
    let after = drive(
        &python,
        "failover",
        &[
            ("--url", url),
            ("--shots", shots.display().to_string()),
            ("--old-leader", leader.to_string()),
        ],
    );
    assert_ne!(leader_in(&after), leader, "{after}");
    if std::env::var("RAFTSCHED_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/images");
        std::fs::create_dir_all(&images).unwrap();
        for shot in std::fs::read_dir(&shots).unwrap() {
            let shot = shot.unwrap().path();
            std::fs::copy(&shot, images.join(shot.file_name().unwrap())).unwrap();
        }
    }
}
