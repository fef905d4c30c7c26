//! Egress NAT for a bridge: an nftables table with one masquerade rule, sent over
//! netlink (`NETLINK_NETFILTER`) as one batch — our own messages, about a hundred lines,
//! rather than a crate that needs libclang at build time.
//!
//! The ruleset, as `nft list ruleset` shows it:
//! ```text
//! table ip sandbox-BRIDGE {
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip saddr SUBNET oifname != "BRIDGE" masquerade
//!     }
//! }
//! ```

use crate::{Error, Ipv4Cidr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// From linux/netfilter/nf_tables.h and nfnetlink.h (libc lacks the attribute numbers).
const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFPROTO_IPV4: u8 = 2;
const NLA_F_NESTED: u16 = 1 << 15;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_OIFNAME: u32 = 7;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_REG_1: u32 = 1;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NF_INET_POST_ROUTING: u32 = 4;
const NF_ACCEPT: u32 = 1;
/// `srcnat`.
const NAT_PRIORITY: i32 = 100;

/// A netlink attribute list being built.
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn raw(&mut self, ty: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(value);
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
        self
    }
    fn str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.raw(ty, &v)
    }
    fn be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.raw(ty, &v.to_be_bytes())
    }
    fn nested(&mut self, ty: u16, inner: &Attrs) -> &mut Self {
        self.raw(ty | NLA_F_NESTED, &inner.0)
    }
}

fn data(bytes: &[u8]) -> Attrs {
    let mut a = Attrs::default();
    a.raw(NFTA_DATA_VALUE, bytes);
    a
}

fn expr(name: &str, body: Option<Attrs>) -> Attrs {
    let mut e = Attrs::default();
    e.str(NFTA_EXPR_NAME, name);
    if let Some(b) = body {
        e.nested(NFTA_EXPR_DATA, &b);
    }
    e
}

/// A batch of nf_tables messages.
struct Batch {
    buf: Vec<u8>,
    seq: u32,
    acks: u32,
    /// Between BATCH_BEGIN and BATCH_END (changes); a lone request (a query) is not.
    batched: bool,
}

impl Batch {
    /// A lone request, not a batch (queries such as GETTABLE may not be batched).
    fn single() -> Batch {
        Batch {
            buf: Vec::new(),
            seq: 1,
            acks: 0,
            batched: false,
        }
    }

    fn new() -> Batch {
        let mut b = Batch {
            buf: Vec::new(),
            seq: 1,
            acks: 0,
            batched: true,
        };
        b.msg(
            NFNL_MSG_BATCH_BEGIN,
            0,
            0,
            &Attrs::default(),
            NFNL_SUBSYS_NFTABLES,
        );
        b
    }

    fn msg(&mut self, ty: u16, flags: u16, family: u8, attrs: &Attrs, res_id: u16) {
        let len = 16 + 4 + attrs.0.len();
        self.buf.extend_from_slice(&(len as u32).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf
            .extend_from_slice(&((libc::NLM_F_REQUEST as u16) | flags).to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // struct nfgenmsg: family, version, res_id (big endian).
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.buf.extend_from_slice(&attrs.0);
        self.seq += 1;
    }

    fn nft(&mut self, ty: u16, flags: u16, attrs: &Attrs) {
        let flags = flags | libc::NLM_F_ACK as u16;
        self.msg(
            (NFNL_SUBSYS_NFTABLES << 8) | ty,
            flags,
            NFPROTO_IPV4,
            attrs,
            0,
        );
        self.acks += 1;
    }

    /// Sends the batch and reads one acknowledgement per message.
    fn send(mut self) -> io::Result<()> {
        if self.batched {
            self.msg(
                NFNL_MSG_BATCH_END,
                0,
                0,
                &Attrs::default(),
                NFNL_SUBSYS_NFTABLES,
            );
        }
        // SAFETY: socket(2) with constant arguments; the fd is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // A kernel that never answers must not hang the caller.
        let timeout = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: a valid socket and a timeval of the size passed.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        // SAFETY: an all-zero sockaddr_nl is the kernel's address.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: valid socket, buffer and address of the sizes given.
        let n = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                self.buf.as_ptr().cast(),
                self.buf.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        let mut acked = 0;
        while acked < self.acks {
            // SAFETY: valid socket and buffer.
            let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut off = 0usize;
            let n = n as usize;
            while off + 16 <= n {
                let len =
                    u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
                let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap_or_default());
                if len < 16 || off + len > n {
                    break;
                }
                if ty == libc::NLMSG_ERROR as u16 && len >= 20 {
                    let err =
                        i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap_or_default());
                    if err != 0 {
                        return Err(io::Error::from_raw_os_error(-err));
                    }
                    acked += 1;
                }
                off += (len + 3) & !3;
            }
        }
        Ok(())
    }
}

/// The table's name for a bridge.
pub(crate) fn table_name(bridge: &str) -> String {
    format!("sandbox-{bridge}")
}

