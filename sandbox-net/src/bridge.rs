//! Bridges, the addresses they hand out, and the veth pair that connects a sandbox to one.

use crate::netlink::{errno_of, Netlink};
use crate::{BridgeNet, Error, Ipv4Cidr};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The longest interface name the kernel takes (`IFNAMSIZ` - 1).
pub const MAX_IFNAME: usize = 15;

/// Checks an interface name: 1 to 15 bytes, no `/`, whitespace or `:`.
pub fn check_ifname(name: &str) -> Result<(), Error> {
    let bad = |reason| Error::InterfaceName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_IFNAME {
        return Err(bad("longer than 15 bytes"));
    }
    if name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return Err(bad("contains '/', ':', whitespace or NUL, or is . or .."));
    }
    Ok(())
}

#[derive(Debug)]
struct State {
    name: String,
    index: u32,
    cidr: Ipv4Cidr,
    /// Egress NAT is on (this process put its table in).
    nat: std::sync::atomic::AtomicBool,
    /// Addresses handed out, and the names sandboxes registered for them.
    used: Mutex<Used>,
}

#[derive(Debug, Default)]
struct Used {
    taken: BTreeSet<Ipv4Addr>,
    names: BTreeMap<String, Ipv4Addr>,
    /// Where the next search for a free address starts (round robin, so a just released
    /// address is not handed out again at once).
    next: u32,
}

/// Bridges this process created or opened, by name: what a [`crate::Network::bridge`] naming
/// one uses to find its address allocator.
fn registry() -> &'static Mutex<HashMap<String, Weak<State>>> {
    static R: OnceLock<Mutex<HashMap<String, Weak<State>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Linux bridge sandboxes attach to, like `docker0`: its gateway address is the first of
/// its subnet, and it hands out the others, one per attached sandbox, taking each back
/// when the sandbox ends. Cloning shares the bridge and its allocator.
#[derive(Clone, Debug)]
pub struct Bridge {
    state: Arc<State>,
}

impl Bridge {
    /// Creates the bridge `name` with the subnet `cidr` (e.g. `"10.88.0.0/24"`): the
    /// bridge gets the subnet's first address, and is brought up. A link of that name
    /// must not exist yet (see [`Bridge::open`]).
    pub async fn create(name: &str, cidr: &str) -> Result<Bridge, Error> {
        check_ifname(name)?;
        let cidr: Ipv4Cidr = cidr.parse()?;
        let nl = Netlink::connect()?;
        if nl.index(name).await?.is_some() {
            return Err(Error::BridgeExists {
                name: name.to_string(),
            });
        }
        let index = match nl.add_bridge(name).await {
            // Made by someone else since the check.
            Err(e) if errno_of(&e) == libc::EEXIST => {
                return Err(Error::BridgeExists {
                    name: name.to_string(),
                })
            }
            r => r?,
        };
        if let Err(e) = nl.add_address(index, cidr.gateway(), cidr.prefix()).await {
            let _ = nl.delete(index).await;
            return Err(e);
        }
        Ok(Bridge::register(name, index, cidr))
    }

