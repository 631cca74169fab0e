//! Namespaces: the tenant boundary. Queues, schedules, tasks, workflows, request ids and
//! worker pools each belong to exactly one namespace, `default` unless named.
//!
//! A name that is a key of the state (a queue, a schedule) is stored *qualified*: the bare
//! name in the default namespace, `<namespace>:<name>` in any other. `:` is outside the
//! identifier alphabet (`[A-Za-z0-9_.-/]`), so a qualified name never equals a bare one and
//! splits one way only, and every index keyed by queue or schedule name (policies, ready
//! queues, retention, fairness) is per namespace with no change of layout: a log or
//! snapshot written before namespaces reads as the default namespace, as it was. (etcd's
//! namespaces are key prefixes too.) A task's namespace is its queue's; a workflow's is
//! its tasks'; a worker's is its [`NAMESPACE_LABEL`] (set by the API from the worker's
//! credential), and it takes only its namespace's tasks. Request ids are compared together
//! with the namespace of the task or workflow that carries them.
//!
//! Only the API layer qualifies and splits; clients see a namespace and a bare name.

use crate::state::StateError;
use crate::state::limits::shown;

/// The namespace of everything that names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// A namespace is 1–32 bytes of `[a-z0-9-]`, starting with a letter or digit: a DNS label
/// shorter than Kubernetes' 63, so it fits in a certificate's O and in front of a queue.
pub const MAX_NAMESPACE_BYTES: usize = 32;
/// Between a namespace and a bare name in a qualified name.
pub const SEPARATOR: char = ':';
/// The worker label that names a worker's namespace (absent: the default namespace).
pub const NAMESPACE_LABEL: &str = "raftsched/namespace";
/// How many namespaces one credential may name: a certificate's subject stays small.
pub const MAX_NAMESPACES_PER_CREDENTIAL: usize = 16;

const _: () = assert!(DEFAULT_NAMESPACE.len() <= MAX_NAMESPACE_BYTES);

/// Checks a namespace name; the error says the rule.
pub fn validate_namespace(namespace: &str) -> Result<(), StateError> {
    let well_formed = !namespace.is_empty()
        && namespace.len() <= MAX_NAMESPACE_BYTES
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !namespace.starts_with('-');
    if well_formed {
        return Ok(());
    }
    Err(StateError::InvalidArgument {
        field: "namespace".to_string(),
        problem: format!(
            "{} is not a namespace: use 1 to {MAX_NAMESPACE_BYTES} characters of a-z, 0-9 and '-', not starting \
             with '-' (e.g. team-a)",
            shown(namespace)
        ),
    })
}

/// The namespace a worker with these labels serves: its [`NAMESPACE_LABEL`], else the
/// default.
pub fn of_worker_labels(labels: &std::collections::BTreeMap<String, String>) -> &str {
    labels.get(NAMESPACE_LABEL).map_or(DEFAULT_NAMESPACE, String::as_str)
}

/// The stored form of `name` in `namespace`: bare in the default namespace.
pub fn qualify(namespace: &str, name: &str) -> String {
    if namespace == DEFAULT_NAMESPACE {
        name.to_string()
    } else {
        format!("{namespace}{SEPARATOR}{name}")
    }
}

/// The namespace a request names: empty means the default.
pub fn named_or_default(namespace: &str) -> Result<&str, StateError> {
    if namespace.is_empty() {
        return Ok(DEFAULT_NAMESPACE);
    }
    validate_namespace(namespace)?;
    Ok(namespace)
}

/// The stored form of a name a client gave bare, in the namespace its request names
/// (empty: the default). A bare name holding the separator is refused: `team-b:jobs` given
/// as a queue of namespace `team-a` (or of the default) would otherwise name team-b's
/// queue, past the caller's namespace check.
pub fn qualify_bare(field: &'static str, namespace: &str, bare: &str) -> Result<String, StateError> {
    let namespace = named_or_default(namespace)?;
    if bare.contains(SEPARATOR) {
        return Err(StateError::InvalidArgument {
            field: field.to_string(),
            problem: format!(
                "{} may not contain '{SEPARATOR}', which separates a namespace from a name: give the namespace in \
                 its own field (--namespace)",
                shown(bare)
            ),
        });
    }
    Ok(qualify(namespace, bare))
}

