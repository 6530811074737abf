//! Processes a test raises alerts with: `sleep MARK.NNNN`, each matched by a rule of the test's
//! own ([`Marked::rule`]: one alert per process, deduplicated by pid), killed when dropped.
//! Each test takes its own `MARK`, so that tests running at once never see each other's.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};

/// The marked processes of one test.
#[derive(Debug)]
pub struct Marked {
    mark: u32,
    children: Vec<Child>,
}

impl Marked {
    /// None yet, marked `MARK`.
    pub fn new(mark: u32) -> Self {
        Self {
            mark,
            children: Vec::new(),
        }
    }

    /// Starts `sleep MARK.n` (n < 10,000); its pid.
    pub fn spawn(&mut self, n: usize) -> u64 {
        let child = Command::new("sleep")
            .arg(format!("{}.{n:04}", self.mark))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning sleep");
        let pid = u64::from(child.id());
        self.children.push(child);
        pid
    }

    /// The pids of every process started.
    pub fn pids(&self) -> BTreeSet<u64> {
        self.children
            .iter()
            .map(|child| u64::from(child.id()))
            .collect()
    }

    /// A rule file's `[[rule]]` `id` of severity `severity` raising one alert per process of
    /// this mark, rows `pid, cmdline`, in pid order.
    pub fn rule(&self, id: &str, severity: &str) -> String {
        format!(
            r#"
[[rule]]
id = "{id}"
name = "A marked sleeper ({id})"
severity = "{severity}"
mitre = ["T1059"]
sql = "SELECT pid, cmdline FROM processes WHERE name = 'sleep' AND cmdline LIKE 'sleep {mark}.%' ORDER BY pid"
dedup = {{ key = ["pid"], window = "1d" }}
"#,
            mark = self.mark
        )
    }
}

impl Drop for Marked {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
