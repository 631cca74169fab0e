//! The soak series on disk: one JSON document (settings, samples, verdict) and one CSV with
//! a row per sample and a column group per node.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::sample::Sample;

/// Names of the nodes in the order of their columns: every node seen in any sample, sorted,
/// so a node missing from some samples (down, restarting) still has its columns.
pub fn node_names(samples: &[Sample]) -> Vec<String> {
    let mut names: Vec<String> = samples
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

fn float(value: f64) -> String {
    format!("{value:.3}")
}

/// The series as CSV: fixed columns, then rss_mib, data_mib, write_bytes and
/// write_bytes_per_task for each node; an empty cell where a value is unknown.
pub fn to_csv(samples: &[Sample]) -> String {
    let names = node_names(samples);
    let mut out = String::from(
        "t_s,submitted,submit_errors,completed,live_tasks,start_p50_ms,start_p99_ms,ack_p99_ms,\
         term,elections,leader_changes,quorum_losses,write_bytes_per_task",
    );
    for name in &names {
        let _ = write!(
            out,
            ",{name}_rss_mib,{name}_data_mib,{name}_write_bytes,{name}_write_bytes_per_task"
        );
    }
    out.push('\n');
    for s in samples {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            float(s.t_s),
            s.submitted,
            s.submit_errors,
            s.completed,
            opt(s.live_tasks),
            opt(s.start_p50_ms.map(float)),
            opt(s.start_p99_ms.map(float)),
            opt(s.ack_p99_ms.map(float)),
            opt(s.term),
            s.elections,
            s.leader_changes,
            s.quorum_losses,
            opt(s.write_bytes_per_task.map(float)),
        );
        for name in &names {
            match s.nodes.iter().find(|n| &n.name == name) {
                Some(n) => {
                    let _ = write!(
                        out,
                        ",{},{},{},{}",
                        float(n.rss_mib),
                        float(n.data_mib),
                        n.write_bytes,
                        opt(n.write_bytes_per_task.map(float))
                    );
                }
                None => out.push_str(",,,,"),
            }
        }
        out.push('\n');
    }
    out
}

/// Writes `document` as pretty JSON and the samples as CSV.
pub fn write_files<T: Serialize>(
    json_path: &Path,
    csv_path: &Path,
    document: &T,
    samples: &[Sample],
) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(document)?;
    std::fs::write(json_path, json + "\n").with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(csv_path, to_csv(samples)).with_context(|| format!("writing {}", csv_path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::sample::NodeSample;
    use super::*;

    fn node(name: &str, rss: f64) -> NodeSample {
        NodeSample {
            name: name.into(),
            rss_mib: rss,
            data_mib: 2.5,
            write_bytes: 4096,
            write_bytes_per_task: Some(409.6),
        }
    }

    fn sample(t_s: f64, nodes: Vec<NodeSample>) -> Sample {
        Sample {
            t_s,
            submitted: 10,
            completed: 10,
            live_tasks: Some(3),
            start_p50_ms: Some(1.25),
            start_p99_ms: None,
            term: Some(4),
            nodes,
            write_bytes_per_task: Some(819.2),
            ..Sample::default()
        }
    }

    #[test]
    fn csv_has_a_column_group_per_node_and_empty_cells_for_unknowns() {
        let samples = vec![
            sample(10.0, vec![node("node2", 20.0), node("node1", 10.0)]),
            // node2 is down in the second sample.
            sample(20.0, vec![node("node1", 11.0)]),
        ];
        let csv = to_csv(&samples);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(header.len(), 13 + 2 * 4);
        assert_eq!(header[13], "node1_rss_mib");
        assert_eq!(header[17], "node2_rss_mib");
        assert_eq!(
            lines[1],
            "10.000,10,0,10,3,1.250,,,4,0,0,0,819.200,10.000,2.500,4096,409.600,20.000,2.500,4096,409.600"
        );
        assert!(lines[2].ends_with(",11.000,2.500,4096,409.600,,,,"), "{}", lines[2]);
        for line in &lines {
            assert_eq!(line.split(',').count(), header.len(), "{line}");
        }
    }

    #[test]
    fn empty_series_is_a_header_only() {
        let csv = to_csv(&[]);
        assert_eq!(csv.lines().count(), 1);
        assert!(csv.starts_with("t_s,"));
    }

    #[test]
    fn json_round_trips_and_files_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let samples = vec![sample(10.0, vec![node("node1", 10.0)])];
        let (json_path, csv_path) = (dir.path().join("s.json"), dir.path().join("s.csv"));
        write_files(
            &json_path,
            &csv_path,
            &serde_json::json!({ "samples": samples }),
            &samples,
        )
        .unwrap();
        let read: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        let back: Vec<Sample> = serde_json::from_value(read["samples"].clone()).unwrap();
        assert_eq!(back, samples);
        assert_eq!(std::fs::read_to_string(&csv_path).unwrap(), to_csv(&samples));
    }
}
