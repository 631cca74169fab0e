//! Placement: which worker takes a task. Pure functions over [`WorkerView`]s.

use std::collections::BTreeMap;

use crate::scheduling::Resources;
pub use crate::state::Placement;

/// What placement needs to know of a worker, as of this planning round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerView {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub slots: u32,
    pub running: u32,
    /// Resources not yet claimed by running tasks.
    pub free: Resources,
    /// Resources the worker declared; zero means it declared none.
    pub total: Resources,
}

impl WorkerView {
    pub fn free_slots(&self) -> u32 {
        self.slots.saturating_sub(self.running)
    }

    /// The namespace whose tasks the worker takes ([`NAMESPACE_LABEL`](crate::state::namespace::NAMESPACE_LABEL), else the default).
    pub fn namespace(&self) -> &str {
        crate::state::namespace::of_worker_labels(&self.labels)
    }
}

/// What placement needs to know of a task.
#[derive(Debug, Clone, Copy)]
pub struct TaskNeeds<'a> {
    /// The task's namespace: only a worker of the same namespace takes it.
    pub namespace: &'a str,
    pub constraints: &'a BTreeMap<String, String>,
    pub resources: Resources,
    pub affinity_key: &'a str,
}

/// Why no worker can take a task now, worded for the user.
pub fn no_fit_reason(needs: &TaskNeeds<'_>, workers: &[WorkerView]) -> String {
    if workers.is_empty() {
        return "no worker is connected".into();
    }
    let in_namespace: Vec<&WorkerView> = workers.iter().filter(|w| w.namespace() == needs.namespace).collect();
    if in_namespace.is_empty() {
        return format!("no worker of namespace {} is connected", needs.namespace);
    }
    let labelled: Vec<&WorkerView> = in_namespace.into_iter().filter(|w| labels_match(needs, w)).collect();
    if labelled.is_empty() {
        let wanted: Vec<String> = needs.constraints.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return format!("no worker with label {}", wanted.join(","));
    }
    if labelled.iter().all(|w| !w.total.covers(&needs.resources)) {
        return format!("no worker is large enough for {}", needs.resources);
    }
    "all matching workers are busy".into()
}

/// The worker is of the task's namespace and carries every label the task asks for.
pub fn labels_match(needs: &TaskNeeds<'_>, worker: &WorkerView) -> bool {
    worker.namespace() == needs.namespace && needs.constraints.iter().all(|(k, v)| worker.labels.get(k) == Some(v))
}

/// A worker can take the task now: namespace and labels match, a slot is free, resources
/// fit.
pub fn fits(needs: &TaskNeeds<'_>, worker: &WorkerView) -> bool {
    worker.free_slots() > 0 && labels_match(needs, worker) && worker.free.covers(&needs.resources)
}

/// Picks the index of the worker for a task among `workers` (sorted by id), or None when
/// none fits. `cursor` is the round-robin position; `draw` yields a random u64 for Random.
pub fn place(
    placement: Placement,
    needs: &TaskNeeds<'_>,
    workers: &[WorkerView],
    cursor: &mut usize,
    draw: &mut dyn FnMut() -> u64,
) -> Option<usize> {
    let fitting: Vec<usize> = (0..workers.len()).filter(|&i| fits(needs, &workers[i])).collect();
    if fitting.is_empty() {
        return None;
    }
    let pick = match placement {
        Placement::RoundRobin => {
            let pick = fitting.iter().copied().find(|&i| i >= *cursor).unwrap_or(fitting[0]);
            *cursor = pick + 1;
            pick
        }
        Placement::Random => fitting[(draw() % fitting.len() as u64) as usize],
        Placement::LeastLoaded => *fitting
            .iter()
            .min_by_key(|&&i| load_key(&workers[i]))
            .expect("non-empty"),
        Placement::ConsistentHash => *fitting
            .iter()
            .max_by_key(|&&i| rendezvous_weight(needs.affinity_key, &workers[i].id))
            .expect("non-empty"),
        Placement::BinPack => *fitting
            .iter()
            .min_by_key(|&&i| (workers[i].free.weight(), workers[i].free_slots()))
            .expect("non-empty"),
        Placement::Spread => *fitting
            .iter()
            .max_by_key(|&&i| (workers[i].free.weight(), workers[i].free_slots(), std::cmp::Reverse(i)))
            .expect("non-empty"),
    };
    Some(pick)
}

/// Load as a fraction of slots, in millionths, then the worker's position as tie-break.
fn load_key(worker: &WorkerView) -> u64 {
    u64::from(worker.running) * 1_000_000 / u64::from(worker.slots.max(1))
}

/// Highest-random-weight hashing: each (key, worker) pair gets a pseudo-random weight and the
/// heaviest worker wins, so removing a worker moves only the keys it held.
pub fn rendezvous_weight(key: &str, worker_id: &str) -> u64 {
    let mut hash = fnv1a(FNV_OFFSET, key.as_bytes());
    hash = fnv1a(hash, &[0xff]);
    hash = fnv1a(hash, worker_id.as_bytes());
    // FNV alone mixes the last bytes weakly; finish with a 64-bit avalanche.
    splitmix64(hash)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
