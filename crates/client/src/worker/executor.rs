//! Runs one task attempt's shell command on a worker.
//!
//! The command runs as `sh -c` in its own process group so that
//! a timeout or cancellation reaches everything it started (pipelines,
//! background jobs), not just the shell: SIGTERM to the group, then SIGKILL after
//! the worker's kill grace. Its environment is built from scratch: the worker's
//! allowlisted variables ([`ExecutionOptions`]), the task's own env and its
//! attempt's variables, never the worker's whole environment. Output is captured
//! concurrently into bounded tail buffers so a chatty command never blocks on a
//! full pipe and never grows the worker's memory without bound.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::worker::execution::ExecutionOptions;
use crate::worker::stop::Stop;
use crate::worker::stop::StopSignal;
use crate::worker::stop::signal_group;

use raftsched_core::state::limits::TRUNCATION_MARKER;
use raftsched_core::state::limits::truncate_tail;

/// Bytes read from a pipe per syscall. Large enough to keep syscall count low
/// for chatty commands, small enough to live on the stack of the read loop.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// The shell's whole argument: it takes the command line from [`COMMAND_LINE_VARIABLE`], so
/// the command line (which may hold a secret) is not in the argv every local user's `ps`
/// lists; the environment is readable only by the worker's user. The variable is unset before
/// the command runs, so neither the command nor its children see it, and `eval` runs the text
/// as `sh -c` would (the same shell, `$0`, traps, exit status; 2 on a syntax error).
const SHELL_SCRIPT: &str = "eval \"unset RAFTSCHED_COMMAND_LINE\n$RAFTSCHED_COMMAND_LINE\"";
/// Carries the command line from the worker to the shell; see [`SHELL_SCRIPT`].
const COMMAND_LINE_VARIABLE: &str = "RAFTSCHED_COMMAND_LINE";

/// How long to keep reading output after the process group was killed.
/// Killed members close their pipe ends at once; only a process that escaped
/// the group (e.g. via `setsid`) can hold a pipe open, and it must not be able
/// to delay the attempt's outcome indefinitely.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// One attempt's command and its limits.
pub struct CommandRun<'a> {
    /// Run by `sh -c`, but passed in the environment, not in the argv `ps` shows.
    pub command_line: &'a str,
    /// The task's own env and its attempt's `RAFTSCHED_*` variables, set over the worker's
    /// inherited ones (so a task may set its own `PATH`).
    pub env: &'a BTreeMap<String, String>,
    /// What the command inherits from the worker, and its kill grace.
    pub execution: &'a ExecutionOptions,
    /// Per-attempt timeout, measured from spawn.
    pub timeout: Duration,
    /// Each of stdout and stderr is reported in at most this many bytes, counted after
    /// UTF-8 conversion and including the truncation marker.
    pub output_tail_bytes: usize,
    /// Kill the command when cancelled.
    pub cancel: CancellationToken,
}

/// How an attempt ended. Tails hold at most `output_tail_bytes` bytes each, the
/// end of the output, with a leading [`TRUNCATION_MARKER`] if earlier output was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutcome {
    /// The shell exited on its own; `exit_code == 0` means success.
    Exited {
        exit_code: i32,
        stdout_tail: String,
        stderr_tail: String,
    },
    /// The shell was killed by a signal that the executor did not send.
    Signalled {
        signal: i32,
        stdout_tail: String,
        stderr_tail: String,
    },
    /// The timeout elapsed; the process group was stopped. `after` is the configured timeout.
    TimedOut {
        after: Duration,
        stop: Stop,
        stdout_tail: String,
        stderr_tail: String,
    },
    /// The cancellation token fired; the process group was stopped.
    Cancelled {
        stop: Stop,
        stdout_tail: String,
        stderr_tail: String,
    },
    /// The command could not be started (or, never expected, not waited for).
    SpawnFailed(String),
}

