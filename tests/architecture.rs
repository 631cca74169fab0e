//! The architecture, checked: no import cycle between the top-level modules of any crate,
//! each crate depends only on what its place in the design allows, and protobuf types and
//! `tonic::Status` stay in the gRPC layer.
//!
//! Deliberately plain string scanning of the sources and manifests (no parser, no new
//! crate): comments, string literals and `#[cfg(test)]` items are dropped first, so only
//! production code counts, and a failure names the cycle, the file or the dependency.
//!
//! What the scan sees: `crate::m`, `crate::{m, ...}`, `super::` chains that climb to the
//! crate root, and names the crate root re-exports (`pub use m::Item;` makes `crate::Item`
//! a use of `m`). Inline top-level modules (`mod x { ... }` in lib.rs or main.rs) are part
//! of the crate root and not nodes of the graph.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::path::PathBuf;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every crate of the workspace: (name for messages, its directory).
fn crate_dirs() -> Vec<(String, PathBuf)> {
    let root = workspace_root();
    let mut crates = vec![("raftsched (CLI)".to_string(), root.clone())];
    let mut members: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .expect("crates/ exists")
        .map(|entry| entry.expect("readable crates/").path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    members.sort();
    for dir in members {
        let name = format!("crates/{}", dir.file_name().unwrap().to_string_lossy());
        crates.push((name, dir));
    }
    crates
}

/// The source with comments, string and char literals removed (what is left is code).
fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        let starts_token = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == Some('/') {
            i = skip_while(&chars, i, |c| c != '\n');
        } else if c == '/' && next == Some('*') {
            i = find(&chars, i + 2, "*/").map_or(chars.len(), |end| end + 2);
        } else if c == '"' {
            i = skip_string(&chars, i + 1);
        } else if c == 'r' && starts_token && matches!(next, Some('"') | Some('#')) {
            i = skip_raw_string(&chars, i, &mut out);
        } else if c == '\'' && is_char_literal(&chars, i) {
            i = skip_while(&chars, i + 2, |c| c != '\'') + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn skip_while(chars: &[char], mut i: usize, keep: impl Fn(char) -> bool) -> usize {
    while i < chars.len() && keep(chars[i]) {
        i += 1;
    }
    i
}

fn find(chars: &[char], from: usize, needle: &str) -> Option<usize> {
    let needle: Vec<char> = needle.chars().collect();
    (from..chars.len()).find(|&i| chars[i..].starts_with(&needle))
}

/// Index after the closing quote of a string whose body starts at `i`.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// `r"..."` or `r#"..."#`; an `r#ident` (raw identifier) is kept as code.
fn skip_raw_string(chars: &[char], i: usize, out: &mut String) -> usize {
    let hashes = skip_while(chars, i + 1, |c| c == '#') - (i + 1);
    if chars.get(i + 1 + hashes) != Some(&'"') {
        out.push('r');
        return i + 1;
    }
    let closing: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
    find(chars, i + 2 + hashes, &closing).map_or(chars.len(), |end| end + closing.len())
}

/// A quote that opens a char literal (`'a'`, `'\n'`), not a lifetime (`'a`).
fn is_char_literal(chars: &[char], i: usize) -> bool {
    chars.get(i + 1) == Some(&'\\') || chars.get(i + 2) == Some(&'\'')
}

/// Code without the items marked `#[cfg(test)]` (test modules and helpers).
fn without_test_items(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        rest = &rest[at + "#[cfg(test)]".len()..];
        rest = &rest[item_end(rest)..];
    }
    out.push_str(rest);
    out
}

/// Where the item at the start of `code` ends: after its `;`, or its matching `}`.
fn item_end(code: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in code.char_indices() {
        match c {
            ';' if depth == 0 => return i + 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

fn production_code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    without_test_items(&strip_comments_and_literals(&text))
}

/// One crate's sources: its root files and, per top-level module, its files.
struct CrateSources {
    roots: Vec<PathBuf>,
    modules: BTreeMap<String, Vec<PathBuf>>,
}

fn crate_sources(src: &Path) -> CrateSources {
    let roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
        .iter()
        .map(|name| src.join(name))
        .filter(|path| path.is_file())
        .collect();
    let mut modules = BTreeMap::new();
    for root in &roots {
        for name in declared_modules(&production_code(root)) {
            let mut files = Vec::new();
            let file = src.join(format!("{name}.rs"));
            if file.is_file() {
                files.push(file);
            }
            rust_files(&src.join(&name), &mut files);
            modules.insert(name, files);
        }
    }
    CrateSources { roots, modules }
}

/// `mod name;` declarations (a module in its own file or directory).
fn declared_modules(code: &str) -> Vec<String> {
    let words: Vec<&str> = code
        .split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == "mod" && pair[1].ends_with(';'))
        .map(|pair| pair[1].trim_end_matches(';').to_string())
        .collect()
}

/// The `.rs` files under `dir`, except test files (`tests.rs`, `tests/`): they are
/// `#[cfg(test)]` modules, not part of the crate's production graph.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("readable source dir").path()).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "tests" || name == "tests.rs" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, files);
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
}

/// How many modules deep a file is below the crate root (`m.rs`, `m/mod.rs`: 1; `m/x.rs`: 2).
fn module_depth(src: &Path, file: &Path) -> usize {
    let relative = file.strip_prefix(src).expect("file under src");
    let parts = relative.components().count();
    if file.file_name().is_some_and(|n| n == "mod.rs") {
        parts - 1
    } else {
        parts
    }
}

/// Identifiers just inside a `{...}` group, at its top level: `{a, b::c, d::{e}}` -> a, b, d.
fn group_heads(group: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    for c in group.chars() {
        match c {
            ',' if depth == 0 => parts.push(String::new()),
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && c != ',' && c != '}' {
            parts.last_mut().expect("one part at least").push(c);
        }
    }
    parts
        .iter()
        .map(|part| leading_ident(part.trim()))
        .filter(|head| !head.is_empty())
        .collect()
}

fn leading_ident(text: &str) -> String {
    text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// The first path segments this code names below the crate root.
fn crate_root_paths(code: &str, depth: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut prefixes = vec!["crate::".to_string()];
    prefixes.push("super::".repeat(depth));
    for prefix in prefixes {
        for (at, _) in code.match_indices(&prefix) {
            let before = code[..at].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue; // `foo::crate::` or a longer `super::` chain
            }
            let rest = &code[at + prefix.len()..];
            if rest.starts_with('{') {
                names.extend(group_heads(&rest[1..item_end(rest).saturating_sub(1).max(1)]));
            } else {
                names.push(leading_ident(rest));
            }
        }
    }
    names
}

/// Names the crate root re-exports from a module: `pub use m::Item;` maps `Item` to `m`.
fn root_reexports(roots: &[PathBuf], modules: &BTreeMap<String, Vec<PathBuf>>) -> BTreeMap<String, String> {
    let mut reexports = BTreeMap::new();
    for root in roots {
        for statement in production_code(root).split(';') {
            let Some(path) = statement.trim().strip_prefix("pub use ") else {
                continue;
            };
            let path = path.trim().trim_start_matches("crate::").trim_start_matches("self::");
            let segments: Vec<&str> = path.split("::").map(str::trim).collect();
            let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
                continue;
            };
            let item = last.split(" as ").last().unwrap_or(last).trim();
            if modules.contains_key(*first) && segments.len() > 1 && !item.contains('{') {
                reexports.insert(item.to_string(), first.to_string());
            }
        }
    }
    reexports
}

type Graph = BTreeMap<String, BTreeSet<String>>;

fn module_graph(src: &Path) -> Graph {
    let sources = crate_sources(src);
    let reexports = root_reexports(&sources.roots, &sources.modules);
    let mut graph = Graph::new();
    for (module, files) in &sources.modules {
        let uses = graph.entry(module.clone()).or_default();
        for file in files {
            for name in crate_root_paths(&production_code(file), module_depth(src, file)) {
                let target = match sources.modules.contains_key(&name) {
                    true => Some(&name),
                    false => reexports.get(&name),
                };
                if let Some(target) = target.filter(|t| *t != module) {
                    uses.insert(target.clone());
                }
            }
        }
    }
    graph
}

/// A cycle of the graph as a path `a -> b -> ... -> a`, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut failures = Vec::new();
    for (name, dir) in crate_dirs() {
        let graph = module_graph(&dir.join("src"));
        if let Some(cycle) = find_cycle(&graph) {
            failures.push(format!("{name}: import cycle {}", cycle.join(" -> ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_scan_sees_uses_and_finds_cycles() {
    let code = strip_comments_and_literals(
        "use crate::a::X; // crate::b\nuse crate::{c, d::{E, F}}; let s = \"crate::g\"; super::super::h::f();",
    );
    assert_eq!(crate_root_paths(&code, 2), ["a", "c", "d", "h"]);
    assert_eq!(
        without_test_items("fn f() {}\n#[cfg(test)]\nmod tests { fn g() { crate::x(); } }\nfn h() {}"),
        "fn f() {}\n\nfn h() {}"
    );
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_string(), BTreeSet::from([to.to_string()])))
        .collect();
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let acyclic: Graph = [("a", "b"), ("b", "c")]
        .into_iter()
        .map(|(from, to)| (from.to_string(), BTreeSet::from([to.to_string()])))
        .collect();
    assert_eq!(find_cycle(&acyclic), None);
}

/// The dependencies a manifest declares in `[dependencies]` and `[build-dependencies]` (what
/// a build of the crate links; dev-dependencies only build its tests).
fn normal_dependencies(manifest: &Path) -> BTreeSet<String> {
    dependencies_in(manifest, &["dependencies", "build-dependencies"])
}

/// The dependency names of a manifest's `tables` (e.g. `dependencies`, `dev-dependencies`).
fn dependencies_in(manifest: &Path, tables: &[&str]) -> BTreeSet<String> {
    let text = fs::read_to_string(manifest).unwrap_or_else(|e| panic!("reading {}: {e}", manifest.display()));
    let mut deps = BTreeSet::new();
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']');
            let table = header.rsplit('.').next().unwrap_or(header);
            // `[workspace.dependencies]` only offers versions; members opt in one by one.
            in_section = tables.contains(&table) && !header.starts_with("workspace");
            if let Some((table, dep)) = header.split_once('.')
                && tables.contains(&table)
            {
                deps.insert(dep.to_string());
            }
            continue;
        }
        if in_section && !line.is_empty() && !line.starts_with('#') {
            let key = line.split(['=', '.']).next().unwrap_or(line).trim();
            deps.insert(key.trim_matches('"').to_string());
        }
    }
    deps
}

