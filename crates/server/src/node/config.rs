//! [`NodeConfig`]: everything a node needs to start, from flags or a TOML file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;

use crate::network::NodeTls;
use crate::quota::QuotaConfig;
use crate::raft_types::NodeId;
use raftsched_store::member_node::MemberNode;
use raftsched_store::member_node::PEER_PORT_OFFSET;
use raftsched_store::member_node::default_peer_addr;

/// A node's configuration. Every field has a default but `node_id`, `listen_addr` and
/// `data_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Stable identity of this member, at least 1. Never reuse an id for another machine's data.
    pub node_id: NodeId,
    /// Address the gRPC server binds, e.g. `127.0.0.1:50051`.
    pub listen_addr: String,
    /// Address clients (and peers asking for status) use to reach this node; defaults to
    /// `listen_addr`.
    #[serde(default)]
    pub advertise_addr: Option<String>,
    /// Address the peer (Raft) server binds; defaults to `listen_addr` with the port plus
    /// `PEER_PORT_OFFSET` (100). The Raft service is served there only, never on the client
    /// port.
    #[serde(default)]
    pub peer_listen_addr: Option<String>,
    /// Address peers dial for Raft; defaults to `peer_listen_addr`.
    #[serde(default)]
    pub peer_advertise_addr: Option<String>,
    /// Address the HTTP server binds (`/healthz`, `/readyz`, `/metrics`; `--http-listen`,
    /// `http_listen_addr` in TOML); none by default. TLS like the other ports unless
    /// `insecure`; `/metrics` then needs a reader, admin or node credential.
    #[serde(default)]
    pub http_listen_addr: Option<String>,
    pub data_dir: PathBuf,
    /// Name shared by every member; a data dir or peer of another cluster is refused.
    #[serde(default = "default_cluster_id")]
    pub cluster_id: String,
    /// id → addresses of every founding member, `CLIENT[/PEER]` (see
    /// `raftsched_store::member_node`: `127.0.0.1:50051/50151`, or `127.0.0.1:50051` for the
    /// default peer port). Only the lowest id initialises the cluster, and only on a
    /// brand-new data dir; on restart this is ignored.
    #[serde(default, with = "node_id_keys")]
    pub initial_members: BTreeMap<NodeId, String>,
    #[serde(default)]
    pub raft: RaftTuning,
    /// id → address to dial for that peer's Raft traffic instead of its membership peer
    /// address (e.g. through a proxy, as the chaos tool does). Normally empty.
    #[serde(default, with = "node_id_keys")]
    pub peer_dial_overrides: BTreeMap<NodeId, String>,
    /// Caps on new work and high-water marks (`[quotas]` in TOML); defaults in `quota`.
    #[serde(default)]
    pub quotas: QuotaConfig,
    /// The credentials dir (`raftsched certs init --dir D`; `--tls-dir`,
    /// `RAFTSCHED_TLS_DIR`). Required unless `insecure`.
    #[serde(default)]
    pub tls_dir: Option<PathBuf>,
    /// The credential used from `tls_dir` (file stem); default `node-<node_id>`.
    #[serde(default)]
    pub tls_identity: Option<String>,
    /// The name peers' certificates are checked for when this node dials them; default
    /// `localhost` (a SAN of every node certificate).
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Plaintext on both ports, no client certificates: anyone who reaches a port may make
    /// any call. Logged as a warning at start.
    #[serde(default)]
    pub insecure: bool,
}

/// Raft timing and log compaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftTuning {
    pub heartbeat_interval_ms: u64,
    /// Must stay well above the worst fsync (tens of ms on small disks), or slow disks cause
    /// spurious elections. Failover takes roughly the leader lease (= the max) plus a random
    /// timeout in [min, max].
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Take a snapshot after at least this many log entries since the last one, once the
    /// log written since then is also at least an eighth of the last snapshot's file and
    /// `snapshot_min_log_bytes` (node/snapshot_trigger.rs).
    pub snapshot_after_entries: u64,
    /// The least log written between two snapshots, however small the state: 512 KiB, so a
    /// small state does not snapshot every few kilobytes. Tests that want snapshots after a
    /// handful of entries set 0. At most 1 GiB.
    pub snapshot_min_log_bytes: u64,
    /// Entries kept behind a snapshot, so a slightly lagging follower catches up from the
    /// log rather than by a full snapshot.
    pub entries_kept_after_snapshot: u64,
}