/// Why the wait for the child ended.
enum Ending {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

/// How the run ended, once a timed-out or cancelled child was stopped.
enum Ended {
    Exited(std::io::Result<ExitStatus>),
    TimedOut(Stop),
    Cancelled(Stop),
}

/// Runs the attempt to completion, timeout or cancellation. Never panics; on
/// return no process of the command's group is left running (except one that
/// deliberately left the group) and the direct child has been reaped.
pub async fn run_command(run: CommandRun<'_>) -> ExecOutcome {
    let mut child = match spawn_child(run.command_line, run.env, run.execution) {
        Ok(child) => child,
        Err(error) => return ExecOutcome::SpawnFailed(error.to_string()),
    };
    // If this future is dropped mid-run, the guard kills the whole group and
    // `kill_on_drop` lets tokio reap the shell, so nothing leaks.
    let mut group = GroupKillGuard::new(&child);
    let mut stdout_tail = TailBuffer::new(run.output_tail_bytes);
    let mut stderr_tail = TailBuffer::new(run.output_tail_bytes);

    let ended = {
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let mut capture = pin!(capture_output(stdout, stderr, &mut stdout_tail, &mut stderr_tail));
        let mut capture_done = false;
        let ending = wait_for_ending(
            &mut child,
            capture.as_mut(),
            &mut capture_done,
            run.timeout,
            &run.cancel,
        )
        .await;
        let ended = stop_if_running(
            &mut child,
            &group,
            ending,
            run.execution.kill_grace(),
            capture.as_mut(),
            &mut capture_done,
        )
        .await;
        // Also after a normal exit: background jobs it left would outlive the attempt.
        group.kill_and_disarm();
        // Polling a completed future would panic, hence the flag. Bounded: a
        // process that escaped the group must not hang the outcome.
        if !capture_done {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, capture).await;
        }
        ended
    };
    outcome_from(ended, run.timeout, stdout_tail.into_string(), stderr_tail.into_string())
}

fn spawn_child(
    command_line: &str,
    env: &BTreeMap<String, String>,
    execution: &ExecutionOptions,
) -> std::io::Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(SHELL_SCRIPT)
        // Nothing of the worker's environment but the allowlist: its credentials stay its own.
        .env_clear()
        .envs(execution.inherited())
        .envs(env)
        // Last, so a task's own env cannot replace the command it runs.
        .env(COMMAND_LINE_VARIABLE, command_line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // pgid = child pid, so killpg reaches every process the command starts.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// Waits for the first of: child exit, timeout, cancellation. Output is read
/// meanwhile so the child never blocks on a full pipe.
async fn wait_for_ending(
    child: &mut Child,
    mut capture: std::pin::Pin<&mut impl Future<Output = ()>>,
    capture_done: &mut bool,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Ending {
    let mut deadline = pin!(tokio::time::sleep(timeout));
    loop {
        tokio::select! {
            // Biased so a real exit wins over a timeout firing at the same instant.
            biased;
            status = child.wait() => return Ending::Exited(status),
            () = cancel.cancelled() => return Ending::Cancelled,
            () = &mut deadline => return Ending::TimedOut,
            () = &mut capture, if !*capture_done => *capture_done = true,
        }
    }
}

/// After a timeout or cancel, stops the command: SIGTERM to its group, up to `grace` for the
/// shell to end (output is still read, so a command printing as it cleans up does not block),
/// then SIGKILL. A zero grace is SIGKILL at once. The child is reaped on return, so no zombie
/// is left. A child that already exited needs nothing.
async fn stop_if_running(
    child: &mut Child,
    group: &GroupKillGuard,
    ending: Ending,
    grace: Duration,
    capture: std::pin::Pin<&mut impl Future<Output = ()>>,
    capture_done: &mut bool,
) -> Ended {
    let stopped = match ending {
        Ending::Exited(status) => return Ended::Exited(status),
        Ending::TimedOut => Ended::TimedOut,
        Ending::Cancelled => Ended::Cancelled,
    };
    let started = Instant::now();
    let mut signal = StopSignal::Kill;
    if !grace.is_zero() {
        group.signal(StopSignal::Term);
        // Nothing cancels this wait: it ends with the shell, or with the grace.
        let never = CancellationToken::new();
        if let Ending::Exited(_) = wait_for_ending(child, capture, capture_done, grace, &never).await {
            signal = StopSignal::Term;
        }
    }
    if signal == StopSignal::Kill {
        group.signal(StopSignal::Kill);
        // killpg already hit the child; start_kill covers a child that moved itself to
        // another group. Errors mean it is already dead.
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    stopped(Stop {
        signal,
        after: started.elapsed(),
        grace,
    })
}

fn outcome_from(ended: Ended, timeout: Duration, stdout_tail: String, stderr_tail: String) -> ExecOutcome {
    match ended {
        Ended::TimedOut(stop) => ExecOutcome::TimedOut {
            after: timeout,
            stop,
            stdout_tail,
            stderr_tail,
        },
        Ended::Cancelled(stop) => ExecOutcome::Cancelled {
            stop,
            stdout_tail,
            stderr_tail,
        },
        Ended::Exited(Err(error)) => ExecOutcome::SpawnFailed(format!("waiting for command failed: {error}")),
        Ended::Exited(Ok(status)) => match (status.code(), status.signal()) {
            (Some(exit_code), _) => ExecOutcome::Exited {
                exit_code,
                stdout_tail,
                stderr_tail,
            },
            (None, Some(signal)) => ExecOutcome::Signalled {
                signal,
                stdout_tail,
                stderr_tail,
            },
            // Unreachable on Unix (a status is an exit or a signal); report a failure code rather than panic.
            (None, None) => ExecOutcome::Exited {
                exit_code: -1,
                stdout_tail,
                stderr_tail,
            },
        },
    }
}

/// Reads both pipes to EOF concurrently.
async fn capture_output(
    stdout: Option<impl AsyncRead + Unpin>,
    stderr: Option<impl AsyncRead + Unpin>,
    stdout_tail: &mut TailBuffer,
    stderr_tail: &mut TailBuffer,
) {
    tokio::join!(read_into_tail(stdout, stdout_tail), read_into_tail(stderr, stderr_tail));
}

async fn read_into_tail(pipe: Option<impl AsyncRead + Unpin>, tail: &mut TailBuffer) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) => return,
            Ok(read_bytes) => tail.push(&chunk[..read_bytes]),
            // A broken pipe cannot be recovered; keep what was captured.
            Err(_) => return,
        }
    }
}

