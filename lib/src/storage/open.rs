//! Opening the event store when the file may not be what the agent left: damaged bytes, a
//! newer agent's store, another agent holding it.
//!
//! redb trusts its file: given damaged pages it may return [`redb::StorageError::Corrupted`]
//! or it may panic (an `unreachable!` in its B-tree code, measured with 64 KiB of random bytes
//! at offset 4096). [`guarded`] runs an open under [`std::panic::catch_unwind`] and turns a
//! panic into [`StoreError::Damaged`]; the panic hook installed here keeps redb's panic
//! message off stderr while, and only while, the current thread is inside [`guarded`]. Every
//! other panic is reported by the hook that was installed before.
//!
//! What a failed open means decides what may be done with the file ([`StoreError::is_damage`]):
//!
//! | failure | meaning | the agent |
//! | --- | --- | --- |
//! | [`StoreError::Damaged`], [`StoreError::NotAStore`], [`StoreError::Corrupt`], redb's `Corrupted` | the bytes are not a store this program can read | moves it aside, starts a new store |
//! | [`StoreError::SchemaVersion`], [`StoreError::UnknownValueFormat`] | another (newer) agent's store | refuses, leaves the file untouched |
//! | [`StoreError::InUse`] | another process holds redb's lock | refuses |
//! | [`StoreError::Io`], other redb errors | permissions, disk, I/O | refuses |
//!
//! A damaged store is never deleted: [`Store::open_or_recover`] renames it to
//! `<name>.damaged-<UTC time>` in the same directory, for example
//! `events.redb.damaged-20261203T014500Z` (with `.1`, `.2`… appended should that name exist),
//! syncs the directory, and creates a new store under the original name.
//!
//! Damage is found where the open reads: redb's header and allocator state, the table of
//! tables, `meta`, the newest scan and the rule states. Damage in pages nothing reads at
//! start-up (an old snapshot) shows later, as the error of the read that meets it.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

use super::{Store, StoreError};
use crate::{fsutil, text};

/// What [`Store::open_or_recover`] did with a damaged store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Where the damaged file now is.
    pub moved_to: PathBuf,
    /// Why it could not be opened (one line, lowercase).
    pub reason: String,
}

impl StoreError {
    /// Whether this failure to open means the file is damaged, so that moving it aside and
    /// starting a new store is right (see the module documentation's table). A store of a
    /// newer agent, a lock held by another process and an I/O error are not damage.
    pub fn is_damage(&self) -> bool {
        match self {
            Self::Damaged { .. } | Self::NotAStore { .. } | Self::Corrupt { .. } => true,
            Self::Open { source, .. } => {
                matches!(source, redb::DatabaseError::Storage(storage) if storage_damage(storage))
            }
            Self::Database { source, .. } => redb_damage(source),
            Self::Io { .. }
            | Self::InUse { .. }
            | Self::SchemaVersion { .. }
            | Self::UnknownValueFormat { .. }
            | Self::Encode { .. }
            | Self::DuplicatePid { .. }
            | Self::InvalidSinkName { .. }
            | Self::NotOutboxHead { .. } => false,
        }
    }
}

/// redb's errors that say the file's bytes are wrong.
fn redb_damage(err: &redb::Error) -> bool {
    match err {
        redb::Error::Corrupted(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_) => true,
        redb::Error::Io(io) => io_damage(io),
        _ => false,
    }
}

fn storage_damage(err: &redb::StorageError) -> bool {
    match err {
        redb::StorageError::Corrupted(_) => true,
        redb::StorageError::Io(io) => io_damage(io),
        _ => false,
    }
}

/// A file that ends where its header says there is more is truncated, and one that is not
/// redb's has the wrong magic number: both are damage. Every other I/O error (permissions, a full disk, a failing device) is not the file's fault.
fn io_damage(err: &std::io::Error) -> bool {
    // redb reports a file without its magic number as `InvalidData`.
    matches!(
        err.kind(),
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
    )
}

/// redb's errors that say another process holds the file.
pub(super) fn in_use(err: &redb::DatabaseError) -> bool {
    matches!(
        err,
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch
    )
}