    /// Adopts an existing bridge: its subnet is read from its IPv4 address.
    pub async fn open(name: &str) -> Result<Bridge, Error> {
        check_ifname(name)?;
        if let Some(b) = Bridge::lookup(name) {
            return Ok(b);
        }
        let nl = Netlink::connect()?;
        let index = nl.index(name).await?.ok_or_else(|| Error::NoSuchBridge {
            name: name.to_string(),
        })?;
        if !nl.is_bridge(index).await? {
            return Err(Error::NotABridge {
                name: name.to_string(),
            });
        }
        let (addr, prefix) = nl
            .addresses(index)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Cidr {
                cidr: name.to_string(),
                reason: "the bridge has no IPv4 address to take its subnet from",
            })?;
        let cidr = Ipv4Cidr::new(addr, prefix)?;
        if addr != cidr.gateway() {
            // Sandboxes take the subnet's first address as their gateway.
            return Err(Error::Cidr {
                cidr: format!("{addr}/{prefix}"),
                reason: "a bridge to adopt must have its subnet's first address",
            });
        }
        nl.up(index).await?;
        // NAT another process turned on (an earlier `run --nat`) counts: the sandboxes
        // have a way out, and the owner's remove() takes the table out.
        let owned = name.to_string();
        let nat = blocking(move || crate::nft::exists(&owned))
            .await
            .unwrap_or(false);
        let b = Bridge::register(name, index, cidr);
        if nat {
            b.state.nat.store(true, Ordering::SeqCst);
        }
        Ok(b)
    }

    fn register(name: &str, index: u32, cidr: Ipv4Cidr) -> Bridge {
        let mut reg = lock(registry());
        // Two spawns opening the same bridge at once share one allocator.
        if let Some(state) = reg.get(name).and_then(Weak::upgrade) {
            if state.index == index {
                return Bridge { state };
            }
        }
        let state = Arc::new(State {
            name: name.to_string(),
            index,
            cidr,
            nat: std::sync::atomic::AtomicBool::new(false),
            used: Mutex::new(Used::default()),
        });
        reg.insert(name.to_string(), Arc::downgrade(&state));
        Bridge { state }
    }

    /// The bridge of that name this process created or opened, if it is still held.
    pub fn lookup(name: &str) -> Option<Bridge> {
        let state = lock(registry()).get(name)?.upgrade()?;
        Some(Bridge { state })
    }

    /// Turns on egress NAT: traffic from the bridge's subnet that leaves by another
    /// interface is masqueraded (an nftables table `sandbox-NAME`, made over netlink), and
    /// IPv4 forwarding is enabled in the caller's network namespace, as Docker does.
    pub async fn enable_nat(&self) -> Result<(), Error> {
        let (name, cidr) = (self.state.name.clone(), self.state.cidr);
        blocking(move || crate::nft::enable(&name, cidr)).await?;
        self.state.nat.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Turns egress NAT off (removes the table; forwarding is left as it is).
    pub async fn disable_nat(&self) -> Result<(), Error> {
        let name = self.state.name.clone();
        blocking(move || crate::nft::disable(&name)).await?;
        self.state.nat.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Whether NAT is on for the bridge: turned on by this process, or found on when
    /// [`Bridge::open`] adopted it.
    pub fn nat(&self) -> bool {
        self.state.nat.load(Ordering::SeqCst)
    }

    /// Deletes the bridge (its owner's call; attached sandboxes lose their network), and
    /// its NAT table if NAT is on ([`Bridge::nat`]: whichever process turned it on).
    pub async fn remove(self) -> Result<(), Error> {
        if self.nat() {
            match self.disable_nat().await {
                // Already gone: nothing to undo.
                Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {}
                r => r?,
            }
        }
        let nl = Netlink::connect()?;
        {
            let mut reg = lock(registry());
            let ours = reg
                .get(&self.state.name)
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.state)));
            if ours {
                reg.remove(&self.state.name);
            }
        }
        match nl.delete(self.state.index).await {
            Err(e) if errno_of(&e) == libc::ENODEV => Ok(()),
            r => r,
        }
    }

    /// The bridge's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Its subnet.
    pub fn cidr(&self) -> Ipv4Cidr {
        self.state.cidr
    }

    /// Its address, the sandboxes' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.state.cidr.gateway()
    }

    /// Addresses currently handed out.
    pub fn leased(&self) -> Vec<Ipv4Addr> {
        lock(&self.state.used).taken.iter().copied().collect()
    }

    /// The names sandboxes registered on this bridge, with their addresses.
    pub fn names(&self) -> Vec<(String, Ipv4Addr)> {
        lock(&self.state.used)
            .names
            .iter()
            .map(|(n, a)| (n.clone(), *a))
            .collect()
    }

    /// Takes an address: `want`, if free and in the subnet, or the next free one. `name`
    /// is registered for it (for other sandboxes' `/etc/hosts`) until the lease ends.
    ///
    /// An address is free when no lease of this process holds it and no other process on
    /// this machine has claimed it on this bridge: every lease holds an exclusive `flock`
    /// on a file named after the address under [`LEASE_DIR`](crate::LEASE_DIR) (only
    /// root may write there, so no other user can block addresses), which the kernel
    /// releases when its holder dies. So several processes sharing a bridge (two `run`
    /// commands, a crashed caller) never hand out one address twice. A caller that is not
    /// root claims with an abstract unix socket instead (see the `claim` module).
    pub fn lease(&self, want: Option<Ipv4Addr>, name: Option<&str>) -> Result<Lease, Error> {
        let cidr = self.state.cidr;
        let claimer = crate::claim::Claimer::new(&self.state.name, self.state.index);
        let mut used = lock(&self.state.used);
        let (addr, claim) = match want {
            Some(a) => {
                if !cidr.assignable(a) {
                    return Err(Error::AddressOutside { address: a, cidr });
                }
                if used.taken.contains(&a) {
                    return Err(Error::AddressTaken { address: a });
                }
                match claimer.claim(a)? {
                    Some(c) => (a, c),
                    None => return Err(Error::AddressTaken { address: a }),
                }
            }
            None => {
                let cap = cidr.capacity();
                let base = u32::from(cidr.network()) + 2;
                let mut found = None;
                for i in 0..cap {
                    let a = Ipv4Addr::from(base + (used.next + i) % cap);
                    if used.taken.contains(&a) {
                        continue;
                    }
                    if let Some(c) = claimer.claim(a)? {
                        found = Some((a, c));
                        break;
                    }
                }
                let (a, c) = found.ok_or(Error::SubnetFull { cidr })?;
                used.next = (u32::from(a) - base + 1) % cap;
                (a, c)
            }
        };
        used.taken.insert(addr);
        let name = name.map(str::to_string);
        if let Some(n) = &name {
            used.names.insert(n.clone(), addr);
        }
        Ok(Lease {
            state: self.state.clone(),
            addr,
            name,
            _claim: claim,
        })
    }
}

