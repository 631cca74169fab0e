//! End to end: a three-node cluster of the real `raftsched` binary and its workers, run by
//! `scripts/cluster.sh` and driven through the CLI — the README's quick start (tasks run on the
//! workers, `--wait`, retries), a worker killed mid-task, leader failover with a task running,
//! catch-up of a restarted node, and refusal of another cluster's data dir.
//!
//! Every wait polls a condition until a deadline; a [`LocalCluster`] guard stops the workers
//! and nodes even when an assertion fails.

#[path = "common/local_cluster.rs"]
mod local_cluster;

use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::time::Instant;

use local_cluster::*;
use serde_json::Value;

/// `--wait-timeout-ms` of every `task submit --wait`: a task that never finishes fails the
/// test instead of hanging it.
const WAIT_TIMEOUT_MS: &str = "20000";

/// One member in `cluster status --json`.
#[derive(Debug)]
struct Member {
    node_id: u64,
    role: String,
    leader_id: u64,
}

/// A 64-bit integer of the CLI's JSON: the API's JSON mapping writes it as a string.
fn int(value: &Value) -> Option<u64> {
    value.as_str().and_then(|text| text.parse().ok())
}

/// A task's state by its short name (`TASK_STATE_SUCCEEDED` is `succeeded`).
fn state(task: &Value) -> String {
    task["state"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("TASK_STATE_")
        .to_ascii_lowercase()
}

/// An attempt's outcome as the CLI's table shows it (`ATTEMPT_OUTCOME_TIMED_OUT` is `timed-out`).
fn outcome(attempt: &Value) -> String {
    let name = attempt["outcome"].as_str().unwrap_or_default();
    name.trim_start_matches("ATTEMPT_OUTCOME_")
        .to_ascii_lowercase()
        .replace('_', "-")
}

fn members(cluster: &Target) -> Result<Vec<Member>, String> {
    let status = cli_json(cluster, &["cluster", "status"])?;
    let members = status["members"]
        .as_array()
        .ok_or_else(|| format!("no members in {status}"))?;
    Ok(members
        .iter()
        .map(|m| Member {
            node_id: int(&m["nodeId"]).unwrap_or(0),
            role: m["role"].as_str().unwrap_or_default().to_string(),
            leader_id: int(&m["leaderId"]).unwrap_or(0),
        })
        .collect())
}

/// The id of a task, or of the task in a response (`task submit` prints `{"task": ...,
/// "created": ...}`).
fn task_id(task: &Value) -> Result<u64, String> {
    let task_itself = task.get("task").unwrap_or(task);
    int(&task_itself["id"]).ok_or_else(|| format!("no task id in {task}"))
}

/// The ids in `task list --json` output.
fn listed_ids(list: &Value) -> Vec<u64> {
    list["tasks"]
        .as_array()
        .expect("task list --json prints {\"tasks\": [...]}")
        .iter()
        .filter_map(|t| int(&t["id"]))
        .collect()
}

/// Submits a task through the CLI, gets it and lists it; returns its id.
fn submit_get_and_list(all: &Target) -> u64 {
    let submit = [
        "task", "submit", "--name", "first", "--queue", "e2e", "--", "echo", "first",
    ];
    let submitted = cli_json(all, &submit).expect("submitting a task");
    assert_eq!(submitted["created"], Value::Bool(true), "{submitted}");
    let id = task_id(&submitted).unwrap();
    let fetched = cli_json(all, &["task", "get", &id.to_string()]).expect("getting the task");
    assert_eq!(int(&fetched["id"]), Some(id), "{fetched}");
    assert_eq!(fetched["spec"]["name"], "first", "{fetched}");
    assert_eq!(fetched["spec"]["queue"], "e2e", "{fetched}");
    assert_eq!(fetched["spec"]["command"]["commandLine"], "echo first", "{fetched}");
    let listed = cli_json(all, &["task", "list", "--queue", "e2e"]).expect("listing tasks");
    assert_eq!(listed_ids(&listed), vec![id], "{listed}");
    id
}

/// Waits until cluster status shows one leader other than `old_leader`, and `old_leader`
/// unreachable; returns the new leader's id.
fn wait_for_new_leader(all: &Target, old_leader: u64) -> u64 {
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

/// The ids of the workers `worker list --json` shows as connected, sorted.
fn connected_workers(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["workers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|w| w["connected"] == Value::Bool(true))
        .filter_map(|w| w["workerId"].as_str().map(String::from))
        .collect();
    ids.sort();
    ids
}

/// Waits until the leader lists exactly `expected` as connected workers; returns the list.
fn wait_for_connected_workers(all: &Target, expected: &[&str]) -> Value {
    wait_for(&format!("workers {expected:?} to be connected"), WAIT, || {
        let list = cli_json(all, &["worker", "list"])?;
        if connected_workers(&list) == expected {
            Ok(list)
        } else {
            Err(format!("worker list: {list}"))
        }
    })
}

fn attempts(task: &Value) -> &[Value] {
    task["attempts"].as_array().map_or(&[], Vec::as_slice)
}

fn str_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_default()
}

/// Waits until task `id` is in `state` and returns it; fails at once if it finishes in another.
fn wait_for_state(all: &Target, id: u64, state: &str) -> Value {
    wait_for(&format!("task {id} to be {state}"), WAIT, || {
        let task = cli_json(all, &["task", "get", &id.to_string()])?;
        let now = self::state(&task);
        if now == state {
            return Ok(task);
        }
        assert!(
            !["succeeded", "failed", "cancelled"].contains(&now.as_str()),
            "task {id} finished {now}, not {state}: {task:#}"
        );
        Err(format!("task {id} is {now}"))
    })
}

/// Submits a command (with `extra` flags) through `task submit --wait --json`; returns the
/// CLI's output and the task it printed.
fn submit_and_wait(all: &Target, extra: &[&str], command: &str) -> (Output, Value) {
    let mut args = vec!["task", "submit", "--wait", "--wait-timeout-ms", WAIT_TIMEOUT_MS];
    args.extend_from_slice(extra);
    args.extend(["--", command]);
    let (output, task) = cli_json_output(all, &args);
    let task = task.unwrap_or_else(|e| panic!("{e}"));
    (output, task)
}

/// Submits a command without waiting; returns the task's id.
fn submit(all: &Target, extra: &[&str], command: &str) -> u64 {
    let mut args = vec!["task", "submit"];
    args.extend_from_slice(extra);
    args.extend(["--", command]);
    let submitted = cli_json(all, &args).unwrap_or_else(|e| panic!("{e}"));
    task_id(&submitted).unwrap()
}

/// How many live processes have `marker` in their command line, or are a task's shell with
/// `marker` in its command: a worker hands the command line to the shell in the environment
/// (`RAFTSCHED_COMMAND_LINE`, so other users' `ps` does not list it), which /proc shows this
/// test, run by the same user. (Every process of a task also has the command in its
/// `RAFTSCHED_TASK_NAME`, the default name, so only that one variable counts.)
fn commands_running(marker: &str) -> usize {
    let entries = std::fs::read_dir("/proc").expect("reading /proc");
    let has_marker = |bytes: &[u8]| String::from_utf8_lossy(bytes).contains(marker);
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|entry| {
            let in_cmdline = std::fs::read(entry.path().join("cmdline")).is_ok_and(|bytes| has_marker(&bytes));
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let in_command = environ
                .split(|&byte| byte == 0)
                .any(|variable| variable.starts_with(b"RAFTSCHED_COMMAND_LINE=") && has_marker(variable));
            in_cmdline || in_command
        })
        .count()
}

/// Waits until exactly `count` live processes have `marker` in their command line or
/// environment.
fn wait_for_commands(marker: &str, count: usize, what: &str) {
    wait_for(what, WAIT, || match commands_running(marker) {
        n if n == count => Ok(()),
        n => Err(format!("{n} processes with {marker:?} in their command line")),
    });
}

/// The lease of the workers in the test that kills one: short, so its task moves on soon.
const KILLED_WORKER_LEASE_MS: u64 = 1500;

#[test]
fn quick_start_runs_tasks_on_the_workers_and_a_killed_workers_task_moves_on() {
    let cluster = LocalCluster::new().with_worker_lease_ms(KILLED_WORKER_LEASE_MS);
    let all = cluster.target();
    let started = cluster.script_ok(&["start"]);
    for n in 1..=2 {
        assert!(started.contains(&format!("worker {n} started")), "{started}");
    }
    assert!(started.contains("workers connected: 1 2"), "{started}");

    // `worker list` shows both workers, as the script started them.
    let list = wait_for_connected_workers(&all, &["worker1", "worker2"]);
    for worker in list["workers"].as_array().unwrap() {
        let id = str_field(worker, "workerId");
        assert_eq!(worker["slots"], 4, "{worker}");
        assert_eq!(worker["draining"], false, "{worker}");
        assert_eq!(worker["labels"]["worker"], &id["worker".len()..], "{worker}");
    }

    // `queue set` changes only what it is given (`--weight` once reset the placement), and
    // answers in JSON with --json.
    let set = cli_json(
        &all,
        &["queue", "set", "batch", "--weight", "3", "--placement", "spread"],
    )
    .unwrap();
    let set = &set["policy"];
    assert_eq!(
        (set["weight"].as_u64(), set["placement"].as_str()),
        (Some(3), Some("spread")),
        "{set}"
    );
    let kept = cli_json(&all, &["queue", "set", "batch", "--retention", "1h"]).unwrap();
    let kept = &kept["policy"];
    assert_eq!(kept["weight"], 3, "{kept}");
    assert_eq!(kept["placement"], "spread", "{kept}");
    assert_eq!(int(&kept["retentionMs"]), Some(3_600_000), "{kept}");
    let reweighted = cli_json(&all, &["queue", "set", "batch", "--weight", "5"]).unwrap();
    let reweighted = &reweighted["policy"];
    assert_eq!(
        (reweighted["placement"].as_str(), int(&reweighted["retentionMs"])),
        (Some("spread"), Some(3_600_000)),
        "{reweighted}"
    );

    // With --json an error is JSON too, on stderr, with the gRPC code.
    let (missing, _) = cli_json_output(&all, &["task", "get", "999999"]);
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    let error: Value =
        serde_json::from_slice(&missing.stderr).unwrap_or_else(|e| panic!("{e}: {}", describe(&missing)));
    assert_eq!(error["error"]["code"], "NOT_FOUND", "{error}");
    assert!(
        error["error"]["message"].as_str().is_some_and(|m| m.contains("999999")),
        "{error}"
    );

    // -o jsonl prints a list a line per item, -o yaml the same message in YAML, errors too.
    let run = |args: &[&str]| cli_command(&all).args(args).output().unwrap();
    let jsonl = run(&["-o", "jsonl", "worker", "list"]);
    assert!(jsonl.status.success(), "{}", describe(&jsonl));
    let lines: Vec<Value> = text(&jsonl.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "a line per worker: {}", describe(&jsonl));
    assert!(lines.iter().all(|worker| worker["workerId"].is_string()), "{lines:?}");
    let yaml = run(&["-o", "yaml", "queue", "list"]);
    assert!(yaml.status.success(), "{}", describe(&yaml));
    let queues: Value = serde_yaml_ng::from_slice(&yaml.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&yaml)));
    assert!(queues["queues"].as_array().is_some_and(|q| !q.is_empty()), "{queues}");
    let yaml_error = run(&["-o", "yaml", "task", "get", "999999"]);
    assert_eq!(yaml_error.status.code(), Some(1), "{}", describe(&yaml_error));
    let error: Value =
        serde_yaml_ng::from_slice(&yaml_error.stderr).unwrap_or_else(|e| panic!("{e}: {}", describe(&yaml_error)));
    assert_eq!(error["error"]["code"], "NOT_FOUND", "{error}");

    // `task watch` prints a JSON line per change and ends with the task.
    let watched = submit(&all, &["--name", "watched"], "sleep 1");
    let (output, _) = cli_json_output(&all, &["task", "watch", &watched.to_string()]);
    assert!(output.status.success(), "{}", describe(&output));
    let lines: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.len() >= 2, "a line per change: {lines:#?}");
    assert_eq!(state(lines.last().unwrap()), "succeeded", "{lines:#?}");
    assert!(
        lines.windows(2).all(|pair| pair[0] != pair[1]),
        "only changes: {lines:#?}"
    );

    // `--wait` says the task id first, and Ctrl-C stops the waiting, not the task.
    let waited = interrupted_wait(&all);
    let task = cli_json(&all, &["task", "get", &waited.to_string()]).unwrap();
    assert!(["pending", "running"].contains(&state(&task).as_str()), "{task:#}");
    cli_json(&all, &["task", "cancel", &waited.to_string()]).unwrap();

    // The quick start: a shell command runs on a worker, and --wait prints its outcome.
    let (output, hello) = submit_and_wait(
        &all,
        &["--name", "hello"],
        "echo hello-$RAFTSCHED_TASK_ID from $RAFTSCHED_WORKER_ID",
    );
    assert!(output.status.success(), "{}", describe(&output));
    let id = task_id(&hello).unwrap();
    assert_eq!(state(&hello), "succeeded", "{hello:#}");
    let [attempt] = attempts(&hello) else {
        panic!("one attempt expected: {hello:#}")
    };
    let worker = str_field(attempt, "workerId");
    assert!(["worker1", "worker2"].contains(&worker), "{hello:#}");
    assert_eq!(outcome(attempt), "succeeded", "{hello:#}");
    assert_eq!(attempt["exitCode"], 0, "{hello:#}");
    assert_eq!(
        str_field(attempt, "stdoutTail"),
        format!("hello-{id} from {worker}\n"),
        "{hello:#}"
    );

    // A failing command is retried up to --max-attempts, then --wait exits non-zero.
    let (output, failed) = submit_and_wait(
        &all,
        &["--max-attempts", "2", "--retry-backoff-ms", "50"],
        "echo broken >&2; exit 3",
    );
    let id = task_id(&failed).unwrap();
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        text(&output.stderr).contains(&format!("task {id} failed")),
        "{}",
        describe(&output)
    );
    assert_eq!(state(&failed), "failed", "{failed:#}");
    let tries = attempts(&failed);
    assert_eq!(tries.len(), 2, "{failed:#}");
    for (number, attempt) in (1..).zip(tries) {
        assert_eq!(attempt["number"], number, "{failed:#}");
        assert_eq!(outcome(attempt), "failed", "{failed:#}");
        assert_eq!(attempt["exitCode"], 3, "{failed:#}");
    }
    // Only the latest attempt keeps its output.
    assert_eq!(str_field(&tries[1], "stderrTail"), "broken\n", "{failed:#}");

    // An attempt that outlives --timeout-ms is timed out.
    let (output, slow) = submit_and_wait(&all, &["--timeout-ms", "500", "--max-attempts", "1"], "sleep 10");
    assert!(!output.status.success(), "{}", describe(&output));
    assert_eq!(state(&slow), "failed", "{slow:#}");
    let [attempt] = attempts(&slow) else {
        panic!("one attempt expected: {slow:#}")
    };
    assert_eq!(outcome(attempt), "timed-out", "{slow:#}");

    // Cancelling a running task kills its command on the worker.
    let marker = format!("cli-e2e-cancelled-{}", cluster.port_base);
    let id = submit(&all, &[], &format!("sleep 600; echo {marker}"));
    wait_for_state(&all, id, "running");
    wait_for_commands(&marker, 1, "the cancelled task's shell to run");
    let cancelled = cli_json(&all, &["task", "cancel", &id.to_string()]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state(&cancelled["task"]), "cancelled", "{cancelled:#}");
    wait_for_commands(&marker, 0, "the cancelled task's command to be killed");

    // Kill the worker that runs a task: once its lease expires, the task runs on the other
    // worker. (The first attempt sleeps long; had it not been stopped, the task would not
    // finish within the wait.) The marker in the command line finds its shell in /proc (in the
    // shell's environment: see commands_running).
    let marker = format!("cli-e2e-moving-{}", cluster.port_base);
    let id = submit(
        &all,
        &["--name", "moving", "--retry-backoff-ms", "50"],
        &format!(
            r#"if [ "$RAFTSCHED_ATTEMPT" = 1 ]; then sleep 60; fi; echo "ran on $RAFTSCHED_WORKER_ID" # {marker}"#
        ),
    );
    let running = wait_for_state(&all, id, "running");
    let victim = str_field(&attempts(&running)[0], "workerId").to_string();
    let (victim_number, survivor) = match victim.as_str() {
        "worker1" => ("1", "worker2"),
        "worker2" => ("2", "worker1"),
        other => panic!("task {id} runs on {other:?}: {running:#}"),
    };
    wait_for_commands(&marker, 1, "the first attempt's shell to run");
    let killed = cluster.script_ok(&["kill-worker", victim_number]);
    assert!(killed.contains(&format!("worker {victim_number} killed")), "{killed}");
    // The worker's command died with it, as on a machine that died.
    wait_for_commands(&marker, 0, "the killed worker's command to be gone");
    let moved = wait_for_state(&all, id, "succeeded");
    let [first, second] = attempts(&moved) else {
        panic!("two attempts expected: {moved:#}")
    };
    assert_eq!(first["workerId"], victim.as_str(), "{moved:#}");
    assert_eq!(outcome(first), "lease-expired", "{moved:#}");
    assert_eq!(second["workerId"], survivor, "{moved:#}");
    assert_eq!(outcome(second), "succeeded", "{moved:#}");
    assert_eq!(
        str_field(second, "stdoutTail"),
        format!("ran on {survivor}\n"),
        "{moved:#}"
    );

    // The killed worker comes back and takes work again (a task only it may run).
    let restarted = cluster.script_ok(&["restart-worker", victim_number]);
    assert!(
        restarted.contains(&format!("workers connected: {victim_number}")),
        "{restarted}"
    );
    wait_for_connected_workers(&all, &["worker1", "worker2"]);
    let constraint = format!("worker={victim_number}");
    let (output, back) = submit_and_wait(
        &all,
        &["--constraint", &constraint],
        "echo back on $RAFTSCHED_WORKER_ID",
    );
    assert!(output.status.success(), "{}", describe(&output));
    let [attempt] = attempts(&back) else {
        panic!("one attempt expected: {back:#}")
    };
    assert_eq!(attempt["workerId"], victim.as_str(), "{back:#}");
    assert_eq!(
        str_field(attempt, "stdoutTail"),
        format!("back on {victim}\n"),
        "{back:#}"
    );
}

