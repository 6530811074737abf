//! The HTTP sinks (webhook, Splunk HEC, Elasticsearch) against real HTTP servers on loopback:
//! a small threaded HTTP/1.1 server (`sink_http/server.rs`, plain or rustls with a test CA
//! made by rcgen) records each request and answers what the test scripts.
//!
//! No Splunk or Elasticsearch server can be installed here, so those sinks are tested against
//! loopback servers answering with the response shapes their documentation gives:
//!
//! - Splunk HEC: `{"text":"Success","code":0}` with 200, and the error objects of the status
//!   code table of "Troubleshoot HTTP Event Collector"
//!   (<https://help.splunk.com/en/splunk-enterprise/get-data-in/collect-http-event-data/troubleshoot-http-event-collector>):
//!   400 `{"text":"Invalid data format","code":6,"invalid-event-number":N}`, 403
//!   `{"text":"Token disabled","code":1}`, 503 `{"text":"Server is busy","code":9}`, 400
//!   `{"text":"Incorrect index","code":7}`.
//! - Elasticsearch: the Bulk API's answer (<https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-bulk>):
//!   `{"took":..,"errors":..,"items":[{"create":{"_index":..,"_id":..,"status":201,..}}]}`,
//!   with per-item `error` objects (`version_conflict_engine_exception` 409,
//!   `es_rejected_execution_exception` 429, `document_parsing_exception` 400), and the
//!   error object of a refused request (`security_exception` 401).
//!
//! The webhook's receiver checks the Standard Webhooks signature itself, with hmac and sha2,
//! not with the sink's code.

// Helpers outside #[test] functions (the server, the test PKI) fail the test by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sink_http/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use daemoneye_agent::outbox::build::{BuildError, Context, build};
use daemoneye_agent::outbox::{BatchError, Delivery, Sink, SinkError};
use daemoneye_agent::output::AlertFormat;
use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::config::{SinkConfig, SinkKind};
use daemoneye_lib::ids::AlertId;
use hmac::{KeyInit, Mac};
use server::{Answer, Pki, Request, Server};

/// How long a test waits for a delivery that should end within the sink's timeout (1 s in
/// these tests): generous, for a loaded machine; a hang is a failure, not a slow pass.
const BOUND: Duration = Duration::from_secs(120);

const DETECTED_AT: &str = "2026-12-03T08:40:07.123Z";
const DETECTED_MS: i64 = 1_796_287_207_123;

fn alert(n: u32, rule_id: &str) -> Alert {
    Alert {
        id: AlertId::parse(&format!("{n:032x}")).unwrap(),
        rule_id: rule_id.to_owned(),
        rule_name: "Shell from web server".to_owned(),
        severity: Severity::High,
        mitre: vec!["T1059".to_owned()],
        host: "web-1".to_owned(),
        site: None,
        scan_id: 7,
        detected_at: DETECTED_AT.to_owned(),
        dedup_key: format!("pid={n}"),
        suppressed: 0,
        rows: vec![],
        summary: "Shell from web server: sh".to_owned(),
    }
}

fn alerts(rules: &[&str]) -> Vec<Alert> {
    rules
        .iter()
        .enumerate()
        .map(|(n, rule)| alert(n as u32 + 1, rule))
        .collect()
}

fn sink_config(kind: SinkKind, options: serde_json::Value) -> SinkConfig {
    SinkConfig {
        name: "s1".to_owned(),
        kind,
        options: serde_json::from_value::<BTreeMap<String, serde_json::Value>>(options).unwrap(),
    }
}

fn make(kind: SinkKind, options: serde_json::Value) -> Result<Box<dyn Sink>, BuildError> {
    build(
        &sink_config(kind, options),
        &Context {
            stdout_format: AlertFormat::Json,
        },
    )
}

