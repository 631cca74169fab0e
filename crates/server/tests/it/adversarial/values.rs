//! Extreme values for every kind of field, described by how they are built: a failing case
//! prints `Repeat('é', 129)` rather than 258 bytes, and shrinking moves toward the first
//! (valid) alternative of each union.

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::sample::select;

/// One byte over the 4 MiB client message cap (`raftsched_api::MAX_API_MESSAGE_BYTES`):
/// the transport must refuse it, not the node fall over.
pub const OVER_MESSAGE_CAP: usize = raftsched_api::MAX_API_MESSAGE_BYTES + 1;
/// Largest request the harness builds (8 MiB): twice the message cap is enough to test
/// the cap, and 1000 copies of a 3 MiB spec (3 GB) would take the client longer to encode
/// than any deadline. Repetitions (SubmitTasks, workflows) stop at this size.
pub const MAX_SENT_BYTES: usize = 2 * raftsched_api::MAX_API_MESSAGE_BYTES;
/// How many copies of a message of `one` bytes fit in [`MAX_SENT_BYTES`], plus one so that
/// the result is still over the cap when it is cut short.
pub fn copies_within_budget(wanted: usize, one: usize) -> usize {
    wanted.min(MAX_SENT_BYTES / one.max(1) + 1)
}
/// One byte over the 64 KiB payload limit, the largest field limit of a task.
pub const OVER_PAYLOAD: usize = raftsched_core::state::limits::MAX_PAYLOAD_BYTES + 1;

/// Strings that break assumptions: empty, blank, separators, path tricks, multibyte,
/// control characters, right-to-left override, shell and template syntax.
const ODD_LITERALS: &[&str] = &[
    "",
    " ",
    "a",
    "default",
    "a b",
    "a/b",
    "/",
    "..",
    "../..",
    "-",
    ".",
    "ä",
    "名前",
    "😀",
    "\0",
    "\n",
    "a\u{7f}",
    "\u{202e}evil",
    "%00",
    "${HOME}",
    "k=v",
    "x,y",
    "raftsched/worker",
    "18446744073709551616",
    "-1",
];

/// One byte (ASCII), two, three and four bytes per char, and characters the checks refuse.
const CHARS: &[char] = &['a', 'é', '€', '😀', '\n', '\0', ' ', '/', '\u{7f}', '-'];

