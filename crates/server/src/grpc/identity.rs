//! Who is calling: the role and name in the subject of the client's verified certificate
//! (the certificate identity contract, shared with `raftsched certs`): OU = the role, CN =
//! the name (`node-<id>` for a node, the worker id for a worker, any name for the others).
//!
//! Each URI SAN `urn:raftsched:namespace:<name>` names a namespace the credential acts in;
//! none means the default namespace, `...:*` every namespace; an admin's or node's acts in
//! every namespace whatever its SANs say.
//!
//! The TLS layer has already verified the chain against the cluster CA before a handler
//! runs; this module only reads the subject of the leaf.

use std::sync::Arc;
use std::sync::OnceLock;

use crate::grpc::admission::Transport;
use tonic::Request;
use tonic::Status;
use x509_parser::prelude::FromDer;
use x509_parser::prelude::X509Certificate;

/// What a credential may do (the OU of its subject); see ARCHITECTURE.md, Security model.
/// The contract's one definition, shared with `raftsched certs`, which issues them.
pub(crate) use raftsched_certs::Role;
use raftsched_certs::layout::NAMESPACE_URI_PREFIX;
use raftsched_certs::layout::NODE_NAME_PREFIX;
use raftsched_core::state::limits::shown;
use raftsched_core::state::namespace;
use raftsched_core::state::namespace::MAX_NAMESPACE_BYTES;
use raftsched_core::state::namespace::MAX_NAMESPACES_PER_CREDENTIAL;

/// A CN longer than this is refused: the longest name a credential needs is a worker id
/// (`MAX_WORKER_ID_BYTES`, 128 bytes); RFC 5280's upper bound for a CN is 64 characters,
/// but worker ids may be longer, so the bound is theirs.
const MAX_NAME_BYTES: usize = raftsched_core::state::limits::MAX_WORKER_ID_BYTES;

/// A caller: its role, its name (a node's `node-<id>`, a worker's id) and its namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) role: Role,
    pub(crate) name: String,
    pub(crate) namespaces: Namespaces,
}

impl Identity {
    /// Who a console call signed in with the console token acts as: a reader of every
    /// namespace, named `console` in logs.
    pub(crate) fn console() -> Identity {
        Identity {
            role: Role::Reader,
            name: "console".to_string(),
            namespaces: Namespaces::All,
        }
    }
}

/// The namespaces a caller acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Namespaces {
    All,
    /// Sorted, without duplicates, at most [`MAX_NAMESPACES_PER_CREDENTIAL`].
    Only(Vec<String>),
}

impl Namespaces {
    pub(crate) fn contains(&self, namespace: &str) -> bool {
        match self {
            Namespaces::All => true,
            Namespaces::Only(names) => names.binary_search_by(|n| n.as_str().cmp(namespace)).is_ok(),
        }
    }
}

impl std::fmt::Display for Namespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Namespaces::All => f.write_str("every namespace"),
            Namespaces::Only(names) => write!(f, "namespace {}", names.join(", ")),
        }
    }
}

/// The O that grants every namespace.
const EVERY_NAMESPACE: &str = "*";

impl Identity {
    /// The node id a node's name carries (`node-2` → 2); `None` for any other role.
    pub(crate) fn node_id(&self) -> Option<u64> {
        if self.role != Role::Node {
            return None;
        }
        node_id_of(&self.name)
    }
}