#[test]
fn failover_to_a_new_leader_and_catch_up_of_the_restarted_node() {
    let cluster = LocalCluster::new();
    let all = cluster.target();
    let started = cluster.script_ok(&["start"]);
    assert!(
        started.contains(&format!("export RAFTSCHED_CLUSTER={}", all.addrs)),
        "start prints the RAFTSCHED_CLUSTER hint: {started}"
    );
    let first = submit_get_and_list(&all);
    wait_for_connected_workers(&all, &["worker1", "worker2"]);

    // A task runs on a worker when the leader dies.
    let survivor = submit(&all, &["--name", "survivor"], "sleep 2; echo survived");
    let running = wait_for_state(&all, survivor, "running");
    let [running_attempt] = attempts(&running) else {
        panic!("one attempt expected: {running:#}")
    };

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
    assert_eq!(refetched["spec"]["name"], "first", "{refetched}");
    // A fixed request id: a retry after an answer lost in the failover cannot make a second task.
    let second_args = [
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
        cli_json(&all, &second_args)
    });
    let second = task_id(&second_submitted).unwrap();
    assert_ne!(second, first);
    let new_leader = wait_for_new_leader(&all, u64::from(old_leader));

    // The running task kept its assignment across the leader change: its one attempt, on the
    // same worker with the same fencing token, finished and was recorded by the new leader.
    let finished = wait_for_state(&all, survivor, "succeeded");
    let [attempt] = attempts(&finished) else {
        panic!("one attempt expected: {finished:#}")
    };
    assert_eq!(attempt["workerId"], running_attempt["workerId"], "{finished:#}");
    assert_eq!(attempt["token"], running_attempt["token"], "{finished:#}");
    assert_eq!(outcome(attempt), "succeeded", "{finished:#}");
    assert!(str_field(attempt, "stdoutTail").contains("survived"), "{finished:#}");
    // And new work runs under the new leader. A fixed request id: a retry waits for the same
    // task.
    let after = wait_for("a --wait task to succeed under the new leader", WAIT, || {
        let (output, task) = cli_json_output(
            &all,
            &[
                "task",
                "submit",
                "--request-id",
                "cli-e2e-after-failover",
                "--wait",
                "--wait-timeout-ms",
                WAIT_TIMEOUT_MS,
                "--",
                "echo after-failover",
            ],
        );
        if output.status.success() {
            task
        } else {
            Err(describe(&output))
        }
    });
    assert_eq!(state(&after), "succeeded", "{after:#}");
    assert_eq!(
        attempts(&after).last().map(|a| str_field(a, "stdoutTail")),
        Some("after-failover\n"),
        "{after:#}"
    );

    // Restart the killed node: it catches up with both tasks, read from it alone.
    cluster.script_ok(&["restart", &old_leader.to_string()]);
    let restarted = cluster.target_of(old_leader);
    for (id, name) in [(first, "first"), (second, "second")] {
        let task = wait_for(&format!("the restarted node to have task {id}"), WAIT, || {
            cli_json(&restarted, &["task", "get", "--stale", &id.to_string()])
        });
        assert_eq!(task["spec"]["name"], name, "{task}");
    }
    let stale_list = cli_json(
        &restarted,
        &["task", "list", "--stale", "--queue", "e2e", "--oldest-first"],
    )
    .expect("listing on the restarted node");
    assert_eq!(listed_ids(&stale_list), vec![first, second], "{stale_list}");
    // The default order is newest first.
    let newest_first =
        cli_json(&restarted, &["task", "list", "--stale", "--queue", "e2e"]).expect("listing on the restarted node");
    assert_eq!(listed_ids(&newest_first), vec![second, first], "{newest_first}");
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
    for worker in 1..=2 {
        assert!(stopped.contains(&format!("worker {worker} stopped")), "{stopped}");
    }
    // Workers stop first: they drain while the cluster can still hear them.
    assert!(
        stopped.find("worker 2 stopped") < stopped.find("node 1 stopped"),
        "{stopped}"
    );
    let status = cluster.script_ok(&["status"]);
    assert_eq!(status.matches("stopped").count(), 5, "{status}");
}

