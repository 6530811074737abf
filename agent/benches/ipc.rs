//! The agent's link to procmond, over a real Unix socket in a private temporary directory.
//!
//! `cargo bench -p daemoneye-agent --bench ipc`.
//!
//! - `health_round_trip`: one `ProcmondLink::health()` against the real
//!   `procmond::server::serve`, in process: request, frame, socket, answer, decode.
//! - `scan_transfer_10k`: one `ProcmondLink::scan()` answered with 10,000 synthetic
//!   records, measuring everything a scan costs after the collector has produced its records:
//!   the server converts and cuts them into frames (`procmond::tasks::split_result`), encodes
//!   and checksums them, the socket carries them, and the client checks, decodes and converts
//!   them back to models. The real server would run a real scan first, which is
//!   `procmond`'s `scan` benchmark, not this one; so this bench answers with a small server of
//!   its own that speaks the same handshake and frames.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use daemoneye_agent::link::ProcmondLink;
use daemoneye_lib::ipc::frame::HEADER_LEN;
use daemoneye_lib::ipc::proto::{self, Role, collector_request};
use daemoneye_lib::ipc::transport::{self, PeerPolicy, SocketListener};
use daemoneye_lib::ipc::{Connection, IpcError, Limits, MessageType, convert};
use daemoneye_lib::models::{OnDisk, ProcessRecord, ScanErrors, ScanSummary};
use procmond::audit::AuditLog;
use procmond::privilege::PrivilegeOutcome;
use procmond::server::{self, ServerState};
use procmond::{Collector, CollectorOptions};
use prost::Message;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// Records in the synthetic scan: a busy server's process table.
const RECORDS: usize = 10_000;

/// The scan's id and clock, fixed so that every run sends the same bytes.
const SCAN_ID: i64 = 42;
const COLLECTED_AT: i64 = 1_767_225_600_000;

/// A temporary directory of mode 0700 (as `transport::listen` demands) and the socket in it.
fn private_socket() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .expect("the temporary directory can be made private");
    let path = dir.path().join("procmond.sock");
    (dir, path)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

async fn connect(path: &Path) -> ProcmondLink {
    ProcmondLink::connect(path, Limits::default(), &PeerPolicy::for_current_user())
        .await
        .expect("the client connects and handshakes")
}

fn ipc(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipc");

    // Declared first so that it is removed last, after the runtime has dropped the listener.
    let (_health_dir, path) = private_socket();
    let rt = runtime();
    let client = rt.block_on(async {
        let listener = transport::listen(&path, PeerPolicy::for_current_user())
            .expect("listening on the socket");
        let options = CollectorOptions::default();
        let state = ServerState::new(
            Collector::new(options).expect("the collector starts"),
            Limits::default(),
            PrivilegeOutcome::NotRoot {
                uid: nix::unistd::getuid().as_raw(),
            },
            Arc::new(AuditLog::unavailable("not kept by this benchmark")),
            procmond::exec_events::ExecEvents::off("not used by this benchmark"),
        );
        tokio::spawn(server::serve(
            listener,
            Arc::new(state),
            std::future::pending(),
        ));
        connect(&path).await
    });
    group.sample_size(100);
    group.throughput(Throughput::Elements(1));
    group.bench_function("health_round_trip", |b| {
        b.iter(|| rt.block_on(client.health()).expect("procmond answers"));
    });
    drop(client);
    drop(rt);

    let (_scan_dir, path) = private_socket();
    let rt = runtime();
    let records = Arc::new(synthetic_records(RECORDS));
    let summary = summary(RECORDS);
    let (limit_tx, limit_rx) = oneshot::channel();
    let client = rt.block_on(async {
        let listener = transport::listen(&path, PeerPolicy::for_current_user())
            .expect("listening on the socket");
        tokio::spawn(serve_scans(
            listener,
            Arc::clone(&records),
            summary,
            limit_tx,
        ));
        connect(&path).await
    });
    let send_limit = rt
        .block_on(limit_rx)
        .expect("the server reports the negotiated frame limit");
    let got = rt.block_on(client.scan()).expect("a scan arrives");
    assert_eq!(got.records.len(), RECORDS);
    assert_eq!(got.records[RECORDS - 1], records[RECORDS - 1]);
    report_wire_size(&records, summary, send_limit);

    // One transfer takes tens of milliseconds: flat sampling (the same number of iterations in
    // every sample) and fewer samples keep the whole bench within a minute.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("scan_transfer_10k", |b| {
        b.iter(|| black_box(rt.block_on(client.scan()).expect("a scan arrives")));
    });
    group.finish();
    drop(client);
    drop(rt);
}

