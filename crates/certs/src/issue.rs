//! Issuing credentials with rcgen: `raftsched certs init` (a new CA and the cluster's
//! credentials) and `raftsched certs issue` (one more, signed by the existing CA).
//!
//! Keys are ECDSA P-256 (rcgen's default: small, fast to generate and to handshake with).
//! Every file is written 0600 and the directory is 0700: a key is a role's whole power, and
//! another local user must not read it. Nothing is overwritten unless `force`.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;
use std::time::SystemTime;

use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::Issuer;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;

use crate::layout::CA_STEM;
use crate::layout::CONSOLE_TOKEN_FILE;
use crate::layout::CertsError;
use crate::layout::NAMESPACE_URI_PREFIX;
use crate::layout::Role;
use crate::layout::cert_path;
use crate::layout::key_path;
use crate::layout::node_name;
use crate::layout::validate_name;

/// The CA is valid 10 years: replacing it means issuing every credential again and
/// restarting every node and worker with the new CA at once, so it should outlive the
/// cluster.
pub const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);
/// Credentials are valid 1 year: each is replaced alone (`certs issue --force`, restart that
/// one process, no downtime), so a year bounds how long a leaked key works without making
/// rotation a chore.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
const _: () = assert!(LEAF_VALIDITY.as_secs() < CA_VALIDITY.as_secs());
/// Validity starts an hour back, so a host whose clock is a little behind accepts a
/// credential made just now.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// The SANs of every node certificate: clients verify `localhost` by default.
pub const NODE_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// What `certs init` creates besides the CA.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Node ids: `node-<id>` each.
    pub nodes: Vec<u64>,
    /// Worker ids: one worker credential each.
    pub workers: Vec<String>,
    /// More SANs for the node certificates (host names or IPs peers and clients dial).
    pub sans: Vec<String>,
}

impl Default for InitOptions {
    fn default() -> InitOptions {
        InitOptions {
            nodes: vec![1, 2, 3],
            workers: vec!["worker1".into(), "worker2".into()],
            sans: Vec::new(),
        }
    }
}

/// One credential to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub role: Role,
    pub name: String,
    /// The namespaces it may act in, each a URI SAN `urn:raftsched:namespace:<name>`
    /// ([`crate::layout::NAMESPACE_URI_PREFIX`]); none means the default namespace, `*`
    /// every namespace. An admin acts in all.
    pub namespaces: Vec<String>,
}

impl Credential {
    pub fn new(role: Role, name: impl Into<String>) -> Credential {
        Credential {
            role,
            name: name.into(),
            namespaces: Vec::new(),
        }
    }

    /// This credential, acting in `namespaces` instead.
    pub fn in_namespaces(self, namespaces: Vec<String>) -> Credential {
        Credential { namespaces, ..self }
    }
}

/// The credentials `certs init` makes: nodes, workers, `admin`, `client` (submitter),
/// `reader` (of the default namespace), and `prometheus`: a reader of every namespace, for
/// scraping the nodes' `/metrics`.
pub fn init_credentials(options: &InitOptions) -> Vec<Credential> {
    let nodes = options
        .nodes
        .iter()
        .map(|id| Credential::new(Role::Node, node_name(*id)));
    let workers = options.workers.iter().map(|w| Credential::new(Role::Worker, w.clone()));
    let others = [
        Credential::new(Role::Admin, "admin"),
        Credential::new(Role::Submitter, "client"),
        Credential::new(Role::Reader, "reader"),
        Credential::new(Role::Reader, "prometheus").in_namespaces(vec!["*".to_string()]),
    ];
    nodes.chain(workers).chain(others).collect()
}

/// A new CA in `dir` and every credential of `options`. Returns the files written.
pub fn init(dir: &Path, options: &InitOptions, force: bool) -> Result<Vec<PathBuf>, CertsError> {
    let credentials = init_credentials(options);
    for credential in &credentials {
        check_credential(credential)?;
    }
    let mut paths = vec![cert_path(dir, CA_STEM), key_path(dir, CA_STEM)];
    for credential in &credentials {
        paths.extend([cert_path(dir, &credential.name), key_path(dir, &credential.name)]);
    }
    paths.push(dir.join(CONSOLE_TOKEN_FILE));
    refuse_existing(&paths, force)?;
    create_dir(dir)?;
    write_console_token(dir, true)?;
    let ca_key = generate_key("the CA key")?;
    let ca_params = ca_params()?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(generate_error("the CA certificate"))?;
    write_private(&cert_path(dir, CA_STEM), &ca_cert.pem())?;
    write_private(&key_path(dir, CA_STEM), &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca_params, ca_key);
    for credential in &credentials {
        write_credential(dir, &issuer, credential, &options.sans)?;
    }
    Ok(paths)
}