/// Creates (or replaces) the masquerade table of `bridge` for traffic from `cidr` leaving
/// by any other interface.
pub(crate) fn enable(bridge: &str, cidr: Ipv4Cidr) -> Result<(), Error> {
    let table = table_name(bridge);
    let err = |what: &str| {
        let what = format!("{what} (nftables table {table})");
        move |source| Error::Io { what, source }
    };
    // Start from nothing: a table left by an earlier run is replaced.
    let _ = disable(bridge);
    let mut b = Batch::new();
    let mut t = Attrs::default();
    t.str(NFTA_TABLE_NAME, &table);
    b.nft(NFT_MSG_NEWTABLE, libc::NLM_F_CREATE as u16, &t);
    let mut hook = Attrs::default();
    hook.be32(NFTA_HOOK_HOOKNUM, NF_INET_POST_ROUTING)
        .be32(NFTA_HOOK_PRIORITY, NAT_PRIORITY as u32);
    let mut c = Attrs::default();
    c.str(NFTA_CHAIN_TABLE, &table)
        .str(NFTA_CHAIN_NAME, "postrouting")
        .nested(NFTA_CHAIN_HOOK, &hook)
        .be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
        .str(NFTA_CHAIN_TYPE, "nat");
    b.nft(NFT_MSG_NEWCHAIN, libc::NLM_F_CREATE as u16, &c);
    // ip saddr & mask == network
    let prefix = u32::from(cidr.prefix());
    let mask = (u32::MAX << (32 - prefix)).to_be_bytes();
    let mut payload = Attrs::default();
    payload
        .be32(NFTA_PAYLOAD_DREG, NFT_REG_1)
        .be32(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER)
        .be32(NFTA_PAYLOAD_OFFSET, 12)
        .be32(NFTA_PAYLOAD_LEN, 4);
    let mut bitwise = Attrs::default();
    bitwise
        .be32(NFTA_BITWISE_SREG, NFT_REG_1)
        .be32(NFTA_BITWISE_DREG, NFT_REG_1)
        .be32(NFTA_BITWISE_LEN, 4)
        .nested(NFTA_BITWISE_MASK, &data(&mask))
        .nested(NFTA_BITWISE_XOR, &data(&[0; 4]));
    let mut cmp_net = Attrs::default();
    cmp_net
        .be32(NFTA_CMP_SREG, NFT_REG_1)
        .be32(NFTA_CMP_OP, NFT_CMP_EQ)
        .nested(NFTA_CMP_DATA, &data(&cidr.network().octets()));
    // oifname != bridge
    let mut meta = Attrs::default();
    meta.be32(NFTA_META_DREG, NFT_REG_1)
        .be32(NFTA_META_KEY, NFT_META_OIFNAME);
    let mut ifname = [0u8; 16];
    for (d, s) in ifname.iter_mut().zip(bridge.bytes()) {
        *d = s;
    }
    let mut cmp_if = Attrs::default();
    cmp_if
        .be32(NFTA_CMP_SREG, NFT_REG_1)
        .be32(NFTA_CMP_OP, NFT_CMP_NEQ)
        .nested(NFTA_CMP_DATA, &data(&ifname));
    let mut exprs = Attrs::default();
    for e in [
        expr("payload", Some(payload)),
        expr("bitwise", Some(bitwise)),
        expr("cmp", Some(cmp_net)),
        expr("meta", Some(meta)),
        expr("cmp", Some(cmp_if)),
        expr("masq", None),
    ] {
        exprs.nested(NFTA_LIST_ELEM, &e);
    }
    let mut r = Attrs::default();
    r.str(NFTA_RULE_TABLE, &table)
        .str(NFTA_RULE_CHAIN, "postrouting")
        .nested(NFTA_RULE_EXPRESSIONS, &exprs);
    b.nft(
        NFT_MSG_NEWRULE,
        (libc::NLM_F_CREATE | libc::NLM_F_APPEND) as u16,
        &r,
    );
    b.send().map_err(err("add the masquerade rule"))?;
    // Forwarding between the bridge and the way out; without it the table is no use, so
    // it goes again.
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        let _ = disable(bridge);
        return Err(err("enable IPv4 forwarding")(e));
    }
    Ok(())
}

/// Whether the masquerade table of `bridge` exists (made by this process or another).
pub(crate) fn exists(bridge: &str) -> Result<bool, Error> {
    // A kernel with loadable modules and nf_tables not loaded has no table, and asking
    // would load the module; a kernel without modules (this one) has it built in or not.
    let modular = std::path::Path::new("/proc/modules").exists();
    if modular && !std::path::Path::new("/sys/module/nf_tables").exists() {
        return Ok(false);
    }
    let table = table_name(bridge);
    let mut b = Batch::single();
    let mut t = Attrs::default();
    t.str(NFTA_TABLE_NAME, &table);
    b.nft(NFT_MSG_GETTABLE, 0, &t);
    match b.send() {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(source) => Err(Error::Io {
            what: format!("look up nftables table {table}"),
            source,
        }),
    }
}

/// Deletes the masquerade table of `bridge` (with its chain and rule).
pub(crate) fn disable(bridge: &str) -> Result<(), Error> {
    let table = table_name(bridge);
    let mut b = Batch::new();
    let mut t = Attrs::default();
    t.str(NFTA_TABLE_NAME, &table);
    b.nft(NFT_MSG_DELTABLE, 0, &t);
    b.send().map_err(|source| Error::Io {
        what: format!("delete nftables table {table}"),
        source,
    })
}
