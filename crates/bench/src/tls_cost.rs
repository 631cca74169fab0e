//! The cost of TLS: each submit result measured against a plaintext cluster (`bench.sh` runs
//! the submit phase a second time with `RAFTSCHED_INSECURE=1`) beside the same run over
//! mutual TLS. Plaintext results are recorded as system [`PLAINTEXT_SYSTEM`] and count for
//! nothing else (targets and etcd ratios use the TLS ones: what a user runs).

use crate::Cell;
use crate::Record;
use crate::latency;

/// The `system` of a result measured without TLS.
pub const PLAINTEXT_SYSTEM: &str = "raftsched-plaintext";

/// One row per plaintext result that has a TLS result of the same bench, clients and batch
/// (the latest of each).
pub fn rows(records: &[Record]) -> Vec<serde_json::Value> {
    let latest = |system: &str, like: &Record| {
        records
            .iter()
            .rev()
            .find(|r| r.system == system && r.bench == like.bench && r.clients == like.clients && r.batch == like.batch)
    };
    let mut out = Vec::new();
    for plain in records.iter().filter(|r| r.system == PLAINTEXT_SYSTEM) {
        if !std::ptr::eq(latest(PLAINTEXT_SYSTEM, plain).expect("itself"), plain) {
            continue;
        }
        let Some(tls) = latest("raftsched", plain) else {
            continue;
        };
        let (tls_ack, plain_ack) = (
            latency(Some(tls), "ack").unwrap_or_default(),
            latency(Some(plain), "ack").unwrap_or_default(),
        );
        out.push(serde_json::json!({
            "bench": plain.bench,
            "clients": plain.clients,
            "batch": plain.batch,
            "tls_ops_per_s": tls.ops_per_s,
            "plaintext_ops_per_s": plain.ops_per_s,
            "throughput_ratio": tls.ops_per_s / plain.ops_per_s.max(1e-9),
            "tls_p50_ms": tls_ack.p50_ms,
            "plaintext_p50_ms": plain_ack.p50_ms,
            "tls_p99_ms": tls_ack.p99_ms,
            "plaintext_p99_ms": plain_ack.p99_ms,
        }));
    }
    out
}

/// The rows as a table (nothing when there are none).
pub fn print(rows: &[serde_json::Value]) {
    crate::print_comparison(
        rows,
        &[
            ("TLS COST", "bench", Cell::Text),
            ("CLIENTS", "clients", Cell::Count),
            ("TLS OPS/S", "tls_ops_per_s", Cell::Rate),
            ("PLAINTEXT OPS/S", "plaintext_ops_per_s", Cell::Rate),
            ("RATIO", "throughput_ratio", Cell::Ratio),
            ("TLS P50", "tls_p50_ms", Cell::Ms),
            ("PLAIN P50", "plaintext_p50_ms", Cell::Ms),
            ("TLS P99", "tls_p99_ms", Cell::Ms),
            ("PLAIN P99", "plaintext_p99_ms", Cell::Ms),
        ],
    );
}
