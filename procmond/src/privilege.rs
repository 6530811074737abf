//! The privilege drop: started as root, procmond becomes `collector.user` keeping only the two
//! capabilities it needs to see every process.
//!
//! procmond must read `/proc/PID/exe` and hash the executable of processes owned by any user.
//! That takes `CAP_SYS_PTRACE` (the kernel's ptrace access check guards the `exe` link of
//! another user's process) and `CAP_DAC_READ_SEARCH` (to open an executable whose mode
//! would not let our user read it). Everything else root can do is given up before the first
//! scan, and `no_new_privs` makes sure no later `execve` can win anything back.
//!
//! This module must never let procmond continue as root when a step fails, never fall back
//! silently to another user when the configured one is missing, never keep a capability beyond
//! [`KEPT_CAPABILITIES`], and never run in a process with more than one thread: capabilities are
//! per thread, so a thread that existed before the drop would keep root's. The caller exits on
//! any error. It uses no `unsafe`: `nix` and `caps` make the system calls.
//!
//! Started by an ordinary user, procmond drops nothing and collects what that user can see.
//!
//! # Which user
//!
//! [`choose_user`] decides, as root, before anything changes: `collector.user` if configured
//! (it must exist and must not be root, by uid or primary gid); else the dedicated
//! [`DEFAULT_USER`] if the host has one; else a uid and gid of procmond's own that no account
//! and no other process has ([`dynamic`], as systemd's `DynamicUser=`), kept stable per data
//! directory. Never the shared `nobody`: any process running as `nobody` could signal, stop or
//! trace a collector with the same uid. The ledger directory is then handed to that user
//! ([`give_to_collector_user`]) and the drop goes to it ([`drop_privileges`]).

use std::io;
use std::path::Path;

#[cfg(target_os = "linux")]
use caps::{CapSet, Capability};
use thiserror::Error;

/// The user procmond runs as when `collector.user` is not configured and this user exists.
pub const DEFAULT_USER: &str = "daemoneye";

/// The name reported for a uid of procmond's own ([`dynamic`]): no account has it, so it has
/// no name of its own; the uid tells which one.
pub const DYNAMIC_USER: &str = "(dynamic)";

#[cfg(target_os = "linux")]
pub mod dynamic;

/// The capabilities procmond keeps after the drop.
#[cfg(target_os = "linux")]
pub const KEPT_CAPABILITIES: [Capability; 2] =
    [Capability::CAP_DAC_READ_SEARCH, Capability::CAP_SYS_PTRACE];

/// The id reported when the kernel will not tell one, as the kernel itself spells "no id" (-1).
const NO_ID: u32 = u32::MAX;

/// What [`drop_privileges`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivilegeOutcome {
    /// Started as root and now runs as `user` with only the kept capabilities.
    Dropped { user: String, uid: u32, gid: u32 },
    /// Not started as root: nothing to drop; procmond collects what this user can see.
    NotRoot { uid: u32 },
}

/// This process's privileges, for health reports.
///
/// Where the kernel refuses to answer (it does not, on any kernel procmond supports), ids read
/// `u32::MAX`, capability masks read all ones and `no_new_privs` reads false: an unknown state
/// never looks like a successful drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PrivilegeState {
    /// Real user id.
    pub uid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Saved set-user-id.
    pub suid: u32,
    /// Real group id.
    pub gid: u32,
    /// Effective capabilities, bit N for capability N, as `CapEff` in `/proc/PID/status`.
    pub effective_caps: u64,
    /// Permitted capabilities, as `CapPrm`.
    pub permitted_caps: u64,
    /// Whether `PR_SET_NO_NEW_PRIVS` is set.
    pub no_new_privs: bool,
}

