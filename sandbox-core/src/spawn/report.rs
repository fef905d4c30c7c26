//! The messages between the child and the parent.
//!
//! **Sync channel** (a `socketpair`, close-on-exec on both ends):
//! - parent → child: one byte, [`GO`], once the parent's work (id maps) is done;
//! - child → parent: [`Frame`]s of 16 bytes: [`KIND_USERNS`] ("my user namespace exists,
//!   write my maps") on the late path, or [`KIND_ERROR`] with `(stage, errno, detail)`.
//!   End of file without an error frame means the program was executed: the last copy of
//!   the child's end was closed by `execve`. This is how `std::process` reports exec errors,
//!   extended with the stage.
//!
//! **Status pipe** (init → parent): a [`StatusFrame`] of 8 bytes with the wait status of the
//! program ([`STATUS_EXIT`]), which the parent cannot otherwise see because the init, as
//! PID 1, cannot die of a signal. The init (`init/init.c`) writes the same layouts.

/// Parent → child: go on.
pub(crate) const GO: u8 = b'G';
/// Child → parent: a setup step failed.
pub(crate) const KIND_ERROR: u32 = u32::from_be_bytes(*b"SBXE");
/// Child → parent: the user namespace exists; write its id maps.
pub(crate) const KIND_USERNS: u32 = u32::from_be_bytes(*b"SBXU");
/// Status pipe: the raw wait status of the program.
pub(crate) const STATUS_EXIT: u32 = u32::from_be_bytes(*b"SBXS");
/// A reused sandbox's control socket, after the run's [`STATUS_EXIT`]: its reset is done
/// (`{"SBXR", clean, 0, 0}`).
pub(crate) const STATUS_READY: u32 = u32::from_be_bytes(*b"SBXR");

/// A child → parent message on the sync channel.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub kind: u32,
    pub stage: u32,
    pub errno: i32,
    pub detail: u32,
}

pub(crate) const FRAME_LEN: usize = std::mem::size_of::<Frame>();

impl Frame {
    pub(crate) fn from_bytes(b: &[u8; FRAME_LEN]) -> Frame {
        let w = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        Frame {
            kind: u32::from_ne_bytes(w(0)),
            stage: u32::from_ne_bytes(w(4)),
            errno: i32::from_ne_bytes(w(8)),
            detail: u32::from_ne_bytes(w(12)),
        }
    }
}

/// An init/relay → parent message on the status pipe.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StatusFrame {
    pub kind: u32,
    pub value: i32,
}

pub(crate) const STATUS_LEN: usize = std::mem::size_of::<StatusFrame>();

impl StatusFrame {
    pub(crate) fn from_bytes(b: &[u8; STATUS_LEN]) -> StatusFrame {
        StatusFrame {
            kind: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            value: i32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_what_the_child_writes() {
        let f = Frame {
            kind: KIND_ERROR,
            stage: 7,
            errno: libc::ENOENT,
            detail: 3,
        };
        // SAFETY: Frame is repr(C) plain data of exactly FRAME_LEN bytes.
        let bytes: [u8; FRAME_LEN] = unsafe { std::mem::transmute(f) };
        assert_eq!(Frame::from_bytes(&bytes), f);
        let s = StatusFrame {
            kind: STATUS_EXIT,
            value: 9,
        };
        // SAFETY: StatusFrame is repr(C) plain data of exactly STATUS_LEN bytes.
        let bytes: [u8; STATUS_LEN] = unsafe { std::mem::transmute(s) };
        assert_eq!(StatusFrame::from_bytes(&bytes), s);
    }
}
