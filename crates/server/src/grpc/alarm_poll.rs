//! Every node asks each peer for its status every [`POLL_INTERVAL`] and keeps the peers'
//! high-water alarms in its [`crate::quota::Guard`], so whichever node leads refuses new work
//! while any member has an alarm. Every node polls, not only the leader: a new leader knows
//! the alarms from its first moment (the cost is (n-1) small calls per node every 2 s).
//!
//! Bound: a member's alarm stops new work within its sample interval (2 s) plus one poll
//! (2 s) plus the call's deadline (1 s): 5 s, and sooner on the node with the alarm itself,
//! which reads its own at once. A peer that does not answer counts as without alarms (what
//! it would report is unknown, and refusing all work because a node is down would turn a
//! lost minority into an outage).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::grpc::peer_status::PeerChannels;
use crate::grpc::peer_status::peer_status;
use crate::network::NodeTls;
use std::sync::Arc;

/// How often the peers are asked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Polls until `shutdown`, calling peers with `tls` (None: `--insecure`).
pub fn spawn_alarm_poll(app: App, tls: Option<Arc<NodeTls>>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let channels = PeerChannels::new(tls);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                alarms = poll_once(&app, &channels) => app.guard().set_peer_alarms(alarms),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    })
}

/// Each answering peer's alarms, asked in parallel (each call bounded by its deadline).
async fn poll_once(app: &App, channels: &PeerChannels) -> BTreeMap<u64, Vec<String>> {
    let own_id = app.metrics().id;
    let lookups = app
        .members()
        .into_iter()
        .filter(|(node_id, _)| *node_id != own_id)
        .map(|(node_id, address)| {
            let channel = channels.get(&address);
            peer_status(node_id, address, channel)
        });
    futures::future::join_all(lookups)
        .await
        .into_iter()
        .filter(|status| status.role != "unreachable")
        .map(|status| (status.node_id, status.alarms))
        .collect()
}