/// Serves one agent connection as procmond would, answering every task with `records`.
async fn serve_scans(
    listener: SocketListener,
    records: Arc<Vec<ProcessRecord>>,
    summary: proto::ScanSummary,
    limit_tx: oneshot::Sender<u32>,
) {
    let (stream, peer) = listener.accept().await.expect("the client connects");
    peer.expect("the client runs as this user");
    let mut conn = Connection::server_handshake(
        stream,
        Limits::default(),
        Role::Collector,
        &[Role::Agent],
        &[],
    )
    .await
    .expect("the handshake succeeds");
    let send_limit = conn.negotiated().send_limit;
    // The receiver waits for this before the first request, so it cannot have gone.
    let _ = limit_tx.send(send_limit);
    loop {
        let request = match conn
            .recv::<proto::CollectorRequest>(MessageType::CollectorRequest)
            .await
        {
            Ok(request) => request,
            // The bench is over and the client has gone.
            Err(IpcError::Closed) => return,
            Err(err) => panic!("a bad request from the client: {err}"),
        };
        let Some(collector_request::Kind::Task(task)) = request.kind else {
            panic!("the bench sends only scan tasks");
        };
        let parts = procmond::tasks::split_result(
            request.request_id,
            &task.task_id,
            &records,
            summary,
            send_limit,
        )
        .expect("every record fits in a frame");
        for part in &parts {
            conn.send(MessageType::CollectorResponse, part)
                .await
                .expect("the client reads the scan");
        }
    }
}

/// Prints how many bytes and frames one scan of `records` takes on the wire.
fn report_wire_size(records: &[ProcessRecord], summary: proto::ScanSummary, send_limit: u32) {
    // The task id the client's first scan request carries ("scan-<request id>"); its length
    // is the only thing about the request that changes the answer's size.
    let parts = procmond::tasks::split_result(1, "scan-1", records, summary, send_limit)
        .expect("every record fits in a frame");
    let bytes: usize = parts
        .iter()
        .map(|part| HEADER_LEN + part.encoded_len())
        .sum();
    eprintln!(
        "scan_transfer_10k: {} records take {bytes} bytes on the wire ({:.0} bytes a record) \
         in {} frame(s) of at most {send_limit} payload bytes",
        records.len(),
        bytes as f64 / records.len() as f64,
        parts.len(),
    );
}