#[test]
fn start_twice_is_harmless_and_another_clusters_data_dir_is_refused() {
    let usage = Command::new("bash")
        .arg(script_path())
        .output()
        .expect("running cluster.sh");
    assert_eq!(usage.status.code(), Some(2), "{}", describe(&usage));
    assert!(text(&usage.stderr).contains("Usage:"), "{}", describe(&usage));

    // RAFTSCHED_WORKERS=1: one worker.
    let cluster = LocalCluster::new().with_workers(1);
    cluster.script_ok(&["start"]);
    let names = ["node1", "node2", "node3", "worker1"];
    let pids: Vec<String> = names.iter().map(|name| cluster.pid(name)).collect();
    assert!(!cluster.data_dir().join("worker2.pid").exists());
    let again = cluster.script_ok(&["start"]);
    assert_eq!(again.matches("already running").count(), 4, "{again}");
    assert!(again.contains("worker 1 already running"), "{again}");
    assert_eq!(names.iter().map(|name| cluster.pid(name)).collect::<Vec<_>>(), pids);
    wait_for_connected_workers(&cluster.target(), &["worker1"]);
    let status = cluster.script_ok(&["status"]);
    assert!(status.contains("worker 1 running"), "{status}");
    let logs = cluster.script_ok(&["logs", "worker1"]);
    assert!(logs.contains("cluster.sh: starting worker 1"), "{logs}");
    let cluster_id = std::fs::read_to_string(cluster.data_dir().join("cluster-id")).expect("reading cluster-id");
    assert!(!cluster_id.trim().is_empty());

    cluster.script_ok(&["stop"]);
    let node1_dir = cluster.data_dir().join("node1");
    assert_private(&node1_dir);
    let mut child = Command::new(BIN)
        .args(["node", "--id", "1", "--listen", &cluster.addr(1), "--data-dir"])
        .arg(&node1_dir)
        .arg("--tls-dir")
        .arg(cluster.tls_dir())
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

/// `RAFTSCHED_INSECURE=1 scripts/cluster.sh start`, as the README offers: a plaintext
/// cluster, no credentials created, every node warning about it, and the CLI (told with the
/// same variable) runs a task on a worker. (The variable once read only `true`/`false`, so
/// every node refused `1` at start: found by bench.sh, which no test ran.)
#[test]
fn an_insecure_cluster_runs_in_plaintext_when_asked_and_says_so() {
    let cluster = LocalCluster::new().with_workers(1).insecure();
    let started = cluster.script_ok(&["start"]);
    assert!(started.contains("export RAFTSCHED_INSECURE=1"), "{started}");
    assert!(
        !cluster.tls_dir().exists(),
        "credentials were created for a plaintext cluster"
    );
    let all = cluster.target();
    let (output, task) = submit_and_wait(&all, &["--name", "plain"], "echo plaintext");
    assert_eq!(state(&task), "succeeded", "{task:#} {}", describe(&output));
    for node in 1..=3 {
        let log = std::fs::read_to_string(cluster.data_dir().join(format!("node{node}.log"))).unwrap();
        assert!(
            log.contains("--insecure: both ports are plaintext"),
            "node {node}: {log}"
        );
    }
}

/// Every directory of a node's data dir is 0700 and every file 0600: they hold every task's
/// environment.
fn assert_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut seen = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).expect("reading the data dir");
        let (mode, want) = (
            metadata.permissions().mode() & 0o777,
            if metadata.is_dir() { 0o700 } else { 0o600 },
        );
        assert_eq!(mode, want, "{} has mode {mode:o}, not {want:o}", path.display());
        if metadata.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        }
        seen += 1;
    }
    assert!(seen > 3, "{} holds only {seen} entries", dir.display());
}