/// Delivers `alerts` as one batch on another thread and waits at most [`BOUND`].
fn deliver(mut sink: Box<dyn Sink>, alerts: &[Alert]) -> Result<(), BatchError> {
    let owned: Vec<(AlertId, Vec<u8>)> = alerts
        .iter()
        .map(|alert| (alert.id.clone(), alert.canonical_bytes()))
        .collect();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let batch: Vec<Delivery<'_>> = owned
            .iter()
            .map(|(alert_id, payload)| Delivery { alert_id, payload })
            .collect();
        let _ = tx.send(sink.deliver(&batch));
    });
    rx.recv_timeout(BOUND)
        .expect("the delivery ended within the bound")
}

fn event_id(alert: &Alert) -> String {
    format!("{}-{DETECTED_MS}", alert.id)
}

fn secret_file(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

fn assert_class(result: Result<(), BatchError>, acknowledged: usize, class: &str, words: &[&str]) {
    let err = result.expect_err("the delivery failed");
    let actual = match &err.error {
        SinkError::Retry { .. } => "retry",
        SinkError::Reject { .. } => "reject",
        SinkError::GiveUp { .. } => "give up",
        _ => "other",
    };
    assert_eq!((err.acknowledged, actual), (acknowledged, class), "{err}");
    for word in words {
        assert!(err.error.reason().contains(word), "{word:?} not in: {err}");
    }
    assert!(err.error.reason().len() < 1000, "reason too long: {err}");
}

// ---------------------------------------------------------------------------------------
// Webhook

/// The receiver's side of Standard Webhooks: the signature recomputed from the raw key.
fn expected_signature(key: &[u8], request: &Request) -> String {
    let id = request.header("webhook-id").unwrap();
    let timestamp = request.header("webhook-timestamp").unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

const WEBHOOK_KEY: &[u8] = b"a webhook signing key of 32 byte";

#[test]
fn webhook_posts_each_alert_with_bearer_token_and_a_standard_webhooks_signature() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::http(|request| {
        let signed = request.header("webhook-signature")
            == Some(expected_signature(WEBHOOK_KEY, request).as_str());
        let bearer = request.header("authorization") == Some("Bearer t0ken-42");
        if signed && bearer {
            Answer::Json(204, String::new())
        } else {
            Answer::Json(400, r#"{"error":"bad signature or token"}"#.to_owned())
        }
    });
    let sink = make(
        SinkKind::Webhook,
        serde_json::json!({
            "url": format!("{}/hooks/daemoneye", server.url("http")),
            "bearer_token_file": secret_file(&dir, "token", "t0ken-42\n"),
            "hmac_secret_file": secret_file(&dir, "secret", &format!("whsec_{}\n", STANDARD.encode(WEBHOOK_KEY))),
            "timeout": "5s",
        }),
    )
    .unwrap();
    let batch = alerts(&["r1", "r2"]);
    deliver(sink, &batch).unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (request, alert) in requests.iter().zip(&batch) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.target, "/hooks/daemoneye");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.body, alert.canonical_bytes(), "the payload as is");
        assert_eq!(request.header("webhook-id"), Some(alert.id.as_str()));
        let timestamp: u64 = request
            .header("webhook-timestamp")
            .unwrap()
            .parse()
            .unwrap();
        // The signing time is this run's clock (a day either way: no timing assertion).
        assert!(timestamp.abs_diff(now) < 86_400, "{timestamp} vs {now}");
    }
}

