//! The health report `daemoneye-cli health-check` shows: each component judged from what the
//! agent knows (procmond's status and last report, the scans, how the event store opened), by
//! [`assess`], which is pure and table-tested.

use std::path::PathBuf;
use std::time::Instant;

use daemoneye_lib::ipc::proto::{self, Status as Level};
use daemoneye_lib::storage::Recovered;
use daemoneye_lib::storage::RuleStatus;

use super::{AgentState, ScanStats};
use crate::pipeline::{RuleView, RulesView};
use crate::supervisor::{State, Status};

/// The health report the CLI shows.
pub fn report(state: &AgentState) -> proto::AgentHealth {
    let status = state.supervisor.status();
    let scans = state.scans().clone();
    let uptime_ms = u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let when = When {
        now: Instant::now(),
        now_ms: crate::run::now_ms(),
        uptime_ms,
        interval: state.interval,
    };
    let mut components = assess(&status, &scans, &state.store_health, &when);
    let running = matches!(status.state, State::Running { .. });
    components.push(crate::exec::health(
        status.last_health.as_ref().filter(|_| running),
        &state.exec,
        when.now_ms,
    ));
    components.push(rules_component(&state.pipeline.rules()));
    let view = state.bundles.health_view();
    components.push(bundles_component(&view));
    components.push(license_component(&view, view.now));
    let outbox = super::outbox::status_of(&state.store, &state.outbox, when.now_ms);
    components.extend(super::outbox::health(
        outbox.as_ref().map_err(String::as_str),
    ));
    let overall = components
        .iter()
        .map(|c| c.status())
        .max_by_key(|level| severity(*level))
        .unwrap_or(Level::Ok);
    proto::AgentHealth {
        overall: overall as i32,
        components,
        agent_pid: std::process::id(),
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_ms,
        collector_pid: match status.state {
            State::Running { pid, .. } => Some(pid),
            _ => None,
        },
        collector_restarts: status.restarts,
        collector_last_exit: status.last_exit,
        collector: status.last_health,
        scans_completed: scans.completed,
        last_scan_at: scans.last_at,
        last_scan_processes: scans.last_processes,
    }
}

fn severity(level: Level) -> u8 {
    match level {
        Level::Ok => 0,
        Level::Degraded => 1,
        Level::Failed | Level::Unspecified => 2,
    }
}

pub(super) fn component(name: &str, status: Level, detail: String) -> proto::ComponentHealth {
    proto::ComponentHealth {
        name: name.to_owned(),
        status: status as i32,
        detail,
    }
}

/// How the event store was opened at start-up: it does not change while the agent runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// The store file.
    pub path: PathBuf,
    /// Set when the file was damaged, moved aside and replaced by a new store: the store is
    /// then `degraded` for the rest of this agent's run, so that the operator learns of it.
    pub recovered: Option<Recovered>,
}

/// The moment a report is made, and what the agent expects of its scans.
#[derive(Debug, Clone, Copy)]
pub struct When {
    /// Now, for procmond's restart time.
    pub now: Instant,
    /// Now, in Unix milliseconds, for the age of the last scan.
    pub now_ms: i64,
    /// How long the agent has run.
    pub uptime_ms: u64,
    /// Time between scans (`collection.interval`).
    pub interval: std::time::Duration,
}