/// Why a certificate's subject names no identity of the contract. Every message says what
/// to do; none quotes more than the first 64 bytes of the certificate's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IdentityError {
    #[error("the client certificate is not a readable X.509 certificate ({0})")]
    NotX509(String),
    #[error(
        "the client certificate's subject has no OU (organizationalUnitName); the OU names the role, one of \
         node, admin, submitter, reader, worker: issue it with `raftsched certs issue --role R --name N`"
    )]
    NoRole,
    #[error(
        "the client certificate's subject has {0} OUs; exactly one (the role) is accepted: issue it with \
         `raftsched certs issue --role R --name N`"
    )]
    SeveralRoles(usize),
    #[error(
        "the client certificate's OU {} is not a role; the roles are node, admin, submitter, reader, worker: \
         issue it with `raftsched certs issue --role R --name N`",
        shown(.0)
    )]
    UnknownRole(String),
    #[error(
        "the client certificate's subject has {0} CNs; exactly one (the name, 1 to {MAX_NAME_BYTES} bytes) is \
         accepted: issue it with `raftsched certs issue --role R --name N`"
    )]
    NotOneName(usize),
    #[error(
        "the client certificate's CN is {} bytes; a name is 1 to {MAX_NAME_BYTES} bytes: issue it with \
         `raftsched certs issue --role R --name N`",
        .0
    )]
    NameLength(usize),
    #[error(
        "the client certificate's {what} is not a text string ({detail}); issue it with \
         `raftsched certs issue --role R --name N`"
    )]
    NotText { what: &'static str, detail: String },
    #[error(
        "a node certificate's CN must be node-<id> (e.g. node-2), not {}: issue it with \
         `raftsched certs issue --role node --name node-<id>`",
        shown(.0)
    )]
    NotANodeName(String),
    #[error(
        "the client certificate's namespace SAN names {}, not a namespace (1 to {MAX_NAMESPACE_BYTES} characters of \
         a-z, 0-9 and '-') nor *: issue it with `raftsched certs issue --role R --name N --namespaces NS`",
        shown(.0)
    )]
    BadNamespace(String),
    #[error(
        "the client certificate names {0} namespaces; at most {MAX_NAMESPACES_PER_CREDENTIAL}: use * for every \
         namespace, or issue one credential per group of namespaces"
    )]
    TooManyNamespaces(usize),
    #[error("the client certificate's subject alternative names are not readable ({0})")]
    BadSans(String),
}

/// The identity a DER certificate's subject names, by the contract: exactly one OU that is
/// a role and exactly one CN of 1..=128 bytes (for a node, `node-<id>`).
pub(crate) fn identity_from_der(der: &[u8]) -> Result<Identity, IdentityError> {
    let (_, certificate) = X509Certificate::from_der(der).map_err(|e| IdentityError::NotX509(e.to_string()))?;
    let subject = certificate.subject();
    let ous: Vec<_> = subject.iter_organizational_unit().collect();
    let ou = match ous.as_slice() {
        [] => return Err(IdentityError::NoRole),
        [one] => text_of(one, "OU")?,
        several => return Err(IdentityError::SeveralRoles(several.len())),
    };
    let role = Role::parse(ou).map_err(|_| IdentityError::UnknownRole(ou.to_string()))?;
    let cns: Vec<_> = subject.iter_common_name().collect();
    let [cn] = cns.as_slice() else {
        return Err(IdentityError::NotOneName(cns.len()));
    };
    let name = text_of(cn, "CN")?;
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(IdentityError::NameLength(name.len()));
    }
    if role == Role::Node && node_id_of(name).is_none() {
        return Err(IdentityError::NotANodeName(name.to_string()));
    }
    let namespaces = match role {
        Role::Admin | Role::Node => Namespaces::All,
        _ => {
            let sans = certificate
                .subject_alternative_name()
                .map_err(|e| IdentityError::BadSans(e.to_string()))?;
            let uris = sans
                .iter()
                .flat_map(|ext| ext.value.general_names.iter())
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(NAMESPACE_URI_PREFIX),
                    _ => None,
                });
            namespaces_of(uris)?
        }
    };
    Ok(Identity {
        role,
        name: name.to_string(),
        namespaces,
    })
}