fn dependencies_by_crate() -> Vec<(String, BTreeSet<String>)> {
    crate_dirs()
        .into_iter()
        .map(|(name, dir)| (name, normal_dependencies(&dir.join("Cargo.toml"))))
        .collect()
}

#[test]
fn the_core_depends_on_serde_thiserror_postcard_and_imbl_only() {
    let deps = normal_dependencies(&workspace_root().join("crates/core/Cargo.toml"));
    // imbl: persistent ordered maps and sets for the state's collections, pure data
    // structures (no I/O, no clock; its ordered ones draw nothing random), so a snapshot can
    // encode an O(1) clone of the state while apply goes on.
    let allowed = BTreeSet::from(["serde", "thiserror", "postcard", "imbl"].map(String::from));
    let extra: Vec<&String> = deps.difference(&allowed).collect();
    assert!(extra.is_empty(), "crates/core must stay pure, but depends on {extra:?}");
}

/// `cargo tree -p raftsched-core` lists dev-dependencies too: a test-only edge to the server
/// would put tokio, tonic, openraft and sled under the core again.
#[test]
fn the_core_tests_need_only_datadriven_and_proptest() {
    let deps = dependencies_in(&workspace_root().join("crates/core/Cargo.toml"), &["dev-dependencies"]);
    let allowed = BTreeSet::from(["datadriven", "proptest"].map(String::from));
    let extra: Vec<&String> = deps.difference(&allowed).collect();
    assert!(
        extra.is_empty(),
        "crates/core's tests must not pull in other crates, but use {extra:?}"
    );
}

