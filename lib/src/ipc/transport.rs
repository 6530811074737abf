//! Local sockets: where they live, who may create them, and who may connect.
//!
//! Sockets are Unix domain sockets (the `interprocess` crate, with tokio) under
//! `<data_dir>/run/`:
//!
//! - The directory is created with mode 0700 and must belong to the user of the process that
//!   listens; a directory owned by someone else, or writable by others, is refused, because
//!   whoever controls the directory controls which socket a client reaches.
//! - The socket file is created with mode 0600 (`fchmod` before `bind`, so there is no umask
//!   window) and removed when the listener is dropped.
//! - A socket file left behind by a crashed run is replaced, but only after a connection attempt
//!   has been refused: a socket that still accepts connections belongs to a live server, and
//!   starting a second one is an error rather than a silent takeover. Anything at the path that
//!   is not a socket (a regular file, a symlink) is refused and left alone.
//! - Each accepted connection's peer credentials (`SO_PEERCRED`) are checked against the
//!   allow-list before a byte is read: the listener's own uid and root. (The 0700 directory
//!   already keeps everyone else out; the check also holds if a directory is shared by
//!   mistake. INTERFACE.md's 0660-with-a-group mode is not implemented yet.)
//!   The client checks the server the same way, so a socket squatted by another user is not
//!   trusted either.
//!
//! Only Linux peer credentials carry a pid; elsewhere it is reported as unknown.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use interprocess::local_socket::tokio::prelude::*;
use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use interprocess::os::unix::local_socket::ListenerOptionsExt;

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::proto::ErrorCode;
use super::{Connection, IpcError, Limits};

/// A connected local socket.
pub type LocalStream = Stream;

/// The socket procmond serves the agent on, under the data directory.
pub fn collector_socket(data_dir: &Path) -> PathBuf {
    data_dir.join("run").join("procmond.sock")
}

/// The socket the agent serves the CLI on, under the data directory.
pub fn agent_socket(data_dir: &Path) -> PathBuf {
    data_dir.join("run").join("agent.sock")
}

/// Who may be at the other end of a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPolicy {
    allowed_uids: Vec<u32>,
}

/// The credentials of a connected peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's effective uid when it connected (or listened).
    pub uid: u32,
    /// The peer's pid, when the platform tells.
    pub pid: Option<u32>,
}

impl PeerPolicy {
    /// Allows `own_uid` and root.
    pub fn new(own_uid: u32) -> Self {
        let mut allowed_uids = vec![own_uid, 0];
        allowed_uids.sort_unstable();
        allowed_uids.dedup();
        Self { allowed_uids }
    }

    /// Allows this process's effective uid and root.
    pub fn for_current_user() -> Self {
        Self::new(nix::unistd::geteuid().as_raw())
    }

    /// The uids allowed, sorted.
    pub fn allowed_uids(&self) -> &[u32] {
        &self.allowed_uids
    }

    /// Reads the peer's credentials and checks them.
    pub fn check(&self, stream: &LocalStream) -> Result<PeerInfo, IpcError> {
        let creds = stream
            .peer_creds()
            .map_err(|err| IpcError::io("reading the peer's credentials", err))?;
        let pid = creds.pid().and_then(|pid| u32::try_from(pid).ok());
        let uid = creds.euid().ok_or_else(|| {
            IpcError::io(
                "reading the peer's credentials",
                std::io::Error::other("the kernel did not report the peer's uid"),
            )
        })?;
        if !self.allowed_uids.contains(&uid) {
            return Err(IpcError::PeerNotAllowed { uid, pid });
        }
        Ok(PeerInfo { uid, pid })
    }
}