/// A log of a gigabyte between snapshots is a restart replaying it: no more.
const MAX_SNAPSHOT_MIN_LOG_BYTES: u64 = 1024 * 1024 * 1024;
/// The default longest election timeout, which is also the leader's lease.
const DEFAULT_ELECTION_TIMEOUT_MAX_MS: u64 = 300;
// An append answered within its deadline floor must count within the default lease.
const _: () = assert!(crate::network::MIN_APPEND_DEADLINE.as_millis() < DEFAULT_ELECTION_TIMEOUT_MAX_MS as u128);

impl Default for RaftTuning {
    fn default() -> RaftTuning {
        RaftTuning {
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: DEFAULT_ELECTION_TIMEOUT_MAX_MS,
            // The log bytes decide in practice; this floor only spares a burst of tiny
            // entries a snapshot (10,000 let the soak's log reach 4 MiB, 3x its byte rule).
            snapshot_after_entries: 1_000,
            snapshot_min_log_bytes: 512 * 1024,
            entries_kept_after_snapshot: 1_000,
        }
    }
}

fn default_cluster_id() -> String {
    "raftsched".to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid node config: {0}")]
    Invalid(String),
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error(
        "no TLS credentials: every port of a node requires certificates from the cluster CA. Create them \
         once with `raftsched certs init --dir D`, then start with `RAFTSCHED_TLS_DIR=D` (or --tls-dir D, or \
         tls_dir in the config file); or pass --insecure for plaintext, where anyone who reaches a port may \
         make any call"
    )]
    NoTls,
    #[error("TLS credentials (--tls-dir, --tls-identity): {0}")]
    Tls(raftsched_certs::CertsError),
}