#[test]
fn a_webhook_signed_with_another_key_is_refused_by_the_receiver() {
    // The receiver's check can fail: the same server, the sink keyed differently (raw bytes).
    let dir = tempfile::tempdir().unwrap();
    let server = Server::http(|request| {
        if request.header("webhook-signature")
            == Some(expected_signature(WEBHOOK_KEY, request).as_str())
        {
            Answer::Json(200, "{}".to_owned())
        } else {
            Answer::Json(422, r#"{"error":"bad signature"}"#.to_owned())
        }
    });
    let sink = make(
        SinkKind::Webhook,
        serde_json::json!({
            "url": server.url("http"),
            "hmac_secret_file": secret_file(&dir, "secret", "another raw key of enough bytes"),
        }),
    )
    .unwrap();
    assert_class(
        deliver(sink, &alerts(&["r1"])),
        0,
        "reject",
        &["422", "bad signature"],
    );
}

#[test]
fn webhook_over_https_trusts_ca_file_and_presents_a_client_certificate_for_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "site");
    let ok = |_: &Request| Answer::Json(200, "{}".to_owned());

    let https = Server::https(pki.server_config(), ok);
    let sink = make(
        SinkKind::Webhook,
        serde_json::json!({"url": https.url("https"), "ca_file": pki.ca_pem}),
    )
    .unwrap();
    deliver(sink, &alerts(&["r1"])).unwrap();
    assert_eq!(https.requests().len(), 1);

    let mtls = Server::https(pki.mtls_server_config(), ok);
    let sink = make(
        SinkKind::Webhook,
        serde_json::json!({
            "url": mtls.url("https"),
            "ca_file": pki.ca_pem,
            "client_cert": pki.client_cert,
            "client_key": pki.client_key,
        }),
    )
    .unwrap();
    deliver(sink, &alerts(&["r1", "r2"])).unwrap();
    assert_eq!(mtls.requests().len(), 2);

    // Without the client certificate the server ends the handshake: a TLS failure, retried.
    let sink = make(
        SinkKind::Webhook,
        serde_json::json!({"url": mtls.url("https"), "ca_file": pki.ca_pem, "timeout": "5s"}),
    )
    .unwrap();
    assert_class(deliver(sink, &alerts(&["r1"])), 0, "retry", &["TLS"]);
    assert_eq!(mtls.requests().len(), 2, "nothing reached the server");
}

#[test]
fn an_untrusted_server_certificate_is_a_retried_tls_failure() {
    let dir = tempfile::tempdir().unwrap();
    let site = Pki::new(dir.path(), "site");
    let other = Pki::new(dir.path(), "other");
    let server = Server::https(site.server_config(), |_| Answer::Json(200, "{}".to_owned()));
    let sink = make(
        SinkKind::Webhook,
        serde_json::json!({"url": server.url("https"), "ca_file": other.ca_pem, "timeout": "5s"}),
    )
    .unwrap();
    assert_class(
        deliver(sink, &alerts(&["r1"])),
        0,
        "retry",
        &["TLS", "certificate"],
    );
    assert!(server.requests().is_empty());
}

#[test]
fn an_unreachable_port_is_retried_as_connection_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let sink = make(
        SinkKind::Webhook,
        serde_json::json!({"url": format!("http://{addr}/"), "timeout": "5s"}),
    )
    .unwrap();
    assert_class(
        deliver(sink, &alerts(&["r1"])),
        0,
        "retry",
        &["connection refused"],
    );
}