/// Kills the command's process group when armed and dropped, so an aborted
/// `run_command` future cannot leak the command's processes.
struct GroupKillGuard {
    /// `None` once disarmed, or if the child's pid was unknown.
    pgid: Option<libc::pid_t>,
}

impl GroupKillGuard {
    fn new(child: &Child) -> Self {
        let pgid = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok());
        Self { pgid }
    }

    /// Signals the group while armed.
    fn signal(&self, signal: StopSignal) {
        if let Some(pgid) = self.pgid {
            signal_group(pgid, signal);
        }
    }

    /// SIGKILL to every process in the group. After a normal exit this also removes
    /// background processes the command left behind, which would otherwise keep the output
    /// pipes open and outlive the attempt.
    fn kill_and_disarm(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            signal_group(pgid, StopSignal::Kill);
        }
    }
}

impl Drop for GroupKillGuard {
    /// No grace here: a dropped run cannot wait, so its group is SIGKILLed at once.
    fn drop(&mut self) {
        self.kill_and_disarm();
    }
}

/// Keeps the last `capacity_bytes` bytes pushed into it; renders them in at most
/// `capacity_bytes` bytes of text.
struct TailBuffer {
    capacity_bytes: usize,
    bytes: VecDeque<u8>,
    truncated: bool,
}

impl TailBuffer {
    /// Allocates lazily: the capacity may be huge, the actual output small.
    fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity_bytes,
            bytes: VecDeque::new(),
            truncated: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        let keep_from_data = data.len().min(self.capacity_bytes);
        let kept_data = &data[data.len() - keep_from_data..];
        let overflow_bytes = (self.bytes.len() + kept_data.len()).saturating_sub(self.capacity_bytes);
        self.truncated |= keep_from_data < data.len() || overflow_bytes > 0;
        self.bytes.drain(..overflow_bytes.min(self.bytes.len()));
        self.bytes.extend(kept_data);
    }

    /// The marker and the lossy UTF-8 conversion (each invalid byte becomes U+FFFD, 3 bytes)
    /// can make the text longer than the bytes kept, so the cut to the capacity comes last.
    fn into_string(self) -> String {
        let bytes = Vec::from(self.bytes);
        let text = if self.truncated {
            // The cut may have split a multi-byte character; skip its orphaned
            // continuation bytes (at most 3) instead of rendering U+FFFD.
            let orphan_bytes = bytes
                .iter()
                .take(3)
                .take_while(|&&byte| is_utf8_continuation(byte))
                .count();
            format!("{TRUNCATION_MARKER}{}", String::from_utf8_lossy(&bytes[orphan_bytes..]))
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        // Over the capacity, the marker added above is cut off with the oldest text and
        // truncate_tail puts its own in front: the result has exactly one.
        truncate_tail(&text, self.capacity_bytes)
    }
}

