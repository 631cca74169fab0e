//! The status codes of bad input that tonic refuses before a handler runs.
//!
//! tonic answers a request message over the size limit with OUT_OF_RANGE, and a body that
//! is not valid protobuf (or has no message, or a bad compression flag) with INTERNAL. Both
//! are the client's fault: INTERNAL tells it the server is broken, and OUT_OF_RANGE is for
//! iterating past the end of something. [`WireErrors`] wraps a service and rewrites those
//! answers to RESOURCE_EXHAUSTED (naming the limit in MiB) and INVALID_ARGUMENT, the codes
//! the rest of the API uses for "too big" and "not a valid request".
//!
//! tonic decodes the request of every unary and server-streaming call before calling the
//! handler, and answers a failure with a trailers-only response: the status is in the
//! response headers, so rewriting the headers is enough.

use std::convert::Infallible;
use std::task::Context;
use std::task::Poll;
use std::time::Instant;

use tonic::Code;
use tonic::Status;
use tonic::codegen::BoxFuture;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::server::NamedService;

use crate::grpc::MAX_API_MESSAGE_BYTES;
use crate::observe::NodeMetrics;
use raftsched_api::ANSWERED_HEADER;
use raftsched_core::state::limits;

/// The longest status message sent. Each one travels in an HTTP/2 header (percent-encoded,
/// up to 3x longer), and hyper's client refuses a header block over 16 KiB with a protocol
/// error that hides the reason: 2 KiB stays far below, and every message we write fits.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 2048;
const _: () = assert!(3 * MAX_STATUS_MESSAGE_BYTES < 16 * 1024);

/// tonic's message for a request over the decoding limit (codec/decode.rs, tonic 0.14).
const TOO_LARGE_PREFIX: &str = "Error, decoded message length too large";
/// Messages of tonic's decoding failures: prost's DecodeError, an empty body, a bad
/// compression flag.
const MALFORMED_PREFIXES: [&str; 3] = [
    "failed to decode Protobuf message",
    "Missing request message",
    "protocol error: received message with invalid compression flag",
];

/// Wraps a generated tonic server (SchedulerServer, WorkersServer) so that its transport
/// level refusals of bad input carry the codes the API documents, and every call is
/// counted in `metrics`. Add the wrapped service to the server in place of the plain one.
pub fn with_wire_errors<S>(service: S, metrics: NodeMetrics) -> WireErrors<S> {
    WireErrors {
        inner: service,
        metrics,
    }
}

#[derive(Debug, Clone)]
pub struct WireErrors<S> {
    inner: S,
    metrics: NodeMetrics,
}

impl<S: NamedService> NamedService for WireErrors<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for WireErrors<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = request.uri().path().rsplit('/').next().unwrap_or_default().to_string();
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            rewrite_headers(response.headers_mut());
            // A refusal is a trailers-only answer: its status is in the headers. Otherwise the
            // status follows the body, which for a unary call means OK (tonic sends a
            // handler's error trailers-only too); a stream is counted when it starts.
            let code = match Status::from_header_map(response.headers()).map_or(Code::Ok, |status| status.code()) {
                Code::Ok => "OK".to_string(),
                other => format!("{other:?}"),
            };
            metrics.grpc_request(&method, code, started.elapsed());
            Ok(response)
        })
    }
}

/// Rewrites a trailers-only answer in place: tonic's decoder refusals get the API's codes,
/// and any message over [`MAX_STATUS_MESSAGE_BYTES`] is cut; leaves anything else alone.
fn rewrite_headers(headers: &mut http::HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    // A status our own handlers produced is what they meant, but for its length.
    let rewritten = if headers.contains_key(ANSWERED_HEADER) {
        None
    } else {
        rewrite(&status)
    };
    let status = match rewritten {
        Some(status) => status,
        None if status.message().len() <= MAX_STATUS_MESSAGE_BYTES => return,
        None => status,
    };
    let message = limits::truncate_error(status.message(), MAX_STATUS_MESSAGE_BYTES);
    let status = Status::with_details(status.code(), message, status.details().to_vec().into());
    headers.remove(Status::GRPC_STATUS_DETAILS);
    if status.add_header(headers).is_err() {
        tracing::warn!(code = ?status.code(), "could not rewrite a refusal's status");
    }
}