/// What a process table of `count` processes on a busy Linux server looks like: a few dozen
/// programs, each running many times with its own arguments.
fn synthetic_records(count: usize) -> Vec<ProcessRecord> {
    // (name, executable, working directory, cgroup)
    const PROGRAMS: [(&str, &str, &str, &str); 8] = [
        (
            "postgres",
            "/usr/lib/postgresql/16/bin/postgres",
            "/var/lib/postgresql/16/main",
            "/system.slice/postgresql@16-main.service",
        ),
        (
            "nginx-worker",
            "/usr/sbin/nginx",
            "/var/www",
            "/system.slice/nginx.service/workers",
        ),
        (
            "python3.12",
            "/opt/app/venv/bin/python3.12",
            "/opt/app/current",
            "/system.slice/app-worker@queue.service",
        ),
        (
            "java-kafka",
            "/usr/lib/jvm/java-21/bin/java",
            "/opt/kafka/current",
            "/system.slice/kafka-broker.service",
        ),
        (
            "containerd-sh",
            "/usr/bin/containerd-shim-runc-v2",
            "/run/containerd/io.containerd",
            "/kubepods.slice/kubepods-burstable.slice",
        ),
        (
            "sshd-session",
            "/usr/lib/openssh/sshd-session",
            "/home/operator",
            "/user.slice/user-1000.slice/session-7.scope",
        ),
        (
            "node-gateway",
            "/usr/local/bin/node-gateway",
            "/srv/gateway/release",
            "/system.slice/api-gateway-edge.service",
        ),
        (
            "redis-server",
            "/usr/local/bin/redis-server",
            "/var/lib/redis/6379",
            "/system.slice/redis-server@6379.service",
        ),
    ];
    (0..count)
        .map(|index| {
            let i = u32::try_from(index).expect("fewer than 2^32 records");
            let program = index % PROGRAMS.len();
            let (name, path, cwd, cgroup) = PROGRAMS[program];
            let pid = 1000 + i * 3;
            let uid = 100 + u32::try_from(program).expect("a handful of programs");
            ProcessRecord {
                pid,
                parent: Some(if i < 8 { 1 } else { 1000 + (i % 8) * 3 }),
                name: Some(name.to_owned()),
                path: Some(path.to_owned()),
                cmdline: Some(format!(
                    "{path} --config /etc/{name}/{name}.conf --worker-id {i} \
                     --listen 127.0.0.1:{} --log-level info --data /var/lib/{name}/s{:03}",
                    20_000 + i % 40_000,
                    i % 997,
                )),
                cwd: Some(cwd.to_owned()),
                root: Some("/".to_owned()),
                state: Some(if i % 50 == 0 { "R" } else { "S" }.to_owned()),
                uid: Some(uid),
                gid: Some(uid),
                euid: Some(uid),
                egid: Some(uid),
                suid: Some(uid),
                sgid: Some(uid),
                on_disk: OnDisk::Present,
                resident_size: Some(4096 * u64::from(2_000 + i % 50_000)),
                total_size: Some(4096 * u64::from(60_000 + i % 400_000)),
                user_time: Some(u64::from(i) * 37 % 3_600_000),
                system_time: Some(u64::from(i) * 11 % 600_000),
                disk_bytes_read: Some(u64::from(i) * 65_536),
                disk_bytes_written: Some(u64::from(i) * 16_384),
                start_time: Some(1_767_000_000 + i64::from(i) * 7),
                pgroup: Some(1000 + (i % 8) * 3),
                threads: Some(1 + i % 64),
                nice: Some(if i % 10 == 0 { 10 } else { 0 }),
                cgroup_path: Some(cgroup.to_owned()),
                // Every copy of a program runs the same file, so it has the same hash.
                exe_sha256: Some(fake_sha256(program)),
                exe_dev: Some(0x0803),
                exe_inode: Some(1_310_720 + program as u64 * 4_099),
                cpu_percent: Some(f64::from(i % 400) / 8.0),
                scan_id: SCAN_ID,
                collected_at: COLLECTED_AT,
            }
        })
        .collect()
}

/// 64 lowercase hex digits, different for each program.
fn fake_sha256(program: usize) -> String {
    // splitmix64, so that the digits look as random as a real digest's.
    let mut state = program as u64;
    (0..4)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// The summary the last part of the scan carries.
fn summary(count: usize) -> proto::ScanSummary {
    let errors = ScanErrors {
        vanished: 3,
        permission_denied: 12,
        ..ScanErrors::default()
    };
    convert::scan_summary_to_proto(
        &ScanSummary {
            scan_id: SCAN_ID,
            started_at: COLLECTED_AT - 180,
            finished_at: COLLECTED_AT,
            process_count: count as u64,
            error_count: 15,
        },
        &errors,
        40,
        9_960,
    )
}

criterion_group!(benches, ipc);
criterion_main!(benches);
