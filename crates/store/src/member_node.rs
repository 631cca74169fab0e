//! [`MemberNode`]: what the membership holds for each member — the address clients dial
//! (the client port) and the address peers dial for Raft (the peer port) — and the textual
//! form `CLIENT[/PEER]` used by `--members`, `initial_members` and AddNode.
//!
//! Wire format: v0-v2 stored openraft's `BasicNode { addr }` (one port served both); such a
//! member decodes with `peer_addr = addr`, which is where those nodes served Raft. v3 adds
//! `peer_addr` after `addr`.

use serde::Deserialize;
use serde::Serialize;

/// The peer port a member has when only its client address is given: the client port plus
/// 100 (`127.0.0.1:50051` → peer `127.0.0.1:50151`). 100 leaves room for 100 nodes on one
/// host at consecutive client ports before a peer port collides with a client port.
pub const PEER_PORT_OFFSET: u16 = 100;
const _: () = assert!(PEER_PORT_OFFSET >= 10);

/// One member's addresses.
/// `Default` (empty addresses) only for openraft's `Membership::new_with_defaults` in tests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MemberNode {
    /// `host:port` of the client port (Scheduler and Workers services).
    pub addr: String,
    /// `host:port` of the peer port (the Raft service only).
    pub peer_addr: String,
}

impl std::fmt::Display for MemberNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (peer {})", self.addr, self.peer_addr)
    }
}

/// Why a member address text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberAddrError {
    #[error(
        "member address {text:?}: {why}; write CLIENT_HOST:PORT, optionally /PEER_PORT or /PEER_HOST:PORT \
         (e.g. 127.0.0.1:50051/50151; without it the peer port is the client port + {PEER_PORT_OFFSET})"
    )]
    Invalid { text: String, why: String },
}

impl MemberNode {
    pub fn new(addr: impl Into<String>, peer_addr: impl Into<String>) -> MemberNode {
        MemberNode {
            addr: addr.into(),
            peer_addr: peer_addr.into(),
        }
    }

    /// Reads `CLIENT`, `CLIENT/PEER_PORT` or `CLIENT/PEER_HOST:PORT`. Only the split is
    /// checked here; each address is validated where it is used.
    pub fn parse(text: &str) -> Result<MemberNode, MemberAddrError> {
        let invalid = |why: &str| MemberAddrError::Invalid {
            text: text.to_string(),
            why: why.to_string(),
        };
        let (client, peer) = match text.split_once('/') {
            Some((client, peer)) => (client, Some(peer)),
            None => (text, None),
        };
        if client.is_empty() {
            return Err(invalid("the client address is empty"));
        }
        let peer_addr = match peer {
            None => default_peer_addr(client).ok_or_else(|| invalid("no port to add the offset to"))?,
            Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                let (host, _) = client
                    .rsplit_once(':')
                    .ok_or_else(|| invalid("the client address has no port"))?;
                port.parse::<u16>()
                    .map_err(|_| invalid("the peer port is above 65535"))?;
                format!("{host}:{port}")
            }
            Some(peer) if peer.contains(':') => peer.to_string(),
            Some(_) => return Err(invalid("the part after '/' is neither a port nor host:port")),
        };
        Ok(MemberNode::new(client, peer_addr))
    }

    /// The textual form [`MemberNode::parse`] reads back.
    pub fn to_spec(&self) -> String {
        format!("{}/{}", self.addr, self.peer_addr)
    }
}

/// `host:(port + PEER_PORT_OFFSET)`; port 0 (bind an ephemeral port) stays 0. None without
/// a port or when the sum leaves the u16 range.
pub fn default_peer_addr(client_addr: &str) -> Option<String> {
    let (host, port) = client_addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let peer_port = if port == 0 {
        0
    } else {
        port.checked_add(PEER_PORT_OFFSET)?
    };
    Some(format!("{host}:{peer_port}"))
}

/// The v0-v2 layout: openraft's `BasicNode`.
#[derive(Deserialize)]
struct MemberNodeV2 {
    addr: String,
}

/// The v3 layout.
#[derive(Deserialize)]
struct MemberNodeV3 {
    addr: String,
    peer_addr: String,
}

impl<'de> Deserialize<'de> for MemberNode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<MemberNode, D::Error> {
        if matches!(raftsched_core::state::wire::decoding_version(), Some(0..=2)) {
            let old = MemberNodeV2::deserialize(deserializer)?;
            return Ok(MemberNode {
                peer_addr: old.addr.clone(),
                addr: old.addr,
            });
        }
        let v3 = MemberNodeV3::deserialize(deserializer)?;
        Ok(MemberNode {
            addr: v3.addr,
            peer_addr: v3.peer_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use raftsched_core::state::wire::WIRE_FORMAT_VERSION;
    use raftsched_core::state::wire::decode_versioned;
    use raftsched_core::state::wire::decode_versioned_or_bare;
    use raftsched_core::state::wire::encode_versioned;
    use raftsched_core::state::wire::wire_header;

    use super::*;

    #[test]
    fn the_three_forms_parse() {
        let cases = [
            ("127.0.0.1:50051", "127.0.0.1:50051", "127.0.0.1:50151"),
            ("127.0.0.1:50051/50061", "127.0.0.1:50051", "127.0.0.1:50061"),
            ("a:1/b:2", "a:1", "b:2"),
            ("[::1]:7/8", "[::1]:7", "[::1]:8"),
            ("h:0", "h:0", "h:0"),
        ];
        for (text, addr, peer) in cases {
            assert_eq!(MemberNode::parse(text), Ok(MemberNode::new(addr, peer)), "{text}");
            let node = MemberNode::parse(text).unwrap();
            assert_eq!(MemberNode::parse(&node.to_spec()), Ok(node), "{text} round trip");
        }
    }

    #[test]
    fn bad_forms_name_the_text_and_the_form() {
        for text in ["", "/1", "h:65500", "h/1", "h:1/65536", "h:1/x", "h:1/"] {
            let error = MemberNode::parse(text).expect_err(text).to_string();
            assert!(error.contains(&format!("{text:?}")), "{text}: {error}");
            assert!(error.contains("CLIENT_HOST:PORT"), "{text}: {error}");
        }
    }

    #[test]
    fn a_v2_member_reads_with_its_one_address_as_peer_address() {
        let old = openraft::BasicNode::new("10.0.0.1:50051");
        let mut v2 = wire_header(2).to_vec();
        v2.extend(postcard::to_allocvec(&old).unwrap());
        let read: MemberNode = decode_versioned(&v2, "member").unwrap();
        assert_eq!(read, MemberNode::new("10.0.0.1:50051", "10.0.0.1:50051"));
        let bare = postcard::to_allocvec(&old).unwrap();
        let read: MemberNode = decode_versioned_or_bare(&bare, "member").unwrap();
        assert_eq!(read, MemberNode::new("10.0.0.1:50051", "10.0.0.1:50051"), "v0");
    }

    #[test]
    fn a_v3_member_round_trips_and_keeps_both_addresses() {
        let node = MemberNode::new("10.0.0.1:50051", "10.0.0.1:50151");
        let bytes = encode_versioned(&node);
        // Written in today's format (4), with the v3 layout, which v4 left as it was.
        assert_eq!(&bytes[..12], &wire_header(WIRE_FORMAT_VERSION)[..]);
        let mut v3 = wire_header(3).to_vec();
        v3.extend_from_slice(&bytes[12..]);
        assert_eq!(decode_versioned::<MemberNode>(&v3, "member"), Ok(node.clone()));
        assert_eq!(decode_versioned::<MemberNode>(&bytes, "member"), Ok(node));
    }
}