/// Why procmond refuses to start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PrivilegeError {
    #[error("reading {path} failed")]
    ReadStatus {
        path: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path} has no readable {field} line")]
    StatusField {
        path: &'static str,
        field: &'static str,
    },
    #[error(
        "procmond has {threads} threads; the privilege drop must run while it has one, or the \
         others would keep root's capabilities"
    )]
    MultipleThreads { threads: u32 },
    #[error(
        "started with mixed user ids (real {real}, effective {effective}, saved {saved}): \
         start procmond as root or as an ordinary user"
    )]
    MixedIds {
        real: u32,
        effective: u32,
        saved: u32,
    },
    #[error("configured collector.user {name:?} does not exist")]
    UnknownUser { name: String },
    #[error("looking up user {name:?} failed")]
    LookupUser {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "no user {DEFAULT_USER} and no free id left for one of procmond's own in \
         61184-65519; create user {DEFAULT_USER} or set collector.user"
    )]
    NoFreeId,
    #[error("refusing to run as user {name:?}: its uid {uid} or primary gid {gid} is root's")]
    TargetIsRoot { name: String, uid: u32, gid: u32 },
    #[cfg(target_os = "linux")]
    #[error("dropping {capability} from the bounding set failed")]
    BoundingSet {
        capability: Capability,
        #[source]
        source: caps::errors::CapsError,
    },
    #[cfg(target_os = "linux")]
    #[error("{step} failed")]
    Capabilities {
        step: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("{step} failed")]
    Syscall {
        step: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("the privilege drop did not hold: {what}")]
    Verify { what: String },
    #[error("privilege drop is only implemented on linux")]
    Unsupported,
}

/// The `/proc/PID/status`-style mask of `caps`: bit N set for capability N.
#[cfg(target_os = "linux")]
pub fn capability_mask(caps: impl IntoIterator<Item = Capability>) -> u64 {
    caps.into_iter().fold(0, |mask, cap| mask | cap.bitmask())
}

/// The user to become, as [`choose_user`] resolved it: not yet switched to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUser {
    /// The account's name, or [`DYNAMIC_USER`].
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid, procmond's only group after the drop.
    pub gid: u32,
}

/// The user procmond will drop to (see the module doc), or `None` when it was not started as
/// root and has nothing to drop. `state_dir` (the data directory) keeps a dynamic id stable
/// across restarts.
///
/// Resolving comes first, before anything changes, so a typo in the configuration leaves the
/// process as it was and the error names the user.
#[cfg(target_os = "linux")]
pub fn choose_user(
    configured: Option<&str>,
    state_dir: Option<&Path>,
) -> Result<Option<TargetUser>, PrivilegeError> {
    if !started_as_root()? {
        return Ok(None);
    }
    resolve_user(configured, lookup_user, || dynamic::choose(state_dir)).map(Some)
}

/// Off Linux there is no drop: as root procmond refuses to run.
#[cfg(not(target_os = "linux"))]
pub fn choose_user(
    _configured: Option<&str>,
    _state_dir: Option<&Path>,
) -> Result<Option<TargetUser>, PrivilegeError> {
    if nix::unistd::geteuid().is_root() {
        return Err(PrivilegeError::Unsupported);
    }
    Ok(None)
}

/// Whether this process runs as root (and can drop); an error for mixed ids.
#[cfg(target_os = "linux")]
fn started_as_root() -> Result<bool, PrivilegeError> {
    let ids = nix::unistd::getresuid().map_err(syscall("getresuid"))?;
    if !ids.effective.is_root() && (ids.real.is_root() || ids.saved.is_root()) {
        // A saved or real uid of 0 would let this process become root again at will, so it is
        // not an ordinary user, and dropping from it is not what this module does.
        return Err(PrivilegeError::MixedIds {
            real: ids.real.as_raw(),
            effective: ids.effective.as_raw(),
            saved: ids.saved.as_raw(),
        });
    }
    Ok(ids.effective.is_root())
}