#[test]
fn webhook_statuses_end_in_their_classes_and_acknowledge_the_alerts_before() {
    let dir = tempfile::tempdir().unwrap();
    let token = secret_file(&dir, "token", "abc");
    // The receiver answers by rule id: "ok" 200, "sNNN" status NNN.
    let server = Server::http(|request| {
        let alert: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let rule = alert["rule_id"].as_str().unwrap().to_owned();
        match rule.strip_prefix('s') {
            Some(status) => Answer::Json(
                status.parse().unwrap(),
                format!(r#"{{"error":"scripted {status}"}}"#),
            ),
            None => Answer::Json(200, "{}".to_owned()),
        }
    });
    let sink = || {
        make(
            SinkKind::Webhook,
            serde_json::json!({"url": server.url("http"), "bearer_token_file": token}),
        )
        .unwrap()
    };
    for (status, class, words) in [
        ("s400", "reject", &["400", "scripted 400"][..]),
        ("s422", "reject", &["422"]),
        ("s501", "reject", &["501"]),
        ("s500", "retry", &["500"]),
        ("s503", "retry", &["503"]),
        ("s408", "retry", &["408"]),
        ("s429", "retry", &["429"]),
        ("s401", "give up", &["credential refused", "401"]),
        ("s403", "give up", &["credential refused", "403"]),
        ("s404", "give up", &["404"]),
        ("s302", "give up", &["redirect"]),
    ] {
        assert_class(
            deliver(sink(), &alerts(&["ok", "ok", status, "ok"])),
            2,
            class,
            words,
        );
    }
    deliver(sink(), &alerts(&["ok", "ok", "ok"])).unwrap();
}

#[test]
fn a_receiver_that_never_answers_is_retried_after_the_timeout() {
    let server = Server::http(|_| Answer::Silent);
    let sink = make(
        SinkKind::Webhook,
        serde_json::json!({"url": server.url("http"), "timeout": "1s"}),
    )
    .unwrap();
    assert_class(
        deliver(sink, &alerts(&["r1"])),
        0,
        "retry",
        &["timed out after 1s"],
    );
}

#[test]
fn a_receiver_answering_garbage_is_an_invalid_response_retried() {
    let server = Server::http(|_| {
        Answer::Raw(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02garbage\r\n\r\n".to_vec())
    });
    let sink = make(
        SinkKind::Webhook,
        serde_json::json!({"url": server.url("http"), "timeout": "5s"}),
    )
    .unwrap();
    assert_class(
        deliver(sink, &alerts(&["r1"])),
        0,
        "retry",
        &["invalid response"],
    );
}

#[test]
fn a_body_of_megabytes_is_not_read_past_the_limit() {
    const HUGE: u64 = 256 << 20;
    let server = Server::http(|_| Answer::Huge(500, HUGE));
    let sink = make(
        SinkKind::Webhook,
        serde_json::json!({"url": server.url("http"), "timeout": "10s"}),
    )
    .unwrap();
    assert_class(
        deliver(sink, &alerts(&["r1"])),
        0,
        "retry",
        &["500", "xxxx"],
    );
    // The sink stopped reading at its limit and closed: the server could not write the
    // 256 MiB (at most the limit plus the sockets' buffers went out).
    let deadline = std::time::Instant::now() + BOUND;
    let mut last = server.streamed();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = server.streamed();
        if now == last || std::time::Instant::now() > deadline {
            break;
        }
        last = now;
    }
    eprintln!("the server wrote {last} bytes of the {HUGE}-byte body");
    assert!(last < HUGE / 4, "{last} bytes were written of {HUGE}");
}

#[test]
fn a_2xx_whose_body_breaks_off_is_delivered_by_a_webhook_and_retried_by_a_bulk_request() {
    let cut = || {
        Answer::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"took\":1,".to_vec(),
        )
    };
    // The webhook's receiver said 200: the alert is delivered, whatever follows.
    let server = Server::http(move |_| cut());
    let sink = make(
        SinkKind::Webhook,
        serde_json::json!({"url": server.url("http"), "timeout": "5s"}),
    )
    .unwrap();
    deliver(sink, &alerts(&["r1"])).unwrap();
    let request = &server.requests()[0];
    assert!(request.header("webhook-id").is_some());
    assert!(
        request.header("webhook-signature").is_none(),
        "no key, no signature"
    );

    // A bulk answer is needed whole: without its items nothing is known to be indexed.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::http(move |_| cut());
    assert_class(
        deliver(es_sink(&server, &dir), &alerts(&["201"])),
        0,
        "retry",
        &["invalid response"],
    );
}