/// The product binary is the CLI only: the load generator and the fault injector are tools
/// of their own (`raftsched-bench`, `raftsched-chaos`), not subcommands.
#[test]
fn the_product_binary_has_no_bench_or_chaos_subcommand() {
    let help = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("running raftsched --help");
    assert!(help.status.success(), "{}", describe(&help));
    let text = text(&help.stdout);
    let commands: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(commands.contains(&"node") && commands.contains(&"task"), "{text}");
    for tool in ["bench", "chaos"] {
        assert!(!commands.contains(&tool), "`raftsched {tool}` is listed:\n{text}");
        let run = Command::new(BIN)
            .arg(tool)
            .arg("--help")
            .output()
            .expect("running raftsched");
        assert_eq!(
            run.status.code(),
            Some(2),
            "`raftsched {tool}` should be unknown: {}",
            describe(&run)
        );
    }
}

/// `queue set --retention` refuses bad durations before contacting any node (no cluster is
/// running here), naming the flag and its limits in the units it takes.
#[test]
fn queue_set_refuses_retentions_outside_its_limits() {
    for bad in ["0s", "1ms", "999ms", "11years", "3651d", "abc", ""] {
        let run = Command::new(BIN)
            .args(["--cluster", "127.0.0.1:9", "queue", "set", "q", "--retention", bad])
            .output()
            .expect("running raftsched");
        assert_eq!(run.status.code(), Some(2), "{bad:?}: {}", describe(&run));
        let stderr = text(&run.stderr);
        for needle in ["--retention", "between 1s and 3650d", "like 30s, 10m or 7d"] {
            assert!(stderr.contains(needle), "{bad:?}: {needle:?} not in {stderr}");
        }
    }
}