/// Drops root for `target` (from [`choose_user`]) keeping only [`KEPT_CAPABILITIES`], or
/// reports that there was no root to drop.
///
/// Must be called while the process has exactly one thread (capabilities are per thread;
/// threads created afterwards inherit the reduced sets). Returns an error, and the caller exits,
/// if any step fails or the final state check does not hold.
#[cfg(target_os = "linux")]
pub fn drop_privileges(target: &TargetUser) -> Result<PrivilegeOutcome, PrivilegeError> {
    use nix::sys::prctl;
    use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};

    if !started_as_root()? {
        return Ok(PrivilegeOutcome::NotRoot {
            uid: nix::unistd::geteuid().as_raw(),
        });
    }
    // Step 1 was choose_user. Group 0 opens root's files as surely as uid 0 does, so neither
    // counts as dropped, whoever built the target.
    if target.uid == 0 || target.gid == 0 {
        return Err(PrivilegeError::TargetIsRoot {
            name: target.name.clone(),
            uid: target.uid,
            gid: target.gid,
        });
    }
    // glibc applies setresuid and setgroups to every thread, but capset(2) and the prctl flags
    // change only the calling thread: a second thread would come out of the drop as a non-root
    // user holding all of root's capabilities. The user lookup may have loaded NSS modules,
    // and a module may start a thread: this runs after it, when nothing else runs before the
    // drop.
    require_one_thread()?;
    let kept: caps::CapsHashSet = KEPT_CAPABILITIES.into_iter().collect();

    // Step 2: shrink the bounding set while we still hold CAP_SETPCAP, which dropping from it
    // needs. The bounding set caps what any later execve could grant; the ambient and
    // inheritable sets are what an execve would pass on, so both are emptied.
    drop_bounding_set()?;
    caps::clear(None, CapSet::Ambient).map_err(capabilities("clearing the ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(capabilities("clearing the inheritable set"))?;

    // Step 3: without PR_SET_KEEPCAPS the kernel empties the permitted set when the last uid
    // leaves 0, and the two capabilities we keep would be gone with the rest.
    prctl::set_keepcaps(true).map_err(syscall("setting keepcaps"))?;

    // Step 4: groups first, while CAP_SETGID is still effective; setresuid last, since it
    // clears the effective set and with it the right to change groups. All three ids of each
    // kind are set so no saved id is left to switch back to.
    let (uid, gid) = (Uid::from_raw(target.uid), Gid::from_raw(target.gid));
    setgroups(&[gid]).map_err(syscall("setgroups"))?;
    setresgid(gid, gid, gid).map_err(syscall("setresgid"))?;
    setresuid(uid, uid, uid).map_err(syscall("setresuid"))?;

    // Step 5: the effective set is empty now and the permitted set still holds all of root's.
    // The permitted set is cut to the two first, because capset(2) rejects an effective set
    // that is not a subset of the permitted one; then the two are made effective. Keepcaps has
    // done its job and goes back off.
    caps::set(None, CapSet::Permitted, &kept).map_err(capabilities("setting the permitted set"))?;
    caps::set(None, CapSet::Effective, &kept).map_err(capabilities("setting the effective set"))?;
    prctl::set_keepcaps(false).map_err(syscall("clearing keepcaps"))?;

    // Step 6: from here on no execve can add a capability or switch to a set-user-id owner.
    prctl::set_no_new_privs().map_err(syscall("setting no_new_privs"))?;

    // Step 7: trust the kernel's account of the result, not the return codes above.
    check_dropped(&observe()?, target)?;
    Ok(PrivilegeOutcome::Dropped {
        user: target.name.clone(),
        uid: target.uid,
        gid: target.gid,
    })
}

/// On platforms other than Linux there is no drop to do as an ordinary user, and no
/// implementation to run as root, which procmond must then refuse.
#[cfg(not(target_os = "linux"))]
pub fn drop_privileges(_target: &TargetUser) -> Result<PrivilegeOutcome, PrivilegeError> {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        return Err(PrivilegeError::Unsupported);
    }
    Ok(PrivilegeOutcome::NotRoot { uid: euid.as_raw() })
}

