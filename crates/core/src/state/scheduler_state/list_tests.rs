//! Unit tests of task listing: both orders, cursor paging, the queue and namespace
//! indexes, `since`.

use super::*;

/// Queues as stored: two in the default namespace, one in team-a, and team-a's own "a".
const QUEUES: [&str; 4] = ["a", "b", "team-a:c", "team-a:a"];

/// A small deterministic generator; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `count` tasks over three queues, created at times that sometimes repeat, a third of them
/// cancelled.
fn random_state(seed: u64, count: u64) -> SchedulerState {
    println!("list_tests seed {seed}");
    let mut rng = Rng(seed | 1);
    let mut state = SchedulerState::new();
    let mut now_ms = 1;
    for _ in 0..count {
        now_ms += rng.below(3);
        let queue = QUEUES[rng.below(QUEUES.len() as u64) as usize];
        let spec = TaskSpec::builder("t").queue(queue).max_attempts(1).build();
        state.apply(Command::SubmitTasks {
            now_ms,
            specs: vec![spec],
        });
    }
    for task_id in 1..=count {
        if rng.below(3) == 0 {
            state.apply(Command::CancelTask {
                now_ms,
                task_id,
                reason: "test".into(),
            });
        }
    }
    state.check_invariants().expect("invariants hold");
    state
}

/// Every page of a listing, concatenated, after checking each page's size and cursor.
fn all_pages(state: &SchedulerState, filter: &ListFilter, limit: usize) -> Vec<TaskId> {
    let mut ids = Vec::new();
    let mut cursor = 0;
    loop {
        let (page, next) = state.list(filter, cursor, limit);
        assert!(page.len() <= limit, "a page of {} with limit {limit}", page.len());
        ids.extend(page.iter().map(|t| t.id));
        match next {
            Some(id) => {
                assert_eq!(
                    Some(id),
                    page.last().map(|t| t.id),
                    "the cursor is the last id returned"
                );
                cursor = id;
            }
            None => return ids,
        }
    }
}

/// What a listing must return, by looking at every task.
fn expected(state: &SchedulerState, filter: &ListFilter) -> Vec<TaskId> {
    let mut ids: Vec<TaskId> = (1..=state.task_count() as TaskId)
        .filter(|id| {
            let task = state.get(*id).expect("ids are dense");
            filter.status.is_none_or(|s| task.status == s)
                && filter.queue.as_ref().is_none_or(|q| &task.spec.queue == q)
                && filter.namespace.as_deref().is_none_or(|n| task.spec.namespace() == n)
                && task.created_at_ms >= filter.since_ms
                && filter
                    .name_contains
                    .as_deref()
                    .is_none_or(|text| task.spec.name.contains(text))
                && (filter.request_id.is_none() || task.spec.client_request_id == filter.request_id)
        })
        .collect();
    if filter.order == ListOrder::NewestFirst {
        ids.reverse();
    }
    ids
}

fn filters() -> Vec<ListFilter> {
    let mut filters = Vec::new();
    for order in [ListOrder::NewestFirst, ListOrder::OldestFirst] {
        for status in [None, Some(TaskStatus::Pending), Some(TaskStatus::Cancelled)] {
            for queue in [None, Some("a"), Some("team-a:a"), Some("nosuch")] {
                for namespace in [None, Some("default"), Some("team-a"), Some("nosuch")] {
                    for since_ms in [0, 10, 25, 1000] {
                        filters.push(ListFilter {
                            namespace: namespace.map(str::to_string),
                            status,
                            queue: queue.map(str::to_string),
                            since_ms,
                            order,
                            ..ListFilter::default()
                        });
                    }
                }
            }
        }
    }
    filters
}

#[test]
fn paging_returns_every_match_once_in_order() {
    for seed in [1, 7, 42, 0x5eed] {
        let state = random_state(seed, 40);
        for filter in filters() {
            let want = expected(&state, &filter);
            for limit in [1, 2, 3, 100] {
                assert_eq!(
                    all_pages(&state, &filter, limit),
                    want,
                    "seed {seed} {filter:?} limit {limit}"
                );
            }
        }
    }
}

#[test]
fn newest_first_is_the_default() {
    let state = random_state(3, 5);
    let (page, next) = state.list(&ListFilter::default(), 0, 2);
    assert_eq!(page.iter().map(|t| t.id).collect::<Vec<_>>(), vec![5, 4]);
    assert_eq!(next, Some(4));
    let (page, next) = state.list(&ListFilter::default(), 4, 10);
    assert_eq!(page.iter().map(|t| t.id).collect::<Vec<_>>(), vec![3, 2, 1]);
    assert_eq!(next, None);
}