/// One more credential in `dir`, signed by the CA there. Returns the files written.
pub fn issue(dir: &Path, credential: &Credential, sans: &[String], force: bool) -> Result<Vec<PathBuf>, CertsError> {
    check_credential(credential)?;
    let paths = vec![cert_path(dir, &credential.name), key_path(dir, &credential.name)];
    refuse_existing(&paths, force)?;
    let read = |path: PathBuf| std::fs::read_to_string(&path).map_err(|source| CertsError::Read { path, source });
    let ca_cert = read(cert_path(dir, CA_STEM))?;
    let ca_key = KeyPair::from_pem(&read(key_path(dir, CA_STEM))?).map_err(generate_error("reading ca.key"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, ca_key).map_err(generate_error("reading ca.crt"))?;
    write_credential(dir, &issuer, credential, sans)?;
    Ok(paths)
}

/// A new console token in `dir` (64 hex digits from the OS's random source, mode 0600).
/// Returns the file written.
pub fn write_console_token(dir: &Path, force: bool) -> Result<PathBuf, CertsError> {
    let path = dir.join(CONSOLE_TOKEN_FILE);
    refuse_existing(std::slice::from_ref(&path), force)?;
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &format!("{token}\n"))?;
    Ok(path)
}

/// `credential` from `dir` if it holds one, else issued now (as an operator issues one per
/// new worker): the tools and the test harness give each worker its own on first use.
/// Returns whether it was issued.
pub fn issue_if_missing(dir: &Path, credential: &Credential) -> Result<bool, CertsError> {
    if cert_path(dir, &credential.name).exists() {
        return Ok(false);
    }
    issue(dir, credential, &[], false).map(|_| true)
}

/// A node's name must be `node-<id>` (peers check it against the membership); every name
/// must be a file stem.
fn check_credential(credential: &Credential) -> Result<(), CertsError> {
    validate_name(&credential.name)?;
    let node_id = credential.name.strip_prefix("node-").map(str::parse::<u64>);
    match (credential.role, node_id) {
        (Role::Node, Some(Ok(id))) if id >= 1 && node_name(id) == credential.name => Ok(()),
        (Role::Node, _) => Err(CertsError::BadName {
            name: credential.name.clone(),
            why: "a node's name is node-<id>, its node id from 1 (e.g. node-4)",
        }),
        _ => Ok(()),
    }
}

fn refuse_existing(paths: &[PathBuf], force: bool) -> Result<(), CertsError> {
    let existing: Vec<PathBuf> = paths.iter().filter(|p| p.exists()).cloned().collect();
    if existing.is_empty() || force {
        return Ok(());
    }
    Err(CertsError::Exists { paths: existing })
}

fn create_dir(dir: &Path) -> Result<(), CertsError> {
    let failed = |source| CertsError::Write {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    // An existing directory keeps its mode under DirBuilder: tighten it.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)
}

/// Writes `text` to `path` with mode 0600 (also when replacing a file of another mode).
fn write_private(path: &Path, text: &str) -> Result<(), CertsError> {
    let failed = |source| CertsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
}

fn write_credential(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    credential: &Credential,
    sans: &[String],
) -> Result<(), CertsError> {
    let what = format!("the certificate of {}", credential.name);
    let key = generate_key(&what)?;
    let params = leaf_params(credential, sans)?;
    let cert = params.signed_by(&key, issuer).map_err(generate_error(&what))?;
    write_private(&cert_path(dir, &credential.name), &cert.pem())?;
    write_private(&key_path(dir, &credential.name), &key.serialize_pem())
}

fn generate_key(what: &str) -> Result<KeyPair, CertsError> {
    KeyPair::generate().map_err(generate_error(what))
}

fn generate_error(what: &str) -> impl Fn(rcgen::Error) -> CertsError + '_ {
    move |e| CertsError::Generate {
        what: what.to_string(),
        detail: e.to_string(),
    }
}