/// The status a decoding refusal should have had, or None for any other status.
pub(crate) fn rewrite(status: &Status) -> Option<Status> {
    let message = status.message();
    match status.code() {
        Code::OutOfRange if message.starts_with(TOO_LARGE_PREFIX) => {
            let found = found_bytes(message).map_or_else(String::new, |n| format!("{n} bytes, "));
            Some(Status::resource_exhausted(format!(
                "request message too large: {found}over the limit of {} MiB per message; \
                 send fewer tasks per request or smaller payloads",
                MAX_API_MESSAGE_BYTES / (1024 * 1024)
            )))
        }
        Code::Internal if MALFORMED_PREFIXES.iter().any(|p| message.starts_with(p)) => {
            Some(Status::invalid_argument(format!(
                "invalid request body: not a valid protobuf message of this method ({message}); \
                 use a client generated from proto/raftsched.proto"
            )))
        }
        _ => None,
    }
}

/// The size tonic found, from "... found 5242893 bytes, the limit is ...".
fn found_bytes(message: &str) -> Option<u64> {
    let rest = message.split_once("found ")?.1;
    rest.split_once(' ')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_over_the_limit_is_resource_exhausted_naming_the_limit() {
        let tonic_says = Status::out_of_range(
            "Error, decoded message length too large: found 5242893 bytes, the limit is: 4194304 bytes",
        );
        let status = rewrite(&tonic_says).expect("rewritten");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("5242893 bytes"), "{}", status.message());
        assert!(status.message().contains("4 MiB"), "{}", status.message());
    }

    #[test]
    fn a_malformed_body_is_invalid_argument() {
        for message in [
            "failed to decode Protobuf message: invalid wire type value: 7",
            "Missing request message.",
        ] {
            let status = rewrite(&Status::internal(message)).expect("rewritten");
            assert_eq!(status.code(), Code::InvalidArgument);
            assert!(status.message().contains(message), "{}", status.message());
        }
    }

    #[test]
    fn other_statuses_stay_as_they_are() {
        assert!(rewrite(&Status::internal("unexpected response from the state machine")).is_none());
        assert!(rewrite(&Status::out_of_range("past the end")).is_none());
        assert!(rewrite(&Status::invalid_argument("failed to decode Protobuf message")).is_none());
    }

    #[test]
    fn headers_of_our_own_answers_are_left_alone() {
        let mut headers = http::HeaderMap::new();
        Status::internal("failed to decode Protobuf message: x")
            .add_header(&mut headers)
            .unwrap();
        headers.insert(ANSWERED_HEADER, http::HeaderValue::from_static("1"));
        rewrite_headers(&mut headers);
        assert_eq!(Status::from_header_map(&headers).unwrap().code(), Code::Internal);

        headers.remove(ANSWERED_HEADER);
        rewrite_headers(&mut headers);
        assert_eq!(Status::from_header_map(&headers).unwrap().code(), Code::InvalidArgument);
    }

    #[test]
    fn a_long_message_of_our_own_is_cut_to_the_limit_keeping_code_and_headers() {
        for len in [MAX_STATUS_MESSAGE_BYTES, MAX_STATUS_MESSAGE_BYTES + 1, 4 * 1024 * 1024] {
            let mut headers = http::HeaderMap::new();
            let message = format!("schedule {} not found", "é".repeat(len / 2));
            Status::not_found(message.clone()).add_header(&mut headers).unwrap();
            headers.insert(ANSWERED_HEADER, http::HeaderValue::from_static("1"));
            rewrite_headers(&mut headers);
            let status = Status::from_header_map(&headers).unwrap();
            assert_eq!(status.code(), Code::NotFound, "{len}");
            assert!(status.message().len() <= MAX_STATUS_MESSAGE_BYTES, "{len}");
            assert!(status.message().starts_with("schedule "), "{len}");
            assert_eq!(
                status.message().len() < message.len(),
                message.len() > MAX_STATUS_MESSAGE_BYTES
            );
            assert!(headers.contains_key(ANSWERED_HEADER));
        }
    }
}
