//! The README is executed, so a README that lies fails CI.
//!
//! - Every line of a ```` ```sh ```` block that starts with `$ raftsched `,
//!   `$ scripts/cluster.sh ` or `$ curl ` (with `\` continuation lines; `curl` examples name
//!   the script's default HTTP ports, replaced by the test cluster's) is run in order by `bash`, from the
//!   repository root, against one fresh cluster started by `scripts/cluster.sh start` (the
//!   test-built binary on `PATH`, a temporary data dir, free ports). Each must exit 0, or with
//!   the code its trailing comment names: `# exit 1: why`. Such a line may start with
//!   `NAME=value` assignments (no spaces or quotes in the value), the environment bash gives
//!   that one command: `$ RAFTSCHED_WORKER_KILL_GRACE=1s scripts/cluster.sh restart-worker 2`.
//! - `$ export PATH=$PWD/target/release:$PATH` is one other `$` line allowed: the test puts
//!   its own binary on `PATH` instead. `$ eval "$(scripts/cluster.sh env)"` is the other: the
//!   test runs `scripts/cluster.sh env` and gives the later examples the exports it prints
//!   (and nothing of the cluster before: an example above it would miss the credentials).
//!   Any other `$` line fails the test until it is taught here, so no example silently escapes.
//! - The one ```` ```toml ```` block is written to a file with only its ports changed (to free
//!   ones) and must start a node, with credentials from `raftsched certs init` in the dir its
//!   `tls_dir` names: `raftsched node --config FILE` answers `NodeStatus` over mutual TLS.

#[path = "common/local_cluster.rs"]
mod local_cluster;

use std::path::Path;
use std::process::Child;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use local_cluster::*;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use raftsched_client::TlsSettings;

/// Longest any one example may take before the test gives up on it: the slowest (`--timeout-ms
/// 500` three times with 1 s and 2 s backoff) takes ~5 s in a debug build.
const EXAMPLE_TIMEOUT_S: u32 = 60;
/// Fewer extracted examples than this means the extraction broke, not that the README shrank.
const MIN_EXAMPLES: usize = 10;
/// The only `$` line that is neither run nor refused (the test provides `PATH` itself).
const PATH_LINE: &str = "export PATH=$PWD/target/release:$PATH";
/// The `$` line whose effect the test reproduces: the exports `scripts/cluster.sh env` prints.
const ENV_LINE: &str = "eval \"$(scripts/cluster.sh env)\"";

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// One `$ ...` example of the README.
#[derive(Debug, PartialEq, Eq)]
struct Example {
    /// 1-based line in README.md where it starts.
    line: usize,
    /// The command as bash runs it: continuation lines joined, comment kept (bash ignores it).
    command: String,
    /// What it must exit with: 0, or the `# exit N` of its comment.
    exit_code: i32,
}

/// The fenced blocks of `markdown` in `language`: (1-based line of the first content line, its
/// lines). Fences may be indented (inside list items).
fn fenced_blocks<'a>(markdown: &'a str, language: &str) -> Vec<(usize, Vec<&'a str>)> {
    let mut blocks = Vec::new();
    let mut open: Option<(bool, usize, Vec<&str>)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        let Some((wanted, start, lines)) = open.as_mut() else {
            if let Some(info) = fence {
                open = Some((info.trim() == language, index + 2, Vec::new()));
            }
            continue;
        };
        if fence.is_none() {
            lines.push(line);
            continue;
        }
        if *wanted {
            blocks.push((*start, std::mem::take(lines)));
        }
        open = None;
    }
    assert!(open.is_none(), "README.md has an unclosed code fence");
    blocks
}

/// Where the shell comment of `command` starts: the first `#` outside quotes that begins a word.
fn comment_start(command: &str) -> Option<usize> {
    let (mut single, mut double, mut previous) = (false, false, ' ');
    for (at, c) in command.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => return Some(at),
            _ => {}
        }
        previous = c;
    }
    None
}

/// The exit code a command's comment promises: `# exit N` or `# exit N: why`; 0 without one.
fn expected_exit_code(command: &str) -> Result<i32, String> {
    let Some(at) = comment_start(command) else { return Ok(0) };
    let comment = command[at + 1..].trim();
    let Some(rest) = comment.strip_prefix("exit ") else {
        return Ok(0);
    };
    let code = rest.split(|c: char| !c.is_ascii_digit()).next().unwrap_or_default();
    code.parse()
        .map_err(|_| format!("`# exit` must be followed by a number: {command:?}"))
}

