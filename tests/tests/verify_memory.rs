//! `daemoneye-cli audit verify` on hostile single files ends, refuses them in one line with
//! exit 3, and stays small: `/dev/zero`, a FIFO nobody writes to, a 2 GB sparse file and a
//! 100 MB regular file.
//!
//! Peak memory is the children's `ru_maxrss` from `getrusage(RUSAGE_CHILDREN)`: the largest
//! resident set of any child this process waited for. This file holds a single test that
//! starts nothing but `daemoneye-cli`, so the figure is an upper bound for each run. (Linux
//! counts the spawning process's own peak in a child's figure, as the child shared its memory
//! until `exec`: so the test itself never holds much, writing the large file in small pieces.)
//! Every run
//! is also capped at 1 GiB of address space (`ulimit -v`), so that a regression fails this test
//! quickly instead of taking the machine's memory, and killed after a generous 30 s, so that a
//! hang fails it instead of blocking CI. Elapsed times are printed, never asserted.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemoneye_e2e::bin;
use daemoneye_lib::ledger::note::NoteSigner;
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::stat::Mode;

/// A run that takes longer than this hangs.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);
/// The most memory a refusal may take, in KiB.
const MAX_RSS_KIB: i64 = 50 * 1024;

/// The largest resident set of any child waited for so far, in KiB.
fn children_max_rss_kib() -> i64 {
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss()
}

/// `daemoneye-cli audit verify FILE --key KEY` with a 1 GiB address space and a 30 s limit:
/// (exit code, stderr).
fn verify(file: &Path, key: &str) -> (Option<i32>, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" \"$@\"")
        .arg(bin("daemoneye-cli"))
        .args(["audit", "verify"])
        .arg(file)
        .args(["--key", key])
        .env_remove("DAEMONEYE_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting daemoneye-cli");
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "audit verify {} still runs after {PROCESS_TIMEOUT:?}: it hangs",
                file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), reader.join().expect("reading stderr"))
}

#[test]
fn hostile_files_are_refused_quickly_and_in_little_memory() {
    // The binary is found (or built) before anything is measured.
    let cli = bin("daemoneye-cli");
    assert!(cli.is_file(), "{}", cli.display());
    assert!(
        children_max_rss_kib() < MAX_RSS_KIB,
        "a child larger than {MAX_RSS_KIB} KiB ran before the test: run this test binary alone"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let key = NoteSigner::from_seed("daemoneye.ledger/test/bounds", [3; 32])
        .expect("a key")
        .verifier()
        .to_string();

    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, Mode::S_IRUSR | Mode::S_IWUSR).expect("mkfifo");
    let sparse = dir.path().join("sparse");
    std::fs::File::create(&sparse)
        .expect("creating")
        .set_len(2 << 30)
        .expect("a 2 GB sparse file");
    let large = dir.path().join("large");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&large).expect("creating");
        file.write_all(b"daemoneye.ledger/test/bounds\n1\n")
            .expect("writing");
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..100 {
            file.write_all(&chunk).expect("a 100 MB file");
        }
    }

    let cases: [(&str, &Path, &str); 4] = [
        ("/dev/zero", Path::new("/dev/zero"), "character device"),
        ("a FIFO nobody writes to", &fifo, "FIFO"),
        ("a 2 GB sparse file", &sparse, "larger than"),
        ("a 100 MB file", &large, "larger than"),
    ];
    for (what, file, reason) in cases {
        let started = Instant::now();
        let (code, stderr) = verify(file, &key);
        let elapsed = started.elapsed();
        let rss = children_max_rss_kib();
        eprintln!("{what}: exit {code:?} in {elapsed:?}, children's peak RSS so far {rss} KiB");
        assert_eq!(code, Some(3), "{what}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: one line: {stderr:?}");
        assert!(
            lines[0].starts_with("daemoneye-cli: audit verify: FAILED: ")
                && lines[0].contains(reason),
            "{what}: {stderr:?}"
        );
        assert!(
            rss < MAX_RSS_KIB,
            "{what}: peak RSS {rss} KiB, over {MAX_RSS_KIB} KiB"
        );
    }
}
