//! Runs one task attempt's shell command on a worker.
//!
//! The command runs as `sh -c <command_line>` in its own process group so that
//! a timeout or cancellation can kill everything it started (pipelines,
//! background jobs), not just the shell. Output is captured concurrently into
//! bounded tail buffers so a chatty command never blocks on a full pipe and
//! never grows the worker's memory without bound.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use raftsched_core::state::limits::TRUNCATION_MARKER;
use raftsched_core::state::limits::truncate_tail;

/// Bytes read from a pipe per syscall. Large enough to keep syscall count low
/// for chatty commands, small enough to live on the stack of the read loop.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// How long to keep reading output after the process group was killed.
/// Killed members close their pipe ends at once; only a process that escaped
/// the group (e.g. via `setsid`) can hold a pipe open, and it must not be able
/// to delay the attempt's outcome indefinitely.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// One attempt's command and its limits.
pub struct CommandRun<'a> {
    /// Run as `sh -c <command_line>`.
    pub command_line: &'a str,
    /// Extra environment, added to the worker's own.
    pub env: &'a BTreeMap<String, String>,
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
    /// The timeout elapsed; the process group was killed. `after` is the configured timeout.
    TimedOut {
        after: Duration,
        stdout_tail: String,
        stderr_tail: String,
    },
    /// The cancellation token fired; the process group was killed.
    Cancelled { stdout_tail: String, stderr_tail: String },
    /// The command could not be started (or, never expected, not waited for).
    SpawnFailed(String),
}

/// Why the wait for the child ended.
enum Ending {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

/// Runs the attempt to completion, timeout or cancellation. Never panics; on
/// return no process of the command's group is left running (except one that
/// deliberately left the group) and the direct child has been reaped.
pub async fn run_command(run: CommandRun<'_>) -> ExecOutcome {
    let mut child = match spawn_child(run.command_line, run.env) {
        Ok(child) => child,
        Err(error) => return ExecOutcome::SpawnFailed(error.to_string()),
    };
    // If this future is dropped mid-run, the guard kills the whole group and
    // `kill_on_drop` lets tokio reap the shell, so nothing leaks.
    let mut group = GroupKillGuard::new(&child);
    let mut stdout_tail = TailBuffer::new(run.output_tail_bytes);
    let mut stderr_tail = TailBuffer::new(run.output_tail_bytes);

    let ending = {
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
        group.kill_and_disarm();
        let ending = reap_after_kill(&mut child, ending).await;
        // Polling a completed future would panic, hence the flag. Bounded: a
        // process that escaped the group must not hang the outcome.
        if !capture_done {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, capture).await;
        }
        ending
    };
    outcome_from(
        ending,
        run.timeout,
        stdout_tail.into_string(),
        stderr_tail.into_string(),
    )
}

fn spawn_child(command_line: &str, env: &BTreeMap<String, String>) -> std::io::Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(command_line)
        .envs(env)
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

/// After a timeout or cancel the child is killed but not yet reaped; reap it
/// so no zombie is left. A child that already exited needs nothing.
async fn reap_after_kill(child: &mut Child, ending: Ending) -> Ending {
    if matches!(ending, Ending::TimedOut | Ending::Cancelled) {
        // killpg already hit the child; start_kill covers a child that moved
        // itself to another group. Errors mean it is already dead.
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    ending
}

fn outcome_from(ending: Ending, timeout: Duration, stdout_tail: String, stderr_tail: String) -> ExecOutcome {
    match ending {
        Ending::TimedOut => ExecOutcome::TimedOut {
            after: timeout,
            stdout_tail,
            stderr_tail,
        },
        Ending::Cancelled => ExecOutcome::Cancelled {
            stdout_tail,
            stderr_tail,
        },
        Ending::Exited(Err(error)) => ExecOutcome::SpawnFailed(format!("waiting for command failed: {error}")),
        Ending::Exited(Ok(status)) => match (status.code(), status.signal()) {
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

    fn kill_and_disarm(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            kill_process_group(pgid);
        }
    }
}

impl Drop for GroupKillGuard {
    fn drop(&mut self) {
        self.kill_and_disarm();
    }
}

/// Sends SIGKILL to every process in the group. After a normal exit this also
/// removes background processes the command left behind, which would otherwise
/// keep the output pipes open and outlive the attempt.
///
/// The leader may already be reaped here; its pgid cannot be reused while any
/// group member lives, and if none does, ESRCH is the expected result.
fn kill_process_group(pgid: libc::pid_t) {
    // killpg(0) or a negative pgid would target the worker's own group.
    if pgid <= 0 {
        return;
    }
    // SAFETY: killpg only sends a signal; it takes plain integers and touches
    // no memory of ours. pgid > 0 is the group created for our own child.
    // Errors (ESRCH: group already gone) need no handling.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
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
    use std::path::Path;
    use std::time::Instant;

    /// Generous bound for "promptly": far above normal latency, far below the 30 s sleeps.
    const PROMPT_LIMIT: Duration = Duration::from_secs(10);
    const POLL_INTERVAL: Duration = Duration::from_millis(10);

    fn no_env() -> &'static BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        &EMPTY
    }

    fn run_of<'a>(command_line: &'a str, env: &'a BTreeMap<String, String>) -> CommandRun<'a> {
        CommandRun {
            command_line,
            env,
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

    #[tokio::test]
    async fn extra_env_is_visible_and_worker_env_is_kept() {
        let env = BTreeMap::from([("FOO".to_string(), "bar baz".to_string())]);
        let outcome = run_command(run_of(r#"echo "$FOO"; command -v sh >/dev/null && echo path-ok"#, &env)).await;
        assert_eq!(outcome, exited(0, "bar baz\npath-ok\n", ""));
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
        assert_eq!(
            outcome,
            ExecOutcome::Cancelled {
                stdout_tail: "".into(),
                stderr_tail: "".into()
            }
        );
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
