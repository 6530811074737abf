//! A uid and gid of procmond's own, for hosts without a `daemoneye` user: the way systemd's
//! `DynamicUser=` picks one.
//!
//! Dropping to the shared `nobody` would let every other process running as `nobody` signal,
//! stop or trace the collector (same uid). Instead procmond takes an id from
//! [`DYNAMIC_IDS`] (61184–65519, the range systemd reserves for dynamic users, so no
//! distribution hands it to an account) that
//!
//! - no user has as its uid or primary gid, and no group has as its gid, in `/etc/passwd`,
//!   `/etc/group` and then the system's user database (NSS, for LDAP or SSSD accounts);
//! - no running process has among its user or group ids (`Uid`, `Gid`, `Groups` of every
//!   `/proc/PID/status`);
//! - systemd has not registered for one of its own dynamic users (a file named by the number in
//!   `/run/systemd/dynamic-uid/`, when that directory exists).
//!
//! The same number is used as uid and gid, and procmond's only group is that gid.
//!
//! # Stable per data directory
//!
//! The id chosen is kept in `<data_dir>/collector.id`, written by procmond while it is still
//! root, so that a restarted procmond comes back as the same id (and finds its ledger
//! directory already its own). The file holds the id in ASCII decimal followed by one `\n`,
//! nothing else; a file that does not parse, an id outside [`DYNAMIC_IDS`] or one that is now
//! taken is ignored and replaced. A file that cannot be written costs only the stability (a
//! warning says so): the ledger directory is handed to whichever id procmond runs as on each
//! start. Without a data directory the first search starts from the pid and nothing is kept. With one, the search starts at a point derived from the directory's
//! path ([`seed`]), so agents on different data directories rarely collide.
//!
//! # Limits
//!
//! Files owned by the id outside the data directory are not looked for (procmond writes
//! nowhere else). Two procmonds started in the same instant on different data directories
//! could both see an id as free; the path-derived starting points make that unlikely, and
//! nothing here takes a system-wide lock. procmond does not register its id with systemd
//! either, so a `DynamicUser=` service started later could be given the id procmond holds. A
//! dedicated `daemoneye` user (the release package creates one) has none of these limits. An
//! id abandoned by procmond keeps owning the ledger directory until the next start hands it
//! over; the data directory above it is root's and mode 0700, so that id cannot reach it.
//!
//! The pure parts ([`pick`], [`parse_passwd`], [`parse_group`], [`status_ids`], [`seed`],
//! [`parse_id_file`]) take text and values; [`choose`] does the reading.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::path::Path;

use daemoneye_lib::accounts;

use super::PrivilegeError;

/// The ids procmond may take for itself: systemd's range for dynamic users.
pub const DYNAMIC_IDS: RangeInclusive<u32> = 61184..=65519;

/// The file in the data directory that keeps the id chosen.
pub const ID_FILE: &str = "collector.id";

/// Largest `/etc/passwd` or `/etc/group` read (a directory of a hundred thousand accounts).
const DATABASE_MAX: u64 = 16 * 1024 * 1024;

/// Ids already spoken for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakenIds {
    /// Uids of accounts.
    pub users: BTreeSet<u32>,
    /// Gids of groups, and primary gids of accounts.
    pub groups: BTreeSet<u32>,
    /// User and group ids of running processes.
    pub in_use: BTreeSet<u32>,
}

impl TakenIds {
    /// Whether `id` is free both as a uid and as a gid.
    pub fn is_free(&self, id: u32) -> bool {
        !self.users.contains(&id) && !self.groups.contains(&id) && !self.in_use.contains(&id)
    }
}

/// The id to use: `previous` if it is in [`DYNAMIC_IDS`] and still free, else the first free
/// id of the range from a starting point given by `seed`, wrapping around; `None` when the
/// whole range is taken.
pub fn pick(taken: &TakenIds, previous: Option<u32>, seed: u64) -> Option<u32> {
    if let Some(id) = previous
        && DYNAMIC_IDS.contains(&id)
        && taken.is_free(id)
    {
        return Some(id);
    }
    let first = *DYNAMIC_IDS.start();
    let span = u64::from(DYNAMIC_IDS.end() - first) + 1;
    (0..span)
        .map(|offset| (seed.wrapping_add(offset)) % span)
        // Below `span`, which fits in u32, so the conversion cannot fail.
        .filter_map(|step| u32::try_from(step).ok())
        .map(|step| first + step)
        .find(|id| taken.is_free(*id))
}

/// The uid and primary gid of each well-formed line of an `/etc/passwd` text.
pub fn parse_passwd(text: &str) -> Vec<(u32, u32)> {
    accounts::passwd(text)
        .into_iter()
        .map(|account| (account.uid, account.gid))
        .collect()
}