/// Makes `dir` (created with mode 0700 if missing) and the files directly in it belong to
/// `target`, the user procmond will drop to, so that it can go on writing them after the drop
/// (also when a restart brought a new dynamic id). Does nothing when procmond does not run as
/// root. Refuses a `dir` that is a symbolic link; links inside it are left alone (never
/// followed).
#[cfg(target_os = "linux")]
pub fn give_to_collector_user(dir: &Path, target: &TargetUser) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;

    use nix::fcntl::AtFlags;
    use nix::unistd::{Gid, Uid, fchownat};

    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if std::fs::symlink_metadata(dir)?.file_type().is_symlink() {
        return Err(io::Error::other(format!(
            "{} is a symbolic link; refusing to hand it to {}",
            dir.display(),
            target.name
        )));
    }
    let owner = (
        Some(Uid::from_raw(target.uid)),
        Some(Gid::from_raw(target.gid)),
    );
    let chown = |path: &std::path::Path| {
        fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            owner.0,
            owner.1,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)
    };
    chown(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            chown(&entry.path())?;
        }
    }
    Ok(())
}

/// On platforms other than Linux procmond refuses to run as root, so there is nothing to hand
/// over.
#[cfg(not(target_os = "linux"))]
pub fn give_to_collector_user(dir: &Path, _target: &TargetUser) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Refuses to go on unless this process has exactly one thread.
#[cfg(target_os = "linux")]
fn require_one_thread() -> Result<(), PrivilegeError> {
    let status = read_status(PROCESS_STATUS)?;
    let threads = status_field(&status, "Threads")
        .and_then(|value| value.parse::<u32>().ok())
        .ok_or(PrivilegeError::StatusField {
            path: PROCESS_STATUS,
            field: "Threads",
        })?;
    if threads != 1 {
        return Err(PrivilegeError::MultipleThreads { threads });
    }
    Ok(())
}

/// Reads this process's current privileges (of the calling thread, for the capabilities).
#[cfg(target_os = "linux")]
pub fn current_state() -> PrivilegeState {
    use nix::unistd::{getresgid, getresuid};

    // getresuid(2) and getresgid(2) fail only with EFAULT, for a bad pointer, and nix passes
    // pointers to its own locals; capget(2) for the calling thread with the version-3 header the
    // caps crate uses works on every kernel since 2.6.26. The fallbacks are the loud values
    // described on PrivilegeState, not guesses.
    let (uid, euid, suid) = getresuid().map_or((NO_ID, NO_ID, NO_ID), |ids| {
        (
            ids.real.as_raw(),
            ids.effective.as_raw(),
            ids.saved.as_raw(),
        )
    });
    let gid = getresgid().map_or(NO_ID, |ids| ids.real.as_raw());
    let mask = |set| caps::read(None, set).map_or(u64::MAX, capability_mask);
    PrivilegeState {
        uid,
        euid,
        suid,
        gid,
        effective_caps: mask(CapSet::Effective),
        permitted_caps: mask(CapSet::Permitted),
        // PR_GET_NO_NEW_PRIVS fails only on kernels before 3.5, which do not have the flag.
        no_new_privs: nix::sys::prctl::get_no_new_privs().unwrap_or(false),
    }
}

/// Reads this process's current privileges; there are no capabilities to report off Linux.
#[cfg(not(target_os = "linux"))]
pub fn current_state() -> PrivilegeState {
    use nix::unistd::{geteuid, getgid, getuid};

    PrivilegeState {
        uid: getuid().as_raw(),
        euid: geteuid().as_raw(),
        // Not every platform has getresuid; the saved id is then unknown, not guessed.
        suid: NO_ID,
        gid: getgid().as_raw(),
        effective_caps: 0,
        permitted_caps: 0,
        no_new_privs: false,
    }
}

/// Status of the whole process, where `Threads` counts every thread.
#[cfg(target_os = "linux")]
const PROCESS_STATUS: &str = "/proc/self/status";

/// Status of the calling thread, whose capability sets are the ones this module changed.
#[cfg(target_os = "linux")]
const THREAD_STATUS: &str = "/proc/thread-self/status";

