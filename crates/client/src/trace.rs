//! A task's trace: the W3C trace context (`traceparent`) that rides in the task from the
//! client's request through submit, propose, commit, apply, assign and push on the nodes to
//! the worker's run and report, and into the task's environment as `TRACEPARENT`.
//!
//! Spans of the task's path have the target [`TARGET`] and exist only while this process
//! exports traces ([`exporting`], set by the binary when `--otlp-endpoint` is given): a node
//! that does not export creates none and passes the context it was given on unchanged, so
//! tracing costs nothing unless it is asked for.
//!
//! The context crosses processes only as a `traceparent` string (in the task's spec, in the
//! worker's assignment, as gRPC metadata on a report), read and written by OpenTelemetry's
//! W3C propagator.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every span of a task's path: what the OTLP layer exports.
pub const TARGET: &str = "raftsched::task";

/// The W3C header and gRPC metadata key of the trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The environment variable a task finds its trace context in (the OpenTelemetry
/// convention for passing context to a child process).
pub const TRACEPARENT_VARIABLE: &str = "TRACEPARENT";

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Marks this process as exporting traces: spans of the task's path are created from now on.
pub fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// True when this process exports traces.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// A span of the task's path named `name`, under `parent` when given (else under the
/// current span), with the task's id; `Span::none()` when this process does not export.
/// A `parent` that is not a valid traceparent is ignored (the span starts a trace).
#[macro_export]
macro_rules! task_span {
    ($name:literal, $parent:expr, $task_id:expr) => {{
        if $crate::trace::exporting() {
            let span = ::tracing::info_span!(target: $crate::trace::TARGET, $name, task_id = $task_id);
            if let Some(parent) = $parent {
                $crate::trace::set_parent(&span, parent);
            }
            span
        } else {
            ::tracing::Span::none()
        }
    }};
}

/// Makes `span` a child of the remote span `traceparent` names.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT_HEADER.to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    // Refused only for a span that is not recorded (exporting off): nothing to link then.
    let _ = span.set_parent(context);
}

/// The traceparent naming `span`, when it is exported; else `fallback` (the context the
/// caller was given), so a node that does not export passes it on unchanged.
pub fn traceparent_of(span: &tracing::Span, fallback: Option<&str>) -> Option<String> {
    if !span.is_disabled() {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
        if let Some(traceparent) = carrier.remove(TRACEPARENT_HEADER) {
            return Some(traceparent);
        }
    }
    fallback.map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_export_the_given_context_passes_unchanged() {
        let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = tracing::Span::none();
        assert_eq!(traceparent_of(&span, Some(given)).as_deref(), Some(given));
        assert_eq!(traceparent_of(&span, None), None);
    }
}