/// `command` without its leading `NAME=value ` environment assignments (values with no
/// spaces or quotes: anything more is not an example to copy).
fn without_assignments(mut command: &str) -> &str {
    while let Some((word, rest)) = command.split_once(' ') {
        let Some((name, value)) = word.split_once('=') else {
            break;
        };
        let name_ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok || value.contains(['\'', '"']) {
            break;
        }
        command = rest.trim_start();
    }
    command
}

/// Every `$` example in the README's sh blocks, in order, but the `PATH` line.
fn examples(markdown: &str) -> Result<Vec<Example>, String> {
    let mut examples = Vec::new();
    for (start, lines) in fenced_blocks(markdown, "sh") {
        let mut lines = lines.iter().enumerate();
        while let Some((offset, line)) = lines.next() {
            let Some(first) = line.trim_start().strip_prefix("$ ") else {
                continue;
            };
            let mut command = first.trim_end().to_string();
            while let Some(joined) = command.strip_suffix('\\') {
                let (_, next) = lines
                    .next()
                    .ok_or_else(|| format!("README.md:{}: `\\` on the block's last line", start + offset))?;
                command = format!("{} {}", joined.trim_end(), next.trim());
            }
            let line = start + offset;
            if command.trim() == PATH_LINE {
                continue;
            }
            let program = without_assignments(&command);
            let is_env = without_comment(&command) == ENV_LINE;
            let runs = ["raftsched ", "scripts/cluster.sh ", "curl "];
            if !(is_env || runs.iter().any(|prefix| program.starts_with(prefix))) {
                return Err(format!(
                    "README.md:{line}: `$ {command}` is neither `raftsched`, `scripts/cluster.sh` nor `curl`; \
                     teach tests/readme.rs to run it, or drop the `$ `"
                ));
            }
            let exit_code = expected_exit_code(&command).map_err(|e| format!("README.md:{line}: {e}"))?;
            examples.push(Example {
                line,
                command,
                exit_code,
            });
        }
    }
    Ok(examples)
}

/// `command` without its shell comment and surrounding blanks.
fn without_comment(command: &str) -> &str {
    comment_start(command).map_or(command, |at| &command[..at]).trim()
}