fn validity(params: &mut CertificateParams, valid_for: Duration) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let at = |t: Duration| {
        time::OffsetDateTime::from_unix_timestamp(t.as_secs() as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    params.not_before = at(now.saturating_sub(CLOCK_SKEW));
    params.not_after = at(now + valid_for);
}

fn ca_params() -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate_error("the CA"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "raftsched cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, CA_VALIDITY);
    Ok(params)
}

/// OU = role, CN = name; a node also gets the server SANs and may serve and dial, the others
/// may only dial.
fn leaf_params(credential: &Credential, extra_sans: &[String]) -> Result<CertificateParams, CertsError> {
    let sans: Vec<String> = match credential.role {
        Role::Node => NODE_SANS
            .iter()
            .map(ToString::to_string)
            .chain(extra_sans.iter().cloned())
            .collect(),
        _ => Vec::new(),
    };
    let mut params = CertificateParams::new(sans).map_err(|e| CertsError::Generate {
        what: format!("--san for {}", credential.name),
        detail: e.to_string(),
    })?;
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, credential.role.as_str());
    params
        .distinguished_name
        .push(DnType::CommonName, credential.name.as_str());
    // SANs, not subject attributes: a subject holds one value per attribute type in rcgen,
    // and a credential may name several namespaces.
    for namespace in &credential.namespaces {
        let uri = format!("{NAMESPACE_URI_PREFIX}{namespace}");
        let uri = rcgen::string::Ia5String::try_from(uri).map_err(|e| CertsError::Generate {
            what: format!("--namespaces {namespace}"),
            detail: e.to_string(),
        })?;
        params.subject_alt_names.push(rcgen::SanType::URI(uri));
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match credential.role {
        Role::Node => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        _ => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, LEAF_VALIDITY);
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(pem_text: &str) -> (String, String, Vec<String>, i64) {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
            it.next().and_then(|a| a.as_str().ok()).unwrap_or_default().to_string()
        };
        let ou = first(&mut cert.subject().iter_organizational_unit());
        let cn = first(&mut cert.subject().iter_common_name());
        let sans = cert
            .subject_alternative_name()
            .unwrap()
            .map(|ext| ext.value.general_names.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default();
        let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
        (ou, cn, sans, days)
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_writes_the_contracts_files_private_with_role_and_name() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("certs");
        let written = init(&dir, &InitOptions::default(), false).unwrap();
        let stems = [
            "ca",
            "node-1",
            "node-2",
            "node-3",
            "worker1",
            "worker2",
            "admin",
            "client",
            "reader",
            "prometheus",
        ];
        assert_eq!(
            written.len(),
            2 * stems.len() + 1,
            "every .crt and .key, and console.token"
        );
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CONSOLE_TOKEN_FILE)), 0o600);
        let token = crate::layout::read_console_token(&dir)
            .unwrap()
            .expect("init writes a console token");
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        for stem in stems {
            for ext in ["crt", "key"] {
                assert_eq!(mode(&dir.join(format!("{stem}.{ext}"))), 0o600, "{stem}.{ext}");
            }
        }
        let read = |stem: &str| std::fs::read_to_string(cert_path(&dir, stem)).unwrap();
        let (ou, cn, sans, days) = subject(&read("node-2"));
        assert_eq!((ou.as_str(), cn.as_str()), ("node", "node-2"));
        assert!(sans.iter().any(|s| s.contains("localhost")), "{sans:?}");
        assert!(sans.iter().any(|s| s.contains("7f:00:00:01")), "127.0.0.1: {sans:?}");
        assert_eq!(days, 365);
        for (stem, role) in [
            ("worker1", "worker"),
            ("admin", "admin"),
            ("client", "submitter"),
            ("reader", "reader"),
        ] {
            let (ou, cn, sans, _) = subject(&read(stem));
            assert_eq!((ou.as_str(), cn.as_str()), (role, stem));
            assert!(sans.is_empty(), "{stem}: {sans:?}");
        }
        let (ou, cn, sans, _) = subject(&read("prometheus"));
        assert_eq!((ou.as_str(), cn.as_str()), ("reader", "prometheus"));
        assert_eq!(sans.len(), 1, "{sans:?}");
        assert!(sans[0].contains("urn:raftsched:namespace:*"), "{sans:?}");
        let (_, _, _, ca_days) = subject(&read("ca"));
        assert_eq!(ca_days, 3650);
    }

    #[test]
    fn console_tokens_are_random_and_checked_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let read = || crate::layout::read_console_token(dir.path());
        assert_eq!(read().unwrap(), None, "no file: no token");
        write_console_token(dir.path(), false).unwrap();
        let first = read().unwrap().unwrap();
        assert!(
            write_console_token(dir.path(), false).is_err(),
            "not replaced without force"
        );
        write_console_token(dir.path(), true).unwrap();
        assert_ne!(read().unwrap().unwrap(), first);
        let path = dir.path().join(CONSOLE_TOKEN_FILE);
        let min = crate::layout::MIN_CONSOLE_TOKEN_CHARS;
        let max = crate::layout::MAX_CONSOLE_TOKEN_CHARS;
        for (text, ok) in [
            (String::new(), false),
            ("a".repeat(min - 1), false),
            (format!("  {}\n", "a".repeat(min)), true),
            ("a".repeat(max), true),
            ("a".repeat(max + 1), false),
            (format!("{} {}", "a".repeat(min), "b"), false),
            (format!("{}\u{e9}", "a".repeat(min)), false),
        ] {
            std::fs::write(&path, &text).unwrap();
            let result = read();
            assert_eq!(result.is_ok(), ok, "{text:?}: {result:?}");
            if let Err(e) = result {
                assert!(e.to_string().contains("console-token --dir"), "{e}");
            }
        }
    }

    #[test]
    fn nothing_is_overwritten_without_force() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        init(dir, &InitOptions::default(), false).unwrap();
        let before = std::fs::read(cert_path(dir, "ca")).unwrap();
        let error = init(dir, &InitOptions::default(), false).unwrap_err().to_string();
        assert!(
            error.contains("refusing to overwrite") && error.contains("--force"),
            "{error}"
        );
        assert!(error.contains("ca.crt"), "{error}");
        assert_eq!(std::fs::read(cert_path(dir, "ca")).unwrap(), before, "unchanged");
        let admin = Credential::new(Role::Admin, "admin");
        let error = issue(dir, &admin, &[], false).unwrap_err().to_string();
        assert!(error.contains("admin.crt"), "{error}");
        init(dir, &InitOptions::default(), true).unwrap();
        assert_ne!(
            std::fs::read(cert_path(dir, "ca")).unwrap(),
            before,
            "replaced with --force"
        );
    }

    #[test]
    fn issue_signs_with_the_existing_ca() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        init(dir, &InitOptions::default(), false).unwrap();
        let sans = vec!["node4.example".to_string()];
        issue(dir, &Credential::new(Role::Node, "node-4"), &sans, false).unwrap();
        let ca = std::fs::read_to_string(cert_path(dir, "ca")).unwrap();
        let node = std::fs::read_to_string(cert_path(dir, "node-4")).unwrap();
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.as_bytes()).unwrap();
        let (_, node_pem) = x509_parser::pem::parse_x509_pem(node.as_bytes()).unwrap();
        let (ca, node) = (ca_pem.parse_x509().unwrap(), node_pem.parse_x509().unwrap());
        node.verify_signature(Some(ca.public_key())).expect("signed by the CA");
        assert_eq!(node.issuer(), ca.subject());
        let (_, cn, sans, _) = subject(&std::fs::read_to_string(cert_path(dir, "node-4")).unwrap());
        assert_eq!(cn, "node-4");
        assert!(sans.iter().any(|s| s.contains("node4.example")), "{sans:?}");
    }

    #[test]
    fn issue_if_missing_issues_once_and_keeps_the_existing_one() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        init(dir, &InitOptions::default(), false).unwrap();
        let worker = Credential::new(Role::Worker, "worker9");
        assert!(issue_if_missing(dir, &worker).unwrap());
        let first = std::fs::read(cert_path(dir, "worker9")).unwrap();
        assert!(!issue_if_missing(dir, &worker).unwrap());
        assert_eq!(
            std::fs::read(cert_path(dir, "worker9")).unwrap(),
            first,
            "kept, not re-issued"
        );
        assert!(
            !issue_if_missing(dir, &Credential::new(Role::Worker, "worker1")).unwrap(),
            "from init"
        );
        assert!(
            issue_if_missing(dir, &Credential::new(Role::Node, "n9")).is_err(),
            "still checked"
        );
    }

    #[test]
    fn bad_credentials_are_refused_before_anything_is_written() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("certs");
        for (role, name) in [
            (Role::Node, "node-0"),
            (Role::Node, "worker1"),
            (Role::Node, "node-01"),
            (Role::Worker, "../x"),
        ] {
            let options = InitOptions {
                nodes: vec![],
                workers: vec![],
                sans: vec![],
            };
            let error = issue(&dir, &Credential::new(role, name), &[], false)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("{name:?}")) && error.contains("--name"),
                "{error}"
            );
            assert!(init(&dir, &options, false).is_ok());
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let error = issue(root.path(), &Credential::new(Role::Admin, "ops"), &[], false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("ca.crt") && error.contains("raftsched certs init"),
            "{error}"
        );
        assert!(!cert_path(root.path(), "ops").exists());
    }
}