/// Fails naming every crate that depends on one of `forbidden` but is not in `allowed`.
fn only_these_depend_on(allowed: &[&str], forbidden: impl Fn(&str) -> bool, what: &str) {
    let offenders: Vec<String> = dependencies_by_crate()
        .into_iter()
        .filter(|(name, _)| !allowed.contains(&name.as_str()))
        .filter_map(|(name, deps)| {
            let hits: Vec<String> = deps.into_iter().filter(|d| forbidden(d)).collect();
            (!hits.is_empty()).then(|| format!("{name} depends on {hits:?}"))
        })
        .collect();
    assert!(offenders.is_empty(), "{what}:\n{}", offenders.join("\n"));
}

#[test]
fn only_the_store_depends_on_sled() {
    only_these_depend_on(
        &["crates/store"],
        |d| d == "sled",
        "only crates/store may depend on sled",
    );
}

#[test]
fn only_the_grpc_crates_depend_on_tonic_and_prost() {
    let allowed = [
        "crates/api",
        "crates/server",
        "crates/client",
        "crates/chaos",
        "crates/bench",
        "crates/testkit",
        "raftsched (CLI)",
    ];
    let grpc = |d: &str| d.starts_with("tonic") || d.starts_with("prost");
    only_these_depend_on(&allowed, grpc, "tonic and prost are for the gRPC crates only");
}