/// The namespace and the bare name of a stored name.
pub fn split(stored: &str) -> (&str, &str) {
    match stored.split_once(SEPARATOR) {
        Some((namespace, name)) => (namespace, name),
        None => (DEFAULT_NAMESPACE, stored),
    }
}

/// The namespace of a stored name.
pub fn namespace_of(stored: &str) -> &str {
    split(stored).0
}

/// Checks a stored name: its namespace part is a namespace other than `default` (whose
/// names are stored bare, so that each name has one form), and `check_bare` accepts the
/// rest.
pub fn validate_qualified(
    field: &'static str,
    stored: &str,
    check_bare: impl FnOnce(&str) -> Result<(), StateError>,
) -> Result<(), StateError> {
    if let Some((namespace, _)) = stored.split_once(SEPARATOR) {
        validate_namespace(namespace)?;
        if namespace == DEFAULT_NAMESPACE {
            return Err(StateError::InvalidArgument {
                field: field.to_string(),
                problem: format!(
                    "{} names the default namespace, whose names are stored bare",
                    shown(stored)
                ),
            });
        }
    }
    check_bare(split(stored).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_the_default_namespace_stay_bare_and_others_are_qualified() {
        assert_eq!(qualify(DEFAULT_NAMESPACE, "q"), "q");
        assert_eq!(qualify("team-a", "q"), "team-a:q");
        for (namespace, name) in [(DEFAULT_NAMESPACE, "q"), ("team-a", "q"), ("a", "x/y.z")] {
            assert_eq!(split(&qualify(namespace, name)), (namespace, name));
        }
        assert_eq!(namespace_of("jobs/nightly"), DEFAULT_NAMESPACE);
    }

    #[test]
    fn namespaces_are_short_lowercase_labels() {
        let longest = "a".repeat(MAX_NAMESPACE_BYTES);
        for good in ["a", "0", "team-a", "default", longest.as_str()] {
            assert_eq!(validate_namespace(good), Ok(()), "{good}");
        }
        let too_long = "a".repeat(MAX_NAMESPACE_BYTES + 1);
        for bad in ["", "-a", "Team", "a_b", "a:b", "a/b", "é", too_long.as_str()] {
            let error = validate_namespace(bad).unwrap_err().to_string();
            assert!(error.contains("a-z, 0-9 and '-'"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_bare_name_from_a_client_cannot_reach_another_namespace() {
        assert_eq!(qualify_bare("queue", "", "jobs"), Ok("jobs".to_string()));
        assert_eq!(qualify_bare("queue", "default", "jobs"), Ok("jobs".to_string()));
        assert_eq!(qualify_bare("queue", "team-a", "jobs"), Ok("team-a:jobs".to_string()));
        for namespace in ["", "team-a"] {
            let error = qualify_bare("queue", namespace, "team-b:jobs").unwrap_err().to_string();
            assert!(
                error.contains("may not contain ':'") && error.contains("--namespace"),
                "{error}"
            );
        }
        assert!(qualify_bare("queue", "Team A", "jobs").is_err());
        assert_eq!(named_or_default(""), Ok(DEFAULT_NAMESPACE));
    }

    #[test]
    fn a_stored_name_has_one_form() {
        let bare_ok = |_: &str| Ok(());
        assert_eq!(validate_qualified("queue", "q", bare_ok), Ok(()));
        assert_eq!(validate_qualified("queue", "team-a:q", bare_ok), Ok(()));
        assert!(validate_qualified("queue", "default:q", bare_ok).is_err());
        assert!(validate_qualified("queue", "Team:q", bare_ok).is_err());
        assert!(validate_qualified("queue", ":q", bare_ok).is_err());
        // The bare part is the caller's to check: a second separator is in it.
        let no_colon = |bare: &str| {
            if bare.contains(SEPARATOR) {
                Err(StateError::InvalidArgument {
                    field: "queue".into(),
                    problem: "colon".into(),
                })
            } else {
                Ok(())
            }
        };
        assert!(validate_qualified("queue", "a:b:c", no_colon).is_err());
    }
}
