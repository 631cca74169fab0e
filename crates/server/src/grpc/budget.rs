//! Byte budgets for paged and composite responses: a page is counted in bytes as well as in
//! items, so that no response outgrows the client message cap.

use prost::Message;

use super::MAX_API_MESSAGE_BYTES;

/// Most bytes the items of one paged or composite response may take (tasks of a ListTasks
/// page or of a workflow, schedules of a ListSchedules page). 3 MiB, so that the rest of
/// the message (page token, workflow header) and what is filled in after measuring (the
/// leader's pending reasons) have 1 MiB of the 4 MiB cap. Pages are counted in items too:
/// 100 tasks with 64 KiB payloads already take 6.4 MiB, so a byte-blind page failed.
pub const MAX_RESPONSE_ITEMS_BYTES: usize = 3 * 1024 * 1024;
const _: () = assert!(MAX_RESPONSE_ITEMS_BYTES + 1024 * 1024 <= MAX_API_MESSAGE_BYTES);

/// Counts the encoded bytes of the items a response's repeated field takes as they are
/// added, and says when the next one would go over [`MAX_RESPONSE_ITEMS_BYTES`].
pub(crate) struct ByteBudget {
    used: usize,
    items: usize,
}

impl ByteBudget {
    pub(crate) fn new() -> ByteBudget {
        ByteBudget { used: 0, items: 0 }
    }

    /// Whether `item` still fits, counting it if so. The first item always fits, so that a
    /// page is never empty and paging always advances. One item is bounded by the field
    /// limits far below the budget: a task with every field at its limit (64 KiB payload,
    /// 32 labels and 32 constraints of 318 B, 100 attempts with 1 KiB errors, 8 KiB of
    /// tails) is about 0.25 MiB.
    pub(crate) fn admit(&mut self, item: &impl Message) -> bool {
        let cost = item_cost(item);
        if self.items > 0 && self.used.saturating_add(cost) > MAX_RESPONSE_ITEMS_BYTES {
            return false;
        }
        self.used = self.used.saturating_add(cost);
        self.items += 1;
        true
    }
}

/// Bytes an item takes in a repeated message field: its key (one byte for field numbers
/// below 16, two below 2048), its length prefix, and its encoding.
fn item_cost(item: &impl Message) -> usize {
    let len = item.encoded_len();
    2 + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Keeps the longest prefix of `items` (at least one) within [`MAX_RESPONSE_ITEMS_BYTES`],
/// for items that grew after they were admitted. Returns how many were kept.
pub(crate) fn keep_within_budget<T: Message>(items: &mut Vec<T>) -> usize {
    let mut budget = ByteBudget::new();
    let kept = items.iter().take_while(|item| budget.admit(*item)).count();
    items.truncate(kept);
    kept
}

/// Takes items from `items` while they fit the budget (at least one). Returns them, and
/// whether an item was left over (the page is not the last).
pub(crate) fn page_within_budget<T: Message>(items: impl IntoIterator<Item = T>) -> (Vec<T>, bool) {
    let mut budget = ByteBudget::new();
    let mut page = Vec::new();
    for item in items {
        if !budget.admit(&item) {
            return (page, true);
        }
        page.push(item);
    }
    (page, false)
}
