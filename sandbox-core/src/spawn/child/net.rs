//! The network namespace's interfaces: loopback up, and a bridged network's `eth0`
//! configured (address, netmask, up, default route) with ioctls.

use super::syscall::{sys, Fd};
use crate::spawn::prepare::IfConfig;
use libc::c_int;

pub(super) fn loopback_up() -> Result<(), c_int> {
    let s = ioctl_socket()?;
    let mut ifr = ifreq(b"lo\0");
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    ifreq_ioctl(&s, libc::SIOCSIFFLAGS, &mut ifr)
}

/// A datagram socket to make interface requests on (closed when dropped).
fn ioctl_socket() -> Result<Fd, c_int> {
    let s = sys!(
        libc::SYS_socket,
        libc::AF_INET,
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        0
    )?;
    Ok(Fd(s as c_int))
}

/// An interface request for the interface `name` (NUL-terminated, at most 16 bytes: the
/// rest is cut), everything else zero.
fn ifreq(name: &[u8]) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    ifr
}

/// `ioctl(s, request, ifr)`: one interface request (the kernel may fill `ifr` in).
fn ifreq_ioctl(s: &Fd, request: libc::c_ulong, ifr: &mut libc::ifreq) -> Result<(), c_int> {
    sys!(libc::SYS_ioctl, s.0, request, ifr as *mut libc::ifreq).map(drop)
}

fn sockaddr_in(addr: u32) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: addr },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; both are plain data.
    unsafe { core::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// `eth0` of a bridged network (the parent created it in this namespace): address,
/// netmask, up, default route through the bridge. ioctls on a datagram socket, as
/// `ifconfig` and `route` do.
pub(super) fn configure_interface(c: &IfConfig) -> Result<(), c_int> {
    let s = ioctl_socket()?;
    let mut ifr = ifreq(&c.name);
    ifr.ifr_ifru.ifru_addr = sockaddr_in(c.addr);
    ifreq_ioctl(&s, libc::SIOCSIFADDR, &mut ifr)?;
    ifr.ifr_ifru.ifru_netmask = sockaddr_in(c.mask);
    ifreq_ioctl(&s, libc::SIOCSIFNETMASK, &mut ifr)?;
    ifreq_ioctl(&s, libc::SIOCGIFFLAGS, &mut ifr)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    ifreq_ioctl(&s, libc::SIOCSIFFLAGS, &mut ifr)?;
    // SAFETY: rtentry is plain data; all-zero is valid (destination and mask 0.0.0.0).
    let mut rt: libc::rtentry = unsafe { core::mem::zeroed() };
    rt.rt_dst = sockaddr_in(0);
    rt.rt_genmask = sockaddr_in(0);
    rt.rt_gateway = sockaddr_in(c.gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    rt.rt_dev = c.name.as_ptr() as *mut libc::c_char;
    sys!(
        libc::SYS_ioctl,
        s.0,
        libc::SIOCADDRT,
        &mut rt as *mut libc::rtentry
    )
    .map(drop)
}