/// The namespaces the namespace SANs name: the default namespace when there is none.
fn namespaces_of<'a>(named: impl Iterator<Item = &'a str>) -> Result<Namespaces, IdentityError> {
    let mut names = Vec::new();
    for namespace in named {
        if namespace == EVERY_NAMESPACE {
            return Ok(Namespaces::All);
        }
        if namespace::validate_namespace(namespace).is_err() {
            return Err(IdentityError::BadNamespace(namespace.to_string()));
        }
        names.push(namespace.to_string());
        if names.len() > MAX_NAMESPACES_PER_CREDENTIAL {
            return Err(IdentityError::TooManyNamespaces(names.len()));
        }
    }
    if names.is_empty() {
        names.push(namespace::DEFAULT_NAMESPACE.to_string());
    }
    names.sort_unstable();
    names.dedup();
    Ok(Namespaces::Only(names))
}

fn text_of<'a>(
    attribute: &'a x509_parser::x509::AttributeTypeAndValue<'_>,
    what: &'static str,
) -> Result<&'a str, IdentityError> {
    attribute.as_str().map_err(|e| IdentityError::NotText {
        what,
        detail: e.to_string(),
    })
}

/// `node-<id>` with `<id>` a decimal u64 written canonically (no sign, no leading zero), so
/// one node has one name.
fn node_id_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(NODE_NAME_PREFIX)?;
    let id: u64 = digits.parse().ok()?;
    (id.to_string() == digits).then_some(id)
}

/// The identity a TLS connection's leaf certificate names, read on the connection's first
/// call and kept for the rest: parsing the X.509 leaf on every call was 4.4 % of a leader's
/// CPU under 100 clients' single submits (perf, `bench/results/2026-12-04-2126-flame-100-clients.svg`).
/// Sound because a connection's certificates are fixed by its handshake: rustls does no
/// renegotiation, and TLS 1.3 post-handshake authentication is not offered.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdentityCache(Arc<OnceLock<Result<Identity, IdentityError>>>);

impl IdentityCache {
    /// The identity `leaf` names; read from `leaf` only the first time (the connection's
    /// leaf, the same on every call).
    fn get_or_read(&self, leaf: &[u8]) -> Result<Identity, IdentityError> {
        self.0.get_or_init(|| identity_from_der(leaf)).clone()
    }
}