#[test]
fn webhook_configuration_errors_are_one_line_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let check = |options: serde_json::Value, words: &[&str]| {
        let err = make(SinkKind::Webhook, options)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.starts_with("sinks.s1: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
        for word in words {
            assert!(err.contains(word), "{word:?} not in {err}");
        }
    };
    check(
        serde_json::json!({"url": "ftp://example.com/"}),
        &["url", "http://"],
    );
    check(
        serde_json::json!({"url": "https://u:p@example.com/"}),
        &["url", "credentials"],
    );
    check(
        serde_json::json!({"url": "http://h/", "colour": "red"}),
        &["colour"],
    );
    check(
        serde_json::json!({"url": "http://h/", "ca_file": "/nonexistent"}),
        &["https://"],
    );
    check(
        serde_json::json!({"url": "https://h/", "ca_file": dir.path().join("none.pem")}),
        &["ca_file", "none.pem"],
    );
    check(
        serde_json::json!({"url": "http://h/", "hmac_secret_file": secret_file(&dir, "s", "short")}),
        &["hmac_secret_file", "at least 16"],
    );
    check(
        serde_json::json!({"url": "http://h/", "bearer_token_file": secret_file(&dir, "e", "\n")}),
        &["bearer_token_file", "empty"],
    );
    check(
        serde_json::json!({"url": "http://h/", "timeout": "0s"}),
        &["timeout"],
    );
}

// ---------------------------------------------------------------------------------------
// Splunk HEC

