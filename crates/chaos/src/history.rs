//! The history of a chaos run: every client operation (invoke, then ok / fail / unknown),
//! every fault and heal, recoveries and crashes, in order, with wall-clock times. Kept in
//! memory for the checker and appended to `history.jsonl` as it happens, one JSON object a
//! line, so a run that dies still leaves what it did.

use std::fs::File;
use std::io::LineWriter;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use serde::Deserialize;
use serde::Serialize;
use tokio::time::Instant;

use crate::schedule::FaultKind;

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Wall clock, ms since the Unix epoch (the nodes stamp tasks with the same clock).
    pub t_ms: u64,
    /// Since the start of the run.
    pub elapsed_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The run's settings, first.
    Start { settings: serde_json::Value },
    /// A client is about to submit (first try of this request id).
    Invoke {
        client: u32,
        op: u64,
        request_id: String,
        command: String,
    },
    /// Acknowledged: the task exists, committed.
    Ok {
        client: u32,
        op: u64,
        request_id: String,
        task_id: u64,
        created: bool,
        /// From the invoke to this answer, retries included.
        latency_ms: u64,
    },
    /// Definitely refused: the cluster answered with an error that is not "try again".
    Fail {
        client: u32,
        op: u64,
        request_id: String,
        code: String,
        error: String,
    },
    /// No answer within the client's deadline (or only "unavailable"): may or may not have
    /// happened. The client retries with the same request id.
    Unknown {
        client: u32,
        op: u64,
        request_id: String,
        attempt: u32,
        error: String,
    },
    /// A fault was injected.
    Fault {
        seq: u32,
        kind: FaultKind,
        target: String,
        detail: String,
        /// The leader when the fault fired (0: none known).
        leader: u64,
    },
    /// After a leader-affecting fault: a node leads in a newer term.
    Elected {
        seq: u32,
        leader: u64,
        term: u64,
        /// Since the fault.
        after_ms: u64,
    },
    /// The fault was undone.
    Heal {
        seq: u32,
        kind: FaultKind,
        target: String,
        detail: String,
    },
    /// A scheduled fault could not be injected.
    Skip { seq: u32, kind: FaultKind, why: String },
    /// Every node answers and they agree on one leader.
    Recovered { after_ms: u64, leader: u64, term: u64 },
    /// The cluster did not recover within the deadline.
    NotRecovered { waited_ms: u64, status: String },
    /// A process exited without being told to.
    Crash { process: String, status: String },
    /// A process was started again after a crash.
    Restarted { process: String },
    /// Anything else worth knowing when reading the history.
    Note { text: String },
}

/// The history being recorded.
pub struct History {
    started: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    file: Option<LineWriter<File>>,
    records: Vec<Record>,
    write_error: Option<String>,
}

impl History {
    /// Records into memory and into `path` (created or truncated).
    pub fn create(path: &Path) -> std::io::Result<History> {
        let file = File::create(path)?;
        Ok(History {
            started: Instant::now(),
            inner: Mutex::new(Inner {
                file: Some(LineWriter::new(file)),
                records: Vec::new(),
                write_error: None,
            }),
        })
    }

    /// Records into memory only.
    pub fn in_memory() -> History {
        History {
            started: Instant::now(),
            inner: Mutex::new(Inner {
                file: None,
                records: Vec::new(),
                write_error: None,
            }),
        }
    }

    pub fn record(&self, event: Event) -> Record {
        let record = Record {
            t_ms: wall_ms(),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            event,
        };
        let mut inner = self.inner.lock().expect("history lock poisoned");
        if let Some(file) = inner.file.as_mut() {
            let line = serde_json::to_string(&record).expect("a history record serializes");
            if let Err(e) = writeln!(file, "{line}") {
                inner.write_error.get_or_insert_with(|| e.to_string());
            }
        }
        inner.records.push(record.clone());
        record
    }

    pub fn records(&self) -> Vec<Record> {
        self.inner.lock().expect("history lock poisoned").records.clone()
    }

    /// The first error writing the file, if any.
    pub fn write_error(&self) -> Option<String> {
        self.inner.lock().expect("history lock poisoned").write_error.clone()
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// Reads a `history.jsonl` back.
pub fn read_history(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), number + 1)))
        .collect()
}

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json_lines() {
        let dir = std::env::temp_dir().join(format!("raftsched-history-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.jsonl");
        let history = History::create(&path).unwrap();
        history.record(Event::Invoke {
            client: 1,
            op: 2,
            request_id: "c1-2".into(),
            command: "true".into(),
        });
        history.record(Event::Fault {
            seq: 1,
            kind: FaultKind::KillLeader,
            target: "node2".into(),
            detail: "SIGKILL".into(),
            leader: 2,
        });
        let read = read_history(&path).unwrap();
        assert_eq!(read, history.records());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