#[test]
fn openraft_stays_out_of_the_client_core_and_api() {
    for name in ["crates/client", "crates/core", "crates/api"] {
        let deps = normal_dependencies(&workspace_root().join(name).join("Cargo.toml"));
        assert!(!deps.contains("openraft"), "{name} must not depend on openraft");
    }
}

/// Whether production code names `tonic::Status`, also as `use tonic::{..., Status}`.
fn mentions_tonic_status(code: &str) -> bool {
    code.contains("tonic::Status")
        || code.match_indices("tonic::{").any(|(at, _)| {
            let group = &code[at + "tonic::".len()..];
            let group = &group[1..item_end(group).saturating_sub(1)];
            group.split([',', '{', '}']).any(|part| part.trim() == "Status")
        })
}

fn mentions_proto(code: &str) -> bool {
    code.contains("raftsched_api")
}

/// Where a crate may mention something: its top-level modules in `allowed`, nothing else
/// (not the crate root either).
fn mentioned_only_in(crate_dir: &str, allowed: &[&str], mentions: impl Fn(&str) -> bool) -> Vec<String> {
    let src = workspace_root().join(crate_dir).join("src");
    let sources = crate_sources(&src);
    let outside = sources
        .modules
        .iter()
        .filter(|(module, _)| !allowed.contains(&module.as_str()))
        .flat_map(|(_, files)| files.iter().cloned());
    sources
        .roots
        .iter()
        .cloned()
        .chain(outside)
        .filter(|file| mentions(&production_code(file)))
        .map(|file| file.strip_prefix(workspace_root()).unwrap().display().to_string())
        .collect()
}

/// A crate, the top-level modules allowed to mention something, what, and how to see it.
type MentionRule = (&'static str, &'static [&'static str], &'static str, fn(&str) -> bool);

#[test]
fn protobuf_types_and_tonic_status_stay_in_the_grpc_layer() {
    let rules: [MentionRule; 6] = [
        (
            "crates/server",
            &["grpc", "network"],
            "tonic::Status",
            mentions_tonic_status,
        ),
        (
            "crates/server",
            &["grpc", "network"],
            "raftsched_api (protobuf types)",
            mentions_proto,
        ),
        ("crates/client", &["cluster"], "tonic::Status", mentions_tonic_status),
        ("crates/chaos", &[], "tonic::Status", mentions_tonic_status),
        (".", &[], "tonic::Status", mentions_tonic_status),
        ("crates/store", &[], "raftsched_api (protobuf types)", mentions_proto),
    ];
    let mut failures = Vec::new();
    for (crate_dir, allowed, what, mentions) in rules {
        for file in mentioned_only_in(crate_dir, allowed, mentions) {
            failures.push(format!("{file} names {what}; in {crate_dir} only {allowed:?} may"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn client_errors_carry_no_tonic_type() {
    let error = workspace_root().join("crates/client/src/cluster/error.rs");
    let code = production_code(&error);
    assert!(
        !code.contains("tonic"),
        "ClientError must not expose tonic: {}",
        error.display()
    );
}
