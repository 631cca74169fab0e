//! `raftsched worker`: run a worker, or list the cluster's workers.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::Subcommand;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use raftsched_client::worker::ExecutionOptions;
use raftsched_client::worker::Worker;
use raftsched_client::worker::WorkerOptions;
use raftsched_client::worker::execution::MAX_KILL_GRACE;
use tokio_util::sync::CancellationToken;

use crate::cli::output;
use crate::cli::parse_pair;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkerArgs {
    #[command(subcommand)]
    command: Option<WorkerCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum WorkerCommand {
    /// Every registered worker: slots in use, labels, last heartbeat.
    List,
}

/// Run a worker until SIGINT or SIGTERM, then drain.
#[derive(Args, Debug)]
struct RunArgs {
    /// Stable worker id (default: hostname-pid).
    #[arg(long)]
    id: Option<String>,
    /// Attempts run at once.
    #[arg(long, default_value_t = 4)]
    slots: u32,
    /// KEY=VALUE, repeatable; tasks can require labels.
    #[arg(long = "label", value_parser = parse_pair)]
    labels: Vec<(String, String)>,
    /// CPU this worker offers, in thousandths of a core (0: none declared).
    #[arg(long, default_value_t = 0)]
    cpu_millis: u32,
    /// Memory this worker offers, in MiB (0: none declared).
    #[arg(long, default_value_t = 0)]
    memory_mb: u32,
    /// Without a heartbeat for this long, the leader voids this worker's attempts.
    #[arg(long, default_value = "5s", value_parser = super::duration::millis)]
    lease_ms: u64,
    /// On shutdown, how long running attempts may take before they are handed back.
    #[arg(long, default_value = "30s", value_parser = super::duration::millis)]
    drain_timeout_ms: u64,
    /// A variable of this worker's environment that command tasks inherit, besides PATH, HOME,
    /// LANG and LC_* (nothing else of it reaches a task). Repeatable or comma-separated, at
    /// most 64; RAFTSCHED_* names are the worker's own configuration and are refused.
    #[arg(
        long = "pass-env",
        value_name = "NAME",
        value_delimiter = ',',
        env = "RAFTSCHED_WORKER_PASS_ENV"
    )]
    pass_env: Vec<String>,
    /// A timed-out or cancelled task's process group gets SIGTERM, then SIGKILL this long
    /// after: 0s (SIGKILL at once) to 10m, like 3s, 500ms or 1m.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "3s",
        value_parser = parse_kill_grace,
        env = "RAFTSCHED_WORKER_KILL_GRACE"
    )]
    kill_grace: Duration,
}

/// Parses `--kill-grace`: a human duration (humantime) from 0 to [`MAX_KILL_GRACE`].
fn parse_kill_grace(text: &str) -> Result<Duration, String> {
    let limits_text = "--kill-grace must be between 0s (SIGKILL at once) and 10m, like 3s, 500ms or 1m";
    let shown = raftsched_core::state::limits::shown(text);
    let grace =
        humantime::parse_duration(text).map_err(|e| format!("{shown} is not a duration ({e}): {limits_text}"))?;
    if grace > MAX_KILL_GRACE {
        return Err(format!("{shown} is too long: {limits_text}"));
    }
    Ok(grace)
}

impl RunArgs {
    /// What tasks inherit from `parent_env` (this process's, outside tests) and their grace.
    fn execution(
        &self,
        parent_env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> anyhow::Result<ExecutionOptions> {
        Ok(ExecutionOptions::new(parent_env, &self.pass_env, self.kill_grace)?)
    }
}

impl WorkerArgs {
    /// True when this runs a worker (rather than listing workers).
    pub fn is_run(&self) -> bool {
        self.command.is_none()
    }

    /// The credential a running worker uses by default: its id (`worker list` uses `admin`).
    pub fn default_tls_identity(&self) -> Option<String> {
        self.is_run()
            .then(|| self.run.id.clone().unwrap_or_else(default_worker_id))
    }
}

pub async fn run(args: WorkerArgs, client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    match args.command {
        Some(WorkerCommand::List) => list(client, json).await,
        None => run_worker(args.run, client).await,
    }
}

async fn run_worker(args: RunArgs, client: &ClusterClient) -> anyhow::Result<()> {
    let execution = args.execution(std::env::vars_os())?;
    if execution.kill_grace() >= Duration::from_millis(args.lease_ms) {
        tracing::warn!(
            "--kill-grace {:?} is not under --lease-ms {}: the leader may time out an attempt (at \
             timeout + lease) before this worker has stopped it and reported its output",
            execution.kill_grace(),
            args.lease_ms
        );
    }
    let id = args.id.unwrap_or_else(default_worker_id);
    let options = WorkerOptions {
        namespace: client.namespace().to_string(),
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
        resources: api::Resources {
            cpu_millis: args.cpu_millis,
            memory_mb: args.memory_mb,
        },
        lease_ms: args.lease_ms,
        drain_timeout: Duration::from_millis(args.drain_timeout_ms),
        execution,
        ..WorkerOptions::new(id.clone(), args.slots)
    };
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::cli::wait_for_stop_signal().await {
            tracing::warn!("{e}");
        }
        tracing::info!("stop signal received: draining");
        on_signal.cancel();
    });
    tracing::info!(
        worker = %id,
        pass_env = ?args.pass_env,
        kill_grace = ?args.kill_grace,
        "worker starting"
    );
    Worker::new(client.clone(), options).run(shutdown).await?;
    tracing::info!(worker = %id, "worker stopped");
    Ok(())
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "worker".into());
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    format!(
        "{}-{}",
        if host.is_empty() { "worker" } else { &host },
        std::process::id()
    )
}

