//! Takes one [`Sample`] per interval: the nodes' processes and data dirs, the cluster's
//! status and queues, and what the load saw.

use std::path::PathBuf;

use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;

use super::sample::NodeSample;
use super::sample::Sample;
use super::tracker::Tracker;
use crate::Dist;
use crate::ProcSnapshot;

pub struct Sampler {
    pid_dir: PathBuf,
    /// Data dir of node1, node2, ... when not the cluster.sh layout (pid_dir/nodeN).
    data_dirs: Vec<PathBuf>,
    queue: String,
    prev: ProcSnapshot,
    prev_term: Option<u64>,
    prev_leader: Option<u64>,
    /// The members' quorum losses summed at the previous sample.
    prev_quorum_losses: Option<u64>,
    prev_completed_total: u64,
}

/// Pending + running over every queue, and of `queue` alone.
async fn live_tasks(client: &ClusterClient, queue: &str) -> Option<(u64, u64)> {
    let (mut all, mut own) = (0, 0);
    let mut token = String::new();
    loop {
        let request = api::ListQueuesRequest {
            namespace: String::new(),
            page_token: token.clone(),
        };
        let page = client
            .call(|mut c| {
                let request = request.clone();
                async move { c.list_queues(request).await }
            })
            .await
            .ok()?;
        for q in &page.queues {
            all += q.pending + q.running;
            if q.policy.as_ref().is_some_and(|p| p.queue == queue) {
                own += q.pending + q.running;
            }
        }
        if page.next_page_token.is_empty() || page.queues.is_empty() {
            return Some((all, own));
        }
        token = page.next_page_token;
    }
}

fn percentile_ms(samples: &mut [u64]) -> (Option<f64>, Option<f64>) {
    match Dist::of_micros(samples) {
        Some(d) => (Some(d.p50_ms), Some(d.p99_ms)),
        None => (None, None),
    }
}

