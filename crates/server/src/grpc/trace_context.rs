//! The trace context of a submission: where the "submit" span of a task's path starts and
//! what the task's spec carries on (see raftsched-client's `trace` module).

use raftsched_client::task_span;
use raftsched_client::trace::TRACEPARENT_HEADER;
use raftsched_client::trace::traceparent_of;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::limits;
use tonic::Request;
use tonic::Status;

use crate::grpc::status::app_error_to_status;

/// The context a request brings in its `traceparent` metadata, when valid: as W3C Trace
/// Context says of a malformed header, anything else is ignored (the trace starts here).
pub(crate) fn request_trace_parent<T>(request: &Request<T>) -> Option<String> {
    let value = request.metadata().get(TRACEPARENT_HEADER)?.to_str().ok()?;
    limits::check_trace_parent(value).ok()?;
    Some(value.to_string())
}

/// Opens the "submit" span of `specs` under `parent` and gives each spec without a context
/// of its own the span's (or `parent` itself when this node does not export traces). A spec
/// that names its own context keeps it: a batch's tasks may belong to different traces.
pub(crate) fn submit_span<'a>(
    parent: Option<&str>,
    specs: impl IntoIterator<Item = &'a mut TaskSpec>,
) -> tracing::Span {
    let span = task_span!("submit", parent, tracing::field::Empty);
    let context = traceparent_of(&span, parent);
    for spec in specs.into_iter().filter(|spec| spec.trace_parent.is_none()) {
        spec.trace_parent.clone_from(&context);
    }
    span
}

/// [`submit_span`] for one spec: its own context, else the request's, is the parent, and
/// the spec carries the span's on. A context of its own that is not a traceparent is
/// INVALID_ARGUMENT, as it would be from apply.
pub(crate) fn submit_span_of_one(metadata: Option<String>, spec: &mut TaskSpec) -> Result<tracing::Span, Status> {
    if let Some(own) = &spec.trace_parent {
        limits::check_trace_parent(own).map_err(|e| app_error_to_status(e.into()))?;
    }
    let parent = spec.trace_parent.take().or(metadata);
    Ok(submit_span(parent.as_deref(), [spec]))
}