/// The gid of each well-formed line of an `/etc/group` text.
pub fn parse_group(text: &str) -> Vec<u32> {
    accounts::group_ids(text)
}

/// Every id on the `Uid`, `Gid` and `Groups` lines of a `/proc/PID/status` text.
pub fn status_ids(status: &str) -> Vec<u32> {
    status
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            matches!(key, "Uid" | "Gid" | "Groups").then_some(value)
        })
        .flat_map(str::split_whitespace)
        .filter_map(|id| id.parse().ok())
        .collect()
}

/// A starting point for the search, from the data directory's path (FNV-1a, 64 bits: stable
/// across builds and platforms, unlike `std`'s hasher).
pub fn seed(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The id kept in an [`ID_FILE`]: decimal digits and one final newline, nothing else.
pub fn parse_id_file(bytes: &[u8]) -> Option<u32> {
    let digits = bytes.strip_suffix(b"\n")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Chooses procmond's id (see the module doc) and, with a data directory, keeps it there.
///
/// Reads the account files, every process's status, then confirms the candidate through the
/// system's user database; an id found taken there is added to the taken set and the search
/// goes on. Must run as root, before the privilege drop.
pub fn choose(state_dir: Option<&Path>) -> Result<u32, PrivilegeError> {
    use nix::unistd::{Gid, Group, Uid, User};

    let mut taken = TakenIds::default();
    for (uid, gid) in parse_passwd(&read_database("/etc/passwd")?) {
        taken.users.insert(uid);
        taken.groups.insert(gid);
    }
    taken
        .groups
        .extend(parse_group(&read_database("/etc/group")?));
    taken.in_use = ids_in_use()?;
    taken.in_use.extend(registered_by_systemd());

    let id_file = state_dir.map(|dir| dir.join(ID_FILE));
    let previous = id_file
        .as_deref()
        .and_then(|path| std::fs::File::open(path).ok())
        .and_then(|file| crate::procfs::read_to_bound(file, 64).ok())
        .and_then(|bytes| parse_id_file(&bytes));
    let start = match state_dir {
        Some(dir) => seed(dir.as_os_str().as_encoded_bytes()),
        None => u64::from(std::process::id()),
    };
    let lookup_failed = |source: nix::Error| PrivilegeError::Syscall {
        step: "looking up a candidate id in the user database",
        source,
    };
    let id = loop {
        let id = pick(&taken, previous, start).ok_or(PrivilegeError::NoFreeId)?;
        let account = User::from_uid(Uid::from_raw(id)).map_err(lookup_failed)?;
        let group = Group::from_gid(Gid::from_raw(id)).map_err(lookup_failed)?;
        if account.is_none() && group.is_none() {
            break id;
        }
        // Known to NSS but not to the files: taken all the same.
        taken.users.insert(id);
    };
    if let Some(path) = id_file
        && previous != Some(id)
        && let Err(err) = daemoneye_lib::fsutil::atomic_replace_with_mode(
            &path,
            format!("{id}\n").as_bytes(),
            0o644,
        )
    {
        tracing::warn!(
            path = %path.display(),
            error = %err,
            uid = id,
            "cannot keep procmond's uid; a restart may pick another"
        );
    }
    Ok(id)
}

/// The ids systemd has handed to its own dynamic users: the names made of digits in its
/// registry directory. Nothing when there is no such directory.
fn registered_by_systemd() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/run/systemd/dynamic-uid") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// The text of an account database file; a missing file is an empty database.
fn read_database(path: &'static str) -> Result<String, PrivilegeError> {
    match std::fs::File::open(path) {
        Ok(file) => crate::procfs::read_to_bound(file, DATABASE_MAX)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|source| PrivilegeError::ReadStatus { path, source }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(PrivilegeError::ReadStatus { path, source }),
    }
}

/// The user and group ids of every running process. A process that ends while it is read is
/// skipped; a `/proc` that cannot be listed is an error, since freedom could not be checked.
fn ids_in_use() -> Result<BTreeSet<u32>, PrivilegeError> {
    let entries = std::fs::read_dir("/proc").map_err(|source| PrivilegeError::ReadStatus {
        path: "/proc",
        source,
    })?;
    let mut ids = BTreeSet::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let status = std::fs::File::open(entry.path().join("status"))
            .and_then(|file| crate::procfs::read_to_bound(file, crate::procfs::SMALL_FILE_MAX));
        if let Ok(status) = status {
            ids.extend(status_ids(&String::from_utf8_lossy(&status)));
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(users: &[u32], groups: &[u32], in_use: &[u32]) -> TakenIds {
        TakenIds {
            users: users.iter().copied().collect(),
            groups: groups.iter().copied().collect(),
            in_use: in_use.iter().copied().collect(),
        }
    }

    #[test]
    fn pick_keeps_a_free_previous_id_and_skips_every_kind_of_taken_one() {
        let first = *DYNAMIC_IDS.start();
        let last = *DYNAMIC_IDS.end();
        let check = |taken: &TakenIds, previous: Option<u32>, seed: u64, want: Option<u32>| {
            assert_eq!(
                pick(taken, previous, seed),
                want,
                "{taken:?} {previous:?} {seed}"
            );
        };
        let none = TakenIds::default();
        check(&none, None, 0, Some(first));
        check(&none, None, 5, Some(first + 5));
        // The seed wraps around the range.
        check(&none, None, u64::from(last - first) + 1, Some(first));
        check(
            &none,
            None,
            u64::MAX,
            Some(first + ((u64::MAX % 4336) as u32)),
        );
        // A previous id that is still free wins over the seed.
        check(&none, Some(62000), 0, Some(62000));
        // Outside the range, a previous id is ignored: nobody's 65534 above all.
        check(&none, Some(65534), 0, Some(first));
        check(&none, Some(1000), 3, Some(first + 3));
        check(&none, Some(0), 0, Some(first));
        // Taken as a uid, as a gid, or by a running process: skipped, previous or not.
        check(&taken(&[first], &[], &[]), None, 0, Some(first + 1));
        check(&taken(&[], &[first], &[]), None, 0, Some(first + 1));
        check(&taken(&[], &[], &[first]), None, 0, Some(first + 1));
        check(&taken(&[62000], &[], &[]), Some(62000), 0, Some(first));
        check(&taken(&[], &[], &[62000]), Some(62000), 0, Some(first));
        check(
            &taken(&[first], &[first + 1], &[first + 2]),
            Some(first),
            0,
            Some(first + 3),
        );
        // The end of the range is taken: the search wraps to its start.
        check(
            &taken(&[last], &[], &[]),
            None,
            u64::from(last - first),
            Some(first),
        );
        // Everything taken.
        let all: Vec<u32> = DYNAMIC_IDS.collect();
        check(&taken(&all, &[], &[]), Some(62000), 7, None);
        check(&taken(&all[1..], &[], &[]), None, 9, Some(first));
    }

    #[test]
    fn passwd_and_group_lines_give_their_ids() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                      # comment:x:1:1\n\
                      +nis::::::\n\
                      broken:x:notanumber:5:::\n\
                      short:x:7\n\
                      \n\
                      svc:x:61184:61200::/:/bin/false\n";
        assert_eq!(
            parse_passwd(passwd),
            [(0, 0), (65534, 65534), (61184, 61200)]
        );
        let group = "root:x:0:\nnogroup:x:65534:\nadm:x:4:syslog,alice\n#x:x:9:\nbad:x:y:\n";
        assert_eq!(parse_group(group), [0, 65534, 4]);
        assert_eq!(parse_passwd(""), []);
        assert_eq!(parse_group(""), Vec::<u32>::new());
    }

    #[test]
    fn status_ids_are_the_uid_gid_and_groups_lines() {
        let status = "Name:\tsleep\nUmask:\t0022\nUid:\t1000\t1001\t1002\t1003\n\
                      Gid:\t61184\t61184\t61184\t61184\nFDSize:\t64\nGroups:\t4 24 27 \n\
                      NStgid:\t99\nThreads:\t1\n";
        assert_eq!(
            status_ids(status),
            [
                1000, 1001, 1002, 1003, 61184, 61184, 61184, 61184, 4, 24, 27
            ]
        );
        assert_eq!(status_ids("Groups:\t\n"), Vec::<u32>::new());
    }

    #[test]
    fn the_id_file_is_decimal_and_one_newline() {
        let check = |bytes: &[u8], want: Option<u32>| {
            assert_eq!(
                parse_id_file(bytes),
                want,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        };
        check(b"61184\n", Some(61184));
        check(b"0\n", Some(0));
        check(b"61184", None);
        check(b"61184\n\n", None);
        check(b" 61184\n", None);
        check(b"+61184\n", None);
        check(b"\n", None);
        check(b"99999999999\n", None);
        check(b"6118\xff\n", None);
    }

    #[test]
    fn seeds_are_stable_and_differ_by_path() {
        // FNV-1a's published test vectors.
        assert_eq!(seed(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(seed(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(seed(b"/var/lib/daemoneye"), seed(b"/srv/daemoneye"));
    }
}