/// `certs init` writes the contract's files (keys 0600, dir 0700), refuses to run again
/// without --force, and `certs issue` adds one credential; bad input names the flag.
#[test]
fn certs_init_and_issue_write_private_files_and_never_overwrite_without_force() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("a temp dir");
    let dir = root.path().join("certs");
    let certs = |args: &[&str]| {
        Command::new(BIN)
            .arg("certs")
            .args(args)
            .arg("--dir")
            .arg(&dir)
            .output()
            .expect("running raftsched certs")
    };
    let mode = |path: &std::path::Path| std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    let init = certs(&["init", "--nodes", "1,2", "--workers", "w1"]);
    assert!(init.status.success(), "{}", describe(&init));
    assert!(
        text(&init.stderr).contains("export RAFTSCHED_TLS_DIR="),
        "{}",
        describe(&init)
    );
    assert_eq!(mode(&dir), 0o700);
    for stem in [
        "ca",
        "node-1",
        "node-2",
        "w1",
        "admin",
        "client",
        "reader",
        "prometheus",
    ] {
        for ext in ["crt", "key"] {
            assert_eq!(mode(&dir.join(format!("{stem}.{ext}"))), 0o600, "{stem}.{ext}");
        }
    }
    assert!(!dir.join("node-3.crt").exists());
    let ca = std::fs::read(dir.join("ca.crt")).expect("ca.crt");

    let again = certs(&["init"]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    let stderr = text(&again.stderr);
    assert!(
        stderr.contains("refusing to overwrite") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(dir.join("ca.crt")).expect("ca.crt"), ca, "unchanged");

    let issued = certs(&["issue", "--role", "node", "--name", "node-4"]);
    assert!(issued.status.success(), "{}", describe(&issued));
    assert_eq!(mode(&dir.join("node-4.key")), 0o600);
    for (args, needle) in [
        (&["issue", "--role", "root", "--name", "x"][..], "--role"),
        (&["issue", "--role", "node", "--name", "n4"][..], "node-<id>"),
        (&["issue", "--role", "admin", "--name", "../x"][..], "--name"),
        (&["issue", "--role", "admin", "--name", "admin"][..], "--force"),
    ] {
        let refused = certs(args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}: {}", describe(&refused));
        assert!(
            text(&refused.stderr).contains(needle),
            "{args:?}: {}",
            describe(&refused)
        );
    }
}