/// An address taken from a bridge; given back when dropped.
#[derive(Debug)]
pub struct Lease {
    state: Arc<State>,
    addr: Ipv4Addr,
    name: Option<String>,
    /// The address's machine-wide claim (see [`Bridge::lease`]).
    _claim: crate::claim::Claim,
}

impl Lease {
    /// The address.
    pub fn address(&self) -> Ipv4Addr {
        self.addr
    }

    /// The bridge it belongs to.
    pub fn bridge(&self) -> Bridge {
        Bridge {
            state: self.state.clone(),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut used = lock(&self.state.used);
        used.taken.remove(&self.addr);
        if let Some(n) = &self.name {
            if used.names.get(n) == Some(&self.addr) {
                used.names.remove(n);
            }
        }
    }
}

/// Who sets up the sandbox's end of a new veth pair (see [`Attachment::connect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerEnd {
    /// The sandbox's own setup, before its program starts, gives it the lease's address,
    /// brings it up and adds the default route (see [`Attachment::inside`]): a sandbox's
    /// first interface.
    LeftToSandbox,
    /// [`Attachment::connect`] gives it the address and brings it up at once, through a
    /// netlink socket opened in the sandbox's namespace; no default route (the first
    /// interface keeps it): another interface of a running sandbox.
    ConfiguredNow,
}

/// A sandbox's connection to a bridge: the host end of its veth pair and its address.
/// [`Attachment::detach`] removes the pair; dropping it gives the address back and leaves
/// the pair to the kernel, which removes it with the sandbox's network namespace.
#[derive(Debug)]
pub struct Attachment {
    cidr: Ipv4Cidr,
    lease: Option<Lease>,
    host_ifname: String,
    interface: String,
    /// The pair was removed by [`Attachment::detach`].
    detached: bool,
    /// The name the host end was named after.
    sandbox: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Attachment {
    /// Connects the network namespace `netns` (a `/proc/<pid>/ns/net` fd of a sandbox) to
    /// the lease's bridge: a veth pair, the host end on the bridge and up (named after
    /// `sandbox`, e.g. its hostname: `sbx-web-1x2k`), the other end created inside as
    /// `interface` and set up as `inner` says: by the sandbox's own setup, for the first
    /// interface of a sandbox that has not started its program yet
    /// ([`InnerEnd::LeftToSandbox`]), or at once, for a running sandbox, as
    /// `docker network connect` does ([`InnerEnd::ConfiguredNow`]). On failure nothing is
    /// left.
    pub async fn connect(
        netns: OwnedFd,
        lease: Lease,
        plan: &BridgeNet,
        interface: &str,
        sandbox: &str,
        inner: InnerEnd,
    ) -> Result<Attachment, Error> {
        let a = Attachment::pair(&netns, lease, plan, interface, sandbox).await?;
        if inner == InnerEnd::LeftToSandbox {
            return Ok(a);
        }
        let addr = a.address().unwrap_or(Ipv4Addr::UNSPECIFIED);
        match configure_inside(netns, interface, addr, a.cidr.prefix()).await {
            Ok(()) => Ok(a),
            Err(e) => {
                let mut a = a;
                let _ = a.detach().await;
                Err(e)
            }
        }
    }

    async fn pair(
        netns: &OwnedFd,
        lease: Lease,
        plan: &BridgeNet,
        interface: &str,
        sandbox: &str,
    ) -> Result<Attachment, Error> {
        check_ifname(interface)?;
        let bridge = lease.bridge();
        let nl = Netlink::connect()?;
        // The host end is named after the sandbox: `sbx-`, its first 6 name characters
        // and 4 characters unique in this process (`sbx-server-1x2k`); a name taken by
        // another process is retried. The fixed `sbx-` keeps a sandbox's name from
        // choosing a host interface name host firewall rules match (`eth*`).
        let prefix = host_prefix(sandbox);
        let mut tries = 0;
        let host = loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let host = format!("{prefix}-{}", suffix(n));
            match nl
                .add_veth_into(
                    &host,
                    bridge.state.index,
                    interface,
                    netns.as_fd(),
                    plan.mac,
                    plan.mtu,
                )
                .await
            {
                Err(e) if errno_of(&e) == libc::EEXIST && tries < 16 => tries += 1,
                r => {
                    r?;
                    break host;
                }
            }
        };
        Ok(Attachment {
            cidr: bridge.cidr(),
            lease: Some(lease),
            host_ifname: host,
            interface: interface.to_string(),
            detached: false,
            sandbox: sandbox.to_string(),
        })
    }