impl NodeConfig {
    /// A config with every optional field at its default.
    pub fn new(node_id: NodeId, listen_addr: impl Into<String>, data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            node_id,
            listen_addr: listen_addr.into(),
            advertise_addr: None,
            peer_listen_addr: None,
            peer_advertise_addr: None,
            http_listen_addr: None,
            data_dir: data_dir.into(),
            cluster_id: default_cluster_id(),
            initial_members: BTreeMap::new(),
            raft: RaftTuning::default(),
            peer_dial_overrides: BTreeMap::new(),
            quotas: QuotaConfig::default(),
            tls_dir: None,
            tls_identity: None,
            tls_server_name: None,
            insecure: false,
        }
    }

    /// The node's TLS settings from its credentials; None when `insecure`. Without a
    /// credentials dir the node refuses to start and says what to run.
    pub fn tls(&self) -> Result<Option<NodeTls>, ConfigError> {
        if self.insecure {
            return Ok(None);
        }
        let Some(dir) = &self.tls_dir else {
            return Err(ConfigError::NoTls);
        };
        let identity = self
            .tls_identity
            .clone()
            .unwrap_or_else(|| raftsched_certs::layout::node_name(self.node_id));
        let pems = raftsched_certs::Pems::from_dir(dir, &identity).map_err(ConfigError::Tls)?;
        let server_name = self
            .tls_server_name
            .as_deref()
            .unwrap_or(raftsched_certs::layout::DEFAULT_SERVER_NAME);
        Ok(Some(NodeTls::from_pems(&pems, server_name)))
    }

    /// The console token browsers sign in to the web console with (`console.token` in the
    /// credentials dir); None when `insecure` (the console is open) or the dir has none
    /// (client certificates only).
    pub fn console_token(&self) -> Result<Option<String>, ConfigError> {
        match (&self.tls_dir, self.insecure) {
            (Some(dir), false) => raftsched_certs::layout::read_console_token(dir).map_err(ConfigError::Tls),
            _ => Ok(None),
        }
    }

    pub fn advertise_addr(&self) -> &str {
        self.advertise_addr.as_deref().unwrap_or(&self.listen_addr)
    }

    /// Where the peer server binds: `peer_listen_addr`, else the listen port + 100.
    pub fn peer_listen_addr(&self) -> Result<String, ConfigError> {
        match &self.peer_listen_addr {
            Some(addr) => Ok(addr.clone()),
            None => default_peer_addr(&self.listen_addr).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "listen_addr {:?} has no port below {} to derive the peer port from; set                      peer_listen_addr (--peer-listen)",
                    self.listen_addr,
                    u16::MAX - PEER_PORT_OFFSET
                ))
            }),
        }
    }

    /// This node as a member: its client and peer addresses as others dial them.
    pub fn member_node(&self) -> Result<MemberNode, ConfigError> {
        let peer = match &self.peer_advertise_addr {
            Some(addr) => addr.clone(),
            None => self.peer_listen_addr()?,
        };
        Ok(MemberNode::new(self.advertise_addr(), peer))
    }

    /// The founding members with both addresses.
    pub fn initial_member_nodes(&self) -> Result<BTreeMap<NodeId, MemberNode>, ConfigError> {
        member_nodes(&self.initial_members)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |message: String| Err(ConfigError::Invalid(message));
        if self.node_id == 0 {
            return fail("node_id must be at least 1 (0 means \"no node\" in the API)".into());
        }
        if self.cluster_id.is_empty() || !self.cluster_id.chars().all(|c| c.is_ascii_graphic()) {
            return fail(format!(
                "cluster_id {:?} must be non-empty printable ASCII",
                self.cluster_id
            ));
        }
        if !self.initial_members.is_empty() && !self.initial_members.contains_key(&self.node_id) {
            return fail(format!("initial_members does not list this node ({})", self.node_id));
        }
        if self.initial_members.contains_key(&0) {
            return fail("initial_members: node ids start at 1".into());
        }
        self.initial_member_nodes()?;
        let peer_listen = self.peer_listen_addr()?;
        if peer_listen == self.listen_addr && !peer_listen.ends_with(":0") {
            return fail(format!(
                "peer_listen_addr {peer_listen:?} is the client listen_addr: the Raft service needs a port \
                 of its own (--peer-listen)"
            ));
        }
        if let Some(http) = &self.http_listen_addr
            && !http.ends_with(":0")
            && (*http == self.listen_addr || *http == peer_listen)
        {
            return fail(format!(
                "http_listen_addr {http:?} is also the client or peer port: the HTTP server needs a port of its \
                 own (--http-listen)"
            ));
        }
        let raft = &self.raft;
        if raft.heartbeat_interval_ms == 0 || raft.heartbeat_interval_ms >= raft.election_timeout_min_ms {
            return fail("raft.heartbeat_interval_ms must be above 0 and below election_timeout_min_ms".into());
        }
        if raft.election_timeout_min_ms >= raft.election_timeout_max_ms {
            return fail("raft.election_timeout_min_ms must be below election_timeout_max_ms".into());
        }
        if raft.snapshot_after_entries == 0 {
            return fail("raft.snapshot_after_entries must be at least 1".into());
        }
        if raft.snapshot_min_log_bytes > MAX_SNAPSHOT_MIN_LOG_BYTES {
            return fail(format!(
                "raft.snapshot_min_log_bytes is {}: give at most 1073741824 (1 GiB; default 524288, 512 KiB)",
                raft.snapshot_min_log_bytes
            ));
        }
        self.quotas.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    pub fn from_toml_file(path: &std::path::Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// (De)serializes a map keyed by node id. TOML keys are always strings (`1 = "host:port"` has
/// the key `"1"`), and JSON object keys too, so ids are written as strings and read from a
/// string or an integer; a key that is not a node id is refused with its text.
mod node_id_keys {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::Deserializer;
    use serde::Serializer;
    use serde::de::MapAccess;
    use serde::de::Visitor;

    use crate::raft_types::NodeId;

    pub fn serialize<S: Serializer>(map: &BTreeMap<NodeId, String>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(map.iter().map(|(id, addr)| (id.to_string(), addr)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<NodeId, String>, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }

    struct MembersVisitor;

    impl<'de> Visitor<'de> for MembersVisitor {
        type Value = BTreeMap<NodeId, String>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a table of node id = \"host:port\", e.g. 1 = \"127.0.0.1:50051\"")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = BTreeMap::new();
            while let Some((key, addr)) = access.next_entry::<IdKey, String>()? {
                if map.insert(key.0, addr).is_some() {
                    return Err(serde::de::Error::custom(format!(
                        "node id {} is listed twice; give each member one line",
                        key.0
                    )));
                }
            }
            Ok(map)
        }
    }

    /// A map key that names a node id: `"1"` (TOML, JSON) or `1` (formats with integer keys).
    struct IdKey(NodeId);

    impl<'de> serde::Deserialize<'de> for IdKey {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IdKey, D::Error> {
            deserializer.deserialize_any(IdKeyVisitor)
        }
    }

    struct IdKeyVisitor;

    impl Visitor<'_> for IdKeyVisitor {
        type Value = IdKey;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a node id (a whole number from 1)")
        }

        fn visit_u64<E: serde::de::Error>(self, id: u64) -> Result<IdKey, E> {
            Ok(IdKey(id))
        }

        fn visit_i64<E: serde::de::Error>(self, id: i64) -> Result<IdKey, E> {
            NodeId::try_from(id)
                .map(IdKey)
                .map_err(|_| E::custom(format!("node id {id} is negative; node ids are whole numbers from 1")))
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<IdKey, E> {
            // Only ASCII digits: `u64::from_str` would also take "+1".
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(E::custom(format!(
                    "{text:?} is not a node id: member keys are whole numbers from 1, e.g. 1 = \"127.0.0.1:50051\""
                )));
            }
            text.parse().map(IdKey).map_err(|_| {
                E::custom(format!(
                    "node id {text} is too large: node ids are at most {}",
                    NodeId::MAX
                ))
            })
        }
    }
}