/// Picks the user: the configured one (and only it: a missing configured user is an error, not
/// a reason to pick another), else [`DEFAULT_USER`], else an id of procmond's own from
/// `dynamic` (used as uid and gid). `lookup` returns the uid and primary gid of a user, `None`
/// for no such user.
#[cfg(target_os = "linux")]
fn resolve_user(
    configured: Option<&str>,
    lookup: impl Fn(&str) -> io::Result<Option<(u32, u32)>>,
    dynamic: impl FnOnce() -> Result<u32, PrivilegeError>,
) -> Result<TargetUser, PrivilegeError> {
    let find = |name: &str| {
        lookup(name).map_err(|source| PrivilegeError::LookupUser {
            name: name.to_owned(),
            source,
        })
    };
    let (name, (uid, gid)) = match configured {
        Some(name) => (
            name,
            find(name)?.ok_or_else(|| PrivilegeError::UnknownUser {
                name: name.to_owned(),
            })?,
        ),
        None => match find(DEFAULT_USER)? {
            Some(ids) => (DEFAULT_USER, ids),
            None => {
                let id = dynamic()?;
                (DYNAMIC_USER, (id, id))
            }
        },
    };
    // Group 0 opens root's files as surely as uid 0 does, so neither counts as dropped.
    if uid == 0 || gid == 0 {
        return Err(PrivilegeError::TargetIsRoot {
            name: name.to_owned(),
            uid,
            gid,
        });
    }
    Ok(TargetUser {
        name: name.to_owned(),
        uid,
        gid,
    })
}

/// Looks a user up in the system's user database.
#[cfg(target_os = "linux")]
fn lookup_user(name: &str) -> io::Result<Option<(u32, u32)>> {
    let user = nix::unistd::User::from_name(name)?;
    Ok(user.map(|user| (user.uid.as_raw(), user.gid.as_raw())))
}

/// Drops from the bounding set every capability the kernel has and procmond does not keep.
#[cfg(target_os = "linux")]
fn drop_bounding_set() -> Result<(), PrivilegeError> {
    for capability in caps::all() {
        if KEPT_CAPABILITIES.contains(&capability) {
            continue;
        }
        // PR_CAPBSET_READ fails (EINVAL) only for a capability this kernel does not have, and
        // there is nothing to drop then. A capability newer than the caps crate cannot be named
        // here at all; the final check reads the kernel's whole mask and refuses to start if
        // one is left.
        if let Ok(true) = caps::has_cap(None, CapSet::Bounding, capability) {
            caps::drop(None, CapSet::Bounding, capability)
                .map_err(|source| PrivilegeError::BoundingSet { capability, source })?;
        }
    }
    Ok(())
}

/// What the kernel reports after the drop.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    /// Every user id reported: `Uid` of the thread's status (real, effective, saved, filesystem)
    /// followed by getresuid's three.
    uids: Vec<u32>,
    /// The same for group ids.
    gids: Vec<u32>,
    /// Supplementary groups.
    groups: Vec<u32>,
    inheritable: u64,
    permitted: u64,
    effective: u64,
    bounding: u64,
    ambient: u64,
    /// True only if both the status file and prctl say so.
    no_new_privs: bool,
    /// Whether setuid(0) succeeded.
    regained_root: bool,
}