/// A lone node started with `--log-format json --http-listen`: every log line is one JSON
/// object (the start line names the HTTP address), `/healthz` answers at once, and
/// `/readyz` says 503 and why while the node is in no cluster yet.
#[test]
fn a_node_logs_json_and_answers_its_probes_on_the_http_port() {
    use std::io::BufRead;
    let data = tempfile::tempdir().expect("a temp dir");
    let mut child = Command::new(BIN)
        .args([
            "node",
            "--id",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--peer-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--insecure",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(data.path().join("node1"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting a node");
    let stderr = child.stderr.take().expect("piped stderr");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let started = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = received.recv_timeout(left) else {
            let _ = child.kill();
            panic!("no `node started` line within {WAIT:?}: {seen:#?}");
        };
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event["level"].is_string() && event["timestamp"].is_string(), "{line}");
        seen.push(line);
        if event["message"] == "node started" {
            break event;
        }
    };
    let http_addr = started["http_addr"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_string();
    let get = |path: &str| {
        use std::io::Read;
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(&http_addr).expect("connect to the HTTP port");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read the answer");
        answer
    };
    let live = get("/healthz");
    let ready = get("/readyz");
    let _ = child.kill();
    let _ = child.wait();
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.contains("not ready: no leader known"), "{ready}");
    assert!(
        seen.iter().all(|line| !line.contains("\"target\":\"openraft")),
        "openraft's INFO lines are off by default: {seen:#?}"
    );
}

