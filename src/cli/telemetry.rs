//! Logs on stderr (`--log-format`) and, with `--otlp-endpoint`, the spans of each task's
//! path exported over OTLP/gRPC (see raftsched-client's `trace` module for which spans).
//!
//! Only spans of the task's path are exported (target `raftsched::task`), whatever
//! `RUST_LOG` says: the log filter and the trace filter are separate. Sampling follows the
//! OpenTelemetry SDK's environment (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`;
//! default: every trace, or the parent's decision). The batch exporter keeps at most 2,048
//! spans waiting and drops beyond that (counted in its own logs), so a collector that is
//! down or slow never holds the node back.

use std::time::Duration;

use anyhow::Context;
use anyhow::bail;
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use raftsched_client::trace;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How long one export may take before it is given up (the batch is dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The format of log lines (`--log-format`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// What [`init`] set up that must be flushed on the way out.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still waiting (within the exporter's timeout) and stops exporting.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        // Blocks until the batch is out: off the async threads.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = flushed {
            eprintln!("warning: traces not all exported on exit: {e}");
        }
    }
}

/// Installs the log subscriber, and the trace exporter when `otlp_endpoint` is given, for a
/// process named `service` ("raftsched-node", "raftsched-worker"). Must run inside the
/// async runtime: the exporter's gRPC channel lives on it.
pub fn init(
    format: LogFormat,
    filter: EnvFilter,
    otlp_endpoint: Option<&str>,
    service: &str,
) -> anyhow::Result<Telemetry> {
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).boxed(),
    };
    let provider = otlp_endpoint
        .map(|endpoint| tracer_provider(endpoint, service))
        .transpose()?;
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("raftsched"))
            .with_filter(Targets::new().with_target(trace::TARGET, tracing::Level::INFO))
    });
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans)
        .init();
    if let Some(endpoint) = otlp_endpoint {
        trace::set_exporting();
        tracing::info!(endpoint, service, "exporting the spans of each task's path over OTLP");
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(endpoint: &str, service: &str) -> anyhow::Result<SdkTracerProvider> {
    let url: tonic::transport::Uri = endpoint
        .parse()
        .with_context(|| format!("--otlp-endpoint {endpoint:?} is not a URL such as http://127.0.0.1:4317"))?;
    match url.scheme_str() {
        Some("http") if url.authority().is_some() => {}
        Some("https") => bail!(
            "--otlp-endpoint {endpoint:?}: TLS to the collector is not supported; export to an OpenTelemetry \
             collector on this host or its network (http://127.0.0.1:4317) and let it forward over TLS"
        ),
        _ => bail!("--otlp-endpoint {endpoint:?} must be http://HOST:PORT, such as http://127.0.0.1:4317"),
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| format!("--otlp-endpoint {endpoint}: cannot set up the exporter"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service.to_string()).build())
        .build())
}
