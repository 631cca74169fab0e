//! [`ExecutionOptions`]: what a command task inherits from its worker, and how long it gets
//! to stop (the worker's `--pass-env` and `--kill-grace`).
//!
//! A task is a shell command written by whoever could submit it, so the worker's environment
//! is not its to read: the worker's own credentials and configuration (`RAFTSCHED_TLS_DIR`,
//! tokens, cloud keys an operator exported) must not reach it. A task's environment is built
//! from an allowlist instead (see [`ExecutionOptions::new`]), and the worker's environment is
//! read once, when the options are made: the executor never reads the process environment.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::time::Duration;

use raftsched_core::state::limits::shown;

/// Inherited from the worker when set: where commands are found (`PATH`), the home directory
/// tools look into (`HOME`), and the default locale (`LANG`).
pub const INHERITED_NAMES: [&str; 3] = ["PATH", "HOME", "LANG"];
/// The locale categories (`LC_ALL`, `LC_CTYPE`, `LC_NUMERIC`, ...) are inherited too: `LANG`
/// is only their fallback, so a worker started with `LC_ALL=C.UTF-8` would otherwise run its
/// tasks in another encoding and sort order than the operator's shell. They name locales and
/// carry no credentials.
pub const INHERITED_PREFIX: &str = "LC_";
/// The variables the worker sets for each attempt (crates/client/src/worker/runtime.rs): the
/// only `RAFTSCHED_*` variables a task sees, with values of its own attempt. The shard and
/// origin ones only for a shard or a task a schedule or workflow created.
pub const TASK_VARIABLES: [&str; 8] = [
    "RAFTSCHED_TASK_ID",
    "RAFTSCHED_TASK_NAME",
    "RAFTSCHED_ATTEMPT",
    "RAFTSCHED_TOKEN",
    "RAFTSCHED_WORKER_ID",
    "RAFTSCHED_SHARD_INDEX",
    "RAFTSCHED_SHARD_TOTAL",
    "RAFTSCHED_ORIGIN",
];
/// Every other `RAFTSCHED_*` variable is the worker's own configuration (`RAFTSCHED_CLUSTER`,
/// `RAFTSCHED_TLS_DIR`, `RAFTSCHED_TLS_IDENTITY`, ...): never inherited, and refused in
/// `--pass-env`, so no flag can hand a worker's credentials to its tasks.
pub const RESERVED_PREFIX: &str = "RAFTSCHED_";
/// `--pass-env` names at most this many variables: more is a configuration mistake (a task
/// that needs dozens of values should get them in its own env), and the bound keeps the
/// per-attempt copy small.
pub const MAX_PASS_ENV_NAMES: usize = 64;
/// A passed name is at most this long (real names are a few dozen bytes).
pub const MAX_ENV_NAME_BYTES: usize = 128;
/// Default time between SIGTERM and SIGKILL. Enough for a shell's trap to remove temporary
/// files and for a program to flush its output (Nomad's `kill_timeout` default is 5 s); kept
/// under the 5 s default worker lease so that a timed-out attempt's own report (with its
/// output) reaches the leader before the leader times the attempt out itself at timeout +
/// lease.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);
/// Longest `--kill-grace`: a cancel or a worker's drain must end in bounded time.
pub const MAX_KILL_GRACE: Duration = Duration::from_secs(600);
/// The default worker lease (`WorkerOptions::new`, `raftsched worker --lease-ms`).
const DEFAULT_LEASE: Duration = Duration::from_secs(5);
const _: () = assert!(DEFAULT_KILL_GRACE.as_millis() < DEFAULT_LEASE.as_millis());
const _: () = assert!(DEFAULT_KILL_GRACE.as_millis() <= MAX_KILL_GRACE.as_millis());
const _: () = assert!(INHERITED_PREFIX.len() < MAX_ENV_NAME_BYTES);

/// Why execution options were refused. Each message names the flag, its limit and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    #[error(
        "--pass-env names {count} variables, at most {MAX_PASS_ENV_NAMES} are allowed: pass fewer, \
         or give the tasks their values in their own env (`task submit --env K=V`)"
    )]
    TooManyPassEnv { count: usize },
    #[error(
        "--pass-env {shown_name} is not a variable name: use ASCII letters, digits and `_`, \
         not starting with a digit, at most {MAX_ENV_NAME_BYTES} bytes"
    )]
    BadPassEnvName { shown_name: String },
    #[error(
        "--pass-env {name}: RAFTSCHED_* variables are the worker's own configuration and \
         credentials and never reach a task (a task gets its own RAFTSCHED_TASK_ID, \
         RAFTSCHED_TOKEN, ... from the worker); pass the value under another name"
    )]
    ReservedPassEnvName { name: String },
    #[error(
        "--kill-grace {grace_ms} ms is over the maximum of {} s: a cancelled or timed-out task \
         must stop in bounded time; use at most 10m",
        MAX_KILL_GRACE.as_secs()
    )]
    KillGraceTooLong { grace_ms: u128 },
}