/// Every worker, page by page (a page holds about 3 MiB of them).
async fn list_all(client: &ClusterClient) -> anyhow::Result<api::ListWorkersResponse> {
    let mut all = api::ListWorkersResponse::default();
    loop {
        let request = api::ListWorkersRequest {
            namespace: client.namespace().to_string(),
            page_token: all.next_page_token.clone(),
        };
        let page = client
            .call_workers(|mut workers| {
                let request = request.clone();
                async move { workers.list_workers(request).await }
            })
            .await
            .context("listing workers")?;
        all.workers.extend(page.workers);
        if page.next_page_token.is_empty() || page.next_page_token == request.page_token {
            all.next_page_token.clear();
            return Ok(all);
        }
        all.next_page_token = page.next_page_token;
    }
}

async fn list(client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    let response = list_all(client).await?;
    if json {
        output::print_json(&crate::cli::output::json_of(&response));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = response
        .workers
        .iter()
        .map(|w| {
            let mut labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            vec![
                w.worker_id.clone(),
                format!("{}/{}", w.running, w.slots),
                if w.draining {
                    "draining"
                } else if w.connected {
                    "connected"
                } else {
                    "away"
                }
                .to_string(),
                format!("{} ms ago", w.last_heartbeat_age_ms),
                labels.join(","),
            ]
        })
        .collect();
    output::print_table(&["WORKER", "BUSY", "STATE", "HEARD", "LABELS"], &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use raftsched_client::worker::execution::DEFAULT_KILL_GRACE;
    use raftsched_client::worker::execution::MAX_PASS_ENV_NAMES;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn run_args(flags: &[&str]) -> Result<RunArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("raftsched").chain(flags.iter().copied())).map(|cli| cli.run)
    }

    fn parent() -> Vec<(OsString, OsString)> {
        [("PATH", "/bin"), ("TZ", "UTC"), ("A", "1"), ("B", "2"), ("SECRET", "s")]
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect()
    }

    fn inherited(flags: &[&str]) -> anyhow::Result<Vec<String>> {
        let execution = run_args(flags)?.execution(parent())?;
        Ok(execution
            .inherited()
            .keys()
            .map(|name| name.to_string_lossy().into_owned())
            .collect())
    }

    #[test]
    fn pass_env_is_repeatable_and_comma_separated() {
        assert_eq!(inherited(&[]).unwrap(), ["PATH"]);
        assert_eq!(inherited(&["--pass-env", "TZ"]).unwrap(), ["PATH", "TZ"]);
        let both = ["A", "B", "PATH", "TZ"];
        assert_eq!(inherited(&["--pass-env", "TZ", "--pass-env", "A,B"]).unwrap(), both);
        assert_eq!(inherited(&["--pass-env=TZ,A,B"]).unwrap(), both);
    }

    #[test]
    fn pass_env_count_at_and_over_the_limit() {
        let names = |count: usize| (0..count).map(|i| format!("V{i}")).collect::<Vec<_>>().join(",");
        let at_limit = names(MAX_PASS_ENV_NAMES);
        assert!(inherited(&["--pass-env", &at_limit]).is_ok());
        let over = names(MAX_PASS_ENV_NAMES + 1);
        let error = inherited(&["--pass-env", &over]).unwrap_err().to_string();
        assert!(error.contains("--pass-env names 65 variables, at most 64"), "{error}");
    }

    #[test]
    fn pass_env_refuses_bad_and_raftsched_names() {
        let error = inherited(&["--pass-env", "RAFTSCHED_TLS_DIR"]).unwrap_err().to_string();
        assert!(
            error.contains("--pass-env RAFTSCHED_TLS_DIR") && error.contains("never reach a task"),
            "{error}"
        );
        let error = inherited(&["--pass-env", "A=B"]).unwrap_err().to_string();
        assert!(error.contains("is not a variable name"), "{error}");
        // An empty item of the list is a name too, and refused rather than ignored.
        let error = inherited(&["--pass-env", "A,,B"]).unwrap_err().to_string();
        assert!(error.contains("--pass-env \"\" is not a variable name"), "{error}");
    }

    #[test]
    fn kill_grace_default_and_bounds() {
        assert_eq!(
            run_args(&[]).unwrap().kill_grace,
            DEFAULT_KILL_GRACE,
            "the help's default is the constant"
        );
        for (text, grace) in [
            ("0s", Duration::ZERO),
            ("0", Duration::ZERO),
            ("1ms", Duration::from_millis(1)),
            ("5s", Duration::from_secs(5)),
            ("10m", MAX_KILL_GRACE),
        ] {
            assert_eq!(run_args(&["--kill-grace", text]).unwrap().kill_grace, grace, "{text}");
        }
        for bad in ["10m 1ms", "11m", "1h", "-1s", "abc", "", "5"] {
            let error = run_args(&[&format!("--kill-grace={bad}")]).unwrap_err();
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
            assert!(
                error
                    .to_string()
                    .contains("--kill-grace must be between 0s (SIGKILL at once) and 10m"),
                "{bad:?}: {error}"
            );
        }
    }
}