/// Duration flags take human units or bare milliseconds; anything else is refused before
/// any call, naming the flag and the units to use (it once said "invalid digit found in
/// string").
#[test]
fn duration_flags_take_human_units_and_name_the_flag_when_wrong() {
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("RAFTSCHED_CLUSTER", "127.0.0.1:1")
            .env("RAFTSCHED_INSECURE", "1")
            .env_remove("RAFTSCHED_TLS_DIR")
            .stdin(Stdio::null())
            .output()
            .expect("running raftsched")
    };
    let wrong = run(&["task", "submit", "--timeout-ms", "5x", "--", "true"]);
    assert_eq!(wrong.status.code(), Some(2), "{}", describe(&wrong));
    let stderr = text(&wrong.stderr);
    for needed in ["--timeout-ms", "\"5x\" is not a duration", "500ms, 5s, 10m, 1h, 7d"] {
        assert!(stderr.contains(needed), "{needed:?} in {stderr}");
    }
    let tiny = run(&["worker", "--lease-ms", "10us"]);
    assert_eq!(tiny.status.code(), Some(2), "{}", describe(&tiny));
    assert!(
        text(&tiny.stderr).contains("under a millisecond"),
        "{}",
        describe(&tiny)
    );
    // Parsed, so the node goes on to check its config, and refuses node id 0 there: no
    // cluster, no wait.
    for good in ["50ms", "1h 30m", "2500"] {
        let parsed = run(&[
            "node",
            "--id",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "unused",
            "--heartbeat-ms",
            good,
        ]);
        assert_eq!(parsed.status.code(), Some(1), "{good}: {}", describe(&parsed));
        assert!(
            text(&parsed.stderr).contains("node_id must be at least 1"),
            "{good}: {}",
            describe(&parsed)
        );
    }
}

/// `raftsched completions SHELL` prints a completion script that knows the subcommands and
/// their flags; an unknown shell is refused, naming the ones there are.
#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .expect("raftsched completions");
        assert!(output.status.success(), "{shell}: {}", describe(&output));
        let script = text(&output.stdout);
        for word in ["task", "submit", "timeout-ms", "http-listen"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
    }
    let unknown = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .expect("raftsched completions");
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));
    assert!(text(&unknown.stderr).contains("bash"), "{}", describe(&unknown));
}

