//! The `records_hash` of a `scan` entry: a hash over the scan's [`ProcessRecord`]s in a
//! canonical encoding of our own, so that the hash depends on the records' values only, never on
//! a serialisation library (protobuf, postcard, JSON) or its version.
//!
//! `records_hash = H(encode_records(records))`, H the ledger's hash function
//! ([`HashAlg::digest`]: BLAKE3 or SHA-256).
//!
//! # Encoding, version 1
//!
//! ```text
//! offset  size  field
//! 0       8     magic    b"DEYEREC1" (RECORDS_MAGIC): the format and its version
//! 8       8     count    u64, big-endian: the number of records
//! 16      ...   records  each record's encoding, in scan order, back to back
//! ```
//!
//! A record is its 32 fields in this order (the order of the `processes` table and of
//! [`ProcessRecord`]'s declaration), with nothing between or after them:
//!
//! ```text
//!  #  field               type         #  field               type
//!  1  pid                 u32         17  total_size          opt<u64>
//!  2  parent              opt<u32>    18  user_time           opt<u64>
//!  3  name                opt<str>    19  system_time         opt<u64>
//!  4  path                opt<str>    20  disk_bytes_read     opt<u64>
//!  5  cmdline             opt<str>    21  disk_bytes_written  opt<u64>
//!  6  cwd                 opt<str>    22  start_time          opt<i64>
//!  7  root                opt<str>    23  pgroup              opt<u32>
//!  8  state               opt<str>    24  threads             opt<u32>
//!  9  uid                 opt<u32>    25  nice                opt<i32>
//! 10  gid                 opt<u32>    26  cgroup_path         opt<str>
//! 11  euid                opt<u32>    27  exe_sha256          opt<str>
//! 12  egid                opt<u32>    28  exe_dev             opt<u64>
//! 13  suid                opt<u32>    29  exe_inode           opt<u64>
//! 14  sgid                opt<u32>    30  cpu_percent         opt<f64>
//! 15  on_disk             i8          31  scan_id             i64
//! 16  resident_size       opt<u64>    32  collected_at        i64
//! ```
//!
//! where
//!
//! ```text
//! u32, i32  4 bytes, big-endian (i32 in two's complement)
//! u64, i64  8 bytes, big-endian (i64 in two's complement)
//! i8        1 byte, two's complement: on_disk is 01 present, 00 gone, ff unknown
//! f64       8 bytes: the IEEE 754 binary64 bits (f64::to_bits), big-endian; the bits as they
//!           are, so 0.0 and -0.0, or two NaNs, encode differently
//! str       u32 length L, big-endian, then the L bytes of the UTF-8 string
//! opt<T>    one presence byte: 00 absent (nothing follows), 01 present (a T follows)
//! ```
//!
//! A string longer than `u32::MAX` bytes would be cut to that many (the collector bounds every
//! string it reads far below that, so none is).
//!
//! ## Example
//!
//! One record with `pid` 1, `name` "sh", `on_disk` unknown, `scan_id` 7, `collected_at`
//! 1700000000000 and every other field absent: 71 bytes, 16 of header and 55 of record.
//!
//! ```text
//! 44 45 59 45 52 45 43 31   magic "DEYEREC1"
//! 00 00 00 00 00 00 00 01   count 1
//! 00 00 00 01               pid 1
//! 00                        parent absent
//! 01 00 00 00 02 73 68      name present, "sh"
//! 00 00 00 00 00            path, cmdline, cwd, root, state absent
//! 00 00 00 00 00 00         uid, gid, euid, egid, suid, sgid absent
//! ff                        on_disk -1 (unknown)
//! 00 00 00 00 00 00 00      resident_size … disk_bytes_written, start_time absent
//! 00 00 00 00 00 00 00 00   pgroup, threads, nice, cgroup_path, exe_sha256, exe_dev,
//!                           exe_inode, cpu_percent absent
//! 00 00 00 00 00 00 00 07   scan_id 7
//! 00 00 01 8b cf e5 68 00   collected_at 1700000000000
//! ```

use crate::ledger::{Hash, HashAlg};
use crate::models::ProcessRecord;

/// The first eight bytes of the encoding: the format and its version.
pub const RECORDS_MAGIC: &[u8; 8] = b"DEYEREC1";