/// The file a node writes its next snapshot to before renaming it over the last one.
const SNAPSHOT_TMP_FILE: &str = "snapshot.tmp";
/// How long a sample waits for a snapshot being written to land.
const SNAPSHOT_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The size of a node's data dir once no snapshot is being written. For the ~100 ms a new
/// snapshot takes to write, the dir holds it beside the last one (a second snapshot, +50%
/// in the soak); a sample that lands then would show that transient instead of the level
/// the target is about, so it waits for the rename (at most 2 s) and says so on stderr,
/// with the size it saw, so the transient stays on record.
async fn settled_dir_size(name: &str, dir: &std::path::Path) -> u64 {
    let writing = || dir.join(SNAPSHOT_TMP_FILE).exists();
    let started = std::time::Instant::now();
    let mut seen = None;
    loop {
        // Checked on both sides of the walk: a write that starts or ends during it would
        // otherwise be counted half or whole without being noticed.
        if !writing() {
            let size = crate::dir_size(dir);
            if !writing() || started.elapsed() >= SNAPSHOT_WRITE_WAIT {
                if let Some(seen) = seen {
                    eprintln!(
                        "soak: {name} was writing a snapshot: data dir {:.1} MiB with it, {:.1} MiB after ({} ms later)",
                        seen as f64 / 1048576.0,
                        size as f64 / 1048576.0,
                        started.elapsed().as_millis()
                    );
                }
                return size;
            }
        }
        seen.get_or_insert_with(|| crate::dir_size(dir));
        if started.elapsed() >= SNAPSHOT_WRITE_WAIT {
            return crate::dir_size(dir);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

impl Sampler {
    pub async fn new(client: &ClusterClient, pid_dir: PathBuf, data_dirs: Vec<PathBuf>, queue: String) -> Sampler {
        let status = client.cluster_status().await.ok();
        Sampler {
            prev: ProcSnapshot::take(Some(&pid_dir)),
            pid_dir,
            data_dirs,
            queue,
            prev_term: status.as_ref().and_then(|s| s.members.iter().map(|m| m.term).max()),
            prev_quorum_losses: status.as_ref().map(|s| s.members.iter().map(|m| m.quorum_losses).sum()),
            prev_leader: status.and_then(|s| s.members.iter().find(|m| m.role == "leader").map(|m| m.node_id)),
            prev_completed_total: 0,
        }
    }

    async fn nodes(&mut self) -> Vec<NodeSample> {
        let now = ProcSnapshot::take(Some(&self.pid_dir));
        let usage = now.usage_since(&self.prev);
        let mut nodes: Vec<NodeSample> = now
            .procs
            .iter()
            .filter(|p| p.name.starts_with("node"))
            .map(|p| NodeSample {
                name: p.name.clone(),
                rss_mib: p.rss_kib as f64 / 1024.0,
                data_mib: p.data_bytes as f64 / (1024.0 * 1024.0),
                write_bytes: usage.iter().find(|u| u.name == p.name).map_or(0, |u| u.write_bytes),
                write_bytes_per_task: None,
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        // Every node's dir: the one given, else <pid dir>/<node> (scripts/cluster.sh's
        // layout). (Only given dirs were walked here before, so the soaks of scripts/bench.sh
        // kept the unsettled size the process sampler took.)
        for (i, node) in nodes.iter_mut().enumerate() {
            let dir = self
                .data_dirs
                .get(i)
                .cloned()
                .unwrap_or_else(|| self.pid_dir.join(&node.name));
            node.data_mib = settled_dir_size(&node.name, &dir).await as f64 / (1024.0 * 1024.0);
        }
        self.prev = now;
        nodes
    }

    /// The sample of the interval that ends now, `t_s` after the load started.
    pub async fn take(&mut self, client: &ClusterClient, tracker: &Tracker, t_s: f64) -> Sample {
        let mut interval = tracker.take_interval();
        let mut nodes = self.nodes().await;
        let status = client.cluster_status().await.ok();
        let term = status.as_ref().and_then(|s| s.members.iter().map(|m| m.term).max());
        // A member restarted since starts again from 0: the sum may drop; no loss then.
        let losses = status
            .as_ref()
            .map(|s| s.members.iter().map(|m| m.quorum_losses).sum::<u64>());
        let quorum_losses = match (self.prev_quorum_losses, losses) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        self.prev_quorum_losses = losses.or(self.prev_quorum_losses);
        let leader = status.and_then(|s| s.members.iter().find(|m| m.role == "leader").map(|m| m.node_id));
        let live = live_tasks(client, &self.queue).await;
        // Finished so far = acknowledged minus what the leader still holds live in the queue.
        let completed_total = live.map_or(self.prev_completed_total, |(_, own)| {
            tracker
                .submitted_total()
                .saturating_sub(own)
                .max(self.prev_completed_total)
        });
        let completed = completed_total - self.prev_completed_total;
        self.prev_completed_total = completed_total;
        let elections = match (self.prev_term, term) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        let leader_changes = u64::from(matches!((self.prev_leader, leader), (Some(a), Some(b)) if a != b));
        self.prev_term = term.or(self.prev_term);
        self.prev_leader = leader.or(self.prev_leader);
        let per_task = |bytes: u64| (completed > 0).then(|| bytes as f64 / completed as f64);
        for node in &mut nodes {
            node.write_bytes_per_task = per_task(node.write_bytes);
        }
        let (start_p50_ms, start_p99_ms) = percentile_ms(&mut interval.to_start_us);
        Sample {
            t_s,
            submitted: interval.submitted,
            submit_errors: interval.errors,
            completed,
            live_tasks: live.map(|(all, _)| all),
            start_p50_ms,
            start_p99_ms,
            ack_p99_ms: percentile_ms(&mut interval.ack_us).1,
            term,
            elections,
            leader_changes,
            quorum_losses,
            write_bytes_per_task: per_task(nodes.iter().map(|n| n.write_bytes).sum()),
            nodes,
        }
    }
}
