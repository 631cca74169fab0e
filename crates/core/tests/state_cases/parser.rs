//! Directive arguments and spec fields: `key=value` tokens, quoted values, repeats.

use crate::DEFAULT_BACKOFF_MS;
use datadriven::TestCase;
use raftsched_core::state::AttemptOutcome;
use raftsched_core::state::Payload;
use raftsched_core::state::TaskSpec;
use std::collections::BTreeMap;

pub(crate) fn parse_outcome(text: &str) -> AttemptOutcome {
    [
        AttemptOutcome::Running,
        AttemptOutcome::Succeeded,
        AttemptOutcome::Failed,
        AttemptOutcome::TimedOut,
        AttemptOutcome::LeaseExpired,
        AttemptOutcome::Cancelled,
        AttemptOutcome::HandedBack,
        AttemptOutcome::WorkerRestarted,
    ]
    .into_iter()
    .find(|o| o.as_str() == text)
    .unwrap_or_else(|| panic!("unknown outcome {text:?}"))
}

pub(crate) fn arg(case: &TestCase, key: &str) -> Option<String> {
    case.args.get(key).map(|values| values.join(","))
}

pub(crate) fn arg_u64(case: &TestCase, key: &str) -> Option<u64> {
    arg(case, key).map(|v| v.parse().unwrap_or_else(|_| panic!("{key}={v:?} is not a number")))
}

/// The directive's arguments but `at`, by key, as `key=value` fields.
pub(crate) fn directive_fields(case: &TestCase) -> Vec<(String, String)> {
    case.args
        .iter()
        .filter(|(key, _)| key.as_str() != "at")
        .map(|(key, values)| (key.clone(), values.join(",")))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect()
}

/// The directive's arguments, then the fields of every input line.
pub(crate) fn all_fields(case: &TestCase) -> Vec<(String, String)> {
    let mut fields = directive_fields(case);
    fields.extend(case.input.lines().flat_map(tokenize));
    fields
}

/// Builds a spec from `key=value` fields; fields not given take a valid default.
pub(crate) fn parse_spec(fields: Vec<(String, String)>) -> TaskSpec {
    let mut spec = TaskSpec::builder("task")
        .max_attempts(3)
        .attempt_timeout_ms(60_000)
        .retry_backoff_ms(DEFAULT_BACKOFF_MS)
        .build();
    let mut command_line = "true".to_string();
    let mut env = BTreeMap::new();
    let mut opaque: Option<(String, Vec<u8>)> = None;
    for (key, value) in fields {
        let number = || -> i64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value:?} is not a number"))
        };
        let unsigned = || -> u64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value:?} is not a number"))
        };
        match key.as_str() {
            "name" => spec.name = value.clone(),
            "queue" => spec.queue = value.clone(),
            "priority" => spec.priority = number() as i32,
            "request" => spec.client_request_id = Some(value.clone()),
            "attempts" => spec.max_attempts = unsigned() as u32,
            "timeout" => spec.attempt_timeout_ms = unsigned(),
            "cmd" => command_line = value.clone(),
            "kind" => opaque.get_or_insert_with(Default::default).0 = value.clone(),
            "data" => opaque.get_or_insert_with(Default::default).1 = value.clone().into_bytes(),
            "cpu" => spec.resources.cpu_millis = unsigned() as u32,
            "mem" => spec.resources.memory_mb = unsigned() as u32,
            "affinity" => spec.affinity_key = Some(value.clone()),
            "backoff" => spec.retry_backoff_ms = unsigned(),
            "delay" => spec.delay_ms = unsigned(),
            "not_before" => spec.not_before_ms = unsigned(),
            "constraints" => {
                for pair in value.split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once(':')
                        .unwrap_or_else(|| panic!("expected k:v, got {pair:?}"));
                    spec.constraints.insert(k.to_string(), parse_value(v));
                }
            }
            "labels" => {
                for i in 0..number() {
                    spec.labels.insert(format!("k{i}"), "v".to_string());
                }
            }
            "envs" => {
                for i in 0..number() {
                    env.insert(format!("E{i}"), "v".to_string());
                }
            }
            _ => {
                if let Some(label) = key.strip_prefix("label.") {
                    spec.labels.insert(parse_value(label), value.clone());
                } else if let Some(name) = key.strip_prefix("env.") {
                    env.insert(parse_value(name), value.clone());
                } else if let Some(constraint) = key.strip_prefix("constraint.") {
                    spec.constraints.insert(parse_value(constraint), value.clone());
                } else {
                    panic!("unknown spec field {key:?}");
                }
            }
        }
    }
    spec.payload = match opaque {
        Some((kind, data)) => Payload::Opaque { kind, data },
        None => Payload::Command { command_line, env },
    };
    spec
}

/// Splits a spec line into `key=value` pairs. A token is quoted as a whole value
/// (`name="a b"`), or is a bare word up to the next space; see [`parse_value`].
pub(crate) fn tokenize(line: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut chars = line.trim().chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ').is_some() {}
        if chars.peek().is_none() {
            return fields;
        }
        let mut token = String::new();
        let mut in_quotes = false;
        while let Some(c) = chars.next() {
            match c {
                ' ' if !in_quotes => break,
                '"' => {
                    in_quotes = !in_quotes;
                    token.push(c);
                }
                '\\' if in_quotes => {
                    token.push(c);
                    token.extend(chars.next());
                }
                _ => token.push(c),
            }
        }
        assert!(!in_quotes, "unterminated quote in {line:?}");
        // The key ends at the first `=` that is not inside a generator or quotes.
        let split = split_key(&token).unwrap_or_else(|| panic!("expected key=value, got {token:?}"));
        let (key, value) = token.split_at(split);
        fields.push((key.to_string(), parse_value(&value[1..])));
    }
}

pub(crate) fn split_key(token: &str) -> Option<usize> {
    let mut depth = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in token.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '(' if !in_quotes => depth += 1,
            ')' if !in_quotes => depth -= 1,
            '=' if depth == 0 && !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// `"quoted with escapes"`, `(text*n)` for text repeated n times, or the text itself.
pub(crate) fn parse_value(raw: &str) -> String {
    if let Some(quoted) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            out.push(match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('0') => '\0',
                Some('u') => {
                    let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    let code = u32::from_str_radix(&hex, 16).unwrap_or_else(|_| panic!("bad \\u{{}} in {raw:?}"));
                    char::from_u32(code).unwrap_or_else(|| panic!("bad \\u{{}} in {raw:?}"))
                }
                Some(other) => other,
                None => panic!("dangling escape in {raw:?}"),
            });
        }
        return out;
    }
    if let Some(generator) = raw.strip_prefix('(').and_then(|r| r.strip_suffix(')'))
        && let Some((text, count)) = generator.rsplit_once('*')
    {
        let count: usize = count.parse().unwrap_or_else(|_| panic!("bad repeat count in {raw:?}"));
        return text.repeat(count);
    }
    raw.to_string()
}