fn hec_events(request: &Request) -> Vec<serde_json::Value> {
    std::str::from_utf8(&request.body)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn hec_sink(server: &Server, dir: &tempfile::TempDir) -> Box<dyn Sink> {
    make(
        SinkKind::SplunkHec,
        serde_json::json!({
            "url": format!("{}/", server.url("http")),
            "token_file": secret_file(dir, "hec", "11111111-2222-3333-4444-555555555555\n"),
            "index": "security",
            "timeout": "5s",
        }),
    )
    .unwrap()
}

#[test]
fn splunk_hec_sends_one_request_per_batch_of_event_objects() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::http(|_| Answer::Json(200, r#"{"text":"Success","code":0}"#.to_owned()));
    let batch = alerts(&["r1", "r2", "r3"]);
    deliver(hec_sink(&server, &dir), &batch).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.target, "/services/collector/event");
    assert_eq!(
        request.header("authorization"),
        Some("Splunk 11111111-2222-3333-4444-555555555555")
    );
    let events = hec_events(request);
    assert_eq!(events.len(), 3);
    for (event, alert) in events.iter().zip(&batch) {
        assert_eq!(event["time"], serde_json::json!(1_796_287_207.123));
        assert_eq!(event["host"], "web-1");
        assert_eq!(event["sourcetype"], "daemoneye:alert");
        assert_eq!(event["index"], "security");
        assert!(event.get("source").is_none(), "source only when configured");
        let sent: Alert = serde_json::from_value(event["event"].clone()).unwrap();
        assert_eq!(&sent, alert);
    }
}

#[test]
fn splunk_hec_finds_the_malformed_event_of_a_refused_batch_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    // The collector refuses any request holding the event of rule "bad", as HEC refuses a
    // batch with one malformed event.
    let server = Server::http(|request| {
        let events = hec_events(request);
        match events
            .iter()
            .position(|event| event["event"]["rule_id"] == "bad")
        {
            Some(n) => Answer::Json(
                400,
                format!(r#"{{"text":"Invalid data format","code":6,"invalid-event-number":{n}}}"#),
            ),
            None => Answer::Json(200, r#"{"text":"Success","code":0}"#.to_owned()),
        }
    });
    let batch = alerts(&["r1", "r2", "bad", "r4"]);
    assert_class(
        deliver(hec_sink(&server, &dir), &batch),
        2,
        "reject",
        &["Invalid data format"],
    );
    // The batch, then r1 and r2 alone (accepted), then "bad" alone (refused); r4 waits for
    // the next batch.
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .map(|r| hec_events(r).len())
        .collect();
    assert_eq!(sizes, [4, 1, 1, 1]);
    deliver(hec_sink(&server, &dir), &batch[3..]).unwrap();
}

#[test]
fn splunk_hec_gives_up_on_a_refused_token_or_index_and_retries_when_busy() {
    let dir = tempfile::tempdir().unwrap();
    for (status, body, class, words) in [
        (
            403,
            r#"{"text":"Token disabled","code":1}"#,
            "give up",
            &["token refused", "Token disabled"][..],
        ),
        (
            401,
            r#"{"text":"Invalid authorization","code":3}"#,
            "give up",
            &["token refused"],
        ),
        (
            400,
            r#"{"text":"Incorrect index","code":7,"invalid-event-number":0}"#,
            "give up",
            &["index"],
        ),
        (
            503,
            r#"{"text":"Server is busy","code":9}"#,
            "retry",
            &["503", "Server is busy"],
        ),
        (
            500,
            r#"{"text":"Internal server error","code":8}"#,
            "retry",
            &["500"],
        ),
        (429, "", "retry", &["429"]),
    ] {
        let server = Server::http(move |_| Answer::Json(status, body.to_owned()));
        assert_class(
            deliver(hec_sink(&server, &dir), &alerts(&["r1", "r2"])),
            0,
            class,
            words,
        );
        assert_eq!(
            server.requests().len(),
            1,
            "HTTP {status}: no per-event resend"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Elasticsearch

/// The bulk request's documents: (action, source) pairs.
fn bulk_documents(request: &Request) -> Vec<(serde_json::Value, serde_json::Value)> {
    let text = std::str::from_utf8(&request.body).unwrap();
    assert!(text.ends_with('\n'), "the bulk body ends with a newline");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    lines
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

/// A bulk answer as the Bulk API documents it, one item per document, the status chosen by
/// the document's rule id ("201", "409", "429", "400").
fn bulk_answer(request: &Request) -> Answer {
    let items: Vec<serde_json::Value> = bulk_documents(request)
        .iter()
        .map(|(action, source)| {
            let id = action["create"]["_id"].clone();
            let status: u16 = source["rule_id"].as_str().unwrap().parse().unwrap();
            let mut item = serde_json::json!({
                "_index": "daemoneye-alerts", "_id": id, "status": status,
            });
            match status {
                201 => {
                    item["_version"] = 1.into();
                    item["result"] = "created".into();
                    item["_shards"] = serde_json::json!({"total": 2, "successful": 1, "failed": 0});
                    item["_seq_no"] = 0.into();
                    item["_primary_term"] = 1.into();
                }
                409 => {
                    item["error"] = serde_json::json!({
                        "type": "version_conflict_engine_exception",
                        "reason": format!("[{}]: version conflict, document already exists (current version [1])", id.as_str().unwrap()),
                        "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA", "shard": "0", "index": "daemoneye-alerts",
                    });
                }
                429 => {
                    item["error"] = serde_json::json!({
                        "type": "es_rejected_execution_exception",
                        "reason": "rejected execution of coordinating operation",
                    });
                }
                _ => {
                    item["error"] = serde_json::json!({
                        "type": "document_parsing_exception",
                        "reason": "[1:42] failed to parse field [rows] of type [keyword]",
                    });
                }
            }
            serde_json::json!({"create": item})
        })
        .collect();
    let errors = items
        .iter()
        .any(|item| item["create"].get("error").is_some());
    Answer::Json(
        200,
        serde_json::json!({"took": 30, "errors": errors, "items": items}).to_string(),
    )
}

fn es_sink(server: &Server, dir: &tempfile::TempDir) -> Box<dyn Sink> {
    make(
        SinkKind::Elasticsearch,
        serde_json::json!({
            "url": server.url("http"),
            "username": "daemoneye",
            "password_file": secret_file(dir, "pw", "s3cret\n"),
            "timeout": "5s",
        }),
    )
    .unwrap()
}

#[test]
fn elasticsearch_creates_one_document_per_alert_in_one_bulk_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::http(bulk_answer);
    let batch = alerts(&["201", "409", "201"]);
    deliver(es_sink(&server, &dir), &batch).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert!(
        request.target.starts_with("/_bulk?filter_path="),
        "{}",
        request.target
    );
    assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        request.header("authorization"),
        Some(format!("Basic {}", STANDARD.encode("daemoneye:s3cret")).as_str())
    );
    let documents = bulk_documents(request);
    assert_eq!(documents.len(), 3);
    for ((action, source), alert) in documents.iter().zip(&batch) {
        assert_eq!(
            action,
            &serde_json::json!({"create": {"_index": "daemoneye-alerts", "_id": event_id(alert)}})
        );
        assert_eq!(
            &serde_json::from_value::<Alert>(source.clone()).unwrap(),
            alert
        );
    }
}

#[test]
fn elasticsearch_mixed_item_results_acknowledge_up_to_the_first_failure() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::http(bulk_answer);
    assert_class(
        deliver(
            es_sink(&server, &dir),
            &alerts(&["201", "409", "201", "429", "201"]),
        ),
        3,
        "retry",
        &["429", "es_rejected_execution_exception"],
    );
    assert_class(
        deliver(es_sink(&server, &dir), &alerts(&["201", "400", "201"])),
        1,
        "reject",
        &["400", "document_parsing_exception"],
    );
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn elasticsearch_whole_request_failures_give_up_retry_or_isolate_the_refused_alert() {
    let dir = tempfile::tempdir().unwrap();
    let security = r#"{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate user [daemoneye] for REST request [/_bulk]"}],"type":"security_exception","reason":"unable to authenticate user [daemoneye] for REST request [/_bulk]"},"status":401}"#;
    let server = Server::http(move |_| Answer::Json(401, security.to_owned()));
    assert_class(
        deliver(es_sink(&server, &dir), &alerts(&["201"])),
        0,
        "give up",
        &["credential refused", "security_exception"],
    );
    let server =
        Server::http(|_| Answer::Json(503, r#"{"error":"unavailable","status":503}"#.to_owned()));
    assert_class(
        deliver(es_sink(&server, &dir), &alerts(&["201"])),
        0,
        "retry",
        &["503"],
    );

    // A 413 for the batch: each alert alone, the one refused alone is rejected.
    let server = Server::http(|request| {
        let documents = bulk_documents(request);
        if documents.len() > 1 || documents[0].1["rule_id"] == "big" {
            Answer::Json(413, String::new())
        } else {
            bulk_answer(request)
        }
    });
    assert_class(
        deliver(es_sink(&server, &dir), &alerts(&["201", "big", "201"])),
        1,
        "reject",
        &["413"],
    );
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .map(|r| bulk_documents(r).len())
        .collect();
    assert_eq!(sizes, [3, 1, 1]);
}

#[test]
fn elasticsearch_sends_an_api_key_and_refuses_mixed_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::http(bulk_answer);
    let sink = make(
        SinkKind::Elasticsearch,
        serde_json::json!({
            "url": server.url("http"),
            "index": "alerts-prod",
            "api_key_file": secret_file(&dir, "key", "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==\n"),
        }),
    )
    .unwrap();
    deliver(sink, &alerts(&["201"])).unwrap();
    let request = &server.requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some("ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
    );
    assert_eq!(
        bulk_documents(request)[0].0["create"]["_index"],
        "alerts-prod"
    );

    let err = make(
        SinkKind::Elasticsearch,
        serde_json::json!({"url": "http://h/", "username": "u"}),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("username and password_file go together"),
        "{err}"
    );
    let err = make(
        SinkKind::Elasticsearch,
        serde_json::json!({"url": "http://h/", "index": "Alerts"}),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("index: must be lowercase"),
        "{err}"
    );
}
