//! The control channel between the init and its monitor (and a terminal's way out):
//! Unix sockets, one message per packet, with file descriptors as SCM_RIGHTS.

use crate::sys::{self, errno_text, AF_UNIX, O_CLOEXEC};
use crate::text::decimal;
use crate::{check, fail};

const SOCK_SEQPACKET: usize = 5;
const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;
const MSG_NOSIGNAL: usize = 0x4000;
const MSG_CMSG_CLOEXEC: usize = 0x4000_0000;
/// Stdio plus preserved fds the monitor may pass.
pub const MAX_FDS: usize = 64;

#[repr(C)]
struct Iovec {
    base: *mut u8,
    len: usize,
}

#[repr(C)]
struct Msghdr {
    name: *mut u8,
    namelen: u32,
    iov: *mut Iovec,
    iovlen: usize,
    control: *mut u8,
    controllen: usize,
    flags: i32,
}

impl Msghdr {
    /// A message of one buffer, with `controllen` bytes of control data at `control`.
    fn new(iov: &mut Iovec, control: *mut u8, controllen: usize) -> Msghdr {
        Msghdr {
            name: core::ptr::null_mut(),
            namelen: 0,
            iov,
            iovlen: 1,
            control,
            controllen,
            flags: 0,
        }
    }
}

/// A control message buffer: a cmsghdr (16 bytes) and up to MAX_FDS fds.
#[repr(C, align(8))]
struct Cmsg([u8; 16 + 4 * MAX_FDS]);

#[repr(C)]
pub struct SockaddrUn {
    pub family: u16,
    pub path: [u8; 108],
}

/// One packet of `data` with `fds`; the kernel's result.
pub fn send(sock: isize, data: &[u8], fds: &[i32]) -> isize {
    let mut iov = Iovec {
        base: data.as_ptr() as *mut u8,
        len: data.len(),
    };
    let mut cmsg = Cmsg([0; 16 + 4 * MAX_FDS]);
    let mut msg = Msghdr::new(&mut iov, core::ptr::null_mut(), 0);
    if !fds.is_empty() {
        let len = 16 + 4 * fds.len();
        cmsg.0[..8].copy_from_slice(&len.to_ne_bytes());
        cmsg.0[8..12].copy_from_slice(&SOL_SOCKET.to_ne_bytes());
        cmsg.0[12..16].copy_from_slice(&SCM_RIGHTS.to_ne_bytes());
        for (i, fd) in fds.iter().enumerate() {
            cmsg.0[16 + 4 * i..20 + 4 * i].copy_from_slice(&fd.to_ne_bytes());
        }
        msg.control = cmsg.0.as_mut_ptr();
        msg.controllen = (len + 7) & !7;
    }
    // SAFETY: msg points at live buffers of the lengths it gives.
    unsafe {
        sys::call(
            sys::SENDMSG,
            sock as usize,
            &msg as *const Msghdr as usize,
            MSG_NOSIGNAL,
        )
    }
}

/// One packet into `data`, its fds into `fds`: (packet length, fd count).
pub fn recv(sock: isize, data: &mut [u8], fds: &mut [i32; MAX_FDS]) -> (isize, usize) {
    let mut iov = Iovec {
        base: data.as_mut_ptr(),
        len: data.len(),
    };
    let mut cmsg = Cmsg([0; 16 + 4 * MAX_FDS]);
    let mut msg = Msghdr::new(&mut iov, cmsg.0.as_mut_ptr(), cmsg.0.len());
    // SAFETY: msg points at live buffers of the lengths it gives.
    let n = unsafe {
        sys::call(
            sys::RECVMSG,
            sock as usize,
            &mut msg as *mut Msghdr as usize,
            MSG_CMSG_CLOEXEC,
        )
    };
    if n < 0 || msg.controllen < 16 {
        return (n, 0);
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&cmsg.0[..8]);
    let len = usize::from_ne_bytes(word).min(msg.controllen);
    let level = i32::from_ne_bytes([cmsg.0[8], cmsg.0[9], cmsg.0[10], cmsg.0[11]]);
    let kind = i32::from_ne_bytes([cmsg.0[12], cmsg.0[13], cmsg.0[14], cmsg.0[15]]);
    if level != SOL_SOCKET || kind != SCM_RIGHTS || len < 16 {
        return (n, 0);
    }
    let count = ((len - 16) / 4).min(MAX_FDS);
    for (i, slot) in fds.iter_mut().enumerate().take(count) {
        let at = 16 + 4 * i;
        *slot = i32::from_ne_bytes([cmsg.0[at], cmsg.0[at + 1], cmsg.0[at + 2], cmsg.0[at + 3]]);
    }
    (n, count)
}

/// A packet of `tag` and `n` in decimal: `K<signal>`, `E<exit code>`.
pub fn send_number(sock: isize, tag: u8, n: u32) {
    let mut digits = [0u8; 12];
    let text = decimal(n, &mut digits);
    let mut packet = [0u8; 13];
    packet[0] = tag;
    packet[1..1 + text.len()].copy_from_slice(text);
    send(sock, &packet[..1 + text.len()], &[]);
}

/// Connects to the SOCK_SEQPACKET socket at `path` (NUL-terminated).
pub fn connect(path: *const u8) -> isize {
    // SAFETY: socket takes plain integers.
    let sock = check(
        unsafe { sys::call(sys::SOCKET, AF_UNIX, SOCK_SEQPACKET | O_CLOEXEC, 0) },
        b"cannot create a socket",
    );
    let len = sys::strlen(path) + 1;
    let mut addr = SockaddrUn {
        family: AF_UNIX as u16,
        path: [0; 108],
    };
    if len > addr.path.len() {
        fail(125, &[b"the socket path is too long"]);
    }
    // SAFETY: `len` bytes of the path, its NUL included.
    addr.path[..len].copy_from_slice(unsafe { core::slice::from_raw_parts(path, len) });
    // SAFETY: addr is a sockaddr_un of at least 2 + len bytes.
    let err = unsafe {
        sys::call(
            sys::CONNECT,
            sock as usize,
            &addr as *const SockaddrUn as usize,
            2 + len,
        )
    };
    if err < 0 {
        // SAFETY: as above.
        let shown = unsafe { core::slice::from_raw_parts(path, len - 1) };
        fail(125, &[b"cannot reach ", shown, b": ", errno_text(err)]);
    }
    sock
}