#[test]
fn queue_and_status_filters_walk_the_smaller_index() {
    let state = random_state(11, 30);
    let pending = state.by_status.get(&TaskStatus::Pending).expect("some pending");
    let in_a = state.by_queue.get("a").expect("some in queue a");
    let filter = ListFilter {
        status: Some(TaskStatus::Pending),
        queue: Some("a".into()),
        ..ListFilter::default()
    };
    let walked = state.list_candidates(&filter, 0).count();
    assert_eq!(walked, pending.len().min(in_a.len()));
    let queue_only = ListFilter {
        queue: Some("a".into()),
        ..ListFilter::default()
    };
    assert_eq!(state.list_candidates(&queue_only, 0).count(), in_a.len());
}

#[test]
fn the_queue_index_survives_a_snapshot() {
    let state = random_state(5, 50);
    let restored = SchedulerState::from_snapshot_bytes(&state.to_snapshot_bytes()).expect("restores");
    assert_eq!(restored, state);
    assert_eq!(restored.by_queue, state.by_queue);
}

#[test]
fn a_task_missing_from_the_queue_index_breaks_the_invariants() {
    let mut state = random_state(9, 10);
    let ids = state.by_queue.get_mut("a").expect("some in queue a");
    let first = *ids.get_min().expect("not empty");
    ids.remove(&first);
    assert!(state.check_invariants().is_err());
}

/// Tasks named `job-<i % 5>`, every third with the request id `req-<i>`, the 7th and the
/// 8th sharing the name `needle`.
fn named_state(count: u64) -> SchedulerState {
    let mut state = SchedulerState::new();
    for i in 1..=count {
        let name = if i == 7 || i == 8 {
            "needle".to_string()
        } else {
            format!("job-{}", i % 5)
        };
        let mut spec = TaskSpec::builder(&name).queue("a").max_attempts(1).build();
        if i % 3 == 0 {
            spec.client_request_id = Some(format!("req-{i}"));
        }
        state.apply(Command::SubmitTasks {
            now_ms: i,
            specs: vec![spec],
        });
    }
    state.check_invariants().expect("invariants hold");
    state
}

#[test]
fn name_and_request_id_filters_match_looking_at_every_task() {
    let state = named_state(60);
    for order in [ListOrder::NewestFirst, ListOrder::OldestFirst] {
        for name_contains in [
            None,
            Some("needle"),
            Some("job-3"),
            Some("job"),
            Some(""),
            Some("nosuch"),
        ] {
            for request_id in [None, Some("req-9"), Some("req-10"), Some("nosuch")] {
                let filter = ListFilter {
                    order,
                    name_contains: name_contains.map(str::to_string),
                    request_id: request_id.map(str::to_string),
                    ..ListFilter::default()
                };
                for limit in [1, 2, 100] {
                    assert_eq!(
                        all_pages(&state, &filter, limit),
                        expected(&state, &filter),
                        "{filter:?}, limit {limit}"
                    );
                }
            }
        }
    }
    let by_request = ListFilter {
        request_id: Some("req-9".into()),
        ..ListFilter::default()
    };
    assert_eq!(
        state.list_candidates(&by_request, 0).count(),
        1,
        "the request id index serves it"
    );
}

/// A filter that matches only old tasks walks at most MAX_LIST_SCANNED per page: the pages
/// before come back empty, with a cursor that goes on where they stopped.
#[test]
fn a_page_examines_at_most_max_list_scanned_tasks() {
    let count = 2 * MAX_LIST_SCANNED as u64 + 10;
    let state = named_state(count);
    for order in [ListOrder::NewestFirst, ListOrder::OldestFirst] {
        let filter = ListFilter {
            order,
            name_contains: Some("needle".into()),
            ..ListFilter::default()
        };
        let mut found = Vec::new();
        let mut pages = 0;
        let mut cursor = 0;
        loop {
            pages += 1;
            let (page, next) = state.list(&filter, cursor, 100);
            found.extend(page.iter().map(|t| t.id));
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        assert_eq!(found, expected(&state, &filter), "{order:?}");
        // Newest first walks 20,010 ids down to the needles (3 pages); oldest first finds
        // both on the first page, then walks the rest for nothing (3 pages).
        assert_eq!(pages, 3, "{order:?}");
    }
}
