//! [`FaultInjector`]: per-peer faults on a node's outgoing Raft links, for fault tests in one
//! process. Empty in production: every link passes, at the cost of one read lock per RPC.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use crate::raft_types::NodeId;

/// What happens to an RPC on a faulty link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// Fails at once, as if the connection were refused.
    FailFast,
    /// Never answers: the caller waits out its deadline.
    Hang,
    /// Goes through after this delay.
    Delay(Duration),
}

/// Faults by target node, shared by every client of one node's network.
#[derive(Clone, Default, Debug)]
pub struct FaultInjector(Arc<RwLock<BTreeMap<NodeId, LinkFault>>>);

impl FaultInjector {
    /// Sets (or, with None, clears) the fault on the link to `target`.
    pub fn set(&self, target: NodeId, fault: Option<LinkFault>) {
        let mut faults = self.0.write().expect("fault map lock poisoned");
        match fault {
            Some(fault) => faults.insert(target, fault),
            None => faults.remove(&target),
        };
    }

    pub fn clear_all(&self) {
        self.0.write().expect("fault map lock poisoned").clear();
    }

    pub fn get(&self, target: NodeId) -> Option<LinkFault> {
        self.0.read().expect("fault map lock poisoned").get(&target).copied()
    }

    /// Plays the fault of the link to `target` for a call with `deadline`: Err with a
    /// description when the call must fail.
    pub(super) async fn enact(&self, target: NodeId, deadline: Duration) -> Result<(), String> {
        match self.get(target) {
            None => Ok(()),
            Some(LinkFault::FailFast) => Err(format!("injected fault: link to node {target} is down")),
            Some(LinkFault::Hang) => {
                tokio::time::sleep(deadline).await;
                Err(format!("injected fault: link to node {target} hangs"))
            }
            Some(LinkFault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
        }
    }
}