/// Runs `task submit --wait -- sleep 60`, interrupts it with SIGINT once it printed the task
/// id, and returns that id; asserts it exited saying the task keeps running.
fn interrupted_wait(target: &Target) -> u64 {
    use std::io::BufRead;
    let mut child = cli_command(target)
        .args(["task", "submit", "--wait", "--", "sleep 60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("raftsched task submit --wait");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut first = String::new();
    stderr.read_line(&mut first).expect("the first line on stderr");
    let id: u64 = first
        .strip_prefix("submitted task ")
        .and_then(|rest| rest.split(';').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("the task id first, got {first:?}"));
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("the rest of stderr");
    let status = child.wait().expect("the CLI exits");
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(
        rest.contains(&format!("stopped waiting; task {id} keeps running")),
        "{rest}"
    );
    assert!(rest.contains(&format!("raftsched task cancel {id}")), "{rest}");
    id
}

/// `--version` names the commit it was built from and the wire format it writes.
#[test]
fn version_names_the_commit_and_the_wire_format() {
    let output = Command::new(BIN)
        .arg("--version")
        .output()
        .expect("raftsched --version");
    assert!(output.status.success(), "{}", describe(&output));
    let version = text(&output.stdout);
    assert!(
        version.starts_with(&format!("raftsched {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let format = raftsched_core::state::wire::WIRE_FORMAT_VERSION;
    assert!(version.contains(&format!("wire format v{format}")), "{version}");
}

/// Every task's (id, state, name) in `task list --json`, sorted by id.
fn every_task(all: &Target) -> Vec<(u64, String, String)> {
    let listed = cli_json(all, &["task", "list", "--limit", "1000"]).expect("listing every task");
    let mut tasks: Vec<(u64, String, String)> = listed["tasks"]
        .as_array()
        .expect("task list --json prints {\"tasks\": [...]}")
        .iter()
        .map(|t| {
            let name = t["spec"]["name"].as_str().unwrap_or_default().to_string();
            (int(&t["id"]).unwrap_or(0), state(t), name)
        })
        .collect();
    tasks.sort();
    tasks
}

/// Backup and restore as an operator runs them: save a snapshot from the running cluster,
/// destroy every node's data dir, seed new ones from the file, start — and every task is
/// there in the state it had, and the restored cluster goes on scheduling with new ids. A
/// damaged copy of the file and a used data dir are refused with what to do.
#[test]
fn a_saved_snapshot_restores_every_task_into_new_data_dirs() {
    let cluster = LocalCluster::new().with_workers(1);
    cluster.script_ok(&["start"]);
    let all = cluster.target();
    let done: Vec<Value> = (0..2)
        .map(|n| submit_and_wait(&all, &["--name", &format!("done-{n}")], "echo done").1)
        .collect();
    assert!(done.iter().all(|task| state(task) == "succeeded"), "{done:?}");
    // Delayed by an hour: still waiting after the restore.
    for n in 0..10 {
        submit(
            &all,
            &["--name", &format!("later-{n}"), "--delay-ms", "1h"],
            "echo later",
        );
    }
    let before = every_task(&all);
    assert_eq!(before.len(), 12, "{before:?}");

    let backup = cluster.data_dir().join("backup.snap");
    let saved = cluster.script_ok(&["backup", backup.to_str().unwrap()]);
    assert!(
        saved.contains("Snapshot saved to") && saved.contains("12 tasks"),
        "{saved}"
    );
    let status = cli_json(&all, &["cluster", "snapshot", "status", backup.to_str().unwrap()]).unwrap();
    assert_eq!(int(&status["tasks"]), Some(12), "{status}");
    assert_eq!(status["sha256"].as_str().map(str::len), Some(64), "{status}");
    assert!(saved.contains(status["sha256"].as_str().unwrap()), "{saved}\n{status}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&backup).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "a backup holds every task's environment: {mode:o}");

    // Refused while the nodes run, and over existing data dirs.
    let running = cluster.script(&["restore", backup.to_str().unwrap()]);
    assert!(
        !running.status.success() && text(&running.stderr).contains("stop first"),
        "{}",
        describe(&running)
    );
    cluster.script_ok(&["stop"]);
    let used = cluster.script(&["restore", backup.to_str().unwrap()]);
    assert!(
        !used.status.success() && text(&used.stderr).contains("exists"),
        "{}",
        describe(&used)
    );

    let mut damaged = std::fs::read(&backup).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x10;
    let damaged_path = cluster.data_dir().join("damaged.snap");
    std::fs::write(&damaged_path, damaged).unwrap();
    let new_dir = cluster.data_dir().join("scratch");
    let refused = cli_command(&all)
        .args(["cluster", "restore"])
        .arg(&damaged_path)
        .args(["--id", "1", "--data-dir"])
        .arg(&new_dir)
        .args(["--initial-members", &format!("1={}", cluster.addr(1))])
        .output()
        .unwrap();
    let stderr = text(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("is not a usable backup"),
        "{stderr}"
    );
    assert!(!new_dir.exists(), "nothing was seeded from a damaged file");

    for n in 1..=3 {
        std::fs::remove_dir_all(cluster.data_dir().join(format!("node{n}"))).unwrap();
    }
    let restored = cluster.script_ok(&["restore", backup.to_str().unwrap()]);
    assert!(restored.contains("seeded"), "{restored}");
    cluster.script_ok(&["start"]);
    assert_eq!(every_task(&all), before, "every task is back, in the state it had");

    let (_, after) = submit_and_wait(&all, &["--name", "after-restore"], "echo after");
    assert_eq!(state(&after), "succeeded", "{after}");
    let newest = before.iter().map(|(id, ..)| *id).max().unwrap();
    assert!(task_id(&after).unwrap() > newest, "{after} reuses an id of the backup");
}