/// The `NAME=value` pairs of the `export NAME=value` lines `scripts/cluster.sh env` printed.
fn exports(output: &Output) -> Vec<(String, String)> {
    let exports: Vec<(String, String)> = text(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    assert!(
        exports.iter().any(|(name, _)| name == "RAFTSCHED_CLUSTER"),
        "`scripts/cluster.sh env` exported no RAFTSCHED_CLUSTER: {}",
        describe(output)
    );
    exports
}

/// Runs one example in bash from the repository root, with the test's binary first on PATH,
/// the script's settings and `exported` (what the README's `eval` line set) in the
/// environment, bounded by [`EXAMPLE_TIMEOUT_S`].
fn run_example(cluster: &LocalCluster, exported: &[(String, String)], command: &str) -> Output {
    let bin_dir = Path::new(BIN).parent().expect("the binary is in a directory");
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .expect("a PATH");
    Command::new("timeout")
        .args([
            &format!("{EXAMPLE_TIMEOUT_S}s"),
            "bash",
            "-o",
            "pipefail",
            "-c",
            command,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path)
        .env_remove("RAFTSCHED_CLUSTER")
        .env_remove("RAFTSCHED_TLS_DIR")
        .env_remove("RAFTSCHED_INSECURE")
        .envs(exported.iter().map(|(name, value)| (name, value)))
        .env("RAFTSCHED_BIN", BIN)
        .env("RAFTSCHED_DATA", cluster.data_dir())
        .env("RAFTSCHED_PORT_BASE", cluster.port_base.to_string())
        .env("RAFTSCHED_PEER_PORT_BASE", cluster.peer_port_base.to_string())
        .env("RAFTSCHED_HTTP_PORT_BASE", cluster.http_port_base.to_string())
        .env("RAFTSCHED_WORKERS", cluster.workers.to_string())
        .env("RAFTSCHED_WORKER_DRAIN_MS", WORKER_DRAIN_MS.to_string())
        .env_remove("RAFTSCHED_WORKER_SLOTS")
        .env_remove("RAFTSCHED_WORKER_LEASE_MS")
        .stdin(Stdio::null())
        .output()
        .expect("running bash")
}

#[test]
fn every_shell_example_exits_as_the_readme_says() {
    let examples = examples(&readme()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        examples.len() >= MIN_EXAMPLES,
        "only {} examples found in README.md: {examples:#?}",
        examples.len()
    );
    let cluster = LocalCluster::new();
    cluster.script_ok(&["start"]);
    let mut failures = Vec::new();
    let mut exported = Vec::new();
    for example in &examples {
        let started = Instant::now();
        let is_env = without_comment(&example.command) == ENV_LINE;
        let command = if is_env {
            "scripts/cluster.sh env".to_string()
        } else {
            with_http_ports(&example.command, &cluster)
        };
        let output = run_example(&cluster, &exported, &command);
        if is_env && output.status.success() {
            exported = exports(&output);
        }
        let code = output.status.code().unwrap_or(-1);
        eprintln!(
            "README.md:{} exit {code} in {:.1} s: $ {}\n{}",
            example.line,
            started.elapsed().as_secs_f64(),
            example.command,
            text(&output.stdout)
        );
        if code != example.exit_code {
            failures.push(format!(
                "README.md:{}: `$ {}` exited {code}, the README says {}: {}",
                example.line,
                example.command,
                example.exit_code,
                describe(&output)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} README examples failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// `command` with the script's default HTTP addresses (`127.0.0.1:8081` to `8083`, the
/// `curl` examples') replaced by the test cluster's.
fn with_http_ports(command: &str, cluster: &LocalCluster) -> String {
    (1..=3).fold(command.to_string(), |command, node| {
        command.replace(
            &format!("127.0.0.1:{}", 8080 + u16::from(node)),
            &cluster.http_addr(node),
        )
    })
}

/// `text` with the port of every quoted `"host:port"` replaced: a port `d` above the lowest
/// by `base + d` (client ports at most 2 above, peer ports 100 to 102 above).
fn with_ports_from(text: &str, base: u16) -> String {
    let mut ports: Vec<u16> = quoted_ports(text).map(|p| p.parse().expect("a port")).collect();
    ports.sort_unstable();
    ports.dedup();
    let lowest = *ports.first().expect("a port");
    // The client ports (lowest .. lowest + 2) and the peer ports 100 above them keep their
    // distance from the lowest: the free ports found are base .. base + 2 and 100 above.
    let in_range = |p: &u16| (0..3).contains(&(p - lowest)) || (100..103).contains(&(p - lowest));
    assert!(ports.iter().all(in_range), "ports beyond the free ones: {ports:?}");
    let mut rewritten = text.to_string();
    for port in ports {
        let new_port = base + (port - lowest);
        rewritten = rewritten.replace(&format!(":{port}\""), &format!(":{new_port}\""));
    }
    rewritten
}

/// The ports of quoted `"host:port"` values in `text`.
fn quoted_ports(text: &str) -> impl Iterator<Item = &str> {
    text.split('"').skip(1).step_by(2).filter_map(|value| {
        let (_, port) = value.rsplit_once(':')?;
        (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(port)
    })
}

/// Kills the node when the test ends, passing or not.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks `addr` for NodeStatus once, as `admin` from the credentials in `tls_dir`.
fn node_status(runtime: &tokio::runtime::Runtime, tls_dir: &Path, addr: &str) -> Result<api::MemberStatus, String> {
    let tls = TlsSettings::from_dir(tls_dir, "admin").map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = ClusterClient::new(addr)
            .map_err(|e| e.to_string())?
            .with_tls(tls)
            .with_per_call_deadline(Duration::from_secs(5));
        let response = client
            .call_node_channel(addr, |channel| async move {
                api::scheduler_client::SchedulerClient::new(channel)
                    .node_status(api::NodeStatusRequest {})
                    .await
            })
            .await
            .map_err(|e| format!("NodeStatus: {e}"))?;
        response.status.ok_or_else(|| "NodeStatus without a status".to_string())
    })
}

#[test]
fn the_readme_node_config_starts_a_node() {
    let markdown = readme();
    let blocks = fenced_blocks(&markdown, "toml");
    assert_eq!(
        blocks.len(),
        1,
        "README.md should have exactly one toml block: {blocks:?}"
    );
    let (line, lines) = &blocks[0];
    let base = free_port_base_with_default_peers();
    let config = with_ports_from(&lines.join("\n"), base);
    let listen = format!("127.0.0.1:{base}");
    assert!(
        config.contains(&format!("listen_addr = \"{listen}\"")),
        "README.md:{line}: the config does not listen on its lowest port: {config}"
    );
    let dir = tempfile::tempdir().expect("a temporary dir");
    std::fs::write(dir.path().join("node1.toml"), &config).expect("writing node1.toml");
    let tls_dir = config
        .lines()
        .find_map(|l| l.strip_prefix("tls_dir = \"")?.split('"').next())
        .unwrap_or_else(|| panic!("README.md:{line}: the config names no tls_dir: {config}"));
    let init = Command::new(BIN)
        .args(["certs", "init", "--dir", tls_dir])
        .current_dir(dir.path())
        .output()
        .expect("running raftsched certs init");
    assert!(init.status.success(), "certs init: {}", describe(&init));
    let log = std::fs::File::create(dir.path().join("node1.log")).expect("creating the log");
    let node = Command::new(BIN)
        .args(["node", "--config", "node1.toml"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting raftsched node");
    let mut node = NodeProcess(node);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let status = wait_for("the README's node to answer NodeStatus", WAIT, || {
        if let Some(exit) = node.0.try_wait().expect("polling the node") {
            let log = std::fs::read_to_string(dir.path().join("node1.log")).unwrap_or_default();
            panic!(
                "README.md:{line}: `raftsched node --config node1.toml` exited {exit}:\n{config}\n--- log ---\n{log}"
            );
        }
        // It answers before it has initialised the cluster; its address comes from the
        // membership it founds with `[initial_members]`.
        let status = node_status(&runtime, &dir.path().join(tls_dir), &listen)?;
        if status.address == listen {
            Ok(status)
        } else {
            Err(format!("not a member yet: {status:?}"))
        }
    });
    assert_eq!(status.node_id, 1, "{status:?}");
}

#[test]
fn examples_are_extracted_with_continuations_and_exit_markers() {
    let markdown = "text\n```sh\n$ raftsched a 'x # y' \\\n    --b   # exit 3: why\noutput\n\
                    $ export PATH=$PWD/target/release:$PATH\n```\n```text\n$ raftsched not-run\n```\n\
                    ```sh\n$ scripts/cluster.sh kill 1 # c\n$ raftsched c \"#\" #exit 2\n\
                    $ A=1 B_2= scripts/cluster.sh d\n```\n";
    let found = examples(markdown).expect("valid examples");
    let expected = [
        (3, "raftsched a 'x # y' --b   # exit 3: why", 3),
        (12, "scripts/cluster.sh kill 1 # c", 0),
        (13, "raftsched c \"#\" #exit 2", 2),
        (14, "A=1 B_2= scripts/cluster.sh d", 0),
    ];
    let expected: Vec<Example> = expected
        .into_iter()
        .map(|(line, command, exit_code)| Example {
            line,
            command: command.to_string(),
            exit_code,
        })
        .collect();
    assert_eq!(found, expected);
    let error = examples("```sh\n$ ls\n```\n").expect_err("an unknown command");
    assert!(error.contains("README.md:2"), "{error}");
    for unknown in ["A=1 ls", "A='x y' raftsched a", "1A=x raftsched a", "A=1"] {
        let markdown = format!("```sh\n$ {unknown}\n```\n");
        assert!(examples(&markdown).is_err(), "{unknown}");
    }
    assert_eq!(
        with_ports_from(
            "a = \"127.0.0.1:50052\"\n1 = \"h:50051\"\n# b = \"10.0.0.5:50051\"\n",
            7000
        ),
        "a = \"127.0.0.1:7001\"\n1 = \"h:7000\"\n# b = \"10.0.0.5:7000\"\n"
    );
}