/// Parses `1=127.0.0.1:50051,2=127.0.0.1:50052` (each address may carry `/PEER_PORT` or
/// `/PEER_HOST:PORT`, see [`MemberNode::parse`]).
pub fn parse_members(text: &str) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (id, addr) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| ConfigError::Invalid(format!("member {part:?}: expected ID=HOST:PORT")))?;
            let id = id
                .parse()
                .map_err(|_| ConfigError::Invalid(format!("member {part:?}: {id:?} is not a node id")))?;
            MemberNode::parse(addr).map_err(|e| ConfigError::Invalid(format!("member {part:?}: {e}")))?;
            Ok((id, addr.to_string()))
        })
        .collect()
}

/// Members as [`parse_members`] gives them, with both their addresses (`client` or
/// `client/peer`): what a founding node and `cluster restore` seed the membership with.
pub fn member_nodes(members: &BTreeMap<NodeId, String>) -> Result<BTreeMap<NodeId, MemberNode>, ConfigError> {
    members
        .iter()
        .map(|(id, spec)| {
            MemberNode::parse(spec)
                .map(|node| (*id, node))
                .map_err(|e| ConfigError::Invalid(format!("initial_members: node {id}: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBERS_TOML: &str = r#"
node_id = 1
listen_addr = "127.0.0.1:50051"
data_dir = "data/node1"

[initial_members]
1 = "127.0.0.1:50051"
2 = "127.0.0.1:50052"
3 = "127.0.0.1:50053"

[peer_dial_overrides]
"2" = "127.0.0.1:60052"
"#;

    #[test]
    fn toml_member_keys_are_read_as_node_ids() {
        let config: NodeConfig = toml::from_str(MEMBERS_TOML).expect("the README's form parses");
        let ids: Vec<NodeId> = config.initial_members.keys().copied().collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(config.initial_members[&2], "127.0.0.1:50052");
        assert_eq!(config.peer_dial_overrides[&2], "127.0.0.1:60052");
        config.validate().expect("a valid config");
    }

    #[test]
    fn the_http_port_must_be_a_port_of_its_own() {
        let mut config: NodeConfig = toml::from_str(MEMBERS_TOML).expect("parses");
        for taken in ["127.0.0.1:50051", "127.0.0.1:50151"] {
            config.http_listen_addr = Some(taken.into());
            let error = config.validate().expect_err(taken).to_string();
            assert!(error.contains("--http-listen"), "{taken}: {error}");
        }
        for free in ["127.0.0.1:8081", "127.0.0.1:0"] {
            config.http_listen_addr = Some(free.into());
            config.validate().unwrap_or_else(|e| panic!("{free}: {e}"));
        }
    }

    #[test]
    fn a_key_that_is_not_a_node_id_is_refused_with_its_text() {
        for (key, expected) in [
            ("one", "\"one\" is not a node id"),
            ("-1", "\"-1\" is not a node id"),
            ("+1", "\"+1\" is not a node id"),
            ("18446744073709551616", "node id 18446744073709551616 is too large"),
        ] {
            let text = format!(
                "node_id = 1\nlisten_addr = \"a:1\"\ndata_dir = \"d\"\n[initial_members]\n\"{key}\" = \"a:1\"\n"
            );
            let error = toml::from_str::<NodeConfig>(&text).expect_err(key).to_string();
            assert!(error.contains(expected), "key {key:?}: {error}");
        }
    }

    #[test]
    fn the_same_id_twice_is_refused() {
        let text =
            "node_id = 1\nlisten_addr = \"a:1\"\ndata_dir = \"d\"\n[initial_members]\n1 = \"a:1\"\n01 = \"b:1\"\n";
        let error = toml::from_str::<NodeConfig>(text).expect_err("duplicate").to_string();
        assert!(error.contains("node id 1 is listed twice"), "{error}");
    }

    #[test]
    fn toml_and_json_round_trip() {
        let config: NodeConfig = toml::from_str(MEMBERS_TOML).expect("parses");
        let toml_text = toml::to_string(&config).expect("serializes to TOML");
        assert_eq!(toml::from_str::<NodeConfig>(&toml_text).expect("TOML back"), config);
        let json = serde_json::to_string(&config).expect("serializes to JSON");
        assert_eq!(serde_json::from_str::<NodeConfig>(&json).expect("JSON back"), config);
    }
}
