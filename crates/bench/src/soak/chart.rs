//! The soak's four panels, from its samples (drawn by [`crate::plot`]).

use super::sample::NodeSample;
use super::sample::Sample;
use super::series::node_names;
use crate::plot::Line;
use crate::plot::Panel;

/// Latencies are drawn on a log axis; a value of 0 is drawn at this floor.
const LATENCY_FLOOR_MS: f64 = 0.01;

/// RSS per node, data dir per node, submit→start p50/p99, disk written per task.
pub fn panels(samples: &[Sample]) -> Vec<Panel> {
    vec![
        Panel {
            caption: "RSS per node",
            unit: "MiB",
            lines: per_node(samples, |n| Some(n.rss_mib)),
            log_y: false,
        },
        Panel {
            caption: "Data dir per node",
            unit: "MiB",
            lines: per_node(samples, |n| Some(n.data_mib)),
            log_y: false,
        },
        Panel {
            caption: "submit→start (per interval)",
            unit: "ms (log)",
            lines: latency_lines(samples),
            log_y: true,
        },
        Panel {
            caption: "Disk written per completed task",
            unit: "KiB / task",
            lines: bytes_per_task_lines(samples),
            log_y: false,
        },
    ]
}

fn per_node(samples: &[Sample], value: impl Fn(&NodeSample) -> Option<f64>) -> Vec<Line> {
    node_names(samples)
        .into_iter()
        .map(|name| {
            let points = samples
                .iter()
                .filter_map(|s| {
                    let node = s.nodes.iter().find(|n| n.name == name)?;
                    Some((s.t_s / 60.0, value(node)?))
                })
                .collect();
            (name, points)
        })
        .collect()
}

fn latency_lines(samples: &[Sample]) -> Vec<Line> {
    let of = |f: fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter_map(|s| Some((s.t_s / 60.0, f(s)?.max(LATENCY_FLOOR_MS))))
            .collect()
    };
    vec![
        ("p50".to_string(), of(|s| s.start_p50_ms)),
        ("p99".to_string(), of(|s| s.start_p99_ms)),
    ]
}

fn bytes_per_task_lines(samples: &[Sample]) -> Vec<Line> {
    let mut lines = per_node(samples, |n| n.write_bytes_per_task.map(|b| b / 1024.0));
    let total = samples
        .iter()
        .filter_map(|s| Some((s.t_s / 60.0, s.write_bytes_per_task? / 1024.0)))
        .collect();
    lines.push(("all nodes".to_string(), total));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        (1..=12)
            .map(|i| Sample {
                t_s: i as f64 * 10.0,
                start_p50_ms: Some(2.0),
                start_p99_ms: if i == 3 { None } else { Some(10.0 + i as f64) },
                write_bytes_per_task: Some(3000.0),
                nodes: (1..=3)
                    .map(|n| NodeSample {
                        name: format!("node{n}"),
                        rss_mib: 100.0 + n as f64,
                        data_mib: 20.0 * n as f64,
                        write_bytes: 1000,
                        write_bytes_per_task: Some(1000.0),
                    })
                    .collect(),
                ..Sample::default()
            })
            .collect()
    }

    #[test]
    fn lines_per_node_minutes_and_latency_floor() {
        let s = samples();
        let all = panels(&s);
        assert_eq!(all.len(), 4);
        let rss = &all[0].lines;
        assert_eq!(
            rss.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
            ["node1", "node2", "node3"]
        );
        assert_eq!(rss[0].1.len(), 12);
        assert_eq!(rss[0].1[5], (1.0, 101.0), "x in minutes");
        assert_eq!(
            all[2].lines[1].1.len(),
            11,
            "an interval without starts has no p99 point"
        );
        let zero = latency_lines(&[Sample {
            start_p50_ms: Some(0.0),
            ..Sample::default()
        }]);
        assert_eq!(zero[0].1, vec![(0.0, LATENCY_FLOOR_MS)]);
        let bytes = &all[3].lines;
        assert_eq!(bytes.last().unwrap().0, "all nodes");
        assert_eq!(bytes.last().unwrap().1[5], (1.0, 3000.0 / 1024.0), "KiB");
    }
}
