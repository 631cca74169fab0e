//! The credentials directory `D` (`raftsched certs init --dir D`): `D/ca.crt`, `D/ca.key`,
//! and `D/<name>.crt` + `D/<name>.key` per credential; reading one identity's PEM text.

use std::path::Path;
use std::path::PathBuf;

/// Names the credentials directory (or `--tls-dir`, or `tls_dir` in the node's TOML).
pub const TLS_DIR_ENV: &str = "RAFTSCHED_TLS_DIR";
/// The identity (file stem) used from the directory (or `--tls-identity`); defaults to
/// `node-<id>` for a node, the worker id for a worker, `admin` for the CLI and the tools.
pub const TLS_IDENTITY_ENV: &str = "RAFTSCHED_TLS_IDENTITY";
/// The name clients check the server's certificate for; `localhost` (a SAN of every node
/// certificate) unless set.
pub const TLS_SERVER_NAME_ENV: &str = "RAFTSCHED_TLS_SERVER_NAME";
/// The server name clients verify by default.
pub const DEFAULT_SERVER_NAME: &str = "localhost";
/// The identity the CLI (every command but `node` and `worker`) and the tools use by default.
pub const DEFAULT_CLIENT_IDENTITY: &str = "admin";

/// The CA's file stem: `ca.crt`, `ca.key`. Not a credential name.
pub const CA_STEM: &str = "ca";

/// The console token's file in the credentials dir: the secret a browser signs in to a
/// node's web console with (`Authorization: Bearer`), as a reader of every namespace.
pub const CONSOLE_TOKEN_FILE: &str = "console.token";
/// A console token is 32 to 256 characters of `A-Z a-z 0-9 . _ - ~ + /` (`certs init` writes
/// 64 hex digits: 256 random bits). 32 characters of hex are 128 bits: no shorter guess.
pub const MIN_CONSOLE_TOKEN_CHARS: usize = 32;
pub const MAX_CONSOLE_TOKEN_CHARS: usize = 256;

/// A credential name is a file stem: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`
/// or `-` (no hidden files, no flag look-alikes, no path separators).
pub const MAX_NAME_BYTES: usize = 64;

/// The roles of the contract, as the OU of a certificate's Subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Node,
    Admin,
    Submitter,
    Reader,
    Worker,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Node, Role::Admin, Role::Submitter, Role::Reader, Role::Worker];

    /// The OU text.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Admin => "admin",
            Role::Submitter => "submitter",
            Role::Reader => "reader",
            Role::Worker => "worker",
        }
    }

    pub fn parse(text: &str) -> Result<Role, CertsError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| CertsError::BadRole { role: text.to_string() })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why credentials could not be read or written. Each names the file or value and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("role {role:?} is not one of node, admin, submitter, reader, worker (--role)")]
    BadRole { role: String },
    #[error(
        "name {name:?}: {why}; a name is 1 to {MAX_NAME_BYTES} characters of A-Z a-z 0-9 . _ -, not starting \
         with . or - (--name)"
    )]
    BadName { name: String, why: &'static str },
    #[error("cannot read {path}: {source}; create the credentials with `raftsched certs init --dir {dir}`", dir = .path.parent().map_or_else(|| ".".into(), |p| p.display().to_string()))]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "refusing to overwrite {}: it exists; pass --force to replace it (the old credential stops working \
         once the nodes trust a new CA)",
        .paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Exists { paths: Vec<PathBuf> },
    #[error("{what}: {detail}")]
    Generate { what: String, detail: String },
    #[error(
        "{path}: a console token is {MIN_CONSOLE_TOKEN_CHARS} to {MAX_CONSOLE_TOKEN_CHARS} characters of A-Z a-z \
         0-9 . _ - ~ + / on one line; write a new one with `raftsched certs console-token --dir {dir} --force`",
        dir = .path.parent().map_or_else(|| ".".into(), |p| p.display().to_string())
    )]
    BadConsoleToken { path: PathBuf },
}

/// The console token of the credentials dir `dir`; None if it has none.
pub fn read_console_token(dir: &Path) -> Result<Option<String>, CertsError> {
    let path = dir.join(CONSOLE_TOKEN_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CertsError::Read { path, source }),
    };
    let token = text.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~' | '+' | '/');
    if !(MIN_CONSOLE_TOKEN_CHARS..=MAX_CONSOLE_TOKEN_CHARS).contains(&token.len()) || !token.chars().all(allowed) {
        return Err(CertsError::BadConsoleToken { path });
    }
    Ok(Some(token.to_string()))
}

/// Checks a credential name (a file stem).
pub fn validate_name(name: &str) -> Result<(), CertsError> {
    let bad = |why| {
        Err(CertsError::BadName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return bad("wrong length");
    }
    if name.starts_with(['.', '-']) {
        return bad("starts with . or -");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("has a character outside A-Z a-z 0-9 . _ -");
    }
    if name == CA_STEM {
        return bad("\"ca\" is the CA's own file name");
    }
    Ok(())
}

/// The prefix of a node's credential name (and the CN of its certificate): `node-<id>`.
pub const NODE_NAME_PREFIX: &str = "node-";

/// A credential's namespaces are URI SANs with this prefix and the namespace after it
/// (`urn:raftsched:namespace:team-a`; `...:*` for every namespace).
pub const NAMESPACE_URI_PREFIX: &str = "urn:raftsched:namespace:";

/// The file stem of node `id`'s credential: `node-<id>`.
pub fn node_name(id: u64) -> String {
    format!("{NODE_NAME_PREFIX}{id}")
}

pub fn cert_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.crt"))
}

pub fn key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.key"))
}

/// One identity's PEM text: the CA that signs every credential of the cluster, and the
/// identity's own certificate and private key.
#[derive(Clone, PartialEq, Eq)]
pub struct Pems {
    pub ca_cert: String,
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for Pems {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pems")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Pems {
    /// Reads `dir/ca.crt`, `dir/<identity>.crt` and `dir/<identity>.key`.
    pub fn from_dir(dir: &Path, identity: &str) -> Result<Pems, CertsError> {
        validate_name(identity)?;
        let read = |path: PathBuf| std::fs::read_to_string(&path).map_err(|source| CertsError::Read { path, source });
        Ok(Pems {
            ca_cert: read(cert_path(dir, CA_STEM))?,
            cert: read(cert_path(dir, identity))?,
            key: read(key_path(dir, identity))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_file_stems_only() {
        for good in ["node-1", "worker1", "admin", "a.b_c-d", &"x".repeat(MAX_NAME_BYTES)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "-f",
            "a/b",
            "../x",
            "a b",
            "ca",
            &"x".repeat(MAX_NAME_BYTES + 1),
        ] {
            let error = validate_name(bad).expect_err(bad).to_string();
            assert!(
                error.contains("--name") && error.contains(&format!("{bad:?}")),
                "{error}"
            );
        }
    }

    #[test]
    fn roles_are_the_contracts_five() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
        let error = Role::parse("root").unwrap_err().to_string();
        assert!(error.contains("\"root\"") && error.contains("--role"), "{error}");
    }

    #[test]
    fn a_missing_file_names_it_and_the_command_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let error = Pems::from_dir(dir.path(), "admin").unwrap_err().to_string();
        assert!(error.contains("ca.crt"), "{error}");
        assert!(error.contains("raftsched certs init --dir"), "{error}");
    }
}