#[derive(Clone, Debug)]
pub enum Text {
    Lit(&'static str),
    /// `n` copies of one char.
    Repeat(char, usize),
    /// A valid prefix, then `n` copies of `c`.
    Padded(&'static str, char, usize),
}

impl Text {
    pub fn build(&self) -> String {
        match self {
            Text::Lit(s) => (*s).to_string(),
            Text::Repeat(c, n) => std::iter::repeat_n(*c, *n).collect(),
            Text::Padded(prefix, c, n) => {
                let mut s = (*prefix).to_string();
                s.extend(std::iter::repeat_n(*c, *n));
                s
            }
        }
    }
}

/// Lengths around a limit of `limit` bytes (or chars), plus one over the payload limit; a
/// string over the whole message cap is rare (it costs 4 MiB per send).
fn lengths(limit: usize) -> BoxedStrategy<usize> {
    let edges = vec![0, 1, limit.saturating_sub(1), limit, limit + 1, limit * 2, OVER_PAYLOAD];
    prop_oneof![30 => select(edges), 1 => Just(OVER_MESSAGE_CAP)].boxed()
}

/// A string field whose valid value is `valid` and whose limit is `limit` bytes.
pub fn text(valid: &'static str, limit: usize) -> BoxedStrategy<Text> {
    prop_oneof![
        4 => Just(Text::Lit(valid)),
        2 => select(ODD_LITERALS).prop_map(Text::Lit),
        2 => (select(CHARS), lengths(limit)).prop_map(|(c, n)| Text::Repeat(c, n)),
        1 => (select(CHARS), lengths(limit)).prop_map(move |(c, n)| Text::Padded(valid, c, n)),
    ]
    .boxed()
}

/// A string field chosen mostly from `choices` (valid and invalid spellings of an enum-like
/// text field such as a placement or a time zone), sometimes from [`text`].
pub fn choice(choices: &'static [&'static str], limit: usize) -> BoxedStrategy<Text> {
    prop_oneof![3 => select(choices).prop_map(Text::Lit), 1 => text(choices[0], limit)].boxed()
}

fn edges_u64(limits: &[u64]) -> Vec<u64> {
    let mut edges = vec![
        0,
        1,
        u64::MAX,
        u64::MAX - 1,
        u64::from(u32::MAX),
        i64::MAX as u64,
        i64::MAX as u64 + 1,
    ];
    for limit in limits {
        edges.extend([limit.saturating_sub(1), *limit, limit.saturating_add(1)]);
    }
    edges
}

/// An unsigned 64-bit field: its valid value, the edges of its limits, the type's edges,
/// anything.
pub fn u64s(valid: u64, limits: &[u64]) -> BoxedStrategy<u64> {
    prop_oneof![4 => Just(valid), 4 => select(edges_u64(limits)), 1 => any::<u64>()].boxed()
}

pub fn u32s(valid: u32, limits: &[u32]) -> BoxedStrategy<u32> {
    let mut edges = vec![0, 1, u32::MAX, u32::MAX - 1, i32::MAX as u32, i32::MAX as u32 + 1];
    for limit in limits {
        edges.extend([limit.saturating_sub(1), *limit, limit.saturating_add(1)]);
    }
    prop_oneof![4 => Just(valid), 4 => select(edges), 1 => any::<u32>()].boxed()
}

pub fn i32s() -> BoxedStrategy<i32> {
    let edges = vec![0, 1, -1, i32::MIN, i32::MIN + 1, i32::MAX, i32::MAX - 1];
    prop_oneof![4 => Just(0), 4 => select(edges), 1 => any::<i32>()].boxed()
}

/// A proto enum field with `known` defined values (0..known): those, then unknown ones.
pub fn enum_value(known: i32) -> BoxedStrategy<i32> {
    prop_oneof![
        4 => 0..known,
        2 => select(vec![known, -1, 99, i32::MIN, i32::MAX]),
    ]
    .boxed()
}

/// A map<string, string>.
#[derive(Clone, Debug)]
pub enum MapGen {
    Empty,
    One(Text, Text),
    /// `n` entries with valid keys `k0`, `k1`, ... and values of `value_len` bytes.
    Many {
        n: usize,
        value_len: usize,
    },
}

impl MapGen {
    pub fn build(&self) -> HashMap<String, String> {
        match self {
            MapGen::Empty => HashMap::new(),
            MapGen::One(k, v) => HashMap::from([(k.build(), v.build())]),
            MapGen::Many { n, value_len } => (0..*n).map(|i| (format!("k{i}"), "v".repeat(*value_len))).collect(),
        }
    }
}

/// A map with at most `max_entries` entries, keys of at most `key_limit` bytes and values
/// of at most `value_limit`.
pub fn maps(max_entries: usize, key_limit: usize, value_limit: usize) -> BoxedStrategy<MapGen> {
    let counts = vec![1, max_entries.saturating_sub(1), max_entries, max_entries + 1, 10_000];
    let value_lens = vec![0, 1, value_limit, value_limit + 1];
    prop_oneof![
        4 => Just(MapGen::Empty),
        2 => (text("k", key_limit), text("v", value_limit)).prop_map(|(k, v)| MapGen::One(k, v)),
        1 => (select(counts), select(value_lens)).prop_map(|(n, value_len)| MapGen::Many { n, value_len }),
    ]
    .boxed()
}

/// A repeated uint64 of attempt tokens.
#[derive(Clone, Debug)]
pub enum Tokens {
    None,
    /// Up to this many of the real tokens the harness has seen, newest first.
    Known(usize),
    Lits(Vec<u64>),
    /// `n` distinct values counting down from u64::MAX (10 bytes each on the wire).
    Many(usize),
}

pub fn tokens() -> BoxedStrategy<Tokens> {
    prop_oneof![
        3 => Just(Tokens::None),
        3 => (1usize..8).prop_map(Tokens::Known),
        2 => proptest::collection::vec(u64s(1, &[]), 1..6).prop_map(Tokens::Lits),
        1 => select(vec![1000, 10_001, 100_000, 400_000]).prop_map(Tokens::Many),
    ]
    .boxed()
}