/// Reads the thread's status and the ids, and tries to become root again.
#[cfg(target_os = "linux")]
fn observe() -> Result<Observed, PrivilegeError> {
    use nix::unistd::{Uid, getresgid, getresuid, setuid};

    let status = read_status(THREAD_STATUS)?;
    let ids = |field| {
        status_field(&status, field)
            .and_then(parse_ids)
            .ok_or(PrivilegeError::StatusField {
                path: THREAD_STATUS,
                field,
            })
    };
    let mask = |field| {
        status_field(&status, field)
            .and_then(|value| u64::from_str_radix(value, 16).ok())
            .ok_or(PrivilegeError::StatusField {
                path: THREAD_STATUS,
                field,
            })
    };
    let mut uids = ids("Uid")?;
    let res_uid = getresuid().map_err(syscall("getresuid"))?;
    uids.extend([res_uid.real, res_uid.effective, res_uid.saved].map(Uid::as_raw));
    let mut gids = ids("Gid")?;
    let res_gid = getresgid().map_err(syscall("getresgid"))?;
    gids.extend([res_gid.real, res_gid.effective, res_gid.saved].map(|gid| gid.as_raw()));
    let no_new_privs = status_field(&status, "NoNewPrivs") == Some("1")
        && nix::sys::prctl::get_no_new_privs().unwrap_or(false);
    Ok(Observed {
        uids,
        gids,
        groups: ids("Groups")?,
        inheritable: mask("CapInh")?,
        permitted: mask("CapPrm")?,
        effective: mask("CapEff")?,
        bounding: mask("CapBnd")?,
        ambient: mask("CapAmb")?,
        no_new_privs,
        // The attempt is the test: it must fail with EPERM. Should it succeed, the process is
        // root again, this check fails and the caller exits.
        regained_root: setuid(Uid::from_raw(0)).is_ok(),
    })
}

/// Step 7's judgement of what [`observe`] saw: exactly the target ids, only the kept
/// capabilities and no way back.
#[cfg(target_os = "linux")]
fn check_dropped(seen: &Observed, target: &TargetUser) -> Result<(), PrivilegeError> {
    let kept = capability_mask(KEPT_CAPABILITIES);
    let fail = |what: String| Err(PrivilegeError::Verify { what });
    if seen.uids.is_empty() || seen.uids.iter().any(|&uid| uid != target.uid) {
        return fail(format!(
            "user ids are {:?}, not all {}",
            seen.uids, target.uid
        ));
    }
    if seen.gids.is_empty() || seen.gids.iter().any(|&gid| gid != target.gid) {
        return fail(format!(
            "group ids are {:?}, not all {}",
            seen.gids, target.gid
        ));
    }
    if seen.groups != [target.gid] {
        return fail(format!(
            "supplementary groups are {:?}, not [{}]",
            seen.groups, target.gid
        ));
    }
    for (set, mask, want) in [
        ("permitted", seen.permitted, kept),
        ("effective", seen.effective, kept),
        ("bounding", seen.bounding, kept),
        ("inheritable", seen.inheritable, 0),
        ("ambient", seen.ambient, 0),
    ] {
        if mask != want {
            return fail(format!(
                "{set} capabilities are {mask:016x}, not {want:016x}"
            ));
        }
    }
    if !seen.no_new_privs {
        return fail("no_new_privs is not set".to_owned());
    }
    if seen.regained_root {
        return fail("setuid(0) succeeded after the drop".to_owned());
    }
    Ok(())
}

/// Reads a status file of our own (a few KiB), bounded like every other procfs read.
#[cfg(target_os = "linux")]
fn read_status(path: &'static str) -> Result<String, PrivilegeError> {
    let read = std::fs::File::open(path)
        .and_then(|file| crate::procfs::read_to_bound(file, crate::procfs::SMALL_FILE_MAX));
    match read {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(source) => Err(PrivilegeError::ReadStatus { path, source }),
    }
}

/// The value of `Key:` in a `/proc/PID/status` text, trimmed.
#[cfg(target_os = "linux")]
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// Whitespace-separated decimal ids, as on the `Uid`, `Gid` and `Groups` lines.
#[cfg(target_os = "linux")]
fn parse_ids(value: &str) -> Option<Vec<u32>> {
    value.split_whitespace().map(|id| id.parse().ok()).collect()
}

#[cfg(target_os = "linux")]
fn syscall(step: &'static str) -> impl FnOnce(nix::Error) -> PrivilegeError {
    move |source| PrivilegeError::Syscall { step, source }
}

#[cfg(target_os = "linux")]
fn capabilities(step: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivilegeError {
    move |source| PrivilegeError::Capabilities { step, source }
}

#[cfg(all(test, target_os = "linux"))]
mod tests;
