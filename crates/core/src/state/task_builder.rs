//! A chainable builder for [`TaskSpec`], so tests (and any caller) name only the fields that
//! matter to them instead of spelling out all fifteen.

use std::collections::BTreeMap;

use super::limits::DEFAULT_ATTEMPT_TIMEOUT_MS;
use super::limits::DEFAULT_MAX_ATTEMPTS;
use super::limits::DEFAULT_QUEUE;
use super::limits::DEFAULT_RETRY_BACKOFF_MS;
use super::task::Payload;
use super::task::Resources;
use super::task::TaskSpec;

impl TaskSpec {
    /// A spec named `name` with the defaults a client gets when it leaves every field out:
    /// the default queue, priority 0, the command `true` with no environment, no labels, no
    /// constraints or resources, the default attempts, timeout and backoff, no request id,
    /// no delay.
    pub fn builder(name: impl Into<String>) -> TaskSpecBuilder {
        TaskSpecBuilder {
            spec: TaskSpec {
                name: name.into(),
                queue: DEFAULT_QUEUE.to_string(),
                priority: 0,
                payload: Payload::Command {
                    command_line: "true".to_string(),
                    env: BTreeMap::new(),
                },
                labels: BTreeMap::new(),
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                attempt_timeout_ms: DEFAULT_ATTEMPT_TIMEOUT_MS,
                client_request_id: None,
                constraints: BTreeMap::new(),
                resources: Resources::default(),
                affinity_key: None,
                retry_backoff_ms: DEFAULT_RETRY_BACKOFF_MS,
                not_before_ms: 0,
                delay_ms: 0,
                trace_parent: None,
            },
        }
    }
}

/// Built by [`TaskSpec::builder`]; every setter replaces one field (or adds one map entry).
#[derive(Debug, Clone)]
#[must_use]
pub struct TaskSpecBuilder {
    spec: TaskSpec,
}

impl TaskSpecBuilder {
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.spec.queue = queue.into();
        self
    }

    pub fn priority(mut self, priority: i32) -> Self {
        self.spec.priority = priority;
        self
    }

    pub fn payload(mut self, payload: Payload) -> Self {
        self.spec.payload = payload;
        self
    }

    /// A command payload with no environment.
    pub fn command(self, command_line: impl Into<String>) -> Self {
        self.payload(Payload::Command {
            command_line: command_line.into(),
            env: BTreeMap::new(),
        })
    }

    /// Opaque bytes for the handler registered for `kind`.
    pub fn opaque(self, kind: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        self.payload(Payload::Opaque {
            kind: kind.into(),
            data: data.into(),
        })
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.spec.labels.insert(key.into(), value.into());
        self
    }

    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.spec.max_attempts = max_attempts;
        self
    }

    pub fn attempt_timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.spec.attempt_timeout_ms = timeout_ms;
        self
    }

    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.spec.client_request_id = Some(request_id.into());
        self
    }

    pub fn constraint(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.spec.constraints.insert(key.into(), value.into());
        self
    }

    pub fn resources(mut self, cpu_millis: u32, memory_mb: u32) -> Self {
        self.spec.resources = Resources { cpu_millis, memory_mb };
        self
    }

    pub fn affinity(mut self, key: impl Into<String>) -> Self {
        self.spec.affinity_key = Some(key.into());
        self
    }

    pub fn retry_backoff_ms(mut self, backoff_ms: u64) -> Self {
        self.spec.retry_backoff_ms = backoff_ms;
        self
    }

    pub fn not_before_ms(mut self, not_before_ms: u64) -> Self {
        self.spec.not_before_ms = not_before_ms;
        self
    }

    pub fn delay_ms(mut self, delay_ms: u64) -> Self {
        self.spec.delay_ms = delay_ms;
        self
    }

    pub fn trace_parent(mut self, trace_parent: impl Into<String>) -> Self {
        self.spec.trace_parent = Some(trace_parent.into());
        self
    }

    pub fn build(self) -> TaskSpec {
        self.spec
    }
}
