//! Stamps the binary with the commit it was built from, for `raftsched --version` (and bug
//! reports): `git rev-parse --short=12 HEAD`, or `unknown` outside a git checkout (a crate
//! tarball). Uncommitted changes are not marked: the script reruns only when HEAD moves.

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=RAFTSCHED_GIT_COMMIT={commit}");
    // A new commit or a checkout changes HEAD or the ref it names.
    for path in [".git/HEAD", ".git/refs/heads"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
