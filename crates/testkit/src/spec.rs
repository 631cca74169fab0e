//! Protobuf task specs for tests: a chainable builder, and the two shapes most tests submit.
//!
//! Fields left unset keep their protobuf defaults (empty, zero), which the server reads as
//! "use the default" — so a test names only what it is about.

use raftsched_api::v1 as api;

/// Starts a spec named `name` whose command echoes the name.
pub fn builder(name: &str) -> SpecBuilder {
    SpecBuilder {
        spec: api::TaskSpec {
            name: name.into(),
            ..api::TaskSpec::default()
        },
    }
    .command(format!("echo {name}"))
}

/// A command task spec with a given name and request id ("" for none).
pub fn command_spec(name: &str, request_id: &str) -> api::TaskSpec {
    builder(name).request_id(request_id).build()
}

/// A task spec that runs `command_line` through the shell.
pub fn shell(name: &str, command_line: &str) -> api::TaskSpec {
    builder(name).command(command_line).build()
}

/// Built by [`builder`]; every setter replaces one field (or adds one map entry).
#[derive(Debug, Clone)]
#[must_use]
pub struct SpecBuilder {
    spec: api::TaskSpec,
}

impl SpecBuilder {
    pub fn queue(mut self, queue: &str) -> Self {
        self.spec.queue = queue.into();
        self
    }

    pub fn priority(mut self, priority: i32) -> Self {
        self.spec.priority = priority;
        self
    }

    /// A command payload with no environment (replacing any payload).
    pub fn command(mut self, command_line: impl Into<String>) -> Self {
        self.spec.payload = Some(api::task_spec::Payload::Command(api::CommandPayload {
            command_line: command_line.into(),
            env: Default::default(),
        }));
        self
    }

    /// Opaque bytes for the worker handler registered for `kind` (replacing any payload).
    pub fn opaque(mut self, kind: &str, data: impl Into<Vec<u8>>) -> Self {
        self.spec.payload = Some(api::task_spec::Payload::Opaque(api::OpaquePayload {
            kind: kind.into(),
            data: data.into(),
        }));
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
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

    /// "" means none, as on the wire.
    pub fn request_id(mut self, request_id: &str) -> Self {
        self.spec.client_request_id = request_id.into();
        self
    }

    pub fn constraint(mut self, key: &str, value: &str) -> Self {
        self.spec.constraints.insert(key.into(), value.into());
        self
    }

    pub fn resources(mut self, cpu_millis: u32, memory_mb: u32) -> Self {
        self.spec.resources = Some(api::Resources { cpu_millis, memory_mb });
        self
    }

    pub fn affinity(mut self, key: &str) -> Self {
        self.spec.affinity_key = key.into();
        self
    }

    pub fn retry_backoff_ms(mut self, backoff_ms: u64) -> Self {
        self.spec.retry_backoff_ms = backoff_ms;
        self
    }

    pub fn run_at_ms(mut self, run_at_ms: u64) -> Self {
        self.spec.run_at_ms = run_at_ms;
        self
    }

    pub fn delay_ms(mut self, delay_ms: u64) -> Self {
        self.spec.delay_ms = delay_ms;
        self
    }

    pub fn build(self) -> api::TaskSpec {
        self.spec
    }
}
