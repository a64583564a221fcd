//! A pseudo-terminal for a run with a terminal whose output the caller consumes as a stream.
//!
//! A runc-compatible runtime run in the foreground with `terminal: true` allocates the
//! container's pty itself and copies between it and its own stdio, which must be a terminal
//! (it puts it in raw mode). When the caller's own terminal is passed through
//! ([`OutputSink::Inherit`](super::OutputSink::Inherit)) that is the user's terminal; otherwise
//! the runtime gets the slave side of a pty allocated here, as its controlling terminal, and the
//! caller reads the master side.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustix::pty::OpenptFlags;
use tokio::io::{AsyncRead, ReadBuf};

use crate::fsutil::{IoContext, PathError};

/// The master side, kept by the executor.
#[derive(Debug)]
pub(crate) struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    pub(crate) fn open() -> Result<Self, PathError> {
        let ptmx = Path::new("/dev/ptmx");
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
                .at("open", ptmx)?;
        rustix::pty::unlockpt(&master).at("unlock", ptmx)?;
        let slave = rustix::pty::ioctl_tiocgptpeer(
            &master,
            OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
        )
        .at("open the peer of", ptmx)?;
        Ok(Self { master, slave })
    }

    /// A descriptor of the slave side, for one of the child's standard streams.
    pub(crate) fn slave(&self) -> Result<OwnedFd, PathError> {
        self.slave
            .as_fd()
            .try_clone_to_owned()
            .at("duplicate", Path::new("/dev/pts"))
    }

    /// The master and the executor's own slave descriptor (to close once the child is gone,
    /// which ends the master's stream).
    pub(crate) fn into_parts(self) -> (OwnedFd, OwnedFd) {
        (self.master, self.slave)
    }
}

/// Reads the master side; the `EIO` a master returns once every slave is closed is the end of
/// the stream.
pub(crate) struct MasterReader(pub(crate) tokio::fs::File);

impl AsyncRead for MasterReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(err)) if err.raw_os_error() == Some(libc::EIO) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

/// A socket on which a runtime run with `--console-socket` hands over the master side of the
/// container's own pty (crun's way: the executor then reads the container's terminal directly,
/// with nothing in between that could exit before copying the last output).
#[derive(Debug)]
pub(crate) struct ConsoleSocket {
    listener: tokio::net::UnixListener,
    path: std::path::PathBuf,
}

/// `sun_path` holds 108 bytes, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

impl ConsoleSocket {
    /// Listen at `path`; `None` when the path is too long for a Unix socket.
    pub(crate) fn bind(path: &Path) -> Result<Option<Self>, PathError> {
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Ok(None);
        }
        let listener = tokio::net::UnixListener::bind(path).at("listen on", path)?;
        Ok(Some(Self {
            listener,
            path: path.to_path_buf(),
        }))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Wait for the runtime to connect and send the pty master.
    pub(crate) async fn receive(&self) -> std::io::Result<OwnedFd> {
        let (stream, _) = self.listener.accept().await?;
        loop {
            stream.readable().await?;
            match stream.try_io(tokio::io::Interest::READABLE, || receive_fd(&stream)) {
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

/// Receive one file descriptor sent with `SCM_RIGHTS`.
fn receive_fd(socket: impl AsFd) -> std::io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    // The runtime sends the pty's name along with it; only the descriptor matters.
    let mut name = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    rustix::net::recvmsg(socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "the console socket message carried no file descriptor",
    ))
}