/// Creates `dir` (and missing parents) with mode 0700 if needed, then checks that it is a real
/// directory owned by this process's user and closed to others, tightening its mode if only
/// that is wrong.
pub fn prepare_run_dir(dir: &Path) -> Result<(), IpcError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| IpcError::io(format!("creating {}", dir.display()), err))?;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|err| IpcError::io(format!("inspecting {}", dir.display()), err))?;
    let unsafe_path = |reason: String| IpcError::UnsafePath {
        path: dir.to_path_buf(),
        reason,
    };
    if !meta.is_dir() {
        return Err(unsafe_path("it is not a directory".into()));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(unsafe_path(format!(
            "the directory belongs to uid {}, not to uid {euid} which runs this process",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|err| {
            IpcError::io(format!("restricting {} to mode 0700", dir.display()), err)
        })?;
    }
    Ok(())
}

/// Checks that `path`'s directory is one only this process's user (or root) can change.
fn check_parent(path: &Path) -> Result<(), IpcError> {
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let meta = std::fs::metadata(parent)
        .map_err(|err| IpcError::io(format!("inspecting {}", parent.display()), err))?;
    let euid = nix::unistd::geteuid().as_raw();
    let reason = if !meta.is_dir() {
        Some("its parent is not a directory".to_owned())
    } else if meta.uid() != euid && meta.uid() != 0 {
        Some(format!(
            "its directory belongs to uid {}, not to uid {euid}",
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "its directory {} is writable by others (mode {:o})",
            parent.display(),
            meta.mode() & 0o7777
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(IpcError::UnsafePath {
            path: path.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A listening socket that checks its peers.
#[derive(Debug)]
pub struct SocketListener {
    listener: Listener,
    path: PathBuf,
    policy: PeerPolicy,
}

/// Listens on `path` (mode 0600), replacing a stale socket from a crashed run.
///
/// Must be called within a tokio runtime.
pub fn listen(path: &Path, policy: PeerPolicy) -> Result<SocketListener, IpcError> {
    check_parent(path)?;
    remove_stale(path)?;
    let name = path
        .to_fs_name::<GenericFilePath>()
        .map_err(|err| IpcError::io(format!("naming socket {}", path.display()), err))?;
    let listener = ListenerOptions::new()
        .name(name)
        .mode(0o600)
        .reclaim_name(true)
        .create_tokio()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::AddrInUse => IpcError::InUse {
                path: path.to_path_buf(),
            },
            _ => IpcError::io(format!("listening on {}", path.display()), err),
        })?;
    Ok(SocketListener {
        listener,
        path: path.to_path_buf(),
        policy,
    })
}

/// Removes what is at `path` if, and only if, it is a socket nobody listens on any more (the
/// agent removes procmond's socket this way once procmond has stopped: procmond no longer has
/// the right to unlink it after dropping its privileges).
pub fn remove_stale(path: &Path) -> Result<(), IpcError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(IpcError::io(format!("inspecting {}", path.display()), err)),
    };
    if !meta.file_type().is_socket() {
        return Err(IpcError::UnsafePath {
            path: path.to_path_buf(),
            reason: "something that is not a socket is in the way; remove it by hand if it is \
                     not needed"
                .into(),
        });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(IpcError::InUse {
            path: path.to_path_buf(),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(IpcError::io(
                    format!("removing stale socket {}", path.display()),
                    err,
                )),
            }
        }
        Err(err) => Err(IpcError::io(
            format!("checking whether {} is still in use", path.display()),
            err,
        )),
    }
}

impl SocketListener {
    /// Waits for the next connection and returns it with its checked credentials.
    ///
    /// A peer that is not allowed is returned as `Err(PeerNotAllowed)` together with its
    /// stream, so that the caller can tell it why before closing.
    pub async fn accept(&self) -> Result<(LocalStream, Result<PeerInfo, IpcError>), IpcError> {
        let stream =
            self.listener.accept().await.map_err(|err| {
                IpcError::io(format!("accepting on {}", self.path.display()), err)
            })?;
        let peer = self.policy.check(&stream);
        Ok((stream, peer))
    }

    /// Accepts connections until `until` completes, handing each to `handle` on a task of its
    /// own: at most `max` at once (more are refused with `BUSY`), and a peer that fails the
    /// uid check is told why and closed before `handle` sees it.
    pub async fn serve<F, Fut>(
        &self,
        limits: Limits,
        max: usize,
        until: impl Future<Output = ()>,
        handle: F,
    ) where
        F: Fn(LocalStream, PeerInfo) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slots = Arc::new(Semaphore::new(max));
        tokio::pin!(until);
        loop {
            let accepted = tokio::select! {
                () = &mut until => return,
                accepted = self.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // accept() fails for reasons of the moment (EMFILE, a connection reset
                    // before it was accepted); a pause keeps a lasting cause from spinning.
                    tracing::warn!(socket = %self.path.display(), error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!(socket = %self.path.display(), "refusing a connection: {max} already open");
                tokio::spawn(Connection::refuse_unaccepted(
                    stream,
                    limits,
                    ErrorCode::Busy,
                    "too many connections",
                ));
                continue;
            };
            match peer {
                Ok(peer) => {
                    let work = handle(stream, peer);
                    tokio::spawn(async move {
                        let _slot = slot;
                        work.await;
                    });
                }
                Err(err) => {
                    tracing::warn!(socket = %self.path.display(), error = %err, "refusing a connection");
                    tokio::spawn(async move {
                        let _slot = slot;
                        Connection::refuse_unaccepted(stream, limits, err.code(), &err.to_string())
                            .await;
                    });
                }
            }
        }
    }
}

/// Connects to the socket at `path` and checks that the server runs as a user `policy` allows.
pub async fn connect(
    path: &Path,
    policy: &PeerPolicy,
) -> Result<(LocalStream, PeerInfo), IpcError> {
    let name = path
        .to_fs_name::<GenericFilePath>()
        .map_err(|err| IpcError::io(format!("naming socket {}", path.display()), err))?;
    let stream = Stream::connect(name)
        .await
        .map_err(|err| IpcError::io(format!("connecting to {}", path.display()), err))?;
    let server = policy.check(&stream)?;
    Ok((stream, server))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[tokio::test]
    async fn the_socket_is_private_and_reaches_its_listener() {
        let dir = private_dir();
        let path = dir.path().join("run/test.sock");
        prepare_run_dir(path.parent().unwrap()).unwrap();
        let run_mode = std::fs::metadata(path.parent().unwrap()).unwrap().mode();
        assert_eq!(run_mode & 0o777, 0o700);
        let listener = listen(&path, PeerPolicy::for_current_user()).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        let policy = PeerPolicy::for_current_user();
        let (client, accepted) = tokio::join!(connect(&path, &policy), listener.accept());
        let (_, server) = client.unwrap();
        let (_, peer) = accepted.unwrap();
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(server.uid, me);
        assert_eq!(peer.unwrap().pid, Some(std::process::id()));
        drop(listener);
        assert!(
            !path.exists(),
            "the listener removes its socket when dropped"
        );
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_but_a_live_one_is_not() {
        let dir = private_dir();
        let path = dir.path().join("s.sock");
        // A socket file nobody listens on, as a crashed run leaves it.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let live = listen(&path, PeerPolicy::for_current_user()).unwrap();
        let err = listen(&path, PeerPolicy::for_current_user()).unwrap_err();
        assert!(matches!(err, IpcError::InUse { .. }), "{err}");
        assert!(path.exists(), "the live socket is left in place");
        drop(live);
    }

    #[tokio::test]
    async fn something_else_at_the_path_is_left_alone() {
        let dir = private_dir();
        let path = dir.path().join("s.sock");
        std::fs::write(&path, b"precious").unwrap();
        let err = listen(&path, PeerPolicy::for_current_user()).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        let link = dir.path().join("l.sock");
        std::os::unix::fs::symlink("/tmp", &link).unwrap();
        let err = listen(&link, PeerPolicy::for_current_user()).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
    }

    #[tokio::test]
    async fn a_directory_open_to_others_is_refused() {
        let dir = private_dir();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = listen(&dir.path().join("s.sock"), PeerPolicy::for_current_user()).unwrap_err();
        assert!(err.to_string().contains("writable by others"), "{err}");
    }

    #[test]
    fn a_run_directory_of_another_user_is_refused() {
        // Only root can make a directory owned by someone else; CI runs as root.
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let dir = private_dir();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        nix::unistd::chown(&run, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let err = prepare_run_dir(&run).unwrap_err();
        assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
    }

    #[test]
    fn the_policy_always_allows_root_and_the_owner() {
        let policy = PeerPolicy::new(1000);
        assert_eq!(policy.allowed_uids(), &[0, 1000]);
    }
}