/// The caller of `request`, from the verified leaf certificate of its connection.
///
/// `Ok(None)` when the connection is not TLS (the server runs `--insecure`: every call is
/// allowed). On a TLS connection a missing client certificate, or a leaf whose subject the
/// contract does not know, is UNAUTHENTICATED with what to do.
///
/// The connection's kind comes from the node's listener ([`Transport`], put on every request
/// by the admission layer). A request without it is refused: a TLS port whose connect info
/// went unrecognised would otherwise read as plaintext, which allows all.
pub(crate) fn identity_of<T>(request: &Request<T>) -> Result<Option<Identity>, Status> {
    let (certificates, cache) = match request.extensions().get::<Transport>() {
        Some(Transport::Plaintext) => return Ok(None),
        Some(Transport::Console) => return Ok(Some(Identity::console())),
        Some(Transport::Tls(certificates, cache)) => (certificates.clone().unwrap_or_default(), cache),
        None => {
            return Err(Status::unauthenticated(
                "this call did not come through the node's listener, so who made it is unknown",
            ));
        }
    };
    let Some(leaf) = certificates.first() else {
        return Err(Status::unauthenticated(
            "no client certificate: this node requires one signed by the cluster CA; point RAFTSCHED_TLS_DIR \
             at the directory `raftsched certs init` wrote",
        ));
    };
    cache
        .get_or_read(leaf.as_ref())
        .map(Some)
        .map_err(|e| Status::unauthenticated(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::CertificateParams;
    use rcgen::DistinguishedName;
    use rcgen::DnType;
    use rcgen::KeyPair;

    /// The OID of organizationalUnitName (2.5.4.11), to put a second OU in a subject.
    const OU_OID: [u64; 4] = [2, 5, 4, 11];

    /// A self-signed certificate with exactly these subject attributes. Signing by a CA does
    /// not matter here: the chain is the TLS layer's to verify.
    fn cert_with(attributes: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let mut subject = DistinguishedName::new();
        for (kind, value) in attributes {
            subject.push(kind.clone(), *value);
        }
        params.distinguished_name = subject;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn cert(ou: &str, cn: &str) -> Vec<u8> {
        cert_with(&[(DnType::OrganizationalUnitName, ou), (DnType::CommonName, cn)])
    }

    #[test]
    fn every_role_is_read_with_its_name() {
        for (ou, cn, role) in [
            ("node", "node-2", Role::Node),
            ("admin", "admin", Role::Admin),
            ("submitter", "client", Role::Submitter),
            ("reader", "reader", Role::Reader),
            ("worker", "worker1", Role::Worker),
        ] {
            let identity = identity_from_der(&cert(ou, cn)).unwrap();
            let namespaces = match role {
                Role::Admin | Role::Node => Namespaces::All,
                _ => Namespaces::Only(vec!["default".into()]),
            };
            assert_eq!(
                identity,
                Identity {
                    role,
                    name: cn.to_string(),
                    namespaces,
                }
            );
            assert_eq!(role.as_str(), ou);
        }
        let node = identity_from_der(&cert("node", "node-2")).unwrap();
        assert_eq!(node.node_id(), Some(2));
        let worker = identity_from_der(&cert("worker", "node-2")).unwrap();
        assert_eq!(worker.node_id(), None, "only a node's name is a node id");
    }

    #[test]
    fn a_subject_without_exactly_one_known_role_is_refused() {
        let no_ou = cert_with(&[(DnType::CommonName, "admin")]);
        let error = identity_from_der(&no_ou).unwrap_err();
        assert_eq!(error, IdentityError::NoRole);
        assert!(error.to_string().contains("no OU") && error.to_string().contains("certs issue"));

        let error = identity_from_der(&cert("operators", "admin")).unwrap_err();
        assert_eq!(error, IdentityError::UnknownRole("operators".into()));
        assert!(error.to_string().contains("\"operators\" is not a role"), "{error}");
        // Roles are exact: no case folding, no padding.
        for ou in ["Admin", "admin ", "", "nodes"] {
            assert!(
                matches!(identity_from_der(&cert(ou, "x")), Err(IdentityError::UnknownRole(_))),
                "{ou:?}"
            );
        }

        let two_ous = cert_with(&[
            (DnType::OrganizationalUnitName, "reader"),
            (DnType::CustomDnType(OU_OID.to_vec()), "admin"),
            (DnType::CommonName, "r"),
        ]);
        assert_eq!(identity_from_der(&two_ous), Err(IdentityError::SeveralRoles(2)));
    }

    #[test]
    fn each_namespace_san_names_a_namespace_and_star_names_all() {
        let with_os = |role: &str, namespaces: &[&str]| {
            let mut uris: Vec<String> = namespaces
                .iter()
                .map(|n| format!("{NAMESPACE_URI_PREFIX}{n}"))
                .collect();
            uris.push("https://example.com/not-a-namespace".into());
            let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            for uri in uris {
                params
                    .subject_alt_names
                    .push(rcgen::SanType::URI(uri.try_into().unwrap()));
            }
            let mut subject = DistinguishedName::new();
            subject.push(DnType::OrganizationalUnitName, role);
            subject.push(DnType::CommonName, "c");
            params.distinguished_name = subject;
            let key = KeyPair::generate().unwrap();
            let der = params.self_signed(&key).unwrap().der().to_vec();
            identity_from_der(&der).map(|identity| identity.namespaces)
        };
        let only = |names: &[&str]| Namespaces::Only(names.iter().map(|n| n.to_string()).collect());
        assert_eq!(
            with_os("submitter", &["team-b", "team-a", "team-b"]),
            Ok(only(&["team-a", "team-b"]))
        );
        assert_eq!(with_os("reader", &[]), Ok(only(&["default"])));
        assert_eq!(with_os("reader", &["team-a", "*"]), Ok(Namespaces::All));
        assert_eq!(
            with_os("admin", &["team-a"]),
            Ok(Namespaces::All),
            "an admin acts in all"
        );
        let names: Vec<String> = (0..=MAX_NAMESPACES_PER_CREDENTIAL).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(
            with_os("worker", &refs),
            Err(IdentityError::TooManyNamespaces(MAX_NAMESPACES_PER_CREDENTIAL + 1))
        );
        assert_eq!(
            with_os("worker", &refs[..MAX_NAMESPACES_PER_CREDENTIAL]).map(|n| n.contains("n0")),
            Ok(true)
        );
        for bad in ["Team", "", "a:b", "-a"] {
            let error = with_os("submitter", &[bad]).unwrap_err();
            assert_eq!(error, IdentityError::BadNamespace(bad.to_string()));
            assert!(error.to_string().contains("--namespaces"), "{error}");
        }
        assert!(only(&["a", "c"]).contains("c") && !only(&["a", "c"]).contains("b"));
    }

    #[test]
    fn a_name_is_one_cn_of_1_to_128_bytes() {
        let no_cn = cert_with(&[(DnType::OrganizationalUnitName, "admin")]);
        assert_eq!(identity_from_der(&no_cn), Err(IdentityError::NotOneName(0)));
        assert_eq!(identity_from_der(&cert("admin", "")), Err(IdentityError::NameLength(0)));
        let at_limit = "w".repeat(MAX_NAME_BYTES);
        assert_eq!(identity_from_der(&cert("worker", &at_limit)).unwrap().name, at_limit);
        let over = "w".repeat(MAX_NAME_BYTES + 1);
        let error = identity_from_der(&cert("worker", &over)).unwrap_err();
        assert_eq!(error, IdentityError::NameLength(MAX_NAME_BYTES + 1));
        assert!(error.to_string().contains("129 bytes"), "{error}");
    }

    #[test]
    fn a_node_name_is_node_dash_a_canonical_id() {
        for name in ["node-1", "node-3", &format!("node-{}", u64::MAX)] {
            assert!(identity_from_der(&cert("node", name)).is_ok(), "{name}");
        }
        let long = format!("node-{}", "9".repeat(100));
        for name in [
            "node", "node-", "node-x", "node-01", "node-+2", "node--2", "Node-2", "2", "worker1", &long,
        ] {
            let error = identity_from_der(&cert("node", name)).unwrap_err();
            assert_eq!(error, IdentityError::NotANodeName(name.to_string()), "{name}");
            assert!(error.to_string().contains("node-<id>"), "{error}");
            assert!(error.to_string().len() < 400, "{error}");
        }
    }

    #[test]
    fn bytes_that_are_not_a_certificate_are_refused() {
        for bytes in [&[][..], &[0x30], &[0xff; 64]] {
            assert!(matches!(identity_from_der(bytes), Err(IdentityError::NotX509(_))));
        }
    }

    #[test]
    fn a_connection_reads_its_leaf_once_and_keeps_the_answer() {
        let alice = cert_with(&[
            (DnType::OrganizationalUnitName, "submitter"),
            (DnType::CommonName, "alice"),
        ]);
        let cache = IdentityCache::default();
        let first = cache.get_or_read(&alice).unwrap();
        assert_eq!((first.role, first.name.as_str()), (Role::Submitter, "alice"));
        // Later calls of the connection get the first answer, not a new read.
        assert_eq!(cache.clone().get_or_read(&[0xff; 8]).unwrap(), first);
        // A refusal is kept too: the same leaf would be refused the same way.
        let refused = IdentityCache::default();
        assert!(refused.get_or_read(&[0x30]).is_err());
        assert!(refused.get_or_read(&alice).is_err());
    }

    #[test]
    fn a_plaintext_request_has_no_identity() {
        let mut plaintext = Request::new(());
        plaintext.extensions_mut().insert(Transport::Plaintext);
        assert_eq!(identity_of(&plaintext).unwrap(), None);
        // Not through the node's listener: who it is cannot be known, so it is refused.
        assert_eq!(
            identity_of(&Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}