/// How a worker runs command tasks: the part of its own environment each task inherits, and
/// the grace between SIGTERM and SIGKILL when a task is stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionOptions {
    /// The allowlisted variables of the worker's environment, values as they were.
    inherited: BTreeMap<OsString, OsString>,
    kill_grace: Duration,
}

impl ExecutionOptions {
    /// From `parent_env` (the worker's environment; explicit so tests need not change their
    /// own process's) keeps only [`INHERITED_NAMES`], `LC_*` and `pass_env` (which is
    /// checked: at most [`MAX_PASS_ENV_NAMES`] portable names, none `RAFTSCHED_*`). A task's
    /// environment is these, then its own env, then the [`TASK_VARIABLES`] of its attempt.
    /// A `kill_grace` of zero means SIGKILL at once; over [`MAX_KILL_GRACE`] is refused.
    pub fn new(
        parent_env: impl IntoIterator<Item = (OsString, OsString)>,
        pass_env: &[String],
        kill_grace: Duration,
    ) -> Result<Self, ExecutionError> {
        if kill_grace > MAX_KILL_GRACE {
            return Err(ExecutionError::KillGraceTooLong {
                grace_ms: kill_grace.as_millis(),
            });
        }
        let passed = checked_pass_env(pass_env)?;
        let inherited = parent_env
            .into_iter()
            .filter(|(name, _)| {
                name.to_str()
                    .is_some_and(|name| is_inherited(name) || passed.contains(name))
            })
            .collect();
        Ok(Self { inherited, kill_grace })
    }

    /// [`ExecutionOptions::new`] from this process's environment, read now.
    pub fn from_process_env(pass_env: &[String], kill_grace: Duration) -> Result<Self, ExecutionError> {
        Self::new(std::env::vars_os(), pass_env, kill_grace)
    }

    /// The worker's variables every task starts from.
    pub fn inherited(&self) -> &BTreeMap<OsString, OsString> {
        &self.inherited
    }

    /// Time between SIGTERM and SIGKILL to a stopped task's process group.
    pub fn kill_grace(&self) -> Duration {
        self.kill_grace
    }
}

impl Default for ExecutionOptions {
    /// This process's PATH, HOME, LANG and LC_*, nothing passed, the default grace.
    fn default() -> Self {
        Self::from_process_env(&[], DEFAULT_KILL_GRACE).expect("no --pass-env and the default grace are valid")
    }
}

fn is_inherited(name: &str) -> bool {
    INHERITED_NAMES.contains(&name) || name.starts_with(INHERITED_PREFIX)
}

fn checked_pass_env(pass_env: &[String]) -> Result<BTreeSet<&str>, ExecutionError> {
    if pass_env.len() > MAX_PASS_ENV_NAMES {
        return Err(ExecutionError::TooManyPassEnv { count: pass_env.len() });
    }
    for name in pass_env {
        if !is_portable_name(name) {
            return Err(ExecutionError::BadPassEnvName {
                shown_name: shown(name),
            });
        }
        if name.starts_with(RESERVED_PREFIX) {
            return Err(ExecutionError::ReservedPassEnvName { name: name.clone() });
        }
    }
    Ok(pass_env.iter().map(String::as_str).collect())
}