/// Reads the schema version of an existing, non-empty store without writing to the file
/// (redb's read-only open) and refuses a version this program cannot open (a newer one, or
/// one older than it upgrades) with [`StoreError::SchemaVersion`].
///
/// A writable open writes redb's header even when the open then fails, so a newer agent's
/// store must be recognised before it, to be left byte for byte as it was. Anything else
/// (no file, an empty one, a file that needs redb's repair, damage) is left to the writable
/// open, except a lock held by another process, which is [`StoreError::InUse`] here already.
pub(super) fn check_version_read_only(path: &Path) -> Result<(), StoreError> {
    use redb::ReadableDatabase;
    if std::fs::metadata(path).map_or(true, |meta| meta.len() == 0) {
        return Ok(());
    }
    let db = match redb::Builder::new().open_read_only(path) {
        Ok(db) => db,
        Err(err) if in_use(&err) => {
            return Err(StoreError::InUse {
                path: path.to_owned(),
            });
        }
        Err(_) => return Ok(()),
    };
    let found = (|| {
        let txn = db.begin_read().ok()?;
        let meta = txn.open_table(super::codec::META).ok()?;
        let value = meta.get(super::codec::SCHEMA_KEY).ok()??;
        let bytes: [u8; 4] = value.value().try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    })();
    match found {
        Some(found) if !super::codec::schema_readable(found) => Err(StoreError::SchemaVersion {
            path: path.to_owned(),
            found,
            expected: super::codec::SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}

thread_local! {
    /// Set while this thread runs [`guarded`]: its panics are caught and reported as errors.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once per process, a panic hook that stays silent on a thread inside [`guarded`]
/// and hands every other panic to the hook installed before it.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `open` (which opens the store at `path`), turning a panic into
/// [`StoreError::Damaged`] with the panic's message.
pub(super) fn guarded<T>(
    path: &Path,
    open: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    install_hook();
    let was_quiet = QUIET.with(|quiet| quiet.replace(true));
    // Whatever `open` built is dropped by the unwinding; nothing it touched is used after a
    // panic, so no broken invariant can be observed.
    let outcome = panic::catch_unwind(AssertUnwindSafe(open));
    QUIET.with(|quiet| quiet.set(was_quiet));
    outcome.unwrap_or_else(|payload| {
        Err(StoreError::Damaged {
            path: path.to_owned(),
            reason: format!("redb panicked: {}", panic_message(payload.as_ref())),
        })
    })
}

/// The message of a panic payload (a `&str` or a `String`, as `panic!` makes them).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    // One line, whatever redb wrote.
    text::escape(&message).into_owned()
}

/// The name a damaged `file_name` is moved to at `now_ms`: `<file_name>.damaged-` and the UTC
/// time as `YYYYMMDDTHHMMSSZ`.
pub fn damaged_name(file_name: &str, now_ms: i64) -> String {
    // `format_time_ms` gives `2026-12-03T01:45:00.123Z`: keep the digits and the `T` up to
    // the seconds, then `Z`.
    let rfc3339 = text::format_time_ms(now_ms);
    let seconds = rfc3339.split('.').next().unwrap_or(&rfc3339);
    let compact: String = seconds.chars().filter(|c| *c != '-' && *c != ':').collect();
    format!("{file_name}.damaged-{compact}Z")
}

impl Store {
    /// [`Store::open`], and when the file is damaged ([`StoreError::is_damage`]): move it
    /// aside (see the module documentation), create a new store at `path`, and say what was
    /// done. `now_ms` names the moved file.
    ///
    /// # Errors
    ///
    /// Every failure that is not damage, unchanged (the file is left as it is); an error
    /// moving the file aside; an error opening the new store.
    pub fn open_or_recover(
        path: &Path,
        cache_bytes: usize,
        now_ms: i64,
    ) -> Result<(Store, Option<Recovered>), StoreError> {
        let err = match Store::open(path, cache_bytes) {
            Ok(store) => return Ok((store, None)),
            Err(err) if err.is_damage() => err,
            Err(err) => return Err(err),
        };
        let moved_to = move_aside(path, now_ms)?;
        let store = Store::open(path, cache_bytes)?;
        Ok((
            store,
            Some(Recovered {
                moved_to,
                reason: err.to_string(),
            }),
        ))
    }
}

/// Renames `path` to its [`damaged_name`] (never over an existing file) and syncs the
/// directory, so that the new store is never created while the old name still holds the
/// damaged one.
fn move_aside(path: &Path, now_ms: i64) -> Result<PathBuf, StoreError> {
    let io = |operation| {
        move |source| StoreError::Io {
            path: path.to_owned(),
            operation,
            source,
        }
    };
    let file_name = path
        .file_name()
        .map_or_else(|| "events.redb".into(), |name| name.to_string_lossy());
    let base = path.with_file_name(damaged_name(&file_name, now_ms));
    let mut target = base.clone();
    let mut n = 0u32;
    // The data directory is the agent's own; a name taken by an earlier recovery in the same
    // second gets a counter rather than being replaced.
    while target.symlink_metadata().is_ok() {
        n += 1;
        let mut name = base.clone().into_os_string();
        name.push(format!(".{n}"));
        target = PathBuf::from(name);
    }
    std::fs::rename(path, &target).map_err(io("move aside the damaged"))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fsutil::fsync_dir(dir).map_err(|err| StoreError::Io {
        path: path.to_owned(),
        operation: "sync the directory of",
        source: std::io::Error::other(err.to_string()),
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_names_carry_the_utc_second() {
        let check = |now_ms: i64, want: &str| assert_eq!(damaged_name("events.redb", now_ms), want);
        check(0, "events.redb.damaged-19700101T000000Z");
        // 2026-12-03T01:45:00.999Z: the milliseconds are dropped, not rounded.
        check(1_796_262_300_999, "events.redb.damaged-20261203T014500Z");
    }

    #[test]
    fn panics_become_damage_with_their_message() {
        let path = Path::new("/data/events.redb");
        let err =
            guarded::<()>(path, || panic!("internal error: entered unreachable code")).unwrap_err();
        assert!(
            matches!(&err, StoreError::Damaged { path: p, reason }
                if p == path && reason == "redb panicked: internal error: entered unreachable code"),
            "{err:?}"
        );
        assert!(err.is_damage());
        let err = guarded::<()>(path, || panic!("{}", "two\nlines".to_owned())).unwrap_err();
        assert!(err.to_string().contains("two\\nlines"), "{err}");
        // Outside `guarded`, this thread's panics are reported again.
        assert!(!QUIET.with(Cell::get));
        assert_eq!(guarded(path, || Ok(7)).unwrap(), 7);
    }

    #[test]
    fn only_damage_is_damage() {
        let path = || PathBuf::from("/data/events.redb");
        let storage = |err| StoreError::Open {
            path: path(),
            source: redb::DatabaseError::Storage(err),
        };
        let database = |err| StoreError::Database {
            path: path(),
            operation: "check schema version",
            source: Box::new(err),
        };
        let io = |kind| std::io::Error::from(kind);
        let cases: Vec<(StoreError, bool)> = vec![
            (
                StoreError::Damaged {
                    path: path(),
                    reason: "redb panicked".into(),
                },
                true,
            ),
            (StoreError::NotAStore { path: path() }, true),
            (
                StoreError::Corrupt {
                    path: path(),
                    table: "meta",
                    reason: "short".into(),
                },
                true,
            ),
            (
                storage(redb::StorageError::Corrupted("Invalid magic number".into())),
                true,
            ),
            (
                storage(redb::StorageError::Io(io(
                    std::io::ErrorKind::UnexpectedEof,
                ))),
                true,
            ),
            (
                storage(redb::StorageError::Io(io(
                    std::io::ErrorKind::PermissionDenied,
                ))),
                false,
            ),
            (database(redb::Error::Corrupted("bad page".into())), true),
            (
                database(redb::Error::TableDoesNotExist("meta".into())),
                false,
            ),
            (
                database(redb::Error::Io(io(std::io::ErrorKind::StorageFull))),
                false,
            ),
            (
                StoreError::SchemaVersion {
                    path: path(),
                    found: 2,
                    expected: 1,
                },
                false,
            ),
            (
                StoreError::UnknownValueFormat {
                    path: path(),
                    table: "scans",
                    version: 2,
                },
                false,
            ),
            (StoreError::InUse { path: path() }, false),
            (
                StoreError::Open {
                    path: path(),
                    source: redb::DatabaseError::UpgradeRequired(2),
                },
                false,
            ),
            (
                StoreError::Io {
                    path: path(),
                    operation: "open or create",
                    source: io(std::io::ErrorKind::PermissionDenied),
                },
                false,
            ),
        ];
        for (err, damage) in cases {
            assert_eq!(err.is_damage(), damage, "{err:?}");
        }
    }
}