/// The hash recorded in a `scan` entry: `alg` over [`encode_records`].
pub fn records_hash(alg: HashAlg, records: &[ProcessRecord]) -> Hash {
    alg.digest(&[&encode_records(records)])
}

/// The canonical encoding of `records` (see the module doc).
pub fn encode_records(records: &[ProcessRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + records.len() * 256);
    out.extend_from_slice(RECORDS_MAGIC);
    out.extend_from_slice(&(records.len() as u64).to_be_bytes());
    for record in records {
        encode_record(&mut out, record);
    }
    out
}

/// Appends one record's 32 fields, in the documented order.
fn encode_record(out: &mut Vec<u8>, r: &ProcessRecord) {
    let mut w = Writer(out);
    w.u32(r.pid);
    w.opt(r.parent, Writer::u32);
    for text in [&r.name, &r.path, &r.cmdline, &r.cwd, &r.root, &r.state] {
        w.opt(text.as_deref(), Writer::str);
    }
    for id in [r.uid, r.gid, r.euid, r.egid, r.suid, r.sgid] {
        w.opt(id, Writer::u32);
    }
    w.0.push(r.on_disk.as_i8().to_be_bytes()[0]);
    for amount in [
        r.resident_size,
        r.total_size,
        r.user_time,
        r.system_time,
        r.disk_bytes_read,
        r.disk_bytes_written,
    ] {
        w.opt(amount, Writer::u64);
    }
    w.opt(r.start_time, Writer::i64);
    w.opt(r.pgroup, Writer::u32);
    w.opt(r.threads, Writer::u32);
    w.opt(r.nice, |w, v| w.0.extend_from_slice(&v.to_be_bytes()));
    w.opt(r.cgroup_path.as_deref(), Writer::str);
    w.opt(r.exe_sha256.as_deref(), Writer::str);
    w.opt(r.exe_dev, Writer::u64);
    w.opt(r.exe_inode, Writer::u64);
    w.opt(r.cpu_percent, |w, v| w.u64(v.to_bits()));
    w.i64(r.scan_id);
    w.i64(r.collected_at);
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn str(&mut self, s: &str) {
        let bytes = s.as_bytes();
        // Cut, never wrapped: the length written is always the number of bytes that follow.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.0.extend_from_slice(&bytes[..len as usize]);
    }

    fn opt<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                write(self, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::OnDisk;

    /// Every field present, each with a value easy to write by hand.
    fn full() -> ProcessRecord {
        ProcessRecord {
            pid: 1234,
            parent: Some(1),
            name: Some("sh".to_owned()),
            path: Some("/sh".to_owned()),
            cmdline: Some("sh -c".to_owned()),
            cwd: Some("/".to_owned()),
            root: Some("/".to_owned()),
            state: Some("S".to_owned()),
            uid: Some(1000),
            gid: Some(1001),
            euid: Some(0),
            egid: Some(2),
            suid: Some(3),
            sgid: Some(4),
            on_disk: OnDisk::Present,
            resident_size: Some(4096),
            total_size: Some(1 << 32),
            user_time: Some(10),
            system_time: Some(20),
            disk_bytes_read: Some(300),
            disk_bytes_written: Some(0),
            start_time: Some(-2),
            pgroup: Some(1234),
            threads: Some(1),
            nice: Some(-5),
            cgroup_path: Some("/a".to_owned()),
            exe_sha256: Some("ab".to_owned()),
            exe_dev: Some(0x0803),
            exe_inode: Some(42),
            cpu_percent: Some(1.5),
            scan_id: 7,
            collected_at: 1_700_000_000_000,
        }
    }

    /// Written from the module doc's table, field by field, not taken from the encoder.
    #[rustfmt::skip]
    const FULL: &[u8] = &[
        b'D', b'E', b'Y', b'E', b'R', b'E', b'C', b'1',  // magic
        0, 0, 0, 0, 0, 0, 0, 1,                          // count 1
        0x00, 0x00, 0x04, 0xd2,                          //  1 pid 1234
        1, 0, 0, 0, 1,                                   //  2 parent 1
        1, 0, 0, 0, 2, b's', b'h',                       //  3 name "sh"
        1, 0, 0, 0, 3, b'/', b's', b'h',                 //  4 path "/sh"
        1, 0, 0, 0, 5, b's', b'h', b' ', b'-', b'c',     //  5 cmdline "sh -c"
        1, 0, 0, 0, 1, b'/',                             //  6 cwd "/"
        1, 0, 0, 0, 1, b'/',                             //  7 root "/"
        1, 0, 0, 0, 1, b'S',                             //  8 state "S"
        1, 0x00, 0x00, 0x03, 0xe8,                       //  9 uid 1000
        1, 0x00, 0x00, 0x03, 0xe9,                       // 10 gid 1001
        1, 0, 0, 0, 0,                                   // 11 euid 0
        1, 0, 0, 0, 2,                                   // 12 egid 2
        1, 0, 0, 0, 3,                                   // 13 suid 3
        1, 0, 0, 0, 4,                                   // 14 sgid 4
        0x01,                                            // 15 on_disk present
        1, 0, 0, 0, 0, 0, 0, 0x10, 0x00,                 // 16 resident_size 4096
        1, 0, 0, 0, 1, 0, 0, 0, 0,                       // 17 total_size 2^32
        1, 0, 0, 0, 0, 0, 0, 0, 10,                      // 18 user_time 10
        1, 0, 0, 0, 0, 0, 0, 0, 20,                      // 19 system_time 20
        1, 0, 0, 0, 0, 0, 0, 0x01, 0x2c,                 // 20 disk_bytes_read 300
        1, 0, 0, 0, 0, 0, 0, 0, 0,                       // 21 disk_bytes_written 0
        1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, // 22 start_time -2
        1, 0x00, 0x00, 0x04, 0xd2,                       // 23 pgroup 1234
        1, 0, 0, 0, 1,                                   // 24 threads 1
        1, 0xff, 0xff, 0xff, 0xfb,                       // 25 nice -5
        1, 0, 0, 0, 2, b'/', b'a',                       // 26 cgroup_path "/a"
        1, 0, 0, 0, 2, b'a', b'b',                       // 27 exe_sha256 "ab"
        1, 0, 0, 0, 0, 0, 0, 0x08, 0x03,                 // 28 exe_dev 0x0803
        1, 0, 0, 0, 0, 0, 0, 0, 42,                      // 29 exe_inode 42
        1, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,                 // 30 cpu_percent 1.5
        0, 0, 0, 0, 0, 0, 0, 7,                          // 31 scan_id 7
        0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00,  // 32 collected_at 1700000000000
    ];

    #[test]
    fn a_fully_populated_record_encodes_as_specified() {
        assert_eq!(encode_records(&[full()]), FULL);
        assert_eq!(
            records_hash(HashAlg::Sha256, &[full()]),
            HashAlg::Sha256.digest(&[FULL])
        );
    }

    #[test]
    fn the_documented_example_encodes_as_shown() {
        let record = ProcessRecord {
            pid: 1,
            name: Some("sh".to_owned()),
            scan_id: 7,
            collected_at: 1_700_000_000_000,
            ..ProcessRecord::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x44, 0x45, 0x59, 0x45, 0x52, 0x45, 0x43, 0x31, // magic
            0, 0, 0, 0, 0, 0, 0, 1,                         // count
            0, 0, 0, 1,                                     // pid
            0,                                              // parent
            1, 0, 0, 0, 2, 0x73, 0x68,                      // name
            0, 0, 0, 0, 0,                                  // path … state
            0, 0, 0, 0, 0, 0,                               // uid … sgid
            0xff,                                           // on_disk
            0, 0, 0, 0, 0, 0, 0,                            // resident_size … start_time
            0, 0, 0, 0, 0, 0, 0, 0,                         // pgroup … cpu_percent
            0, 0, 0, 0, 0, 0, 0, 7,                         // scan_id
            0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // collected_at
        ];
        assert_eq!(expected.len(), 71);
        assert_eq!(encode_records(&[record]), expected);
        assert_eq!(encode_records(&[]), b"DEYEREC1\0\0\0\0\0\0\0\0");
    }

    #[test]
    fn changing_any_field_changes_the_hash() {
        type Change = fn(&mut ProcessRecord);
        #[rustfmt::skip]
        let changes: [(&str, Change); 37] = [
            ("pid", |r| r.pid += 1),
            ("parent", |r| r.parent = Some(2)),
            ("parent absent", |r| r.parent = None),
            ("name", |r| r.name = Some("sH".to_owned())),
            ("name empty", |r| r.name = Some(String::new())),
            ("name absent", |r| r.name = None),
            ("path", |r| r.path = Some("/bin/sh".to_owned())),
            ("cmdline", |r| r.cmdline = Some("sh -c ".to_owned())),
            ("cwd", |r| r.cwd = Some("/tmp".to_owned())),
            ("root", |r| r.root = Some("/srv".to_owned())),
            ("state", |r| r.state = Some("R".to_owned())),
            ("uid", |r| r.uid = Some(0)),
            ("gid", |r| r.gid = Some(0)),
            ("euid", |r| r.euid = Some(1)),
            ("egid", |r| r.egid = Some(0)),
            ("suid", |r| r.suid = Some(0)),
            ("sgid", |r| r.sgid = Some(0)),
            ("on_disk gone", |r| r.on_disk = OnDisk::Gone),
            ("on_disk unknown", |r| r.on_disk = OnDisk::Unknown),
            ("resident_size", |r| r.resident_size = Some(4097)),
            ("total_size", |r| r.total_size = Some(1)),
            ("user_time", |r| r.user_time = Some(11)),
            ("system_time", |r| r.system_time = Some(21)),
            ("disk_bytes_read", |r| r.disk_bytes_read = Some(301)),
            ("disk_bytes_written", |r| r.disk_bytes_written = None),
            ("start_time", |r| r.start_time = Some(2)),
            ("pgroup", |r| r.pgroup = Some(1)),
            ("threads", |r| r.threads = Some(2)),
            ("nice", |r| r.nice = Some(5)),
            ("cgroup_path", |r| r.cgroup_path = Some("/b".to_owned())),
            ("exe_sha256", |r| r.exe_sha256 = Some("ac".to_owned())),
            ("exe_dev", |r| r.exe_dev = Some(0x0804)),
            ("exe_inode", |r| r.exe_inode = Some(43)),
            ("cpu_percent", |r| r.cpu_percent = Some(1.25)),
            ("cpu_percent -0.0 vs 0.0", |r| r.cpu_percent = Some(-0.0)),
            ("scan_id", |r| r.scan_id = 8),
            ("collected_at", |r| r.collected_at += 1),
        ];
        let base = records_hash(HashAlg::Blake3, &[full()]);
        let mut seen = vec![base];
        for (name, change) in changes {
            let mut record = full();
            change(&mut record);
            let hash = records_hash(HashAlg::Blake3, &[record]);
            assert!(!seen.contains(&hash), "{name}: the hash did not change");
            seen.push(hash);
        }
        let mut zero = full();
        zero.cpu_percent = Some(0.0);
        assert_ne!(
            records_hash(HashAlg::Blake3, &[zero]),
            seen[seen.len() - 3],
            "0.0 and -0.0"
        );
    }

    #[test]
    fn the_hash_covers_the_order_the_count_and_the_function() {
        let a = full();
        let b = ProcessRecord {
            pid: 1,
            ..ProcessRecord::default()
        };
        let base = records_hash(HashAlg::Blake3, &[a.clone(), b.clone()]);
        for (name, other) in [
            (
                "order",
                records_hash(HashAlg::Blake3, &[b.clone(), a.clone()]),
            ),
            (
                "one fewer",
                records_hash(HashAlg::Blake3, std::slice::from_ref(&a)),
            ),
            (
                "one more, empty",
                records_hash(
                    HashAlg::Blake3,
                    &[a.clone(), b.clone(), ProcessRecord::default()],
                ),
            ),
            (
                "sha256",
                records_hash(HashAlg::Sha256, &[a.clone(), b.clone()]),
            ),
        ] {
            assert_ne!(base, other, "{name}");
        }
        // A string's length prefix keeps field boundaries: moving a byte from one string to
        // the next changes the hash.
        let mut left = b.clone();
        (left.name, left.path) = (Some("ab".to_owned()), Some("c".to_owned()));
        let mut right = b;
        (right.name, right.path) = (Some("a".to_owned()), Some("bc".to_owned()));
        assert_ne!(
            records_hash(HashAlg::Blake3, &[left]),
            records_hash(HashAlg::Blake3, &[right])
        );
    }
}