fn is_utf8_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::execution::DEFAULT_KILL_GRACE;
    use std::path::Path;
    use std::time::Instant;

    /// Generous bound for "promptly": far above normal latency, far below the 30 s sleeps.
    const PROMPT_LIMIT: Duration = Duration::from_secs(10);
    const POLL_INTERVAL: Duration = Duration::from_millis(10);

    fn no_env() -> &'static BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        &EMPTY
    }

    /// The test process's allowlisted variables (read, never changed) and the default grace.
    fn default_execution() -> &'static ExecutionOptions {
        static DEFAULT: std::sync::OnceLock<ExecutionOptions> = std::sync::OnceLock::new();
        DEFAULT.get_or_init(ExecutionOptions::default)
    }

    fn run_of<'a>(command_line: &'a str, env: &'a BTreeMap<String, String>) -> CommandRun<'a> {
        CommandRun {
            command_line,
            env,
            execution: default_execution(),
            timeout: Duration::from_secs(60),
            output_tail_bytes: 4096,
            cancel: CancellationToken::new(),
        }
    }

    async fn run_simple(command_line: &str) -> ExecOutcome {
        run_command(run_of(command_line, no_env())).await
    }

    fn exited(exit_code: i32, stdout_tail: &str, stderr_tail: &str) -> ExecOutcome {
        ExecOutcome::Exited {
            exit_code,
            stdout_tail: stdout_tail.into(),
            stderr_tail: stderr_tail.into(),
        }
    }

    /// Dead means no such process, or a zombie nobody reaps (a container's
    /// pid 1 may not reap orphans); either way it runs no more.
    fn process_is_gone(pid: libc::pid_t) -> bool {
        // SAFETY: signal 0 only checks existence; no memory is touched.
        let result = unsafe { libc::kill(pid, 0) };
        if result == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Format: "pid (comm) state ..."; comm may contain spaces, so split after ')'.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    }

    async fn wait_until_gone(pid: libc::pid_t) {
        let deadline = Instant::now() + PROMPT_LIMIT;
        while !process_is_gone(pid) {
            assert!(Instant::now() < deadline, "process {pid} still alive");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls for the pid file a command writes once its background job started.
    async fn read_pid_file(path: &Path) -> libc::pid_t {
        let deadline = Instant::now() + PROMPT_LIMIT;
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            // The shell writes "pid\n"; only a complete line is trusted.
            if let Some(pid) = text.strip_suffix('\n').and_then(|line| line.parse().ok()) {
                return pid;
            }
            assert!(Instant::now() < deadline, "pid file never written");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// A command that starts a background sleeper, records its pid, then sleeps itself.
    fn sleeper_with_grandchild(pid_path: &Path) -> String {
        format!("sleep 30 & echo $! > '{}'; sleep 30", pid_path.display())
    }

    #[tokio::test]
    async fn success_captures_stdout() {
        assert_eq!(run_simple("echo hello").await, exited(0, "hello\n", ""));
    }

    #[tokio::test]
    async fn nonzero_exit_code_is_reported() {
        assert_eq!(run_simple("exit 3").await, exited(3, "", ""));
    }

    #[tokio::test]
    async fn stderr_is_captured() {
        assert_eq!(run_simple("echo oops >&2; exit 1").await, exited(1, "", "oops\n"));
    }

    /// Runs `command_line` with `grace` and cancels it once `ready` holds a pid (the command
    /// writes it after setting its traps). Returns the outcome, the pid written, and how long
    /// the stop took from the cancel.
    async fn cancel_when_ready(
        command_line: String,
        ready: &Path,
        grace: Duration,
    ) -> (ExecOutcome, libc::pid_t, Duration) {
        let cancel = CancellationToken::new();
        let run_cancel = cancel.clone();
        let running = tokio::spawn(async move {
            let execution = ExecutionOptions::new(std::env::vars_os(), &[], grace).expect("valid grace");
            let mut run = run_of(&command_line, no_env());
            run.execution = &execution;
            run.cancel = run_cancel;
            run_command(run).await
        });
        let pid = read_pid_file(ready).await;
        let cancelled = Instant::now();
        cancel.cancel();
        let outcome = tokio::time::timeout(PROMPT_LIMIT + grace, running)
            .await
            .expect("prompt")
            .expect("join");
        (outcome, pid, cancelled.elapsed())
    }

    /// A command that runs `trap`, then writes its pid to `ready` (the sign its trap is set),
    /// then sleeps.
    fn trap_then_sleep(trap: &str, ready: &Path) -> String {
        format!("{trap}; echo $$ > '{}'; sleep 30", ready.display())
    }

    fn stdout_of_success(outcome: ExecOutcome) -> String {
        match outcome {
            ExecOutcome::Exited {
                exit_code: 0,
                stdout_tail,
                ..
            } => stdout_tail,
            other => panic!("expected success: {other:?}"),
        }
    }

    fn cancelled_stop(outcome: &ExecOutcome) -> (Stop, &str) {
        let ExecOutcome::Cancelled { stop, stdout_tail, .. } = outcome else {
            panic!("{outcome:?}")
        };
        (*stop, stdout_tail)
    }

    #[tokio::test]
    async fn a_task_sees_its_env_and_the_allowlist_but_not_the_workers_secrets() {
        let real_path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        let parent: Vec<(std::ffi::OsString, std::ffi::OsString)> = [
            ("HOME", "/home/raftsched-test"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("PASSED_ONE", "passed value"),
            ("WORKER_SECRET", "s3cret"),
            ("RAFTSCHED_TLS_DIR", "/etc/raftsched/tls"),
            ("RAFTSCHED_TOKEN", "the worker's"),
        ]
        .into_iter()
        .map(|(name, value)| (name.into(), value.into()))
        .chain([("PATH".into(), real_path.clone())])
        .collect();
        let execution =
            ExecutionOptions::new(parent, &["PASSED_ONE".into()], DEFAULT_KILL_GRACE).expect("valid options");
        let env = BTreeMap::from([
            ("FOO".to_string(), "bar baz".to_string()),
            ("RAFTSCHED_TASK_ID".to_string(), "7".to_string()),
            ("RAFTSCHED_TOKEN".to_string(), "42".to_string()),
        ]);
        let mut run = run_of("env", &env);
        run.execution = &execution;
        let stdout_tail = stdout_of_success(run_command(run).await);
        let seen: BTreeMap<&str, &str> = stdout_tail.lines().filter_map(|line| line.split_once('=')).collect();
        let expected = [
            ("FOO", "bar baz"),
            ("HOME", "/home/raftsched-test"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("PASSED_ONE", "passed value"),
            ("PATH", real_path.to_str().expect("a UTF-8 PATH")),
            ("RAFTSCHED_TASK_ID", "7"),
            ("RAFTSCHED_TOKEN", "42"),
        ];
        for (name, value) in expected {
            assert_eq!(seen.get(name), Some(&value), "{name} in {stdout_tail}");
        }
        for name in seen.keys() {
            // The shell adds its own few (dash: PWD; bash: also SHLVL and _).
            let shells_own = ["PWD", "OLDPWD", "SHLVL", "_"].contains(name);
            assert!(
                shells_own || expected.iter().any(|(allowed, _)| allowed == name),
                "{name} reached the task: {stdout_tail}"
            );
        }
        assert!(!stdout_tail.contains("s3cret") && !stdout_tail.contains("/etc/raftsched/tls"));
    }

    #[tokio::test]
    async fn a_tasks_own_env_overrides_an_inherited_value() {
        let env = BTreeMap::from([("HOME".to_string(), "/task/home".to_string())]);
        assert_eq!(
            run_command(run_of("echo $HOME", &env)).await,
            exited(0, "/task/home\n", "")
        );
    }

    #[tokio::test]
    async fn a_task_trapping_sigterm_ends_on_it_within_the_grace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let command_line = trap_then_sleep("trap 'echo cleaned up; exit 0' TERM", &ready);
        // A grace far longer than the trap needs: ending on SIGTERM must not wait it out.
        let (outcome, shell_pid, took) = cancel_when_ready(command_line, &ready, PROMPT_LIMIT).await;
        let (stop, stdout_tail) = cancelled_stop(&outcome);
        assert_eq!(stop.signal, StopSignal::Term, "{stop}");
        assert!(stop.after < PROMPT_LIMIT && took < PROMPT_LIMIT, "{stop}, {took:?}");
        assert_eq!(stdout_tail, "cleaned up\n", "the trap's output is still captured");
        wait_until_gone(shell_pid).await;
    }

    #[tokio::test]
    async fn a_task_ignoring_sigterm_is_sigkilled_after_the_grace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        // `sleep` inherits the ignored SIGTERM too, so nothing in the group ends on it.
        let grace = Duration::from_millis(300);
        let (outcome, shell_pid, took) =
            cancel_when_ready(trap_then_sleep("trap '' TERM", &ready), &ready, grace).await;
        let (stop, _) = cancelled_stop(&outcome);
        assert_eq!(stop.signal, StopSignal::Kill, "{stop}");
        assert_eq!(stop.grace, grace);
        assert!(stop.after >= grace && took >= grace, "{stop}, {took:?}");
        assert!(took < grace + PROMPT_LIMIT, "{took:?}");
        assert!(
            stop.to_string()
                .contains("it ignored SIGTERM for the 300ms grace; SIGKILL ended it"),
            "{stop}"
        );
        wait_until_gone(shell_pid).await;
    }

    #[tokio::test]
    async fn kill_grace_zero_is_sigkill_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let command_line = trap_then_sleep("trap 'echo term' TERM", &ready);
        let (outcome, shell_pid, took) = cancel_when_ready(command_line, &ready, Duration::ZERO).await;
        let (stop, stdout_tail) = cancelled_stop(&outcome);
        assert_eq!((stop.signal, stop.grace), (StopSignal::Kill, Duration::ZERO), "{stop}");
        assert_eq!(stdout_tail, "", "no SIGTERM was sent, so the trap never ran");
        assert!(took < PROMPT_LIMIT);
        wait_until_gone(shell_pid).await;
    }

    #[tokio::test]
    async fn a_forked_child_is_gone_after_cancel_even_if_it_ignores_sigterm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain.pid");
        let stubborn = dir.path().join("stubborn.pid");
        let ready = dir.path().join("ready");
        // Two children: a plain `sleep 1000 &`, and one ignoring SIGTERM, which only the
        // SIGKILL to the group after the shell ended can stop.
        let command_line = format!(
            "sleep 1000 & echo $! > '{plain}'; \
             sh -c 'trap \"\" TERM; echo $$ > \"$0\"; exec sleep 1000' '{stubborn}' & \
             until [ -s '{stubborn}' ]; do sleep 0.01; done; echo $$ > '{ready}'; wait",
            plain = plain.display(),
            stubborn = stubborn.display(),
            ready = ready.display(),
        );
        let (outcome, shell_pid, _) = cancel_when_ready(command_line, &ready, PROMPT_LIMIT).await;
        let (stop, _) = cancelled_stop(&outcome);
        assert_eq!(
            stop.signal,
            StopSignal::Term,
            "the shell itself ends on SIGTERM: {stop}"
        );
        for pid in [shell_pid, read_pid_file(&plain).await, read_pid_file(&stubborn).await] {
            wait_until_gone(pid).await;
        }
    }

    #[tokio::test]
    async fn timeout_sends_sigterm_first() {
        let mut run = run_of("trap 'exit 0' TERM; sleep 30", no_env());
        run.timeout = Duration::from_millis(200);
        let outcome = run_command(run).await;
        let ExecOutcome::TimedOut { after, stop, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(after, Duration::from_millis(200));
        // With or without its trap set yet, the shell ends on SIGTERM, within the 3 s grace.
        assert_eq!(
            (stop.signal, stop.grace),
            (StopSignal::Term, DEFAULT_KILL_GRACE),
            "{stop}"
        );
    }

    #[tokio::test]
    async fn extra_env_is_visible_and_path_is_inherited() {
        let env = BTreeMap::from([("FOO".to_string(), "bar baz".to_string())]);
        let outcome = run_command(run_of(r#"echo "$FOO"; command -v sh >/dev/null && echo path-ok"#, &env)).await;
        assert_eq!(outcome, exited(0, "bar baz\npath-ok\n", ""));
    }

    #[tokio::test]
    async fn the_command_line_is_not_in_the_argv_ps_lists_nor_in_the_tasks_env() {
        // The shell reads its own argv; the word `hush` is only in the command line.
        let command_line =
            r#"tr '\0' ' ' < /proc/$$/cmdline; echo; echo "vars: $(env | grep -c '^RAFTSCHED_COMMAND_LINE=')" # hush"#;
        let stdout_tail = stdout_of_success(run_simple(command_line).await);
        assert!(stdout_tail.starts_with("sh -c eval "), "{stdout_tail}");
        assert!(!stdout_tail.contains("hush"), "{stdout_tail}");
        assert!(stdout_tail.ends_with("\nvars: 0\n"), "{stdout_tail}");
    }

    #[tokio::test]
    async fn eval_runs_the_command_line_as_sh_c_would() {
        assert_eq!(
            run_simple("cat <<EOF\nhere $((1 + 1))\nEOF").await,
            exited(0, "here 2\n", "")
        );
        assert_eq!(
            run_simple("echo $0; set -- a b; echo $#").await,
            exited(0, "sh\n2\n", "")
        );
        let ExecOutcome::Exited { exit_code, .. } = run_simple("echo never; if").await else {
            panic!("a syntax error is an exit")
        };
        assert_eq!(exit_code, 2, "a syntax error exits 2, as with sh -c");
        // A task's own env cannot replace the command.
        let env = BTreeMap::from([("RAFTSCHED_COMMAND_LINE".to_string(), "echo replaced".to_string())]);
        assert_eq!(run_command(run_of("echo own", &env)).await, exited(0, "own\n", ""));
    }

    #[tokio::test]
    async fn stdin_is_dev_null() {
        // `cat` would block forever on an inherited terminal or open pipe.
        assert_eq!(run_simple("cat; echo eof").await, exited(0, "eof\n", ""));
    }

    #[tokio::test]
    async fn tail_keeps_last_bytes_of_large_output() {
        let mut run = run_of("seq 1 100000; seq 1 100000 >&2", no_env());
        run.output_tail_bytes = 100;
        let ExecOutcome::Exited {
            exit_code: 0,
            stdout_tail,
            stderr_tail,
        } = run_command(run).await
        else {
            panic!("expected success");
        };
        for tail in [stdout_tail, stderr_tail] {
            assert!(tail.starts_with(TRUNCATION_MARKER), "{tail:?}");
            assert!(tail.ends_with("99999\n100000\n"), "{tail:?}");
            assert_eq!(tail.len(), 100, "the marker counts towards the limit");
        }
    }

    #[tokio::test]
    async fn zero_and_huge_tail_limits_do_not_panic() {
        let mut run = run_of("echo hi", no_env());
        run.output_tail_bytes = 0;
        assert_eq!(run_command(run).await, exited(0, "", ""));
        let mut run = run_of("echo hi", no_env());
        run.output_tail_bytes = usize::MAX;
        assert_eq!(run_command(run).await, exited(0, "hi\n", ""));
    }

    #[tokio::test]
    async fn signal_not_sent_by_us_is_reported() {
        let outcome = run_simple("echo before; kill -TERM $$").await;
        let expected = ExecOutcome::Signalled {
            signal: libc::SIGTERM,
            stdout_tail: "before\n".into(),
            stderr_tail: "".into(),
        };
        assert_eq!(outcome, expected);
    }

    #[tokio::test]
    async fn timeout_kills_sleep_promptly() {
        let mut run = run_of("echo started; sleep 30", no_env());
        run.timeout = Duration::from_millis(200);
        let started = Instant::now();
        let outcome = run_command(run).await;
        assert!(started.elapsed() < PROMPT_LIMIT);
        let ExecOutcome::TimedOut { after, stdout_tail, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(after, Duration::from_millis(200));
        // Output may or may not have been written before the deadline; only check it is a prefix.
        assert!("started\n".starts_with(&stdout_tail), "{stdout_tail:?}");
    }

    #[tokio::test]
    async fn timeout_kills_grandchild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_path = dir.path().join("bg.pid");
        let command_line = sleeper_with_grandchild(&pid_path);
        let mut run = run_of(&command_line, no_env());
        // Long enough for the shell to write the pid file before the deadline.
        run.timeout = Duration::from_secs(2);
        let started = Instant::now();
        let outcome = run_command(run).await;
        assert!(started.elapsed() < PROMPT_LIMIT);
        assert!(matches!(outcome, ExecOutcome::TimedOut { .. }), "{outcome:?}");
        wait_until_gone(read_pid_file(&pid_path).await).await;
    }

    #[tokio::test]
    async fn cancel_kills_command_and_grandchild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_path = dir.path().join("bg.pid");
        let command_line = sleeper_with_grandchild(&pid_path);
        let cancel = CancellationToken::new();
        let run_cancel = cancel.clone();
        let running = tokio::spawn(async move {
            let mut run = run_of(&command_line, no_env());
            run.cancel = run_cancel;
            run_command(run).await
        });
        // Cancel only once the background job provably exists.
        let grandchild_pid = read_pid_file(&pid_path).await;
        cancel.cancel();
        let outcome = tokio::time::timeout(PROMPT_LIMIT, running)
            .await
            .expect("prompt")
            .expect("join");
        let ExecOutcome::Cancelled {
            stop,
            stdout_tail,
            stderr_tail,
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!((stdout_tail.as_str(), stderr_tail.as_str()), ("", ""));
        // `sleep` does not trap SIGTERM: the whole group ends on it, well within the grace.
        assert_eq!(stop.signal, StopSignal::Term, "{stop}");
        wait_until_gone(grandchild_pid).await;
    }

    #[tokio::test]
    async fn background_job_holding_pipes_does_not_hang() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_path = dir.path().join("bg.pid");
        let command_line = format!("sleep 30 & echo $! > '{}'; echo done", pid_path.display());
        let started = Instant::now();
        let outcome = run_command(run_of(&command_line, no_env())).await;
        assert!(started.elapsed() < PROMPT_LIMIT);
        assert_eq!(outcome, exited(0, "done\n", ""));
        // The leftover sleeper is killed with the group.
        wait_until_gone(read_pid_file(&pid_path).await).await;
    }

    #[tokio::test]
    async fn process_escaping_the_group_cannot_hang_the_outcome() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_path = dir.path().join("escaped.pid");
        // setsid moves the sleeper out of our process group, so killpg misses it while it holds the pipes.
        // The shell waits until the sleeper has left the group (pid file renamed into place), else the
        // group kill after its exit could hit the sleeper before setsid ran.
        let command_line = format!(
            "setsid sh -c 'echo $$ > \"$0.tmp\"; mv \"$0.tmp\" \"$0\"; exec sleep 30' '{path}' & \
             until [ -s '{path}' ]; do sleep 0.01; done; echo done",
            path = pid_path.display()
        );
        let mut run = run_of(&command_line, no_env());
        // Fails the test instead of hanging it if the sleeper never starts.
        run.timeout = PROMPT_LIMIT;
        let started = Instant::now();
        let outcome = run_command(run).await;
        assert!(started.elapsed() < PROMPT_LIMIT);
        assert_eq!(outcome, exited(0, "done\n", ""));
        let escaped_pid = read_pid_file(&pid_path).await;
        // SAFETY: signals only the sleeper this test started; no memory is touched.
        unsafe { libc::kill(escaped_pid, libc::SIGKILL) };
        wait_until_gone(escaped_pid).await;
    }

    #[tokio::test]
    async fn spawn_failure_is_reported() {
        // A NUL byte cannot be passed in argv, so spawning fails without running anything.
        let outcome = run_simple("echo \0").await;
        assert!(matches!(outcome, ExecOutcome::SpawnFailed(_)), "{outcome:?}");
        let env = BTreeMap::from([("BAD\0KEY".to_string(), "x".to_string())]);
        let outcome = run_command(run_of("true", &env)).await;
        assert!(matches!(outcome, ExecOutcome::SpawnFailed(_)), "{outcome:?}");
    }

    fn tail_of(capacity_bytes: usize, pushes: &[&[u8]]) -> String {
        let mut tail = TailBuffer::new(capacity_bytes);
        for data in pushes {
            tail.push(data);
        }
        tail.into_string()
    }

    #[test]
    fn tail_buffer_keeps_last_bytes_across_pushes() {
        // The marker (3 bytes) counts towards the 5: two bytes of text are left.
        assert_eq!(tail_of(5, &[b"abc", b"defg"]), format!("{TRUNCATION_MARKER}fg"));
        assert_eq!(tail_of(5, &[b"0123456789", b""]), format!("{TRUNCATION_MARKER}89"));
        assert_eq!(tail_of(5, &[b"abcde"]), "abcde");
        assert_eq!(tail_of(5, &[b"abc", b"de"]), "abcde");
        assert_eq!(tail_of(5, &[]), "");
        assert_eq!(tail_of(0, &[b"x"]), "");
    }

    #[test]
    fn tail_buffer_at_limit_and_one_over() {
        let limit = 4096;
        let at_limit = vec![b'x'; limit];
        assert_eq!(tail_of(limit, &[&at_limit]).len(), limit);
        assert!(!tail_of(limit, &[&at_limit]).starts_with(TRUNCATION_MARKER));
        let over = tail_of(limit, &[b"y", &at_limit]);
        assert_eq!(
            over,
            format!("{TRUNCATION_MARKER}{}", "x".repeat(limit - TRUNCATION_MARKER.len()))
        );
        let ten_times: Vec<u8> = (0..10 * limit).map(|i| b'0' + (i % 10) as u8).collect();
        let tail = tail_of(limit, &[&ten_times]);
        assert_eq!(tail.len(), limit);
        assert!(ten_times.ends_with(&tail.as_bytes()[TRUNCATION_MARKER.len()..]));
    }

    #[test]
    fn tail_buffer_skips_split_utf8_character() {
        // '€' is 3 bytes; the cut leaves 2 orphaned continuation bytes, skipped, not U+FFFD.
        assert_eq!(tail_of(4, &["x€ab".as_bytes()]), format!("{TRUNCATION_MARKER}b"));
        // '🦀' is 4 bytes; 3 orphans skipped leave "ab", which fits with the marker.
        assert_eq!(tail_of(5, &["x🦀ab".as_bytes()]), format!("{TRUNCATION_MARKER}ab"));
        // A multi-byte character that does not fit after the marker is dropped whole.
        assert_eq!(tail_of(8, &["€€€€".as_bytes()]), format!("{TRUNCATION_MARKER}€"));
    }

    #[test]
    fn tail_buffer_invalid_bytes_grow_but_stay_within_the_limit() {
        // Invalid UTF-8 is rendered lossily, not rejected: each byte becomes U+FFFD, 3 bytes.
        assert_eq!(tail_of(7, &[&[b'a', 0xff, 0xfe]]), "a\u{fffd}\u{fffd}");
        assert_eq!(
            tail_of(6, &[&[b'a', 0xff, 0xfe]]),
            format!("{TRUNCATION_MARKER}\u{fffd}")
        );
        let garbage = vec![0xff; 10 * 4096];
        let tail = tail_of(4096, &[&garbage]);
        assert!(tail.len() <= 4096 && tail.len() > 4096 - 3, "{}", tail.len());
        assert!(tail.starts_with(TRUNCATION_MARKER));
        // Fits as raw bytes, not once converted: cut all the same.
        let tail = tail_of(4096, &[&garbage[..4096]]);
        assert!(tail.len() <= 4096 && tail.starts_with(TRUNCATION_MARKER));
    }
}