impl When {
    /// How long without a finished scan is too long: two intervals, and 10 s for a scan
    /// that hashes many executables. A collector that stopped (`kill -STOP`) or hangs shows
    /// here long before its restart.
    fn stale_after_ms(&self) -> i64 {
        i64::try_from((self.interval * 2).as_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(10_000)
    }
}

/// Judges each component from what the agent knows; pure, so that every case is tested.
pub fn assess(
    status: &Status,
    scans: &ScanStats,
    store: &StoreHealth,
    when: &When,
) -> Vec<proto::ComponentHealth> {
    let agent = component(
        "agent",
        Level::Ok,
        format!("pid {}, up {} s", std::process::id(), when.uptime_ms / 1000),
    );
    let restarts = match (&status.last_exit, status.restarts) {
        (_, 0) => String::new(),
        (Some(why), n) => format!(", {n} restarts (last: {why})"),
        (None, n) => format!(", {n} restarts"),
    };
    let procmond = match &status.state {
        State::Running { pid, .. } => match &status.last_health {
            Some(health) => {
                let privileges = health.privileges.unwrap_or_default();
                let who = if privileges.dropped {
                    format!(
                        "uid {}, capabilities {:#x}, no_new_privs {}",
                        privileges.euid, privileges.effective_caps, privileges.no_new_privs
                    )
                } else {
                    format!(
                        "uid {} (not started as root: sees only its own user's processes)",
                        privileges.euid
                    )
                };
                match unanswered(status, when) {
                    // Stopped (SIGSTOP), hung or starved: the sensor may be blind now, long
                    // before the health check's timeout has it replaced.
                    Some(waited) => component(
                        "procmond",
                        Level::Degraded,
                        format!(
                            "pid {pid}, {who}; has not answered a health check for {} s{restarts}",
                            waited.as_secs()
                        ),
                    ),
                    None => component("procmond", Level::Ok, format!("pid {pid}, {who}{restarts}")),
                }
            }
            None => match unanswered(status, when) {
                Some(waited) => component(
                    "procmond",
                    Level::Degraded,
                    format!(
                        "pid {pid}; has not answered a health check for {} s{restarts}",
                        waited.as_secs()
                    ),
                ),
                None => component(
                    "procmond",
                    Level::Ok,
                    format!("pid {pid}, answering{restarts}"),
                ),
            },
        },
        State::Starting => component("procmond", Level::Degraded, format!("starting{restarts}")),
        State::Restarting { at } => component(
            "procmond",
            Level::Degraded,
            format!(
                "down, restarting in {} ms{restarts}",
                at.saturating_duration_since(when.now).as_millis()
            ),
        ),
        State::Stopped => component("procmond", Level::Failed, format!("stopped{restarts}")),
    };
    let stale_after = when.stale_after_ms();
    let since_last = scans.last_at.map(|at| when.now_ms.saturating_sub(at));
    let scan = match (&scans.last_error, scans.completed) {
        // A sensor that stopped seeing is the worst thing health can hide.
        (_, n) if n > 0 && since_last.is_some_and(|age| age > stale_after) => component(
            "scans",
            Level::Degraded,
            format!(
                "no scan has finished for {} s (one is due every {} s); {n} completed",
                since_last.unwrap_or(0) / 1000,
                when.interval.as_secs_f64()
            ),
        ),
        (None, 0) if i64::try_from(when.uptime_ms).unwrap_or(i64::MAX) > stale_after + 30_000 => {
            component(
                "scans",
                Level::Degraded,
                format!(
                    "no scan has finished since the agent started {} s ago",
                    when.uptime_ms / 1000
                ),
            )
        }
        (Some(err), _) => component(
            "scans",
            Level::Degraded,
            format!(
                "{} completed; the last attempt failed: {err}",
                scans.completed
            ),
        ),
        (None, 0) => component("scans", Level::Ok, "no scan yet".to_owned()),
        (None, n) => component(
            "scans",
            Level::Ok,
            format!(
                "{n} completed, the last with {} processes",
                scans.last_processes.unwrap_or(0)
            ),
        ),
    };
    let store = match &store.recovered {
        None => component("store", Level::Ok, store.path.display().to_string()),
        Some(recovered) => component(
            "store",
            Level::Degraded,
            format!(
                "{} was damaged at start-up and replaced by an empty store; the damaged file \
                 was moved aside to {} ({})",
                store.path.display(),
                recovered.moved_to.display(),
                recovered.reason
            ),
        ),
    };
    let ledger = match &status.last_health {
        // Damage is the one thing an audit trail must not hide: failed, with where it is.
        Some(health) => match &health.ledger_damage {
            Some(damage) if damage.at_open => component(
                "ledger",
                Level::Failed,
                format!("damaged, refused to open: {}", damage_text(damage)),
            ),
            Some(damage) => component(
                "ledger",
                Level::Failed,
                format!(
                    "{}; damaged: {} (found by the background check; procmond goes on appending)",
                    health.ledger_detail,
                    damage_text(damage)
                ),
            ),
            None if health.ledger_available => {
                component("ledger", Level::Ok, health.ledger_detail.clone())
            }
            None => component("ledger", Level::Degraded, health.ledger_detail.clone()),
        },
        None => component(
            "ledger",
            Level::Degraded,
            "unknown until procmond reports".to_owned(),
        ),
    };
    vec![agent, procmond, scan, store, ledger]
}

/// The rule set: degraded when a configured rule did not load (a typo must not silently turn
/// off a site's own rules), when no rule is loaded at all (detection would see nothing), or
/// when a rule's last run failed or hit a limit.
pub fn rules_component(view: &RulesView) -> proto::ComponentHealth {
    let loaded = view.rules.len();
    let troubled: Vec<&RuleView> = view
        .rules
        .iter()
        .filter(|rule| rule.state.status != RuleStatus::Ok)
        .collect();
    if let Some(first) = view.problems.first() {
        let more = match view.problems.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return component(
            "rules",
            Level::Degraded,
            format!(
                "{loaded} loaded; {} did not load: {first}{more}",
                view.problems.len()
            ),
        );
    }
    if loaded == 0 {
        return component(
            "rules",
            Level::Degraded,
            format!(
                "no rule is loaded (from the {}): detection sees nothing",
                view.origin
            ),
        );
    }
    if let Some(first) = troubled.first() {
        return component(
            "rules",
            Level::Degraded,
            format!(
                "{loaded} loaded; {} not ok, first {} ({}): {}",
                troubled.len(),
                first.id,
                match first.state.status {
                    RuleStatus::Disabled => "disabled",
                    _ => "degraded",
                },
                first
                    .state
                    .last_error
                    .as_deref()
                    .unwrap_or("no reason recorded")
            ),
        );
    }
    component(
        "rules",
        Level::Ok,
        format!("{loaded} loaded (from the {})", view.origin),
    )
}

/// The `bundles` component: failed when the bundle state cannot be read (the agent then runs
/// its built-in and local rules only and refuses every bundle); degraded when a trusted key
/// file could not be read, an active
/// bundle is damaged, the config bundle is not in use or needs a restart to take effect.
/// Its detail names the active bundles and the config bundle's keys a local layer overrides.
pub fn bundles_component(view: &BundlesView) -> proto::ComponentHealth {
    let active: Vec<String> = view
        .status
        .bundles
        .iter()
        .map(|bundle| format!("{} {}", bundle.name, bundle.version))
        .collect();
    let active = if active.is_empty() {
        "no bundle applied".to_owned()
    } else {
        format!("active: {}", active.join(", "))
    };
    if !view.status.state_error.is_empty() {
        // The agent runs without its bundles and can take none: failed, not degraded.
        return component(
            "bundles",
            Level::Failed,
            format!(
                "the bundle state is damaged; no bundle applies until it is repaired: {}",
                view.status.state_error
            ),
        );
    }
    let mut problems: Vec<String> = view.status.problems.clone();
    if let Some(problem) = &view.config.problem {
        problems.push(format!("the config bundle is not in use: {problem}"));
    }
    if !view.config.restart_needed.is_empty() {
        problems.push(format!(
            "restart the agent for these config bundle settings to take effect: {}",
            view.config.restart_needed.join(", ")
        ));
    }
    if let Some(first) = problems.first() {
        let more = match problems.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return component(
            "bundles",
            Level::Degraded,
            format!("{first}{more}; {active}"),
        );
    }
    let mut detail = active;
    if view.status.keys.is_empty() {
        detail.push_str("; no trusted key: every bundle will be refused");
    }
    if !view.config.overridden.is_empty() {
        let keys: Vec<String> = view
            .config
            .overridden
            .iter()
            .map(|o| format!("{} (by {})", o.key, o.by))
            .collect();
        detail.push_str(&format!(
            "; config bundle keys a local setting overrides: {}",
            keys.join(", ")
        ));
    }
    component("bundles", Level::Ok, detail)
}

/// The `license` component at `now` (seconds): ok when valid or when no license was ever
/// applied and nothing needs one; degraded in the grace period, when a license lapsed or is
/// for another site, or when a rule pack is off for want of one. Core monitoring runs either way.
pub fn license_component(view: &BundlesView, now: i64) -> proto::ComponentHealth {
    use daemoneye_lib::bundle::Standing;
    let standing = view.license.standing(now);
    let tier = view.license.tier(now).to_owned();
    let closed: Vec<&str> = view
        .gates
        .iter()
        .filter_map(|gate| gate.in_force.as_ref().err().map(String::as_str))
        .collect();
    let level = match (&standing, closed.is_empty()) {
        (Standing::Grace { .. } | Standing::Lapsed { .. } | Standing::OtherSite { .. }, _)
        | (_, false) => Level::Degraded,
        _ => Level::Ok,
    };
    let mut detail = format!("{tier} tier: {standing}");
    if let Some(license) = &view.license.license
        && standing.in_force()
        && !license.features.is_empty()
    {
        detail.push_str(&format!("; features: {}", license.features.join(", ")));
    }
    for why in closed {
        detail.push_str(&format!("; {why}"));
    }
    component("license", level, detail)
}

/// What health needs of the bundles.
#[derive(Debug, Clone)]
pub struct BundlesView {
    /// `bundle status`.
    pub status: proto::BundleStatus,
    /// The license and this host's site.
    pub license: daemoneye_lib::bundle::LicenseState,
    /// What the config bundle's layer did.
    pub config: crate::bundle_service::ConfigState,
    /// The rule packs' license gates.
    pub gates: Vec<crate::detector::PackGate>,
    /// The time licenses are judged at (seconds; never behind a time seen before).
    pub now: i64,
}

/// How long procmond answers a health check at most before health says it does not: far
/// above a working procmond's answer (milliseconds, beside a running scan), far below the
/// check's timeout that has it replaced.
pub const UNANSWERED_AFTER: std::time::Duration = std::time::Duration::from_secs(3);

/// How long the pending health check has waited, when longer than [`UNANSWERED_AFTER`].
fn unanswered(status: &Status, when: &When) -> Option<std::time::Duration> {
    let waited = when
        .now
        .saturating_duration_since(status.health_pending_since?);
    (waited > UNANSWERED_AFTER).then_some(waited)
}

/// Where the ledger is damaged, for a person: `entries.log at byte 94 (entry 2): why`.
fn damage_text(damage: &proto::LedgerDamage) -> String {
    let entry = damage
        .entry
        .map_or_else(String::new, |entry| format!(" (entry {entry})"));
    format!(
        "{} at byte {}{entry}: {}",
        damage.file, damage.offset, damage.reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule(id: &str, status: RuleStatus, error: Option<&str>) -> RuleView {
        RuleView {
            id: id.to_owned(),
            name: id.to_owned(),
            severity: daemoneye_lib::alert::Severity::Low,
            mitre: Vec::new(),
            source: "builtin:x.toml".to_owned(),
            state: daemoneye_lib::storage::RuleState {
                rule_id: id.to_owned(),
                status,
                last_scan_id: None,
                last_error: error.map(str::to_owned),
                last_elapsed_us: 0,
                runs: 0,
                degraded_runs: 0,
            },
        }
    }

    #[test]
    fn rules_that_did_not_load_or_do_not_run_are_degraded() {
        let view = |rules: Vec<RuleView>, problems: &[&str]| RulesView {
            rules,
            problems: problems.iter().map(|p| (*p).to_owned()).collect(),
            origin: "configuration".to_owned(),
            generation: 1,
        };
        let judged = |view: RulesView| {
            let c = rules_component(&view);
            (c.status(), c.detail)
        };
        let ok = rule("R-1", RuleStatus::Ok, None);
        assert_eq!(
            judged(view(vec![ok.clone()], &[])),
            (Level::Ok, "1 loaded (from the configuration)".to_owned())
        );
        let (level, detail) = judged(view(
            vec![ok.clone()],
            &["/etc/rulez.d: no such file", "b.toml: X: bad"],
        ));
        assert_eq!(level, Level::Degraded);
        assert_eq!(
            detail,
            "1 loaded; 2 did not load: /etc/rulez.d: no such file (and 1 more)"
        );
        let (level, detail) = judged(view(Vec::new(), &[]));
        assert_eq!(level, Level::Degraded);
        assert!(detail.contains("detection sees nothing"), "{detail}");
        let (level, detail) = judged(view(
            vec![ok, rule("R-2", RuleStatus::Degraded, Some("timed out"))],
            &[],
        ));
        assert_eq!(level, Level::Degraded);
        assert_eq!(
            detail,
            "2 loaded; 1 not ok, first R-2 (degraded): timed out"
        );
    }

    fn status(state: State, restarts: u64, last_exit: Option<&str>) -> Status {
        Status {
            state,
            restarts,
            last_exit: last_exit.map(str::to_owned),
            last_health: None,
            health_pending_since: None,
        }
    }

    #[test]
    fn a_procmond_that_does_not_answer_its_health_check_is_degraded_at_once() {
        let now = Instant::now();
        let when = When {
            now,
            ..when(60_000)
        };
        let judged = |pending: Option<Duration>| {
            let mut running = status(
                State::Running {
                    pid: 7,
                    since: now
                        .checked_sub(Duration::from_secs(60))
                        .expect("an instant"),
                },
                0,
                None,
            );
            running.last_health = Some(proto::CollectorHealth::default());
            running.health_pending_since =
                pending.map(|ago| now.checked_sub(ago).expect("an instant"));
            let store = StoreHealth {
                path: PathBuf::from("/x"),
                recovered: None,
            };
            let got = assess(&running, &ScanStats::default(), &store, &when);
            let procmond = got.iter().find(|c| c.name == "procmond").expect("reported");
            (procmond.status(), procmond.detail.clone())
        };
        assert_eq!(judged(None).0, Level::Ok);
        // A check in flight for a moment is normal.
        assert_eq!(judged(Some(Duration::from_millis(500))).0, Level::Ok);
        let (level, detail) = judged(Some(Duration::from_secs(5)));
        assert_eq!(level, Level::Degraded);
        assert!(
            detail.contains("has not answered a health check for 5 s"),
            "{detail}"
        );
    }

    /// A report made at Unix time 1,000,000 ms, `uptime_ms` into the agent's life, with a
    /// scan due every 10 s.
    fn when(uptime_ms: u64) -> When {
        When {
            now: Instant::now(),
            now_ms: 1_000_000,
            uptime_ms,
            interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn scans_that_stopped_finishing_turn_the_scans_component_degraded() {
        let running = status(
            State::Running {
                pid: 7,
                since: Instant::now(),
            },
            0,
            None,
        );
        let scans_at = |age_ms: i64| ScanStats {
            completed: 12,
            last_at: Some(1_000_000 - age_ms),
            last_processes: Some(90),
            last_error: None,
        };
        let level = |scans: &ScanStats, uptime_ms: u64| {
            let got = assess(&running, scans, &StoreHealth::default(), &when(uptime_ms));
            let scans = got.iter().find(|c| c.name == "scans").expect("reported");
            (scans.status(), scans.detail.clone())
        };
        // Two intervals and 10 s of grace: 30 s.
        assert_eq!(level(&scans_at(1_000), 600_000).0, Level::Ok);
        assert_eq!(level(&scans_at(30_000), 600_000).0, Level::Ok);
        let (stale, detail) = level(&scans_at(30_001), 600_000);
        assert_eq!(stale, Level::Degraded);
        assert!(detail.contains("no scan has finished for 30 s"), "{detail}");
        // No scan at all: degraded once the first one is overdue (a first scan may hash every
        // executable: 30 s more).
        assert_eq!(level(&ScanStats::default(), 60_000).0, Level::Ok);
        let (none, detail) = level(&ScanStats::default(), 60_001);
        assert_eq!(none, Level::Degraded);
        assert!(
            detail.contains("since the agent started 60 s ago"),
            "{detail}"
        );
    }

    fn check(status: Status, scans: ScanStats, want: [(Level, &str); 2]) {
        let got = assess(&status, &scans, &StoreHealth::default(), &when(5000));
        assert_eq!(got[0].status(), Level::Ok);
        for (component, (level, detail)) in got[1..].iter().zip(want) {
            assert_eq!(component.status(), level, "{component:?}");
            assert!(
                component.detail.contains(detail),
                "{:?} lacks {detail:?}",
                component.detail
            );
        }
    }

    #[test]
    fn a_replaced_store_is_degraded_with_the_reason_and_the_moved_file() {
        let running = status(
            State::Running {
                pid: 7,
                since: Instant::now(),
            },
            0,
            None,
        );
        let store = |recovered: Option<Recovered>| {
            let health = StoreHealth {
                path: PathBuf::from("/var/lib/daemoneye/events.redb"),
                recovered,
            };
            let got = assess(&running, &ScanStats::default(), &health, &when(0));
            let store = got.iter().find(|c| c.name == "store").expect("reported");
            (store.status(), store.detail.clone())
        };
        assert_eq!(
            store(None),
            (Level::Ok, "/var/lib/daemoneye/events.redb".to_owned())
        );
        let (level, detail) = store(Some(Recovered {
            moved_to: PathBuf::from("/var/lib/daemoneye/events.redb.damaged-20261203T014500Z"),
            reason: "event store /var/lib/daemoneye/events.redb is damaged: redb panicked".into(),
        }));
        assert_eq!(level, Level::Degraded);
        assert_eq!(
            detail,
            "/var/lib/daemoneye/events.redb was damaged at start-up and replaced by an empty \
             store; the damaged file was moved aside to \
             /var/lib/daemoneye/events.redb.damaged-20261203T014500Z (event store \
             /var/lib/daemoneye/events.redb is damaged: redb panicked)"
        );
    }

    #[test]
    fn the_ledger_is_ok_only_when_procmond_reports_it_open_and_failed_when_damaged() {
        let now = Instant::now();
        let running = State::Running { pid: 7, since: now };
        let ledger = |health: Option<proto::CollectorHealth>| {
            let status = Status {
                last_health: health,
                ..status(running.clone(), 0, None)
            };
            let got = assess(
                &status,
                &ScanStats::default(),
                &StoreHealth::default(),
                &when(0),
            );
            let ledger = got.iter().find(|c| c.name == "ledger").expect("reported");
            (ledger.status(), ledger.detail.clone())
        };
        let open = proto::CollectorHealth {
            ledger_available: true,
            ledger_detail: "12 entries (blake3), newest checkpoint at size 10".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            ledger(Some(open.clone())),
            (Level::Ok, open.ledger_detail.clone())
        );
        let closed = proto::CollectorHealth {
            ledger_available: false,
            ledger_detail: "the audit ledger is not available: damaged".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            ledger(Some(closed.clone())),
            (Level::Degraded, closed.ledger_detail.clone())
        );
        assert_eq!(ledger(None).0, Level::Degraded);

        let damage = proto::LedgerDamage {
            file: "entries.log".to_owned(),
            offset: 94,
            entry: Some(2),
            reason: "checksum mismatch".to_owned(),
            at_open: false,
        };
        let found = proto::CollectorHealth {
            ledger_damage: Some(damage.clone()),
            ..open.clone()
        };
        let (level, detail) = ledger(Some(found));
        assert_eq!(level, Level::Failed);
        assert!(
            detail.starts_with("12 entries (blake3)")
                && detail.contains(
                    "damaged: entries.log at byte 94 (entry 2): checksum mismatch (found by the background check; procmond goes on appending)"
                ),
            "{detail}"
        );
        let refused = proto::CollectorHealth {
            ledger_damage: Some(proto::LedgerDamage {
                at_open: true,
                entry: None,
                ..damage
            }),
            ..closed
        };
        assert_eq!(
            ledger(Some(refused)),
            (
                Level::Failed,
                "damaged, refused to open: entries.log at byte 94: checksum mismatch".to_owned()
            )
        );
    }

    #[test]
    fn each_state_has_its_level_and_reason() {
        let now = Instant::now();
        let healthy = Status {
            last_health: Some(proto::CollectorHealth {
                privileges: Some(proto::Privileges {
                    dropped: true,
                    euid: 65534,
                    effective_caps: 0x80004,
                    no_new_privs: true,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..status(
                State::Running {
                    pid: 42,
                    since: now,
                },
                1,
                Some("killed by signal 9 (SIGKILL)"),
            )
        };
        check(
            healthy,
            ScanStats::default(),
            [
                (
                    Level::Ok,
                    "pid 42, uid 65534, capabilities 0x80004, no_new_privs true, 1 restarts (last: killed by signal 9 (SIGKILL))",
                ),
                (Level::Ok, "no scan yet"),
            ],
        );
        check(
            status(
                State::Restarting {
                    at: now + Duration::from_secs(2),
                },
                3,
                Some("exited with status 1"),
            ),
            ScanStats {
                completed: 7,
                last_error: Some("procmond is not available (restarting in 1999 ms)".into()),
                ..ScanStats::default()
            },
            [
                (Level::Degraded, "down, restarting in"),
                (
                    Level::Degraded,
                    "7 completed; the last attempt failed: procmond is not available",
                ),
            ],
        );
        check(
            status(State::Stopped, 0, None),
            ScanStats {
                completed: 2,
                last_processes: Some(140),
                ..ScanStats::default()
            },
            [
                (Level::Failed, "stopped"),
                (Level::Ok, "2 completed, the last with 140 processes"),
            ],
        );
        check(
            status(State::Starting, 0, None),
            ScanStats::default(),
            [(Level::Degraded, "starting"), (Level::Ok, "no scan yet")],
        );
    }

    fn bundles_view() -> BundlesView {
        BundlesView {
            status: proto::BundleStatus {
                bundles: vec![proto::ActiveBundle {
                    name: "site-rules".to_owned(),
                    version: 3,
                    ..proto::ActiveBundle::default()
                }],
                keys: vec![proto::TrustedKey::default()],
                ..proto::BundleStatus::default()
            },
            license: daemoneye_lib::bundle::LicenseState::default(),
            config: crate::bundle_service::ConfigState::default(),
            gates: Vec::new(),
            now: 0,
        }
    }

    #[test]
    fn bundles_are_degraded_by_a_problem_a_config_not_in_use_or_a_pending_restart() {
        let ok = bundles_component(&bundles_view());
        assert_eq!(
            (ok.status(), ok.detail.as_str()),
            (Level::Ok, "active: site-rules 3")
        );

        let mut view = bundles_view();
        view.status.keys.clear();
        let detail = bundles_component(&view).detail;
        assert!(
            detail.ends_with("no trusted key: every bundle will be refused"),
            "{detail}"
        );

        let mut view = bundles_view();
        view.config.overridden = vec![daemoneye_lib::config::Overridden {
            key: "detection.max_rows".to_owned(),
            by: "/etc/daemoneye/config.toml".to_owned(),
        }];
        let shown = bundles_component(&view);
        assert_eq!(shown.status(), Level::Ok);
        assert!(
            shown
                .detail
                .contains("detection.max_rows (by /etc/daemoneye/config.toml)"),
            "{}",
            shown.detail
        );

        let mut view = bundles_view();
        view.status.state_error = "state.json: not JSON".to_owned();
        let failed = bundles_component(&view);
        assert_eq!(failed.status(), Level::Failed);
        assert!(
            failed.detail.ends_with("state.json: not JSON"),
            "{}",
            failed.detail
        );

        for (change, expected) in [
            (
                (|v: &mut BundlesView| v.status.problems.push("stored bundle x damaged".to_owned()))
                    as fn(&mut BundlesView),
                "stored bundle x damaged; active: site-rules 3",
            ),
            (
                |v: &mut BundlesView| v.config.problem = Some("bad key".to_owned()),
                "the config bundle is not in use: bad key; active: site-rules 3",
            ),
            (
                |v: &mut BundlesView| {
                    v.config.restart_needed = vec!["collection.interval".to_owned()]
                },
                "restart the agent for these config bundle settings to take effect: \
                 collection.interval; active: site-rules 3",
            ),
        ] {
            let mut view = bundles_view();
            change(&mut view);
            let shown = bundles_component(&view);
            assert_eq!(
                (shown.status(), shown.detail.as_str()),
                (Level::Degraded, expected)
            );
        }
    }

    #[test]
    fn the_license_is_degraded_in_grace_after_it_for_another_site_or_when_a_pack_waits() {
        use daemoneye_lib::bundle::{License, LicenseState};
        let license = License::parse(
            "site = \"plant-7\"\ntier = \"business\"\nfeatures = [\"splunk_hec\"]\n\
             issued = \"2026-01-01T00:00:00Z\"\nexpires = \"2027-01-01T00:00:00Z\"\n",
        )
        .unwrap();
        let expires = 1_798_761_600;
        let state = |site: &str| LicenseState {
            license: Some(license.clone()),
            site: Some(daemoneye_lib::ids::SiteId::parse(site).unwrap()),
            grace_secs: 86_400,
        };
        let mut view = bundles_view();
        let none = license_component(&view, expires);
        assert_eq!(
            (none.status(), none.detail.as_str()),
            (Level::Ok, "free tier: no license: free tier")
        );
        view.license = state("plant-7");
        let valid = license_component(&view, expires - 10);
        assert_eq!(valid.status(), Level::Ok);
        assert_eq!(
            valid.detail,
            "business tier: valid until 2027-01-01T00:00:00Z; features: splunk_hec"
        );
        assert_eq!(
            license_component(&view, expires + 10).status(),
            Level::Degraded
        );
        let lapsed = license_component(&view, expires + 86_400);
        assert_eq!(lapsed.status(), Level::Degraded);
        assert!(
            lapsed.detail.starts_with("free tier: expired"),
            "{}",
            lapsed.detail
        );
        view.license = state("plant-8");
        assert_eq!(
            license_component(&view, expires - 10).status(),
            Level::Degraded
        );

        let mut view = bundles_view();
        view.gates = vec![crate::detector::PackGate {
            name: "curated".to_owned(),
            in_force: Err(
                "rule pack curated is not active: curated-rules needs a license".to_owned(),
            ),
        }];
        let waiting = license_component(&view, expires);
        assert_eq!(waiting.status(), Level::Degraded);
        assert!(
            waiting.detail.ends_with("curated-rules needs a license"),
            "{}",
            waiting.detail
        );
    }
}