    /// What the sandbox sets on its side of a fresh pair: address, prefix length, gateway.
    pub fn inside(&self) -> Option<(Ipv4Addr, u8, Ipv4Addr)> {
        let a = self.address()?;
        Some((a, self.cidr.prefix(), self.cidr.gateway()))
    }

    /// The sandbox's address on the bridge.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.lease.as_ref().map(Lease::address)
    }

    /// The name of the host end of the veth pair.
    pub fn host_interface(&self) -> &str {
        &self.host_ifname
    }

    /// The sandbox's name the host end is named after (its hostname, as given to
    /// [`Attachment::connect`]).
    pub fn sandbox(&self) -> &str {
        &self.sandbox
    }

    /// The name of the interface inside the sandbox.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Removes the veth pair and gives the address back. If the pair cannot be removed,
    /// the address stays taken (the interface may still hold it) until the attachment is
    /// dropped, which happens when the sandbox ends.
    pub async fn detach(&mut self) -> Result<(), Error> {
        if self.detached {
            // The name may belong to another sandbox's pair by now.
            return Ok(());
        }
        delete_link(&self.host_ifname).await?;
        self.detached = true;
        self.lease = None;
        Ok(())
    }
}

/// Gives `interface` inside the namespace `netns` its address and brings it up, through a
/// netlink socket opened there.
async fn configure_inside(
    netns: OwnedFd,
    interface: &str,
    addr: Ipv4Addr,
    prefix: u8,
) -> Result<(), Error> {
    let inside = Netlink::connect_in(netns).await?;
    let idx = inside
        .index(interface)
        .await?
        .ok_or_else(|| Error::Netlink {
            what: format!("find {interface} in the sandbox"),
            errno: libc::ENODEV,
            reason: "it is not there".into(),
        })?;
    inside.add_address(idx, addr, prefix).await?;
    inside.up(idx).await
}

async fn delete_link(name: &str) -> Result<(), Error> {
    let nl = Netlink::connect()?;
    match nl.index(name).await? {
        Some(i) => match nl.delete(i).await {
            Err(e) if errno_of(&e) == libc::ENODEV => Ok(()),
            r => r,
        },
        None => Ok(()),
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // The address is free at once: the sandbox has ended (or is being killed). Its
        // pair goes with its network namespace, which the kernel tears down in batches,
        // far cheaper than a delete per pair.
        self.lease.take();
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io {
            what: "run a netfilter request".into(),
            source: std::io::Error::other(e),
        })?
}

/// `sbx-` and the first 6 characters of a sandbox's name usable in an interface name
/// (letters, digits, `-`, `_`, `.`; others become `_`), or `sbx`.
fn host_prefix(sandbox: &str) -> String {
    let p: String = sandbox
        .chars()
        .take(MAX_IFNAME - 9)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if p.is_empty() {
        "sbx".to_string()
    } else {
        format!("sbx-{p}")
    }
}

/// Four base-36 characters from this process's id and a counter: unique in the process
/// for 36^4 pairs, and unlikely to meet another process's.
fn suffix(n: u32) -> String {
    const D: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    const SPACE: u32 = 36 * 36 * 36 * 36;
    // Multiplying by a number coprime to the space permutes it; the pid shifts the start.
    let start = u64::from(std::process::id()) * 7919 % u64::from(SPACE);
    let step = u64::from(n) * 611_953 % u64::from(SPACE);
    let mut v = ((start + step) % u64::from(SPACE)) as u32;
    let mut out = [b'0'; 4];
    for c in out.iter_mut().rev() {
        *c = D[(v % 36) as usize];
        v /= 36;
    }
    out.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_fit_and_are_named_after_the_sandbox() {
        assert_eq!(host_prefix("web"), "sbx-web");
        assert_eq!(host_prefix("a very long host.name"), "sbx-a_very");
        assert_eq!(host_prefix(""), "sbx");
        assert_eq!(host_prefix("eth0"), "sbx-eth0");
        let names: BTreeSet<String> = (0..5000).map(suffix).collect();
        assert_eq!(names.len(), 5000);
        for n in [0, 1, 35, 36 * 36 * 36 * 36 - 1, u32::MAX] {
            let name = format!("{}-{}", host_prefix("0123456789abcdef"), suffix(n));
            assert!(
                check_ifname(&name).is_ok() && name.len() == MAX_IFNAME,
                "{name}"
            );
        }
    }
}
