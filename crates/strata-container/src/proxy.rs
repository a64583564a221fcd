//! `-p HOST:CONTAINER` for a container in its own network namespace (`--network none`): a
//! userspace proxy, as docker's `docker-proxy`. The host side listens in the host's namespace;
//! each accepted connection gets a thread that enters the container's network namespace
//! (`setns` is per thread), connects to the container's loopback port there, and then copies
//! bytes both ways (a socket keeps the namespace it was made in, whatever thread uses it).
//!
//! On the host network there is nothing to forward: the container's ports are the host's.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::error::{ContainerError, Result};
use crate::record::PortMapping;

/// Bound host listeners, waiting for the container's network namespace.
#[derive(Debug)]
pub struct Listeners {
    bound: Vec<(TcpListener, u16)>,
}

/// Running forwarders; they stop accepting when dropped.
#[derive(Debug)]
pub struct Forwarders {
    stop: Arc<AtomicBool>,
}

impl Drop for Forwarders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Binds every mapping's host address first, so a taken port fails before the container starts.
pub fn bind(ports: &[PortMapping]) -> Result<Listeners> {
    let mut bound = Vec::with_capacity(ports.len());
    for mapping in ports {
        let ip = mapping.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let listener = TcpListener::bind(SocketAddr::new(ip, mapping.host_port))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| ContainerError::Publish {
                spec: mapping.display(),
                source,
            })?;
        bound.push((listener, mapping.container_port));
    }
    Ok(Listeners { bound })
}

impl Listeners {
    /// Starts forwarding into the network namespace of process `pid` (the container's init).
    pub fn forward_to(self, pid: i32) -> Result<Forwarders> {
        let ns_path = format!("/proc/{pid}/ns/net");
        let ns = Arc::new(File::open(&ns_path).map_err(|source| ContainerError::Io {
            action: "open",
            path: ns_path.into(),
            source,
        })?);
        let stop = Arc::new(AtomicBool::new(false));
        for (listener, port) in self.bound {
            let ns = Arc::clone(&ns);
            let stop = Arc::clone(&stop);
            thread::spawn(move || accept_loop(listener, port, ns, stop));
        }
        Ok(Forwarders { stop })
    }
}

fn accept_loop(listener: TcpListener, port: u16, ns: Arc<File>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                let ns = Arc::clone(&ns);
                thread::spawn(move || {
                    let _ = client.set_nonblocking(false);
                    if let Ok(upstream) = connect_in(&ns, port) {
                        splice(client, upstream);
                    }
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Connects to `127.0.0.1:port` inside the namespace (this thread moves into it for good: it
/// is a per-connection thread).
fn connect_in(ns: &File, port: u16) -> io::Result<TcpStream> {
    rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )?;
    TcpStream::connect((Ipv4Addr::LOCALHOST, port))
}

/// Copies both ways until both sides are done, half-closing as each direction ends.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || pipe(a, b2));
    pipe(b, a2);
    let _ = up.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