/// POSIX's portable variable names: `[A-Za-z_][A-Za-z0-9_]*`, here also bounded in length.
fn is_portable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_');
    first_ok && name.len() <= MAX_ENV_NAME_BYTES && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).into(), (*value).into()))
            .collect()
    }

    fn names(options: &ExecutionOptions) -> Vec<&str> {
        options.inherited().keys().map(|name| name.to_str().unwrap()).collect()
    }

    fn grace() -> Duration {
        DEFAULT_KILL_GRACE
    }

    #[test]
    fn only_the_allowlist_and_passed_names_are_inherited() {
        let env = parent(&[
            ("PATH", "/bin"),
            ("HOME", "/home/w"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("LC_NUMERIC", "de_DE"),
            ("TZ", "UTC"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("RAFTSCHED_TLS_DIR", "/etc/raftsched"),
            ("RAFTSCHED_TOKEN", "forged"),
            ("RAFTSCHED_CLUSTER", "a:1"),
            ("PATHX", "no"),
            ("XLC_ALL", "no"),
        ]);
        let options = ExecutionOptions::new(env, &["TZ".into()], grace()).unwrap();
        assert_eq!(names(&options), ["HOME", "LANG", "LC_ALL", "LC_NUMERIC", "PATH", "TZ"]);
        assert_eq!(options.inherited()[&OsString::from("PATH")], "/bin");
        let none = ExecutionOptions::new(parent(&[("TZ", "UTC")]), &[], grace()).unwrap();
        assert!(none.inherited().is_empty(), "TZ is inherited only when passed");
    }

    #[test]
    fn a_passed_name_that_is_not_set_is_simply_absent() {
        let options = ExecutionOptions::new(parent(&[("PATH", "/bin")]), &["UNSET".into()], grace()).unwrap();
        assert_eq!(names(&options), ["PATH"]);
    }

    #[test]
    fn non_utf8_values_are_kept_and_non_utf8_names_dropped() {
        use std::os::unix::ffi::OsStringExt;
        let value = OsString::from_vec(vec![b'/', 0xff]);
        let env = vec![
            (OsString::from("HOME"), value.clone()),
            (OsString::from_vec(vec![b'L', b'C', b'_', 0xff]), "x".into()),
        ];
        let options = ExecutionOptions::new(env, &[], grace()).unwrap();
        assert_eq!(options.inherited().len(), 1);
        assert_eq!(options.inherited()[&OsString::from("HOME")], value);
    }

    #[test]
    fn pass_env_count_at_and_over_the_limit() {
        let at_limit: Vec<String> = (0..MAX_PASS_ENV_NAMES).map(|i| format!("VAR_{i}")).collect();
        assert!(ExecutionOptions::new(parent(&[]), &at_limit, grace()).is_ok());
        let mut over = at_limit.clone();
        over.push("ONE_MORE".into());
        let error = ExecutionOptions::new(parent(&[]), &over, grace()).unwrap_err();
        assert_eq!(error, ExecutionError::TooManyPassEnv { count: 65 });
        let message = error.to_string();
        assert!(
            message.contains("--pass-env names 65 variables, at most 64"),
            "{message}"
        );
        assert!(ExecutionOptions::new(parent(&[]), &[], grace()).is_ok(), "none is fine");
        let one = ExecutionOptions::new(parent(&[("A", "1")]), &["A".into()], grace()).unwrap();
        assert_eq!(names(&one), ["A"]);
    }

    #[test]
    fn duplicate_pass_env_names_are_one() {
        let options = ExecutionOptions::new(parent(&[("A", "1")]), &["A".into(), "A".into()], grace()).unwrap();
        assert_eq!(names(&options), ["A"]);
    }

    #[test]
    fn bad_pass_env_names_are_refused_with_the_flag_named() {
        let longest = "N".repeat(MAX_ENV_NAME_BYTES);
        assert!(ExecutionOptions::new(parent(&[]), std::slice::from_ref(&longest), grace()).is_ok());
        for bad in [
            "".to_string(),
            "1ABC".into(),
            "A=B".into(),
            "A B".into(),
            "A-B".into(),
            "É".into(),
            "A\0".into(),
            format!("{longest}N"),
        ] {
            let error = ExecutionOptions::new(parent(&[]), std::slice::from_ref(&bad), grace()).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, ExecutionError::BadPassEnvName { .. }),
                "{bad:?}: {error:?}"
            );
            assert!(message.starts_with("--pass-env ") && message.contains("not a variable name"));
        }
        let huge = "x y".repeat(100_000);
        let message = ExecutionOptions::new(parent(&[]), &[huge], grace())
            .unwrap_err()
            .to_string();
        assert!(
            message.len() < 1000,
            "a huge name is shown cut: {} bytes",
            message.len()
        );
    }

    #[test]
    fn raftsched_names_cannot_be_passed() {
        for name in ["RAFTSCHED_TLS_DIR", "RAFTSCHED_TOKEN", "RAFTSCHED_"] {
            let env = parent(&[(name, "secret")]);
            let error = ExecutionOptions::new(env, &[name.into()], grace()).unwrap_err();
            assert_eq!(error, ExecutionError::ReservedPassEnvName { name: name.into() });
            assert!(error.to_string().contains("never reach a task"), "{error}");
        }
        // Only the exact prefix is reserved.
        assert!(ExecutionOptions::new(parent(&[]), &["RAFTSCHEDX".into()], grace()).is_ok());
    }

    #[test]
    fn kill_grace_from_zero_to_the_maximum() {
        for ok in [Duration::ZERO, Duration::from_millis(1), MAX_KILL_GRACE] {
            let options = ExecutionOptions::new(parent(&[]), &[], ok).unwrap();
            assert_eq!(options.kill_grace(), ok);
        }
        let over = MAX_KILL_GRACE + Duration::from_millis(1);
        let error = ExecutionOptions::new(parent(&[]), &[], over).unwrap_err();
        assert_eq!(error, ExecutionError::KillGraceTooLong { grace_ms: 600_001 });
        assert!(
            error
                .to_string()
                .contains("--kill-grace 600001 ms is over the maximum of 600 s"),
            "{error}"
        );
    }

    #[test]
    fn task_variables_are_all_reserved_names() {
        for name in TASK_VARIABLES {
            assert!(name.starts_with(RESERVED_PREFIX) && is_portable_name(name), "{name}");
        }
    }
}
