//! The child processes of a chaos run: started in process groups of their own, signalled by
//! name, and all killed when the run ends however it ends.
//!
//! Three layers make sure no node or worker outlives the run: [`Processes`] kills every
//! process group it started when its [`KillGuard`] drops (normal end, error, panic); tokio's
//! `kill_on_drop` kills a child whose handle is dropped; and on Linux each child asks the
//! kernel for SIGKILL when the chaos process dies (`PR_SET_PDEATHSIG`), which covers SIGKILL
//! of the chaos process itself.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::Ipv4Addr;
use std::net::SocketAddrV4;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU16;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::SystemTime;

use tokio::process::Child;
use tokio::process::Command;
use tokio::time::Instant;

/// How to start one named process (again and again: restarts reuse it).
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// stdout and stderr are appended here, across restarts.
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
}

struct Entry {
    spec: ProcessSpec,
    /// None while stopped.
    child: Option<Child>,
    /// Pid (= process group id) of the current child.
    pid: Option<i32>,
    starts: u32,
}

/// Every process of the run, by name ("node1", "worker2", ...).
#[derive(Clone, Default)]
pub struct Processes {
    inner: Arc<Mutex<BTreeMap<String, Entry>>>,
}

/// How a stopped process ended.
#[derive(Debug, Clone)]
pub struct Exit {
    pub status: String,
    /// It had to be killed after the grace period.
    pub forced: bool,
}

impl Processes {
    pub fn new() -> Processes {
        Processes::default()
    }

    /// A guard that kills every process of this set when dropped.
    pub fn kill_guard(&self) -> KillGuard {
        KillGuard {
            processes: self.clone(),
        }
    }

    /// Registers `name` and starts it.
    pub fn add(&self, name: &str, spec: ProcessSpec) -> std::io::Result<i32> {
        let mut map = self.lock();
        map.insert(
            name.to_string(),
            Entry {
                spec,
                child: None,
                pid: None,
                starts: 0,
            },
        );
        let entry = map.get_mut(name).expect("just inserted");
        start_entry(entry)
    }

    /// Starts `name` again (it must be stopped). Returns the new pid.
    pub fn start(&self, name: &str) -> std::io::Result<i32> {
        let mut map = self.lock();
        let entry = map
            .get_mut(name)
            .ok_or_else(|| std::io::Error::other(format!("no process named {name}")))?;
        if entry.child.is_some() {
            return Err(std::io::Error::other(format!("{name} is already running")));
        }
        start_entry(entry)
    }

    pub fn pid(&self, name: &str) -> Option<i32> {
        self.lock().get(name).and_then(|e| e.pid)
    }

    pub fn starts(&self, name: &str) -> u32 {
        self.lock().get(name).map_or(0, |e| e.starts)
    }

    /// Sends `signal` to the process group of `name`. False when it is not running.
    pub fn signal(&self, name: &str, signal: i32) -> bool {
        let Some(pid) = self.pid(name) else {
            return false;
        };
        signal_group(pid, signal)
    }

    /// SIGKILLs `name`'s process group and reaps it.
    pub async fn kill(&self, name: &str) -> Option<Exit> {
        self.signal(name, libc::SIGKILL);
        let exit = self.wait_exit(name, Duration::from_secs(10)).await;
        exit.map(|status| Exit { status, forced: false })
    }

    /// SIGTERM, then SIGKILL after `grace`; reaps it.
    pub async fn terminate(&self, name: &str, grace: Duration) -> Option<Exit> {
        if !self.signal(name, libc::SIGTERM) {
            return None;
        }
        // A stopped process never handles SIGTERM.
        self.signal(name, libc::SIGCONT);
        if let Some(status) = self.wait_exit(name, grace).await {
            return Some(Exit { status, forced: false });
        }
        self.signal(name, libc::SIGKILL);
        self.wait_exit(name, Duration::from_secs(10))
            .await
            .map(|status| Exit { status, forced: true })
    }

    /// Polls until `name` has exited (reaping it), up to `timeout`.
    async fn wait_exit(&self, name: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.reap(name) {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// If `name` has exited, forgets the child and says how it ended.
    fn reap(&self, name: &str) -> Option<String> {
        let mut map = self.lock();
        let entry = map.get_mut(name)?;
        let child = entry.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                entry.child = None;
                entry.pid = None;
                Some(describe(status))
            }
            Ok(None) => None,
            Err(e) => {
                entry.child = None;
                entry.pid = None;
                Some(format!("unknown ({e})"))
            }
        }
    }

    /// Processes that should be running but have exited on their own: (name, how).
    pub fn exited_unexpectedly(&self) -> Vec<(String, String)> {
        let names: Vec<String> = self.lock().keys().cloned().collect();
        names
            .into_iter()
            .filter_map(|name| self.reap(&name).map(|status| (name, status)))
            .collect()
    }

    /// Names of the processes not running now.
    pub fn stopped(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.child.is_none())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// SIGKILLs every process group; reaps what it can without waiting.
    pub fn kill_all(&self) {
        let mut map = match self.inner.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        for entry in map.values_mut() {
            if let Some(pid) = entry.pid {
                // A stopped process dies of SIGKILL too.
                signal_group(pid, libc::SIGKILL);
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        for entry in map.values_mut() {
            if let Some(child) = entry.child.as_mut() {
                while std::time::Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            entry.child = None;
            entry.pid = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.inner.lock().expect("process table lock poisoned")
    }
}

/// Kills every process of its [`Processes`] when dropped.
pub struct KillGuard {
    processes: Processes,
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        self.processes.kill_all();
    }
}

fn start_entry(entry: &mut Entry) -> std::io::Result<i32> {
    let spec = &entry.spec;
    let log = OpenOptions::new().create(true).append(true).open(&spec.log)?;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        // Its own process group: a terminal's Ctrl-C does not reach it behind our back, and
        // a signal to the group reaches anything it started.
        .process_group(0);
    for (key, value) in &spec.env {
        command.env(key, value);
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: between fork and exec this calls only async-signal-safe functions (prctl,
    // getppid, _exit) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died before prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = parent;
            Ok(())
        });
    }
    let child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("child exited before its pid was read"))? as i32;
    entry.child = Some(child);
    entry.pid = Some(pid);
    entry.starts += 1;
    Ok(pid)
}

fn signal_group(pid: i32, signal: i32) -> bool {
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
    unsafe { libc::kill(-pid, signal) == 0 }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// Three consecutive free ports on 127.0.0.1. They are searched below the kernel's ephemeral
/// range, so that no port-0 bind or outgoing connection elsewhere (tests running concurrently,
/// a node's own peer connections) can take one between this check and the nodes' own bind, or
/// while a killed node is down. Each call starts at another offset, so callers in one process
/// never pick the same ports. Shared with the end-to-end tests of the `raftsched` package.
pub fn free_port_base() -> Result<u16, String> {
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
            return Ok(base);
        }
    }
    Err(format!("no three consecutive free ports in {low}..{high}"))
}
