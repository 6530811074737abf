//! The Elasticsearch sink (`[[sinks]] type = "elasticsearch"`): one bulk request per batch,
//! `POST {url}/_bulk`, each alert a `create` of a document in `index`. The user's
//! documentation is `docs/sinks/elasticsearch.md`.
//!
//! # Request (the Bulk API, NDJSON)
//!
//! Per alert, two lines, each ending in a newline (the last one too, as the API requires):
//!
//! ```text
//! {"create":{"_index":"daemoneye-alerts","_id":"<alert id>-<detected_at in ms>"}}
//! {...the alert's JSON, compacted to one line...}
//! ```
//!
//! `Content-Type: application/x-ndjson`; `Authorization: Basic ..` (`username` and
//! `password_file`) or `ApiKey ..` (`api_key_file`, the key's `encoded` form as Elasticsearch
//! returns it). The query `filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason`
//! keeps the answer to a few bytes per item.
//!
//! # Why `create` and this `_id`
//!
//! `create` with a fixed `_id` makes a resend harmless: the outbox delivers at least once
//! (after a crash, or after a batch that failed part-way), and a document already there
//! answers 409, which counts as delivered. The `_id` is the id of this raise of the alert
//! ([`super::http::event_id`]), not the alert id alone as the issue proposed: an alert is
//! raised again with the same id and a later `detected_at` when its dedup window ends, and
//! with `_id` = alert id that new raise would answer 409 and be counted delivered without
//! ever being indexed.
//!
//! # Answers
//!
//! A whole request: 2xx, then the items as below; 400, 413 (and any other 4xx refusal, 501)
//! with more than one alert: the batch is sent again one alert per request, to find the
//! alert refused alone (Reject) and keep the others; 401, 403 GiveUp; 408, 429, 5xx but 501
//! Retry; 3xx, 404, 405, 410 GiveUp ([`super::http::common_status`]). A 2xx whose body is not a bulk answer with one item per
//! alert is Retry ("invalid response").
//!
//! Per item, in order, up to the first that is not delivered:
//!
//! | item status | class |
//! |---|---|
//! | 200, 201 | delivered |
//! | 409 (already indexed: a resend) | delivered |
//! | 429, 5xx | Retry from this item |
//! | 401, 403, 404 (no privilege on the index, no index and auto-creation off) | GiveUp |
//! | 400 and other 4xx (a mapping refuses this alert) | Reject this item |
//!
//! Acknowledged: the items before the first one not delivered. Items after it that were
//! indexed are sent again with the next batch and then answer 409.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use daemoneye_lib::config::{HumanDuration, SinkConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use ureq::http::Uri;

use super::build::{BuildError, options};
use super::format::{json_line, parse_alert};
use super::http::{
    self, HttpClient, MAX_BODY, Reply, after_prefix, common_status, encode_prefix, join_url,
    read_secret,
};
use super::tls::TlsFiles;
use super::{BatchError, Delivery, Sink, SinkError};

/// The default `index`.
pub const DEFAULT_INDEX: &str = "daemoneye-alerts";

/// The answer's filter: statuses and error summaries only.
const FILTER: &str = "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason";

/// Bytes of answer allowed per item on top of [`MAX_BODY`] (an error reason can quote a field).
const BODY_PER_ITEM: u64 = 4096;

/// The Elasticsearch sink's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ElasticOptions {
    url: String,
    index: Option<String>,
    username: Option<String>,
    password_file: Option<std::path::PathBuf>,
    api_key_file: Option<std::path::PathBuf>,
    timeout: Option<HumanDuration>,
    ca_file: Option<std::path::PathBuf>,
    client_cert: Option<std::path::PathBuf>,
    client_key: Option<std::path::PathBuf>,
}

/// Alerts indexed in Elasticsearch with the bulk API (see the module documentation).
pub struct ElasticsearchSink {
    name: String,
    client: HttpClient,
    url: Uri,
    index: String,
    authorization: Option<String>,
}

/// Why `index` cannot name an Elasticsearch index, if it cannot (the rules of the create
/// index API: lowercase, no `\ / * ? " < > | , #` space or `:`, not starting with `-`, `_`
/// or `+`, not `.` or `..`, at most 255 bytes).
fn index_problem(index: &str) -> Option<&'static str> {
    if index.is_empty() || index.len() > 255 {
        return Some("must be 1 to 255 bytes");
    }
    if index == "." || index == ".." {
        return Some("must not be . or ..");
    }
    if index.starts_with(['-', '_', '+']) {
        return Some("must not start with -, _ or +");
    }
    if index.chars().any(|c| {
        c.is_uppercase()
            || c.is_control()
            || matches!(
                c,
                '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ' ' | ':'
            )
    }) {
        return Some(
            "must be lowercase, without \\ / * ? \" < > | , # : spaces or control characters",
        );
    }
    None
}

impl ElasticsearchSink {
    /// The sink a `[[sinks]] type = "elasticsearch"` table describes; reads the credential
    /// and the TLS material, never connects.
    pub fn from_config(sink: &SinkConfig) -> Result<Self, BuildError> {
        let options: ElasticOptions = options(sink)?;
        let tls = TlsFiles {
            ca_file: options.ca_file,
            client_cert: options.client_cert,
            client_key: options.client_key,
        };
        let (client, base) = HttpClient::from_keys(sink, &options.url, options.timeout, &tls)?;
        let url = join_url(&base, "_bulk", Some(FILTER))
            .map_err(|reason| BuildError::new(sink, reason))?;
        let index = options.index.unwrap_or_else(|| DEFAULT_INDEX.to_owned());
        if let Some(why) = index_problem(&index) {
            return Err(BuildError::new(sink, format!("index: {why}")));
        }
        let authorization = match (
            &options.username,
            &options.password_file,
            &options.api_key_file,
        ) {
            (None, None, None) => None,
            (Some(user), Some(password), None) => {
                if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                    return Err(BuildError::new(
                        sink,
                        "username: must be non-empty, without \":\" or control characters",
                    ));
                }
                let password = read_secret(sink, "password_file", password)?;
                let mut credential = format!("{user}:").into_bytes();
                credential.extend_from_slice(password.bytes());
                Some(format!("Basic {}", STANDARD.encode(credential)))
            }
            (None, None, Some(path)) => {
                let key = read_secret(sink, "api_key_file", path)?;
                let key = key.header_text().ok_or_else(|| {
                    BuildError::new(
                        sink,
                        "api_key_file: the key must be one word of visible ASCII (the encoded form)",
                    )
                })?;
                Some(format!("ApiKey {key}"))
            }
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(BuildError::new(
                    sink,
                    "username and password_file go together",
                ));
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(BuildError::new(
                    sink,
                    "give username and password_file, or api_key_file, not both",
                ));
            }
        };
        Ok(Self {
            name: sink.name.clone(),
            client,
            url,
            index,
            authorization,
        })
    }

    /// The two NDJSON lines of one alert, each with its newline.
    fn document(&self, delivery: &Delivery<'_>) -> Result<String, SinkError> {
        let alert = parse_alert(delivery.payload)?;
        let line = json_line(delivery.payload)?;
        let action = serde_json::json!({
            "create": {"_index": self.index, "_id": http::event_id(&alert)}
        });
        Ok(format!("{action}\n{line}\n"))
    }

    /// Sends the documents in one bulk request; after a whole-request 400 or 413, alone one
    /// by one.
    fn send(&self, documents: &[String]) -> Result<(), BatchError> {
        match self.bulk(documents) {
            Err(Whole::Malformed(error)) if documents.len() == 1 => Err(error.into()),
            Err(Whole::Malformed(_)) => {
                for (index, document) in documents.iter().enumerate() {
                    let alone = match self.bulk(std::slice::from_ref(document)) {
                        Ok(result) => result,
                        Err(Whole::Malformed(error) | Whole::Failed(error)) => Err(error.into()),
                    };
                    alone.map_err(|err| BatchError {
                        acknowledged: index,
                        error: err.error,
                    })?;
                }
                Ok(())
            }
            Err(Whole::Failed(error)) => Err(error.into()),
            Ok(items) => items,
        }
    }

    /// One bulk request: the whole request's failure, or the per-item result.
    fn bulk(&self, documents: &[String]) -> Result<Result<(), BatchError>, Whole> {
        let body = documents.concat();
        let mut headers = vec![("content-type", "application/x-ndjson")];
        if let Some(authorization) = &self.authorization {
            headers.push(("authorization", authorization));
        }
        let limit = MAX_BODY + BODY_PER_ITEM * documents.len() as u64;
        let reply = self
            .client
            .post(&self.url, &headers, body.as_bytes(), limit)
            .map_err(Whole::Failed)?;
        match reply.status {
            200..=299 => Ok(items(&reply, documents.len())),
            400 => Err(Whole::Malformed(SinkError::reject(format!(
                "bulk request refused: {}",
                reply.describe()
            )))),
            413 => Err(Whole::Malformed(SinkError::reject(format!(
                "alert larger than Elasticsearch accepts (http.max_content_length): {}",
                reply.describe()
            )))),
            401 | 403 => Err(Whole::Failed(SinkError::give_up(format!(
                "credential refused: {}",
                reply.describe()
            )))),
            // Any other refusal of the request (another 4xx, 501) is treated as a 400 is.
            _ => match common_status(&reply) {
                Some(error @ SinkError::Reject { .. }) => Err(Whole::Malformed(error)),
                Some(error) => Err(Whole::Failed(error)),
                None => Err(Whole::Failed(SinkError::retry(format!(
                    "unexpected answer: {}",
                    reply.describe()
                )))),
            },
        }
    }
}

/// A whole bulk request that failed.
enum Whole {
    /// The request's data was refused (400, 413): one alert of it, or its size.
    Malformed(SinkError),
    /// Any other failure.
    Failed(SinkError),
}

/// The bulk API's answer, as far as this sink reads it.
#[derive(Debug, Deserialize)]
struct BulkAnswer {
    items: Vec<BTreeMap<String, BulkItem>>,
}

#[derive(Debug, Deserialize)]
struct BulkItem {
    status: u16,
    error: Option<ItemError>,
}

#[derive(Debug, Deserialize)]
struct ItemError {
    #[serde(rename = "type")]
    kind: Option<String>,
    reason: Option<String>,
}

/// The per-item result of a 2xx bulk answer for `count` documents.
fn items(reply: &Reply, count: usize) -> Result<(), BatchError> {
    let invalid = |why: String| -> Result<(), BatchError> {
        Err(SinkError::retry(format!("invalid response from the bulk API: {why}")).into())
    };
    if reply.truncated {
        return invalid(format!(
            "the answer is longer than {} bytes",
            reply.body.len()
        ));
    }
    let answer: BulkAnswer = match serde_json::from_slice(&reply.body) {
        Ok(answer) => answer,
        Err(err) => return invalid(format!("{err}: {}", reply.describe())),
    };
    if answer.items.len() != count {
        return invalid(format!(
            "{} items for {count} documents",
            answer.items.len()
        ));
    }
    for (index, item) in answer.items.iter().enumerate() {
        let Some(item) = item.get("create") else {
            return invalid(format!("item {index} is not a create"));
        };
        let error = item.error.as_ref().map_or_else(String::new, |error| {
            // The receiver's words: one line, escaped, and cut like every answer quoted.
            let cut = |text: &str| -> String {
                let mut short: String = text.chars().take(super::http::REASON_BODY_CHARS).collect();
                if text.chars().nth(super::http::REASON_BODY_CHARS).is_some() {
                    short.push('…');
                }
                daemoneye_lib::text::escape(&short).into_owned()
            };
            format!(
                ": {} {}",
                cut(error.kind.as_deref().unwrap_or("error")),
                cut(error.reason.as_deref().unwrap_or_default())
            )
        });
        let status = item.status;
        let error = match status {
            200 | 201 | 409 => continue,
            429 => SinkError::retry(format!("Elasticsearch busy (item status 429){error}")),
            500..=599 => SinkError::retry(format!(
                "Elasticsearch failed (item status {status}){error}"
            )),
            401 | 403 => SinkError::give_up(format!(
                "no privilege to index into the index (item status {status}){error}"
            )),
            404 => SinkError::give_up(format!(
                "no such index and it is not created automatically (item status 404){error}"
            )),
            _ => SinkError::reject(format!(
                "Elasticsearch refused the alert (item status {status}){error}"
            )),
        };
        return Err(BatchError {
            acknowledged: index,
            error,
        });
    }
    Ok(())
}

impl Sink for ElasticsearchSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Delivery<'_>]) -> Result<(), BatchError> {
        let (documents, stopped) = encode_prefix(batch, |delivery| self.document(delivery));
        let sent = documents.len();
        let result = if documents.is_empty() {
            Ok(())
        } else {
            self.send(&documents)
        };
        after_prefix(result, sent, stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_follow_elasticsearchs_rules() {
        for (index, ok) in [
            ("daemoneye-alerts", true),
            ("alerts.2026", true),
            ("Alerts", false),
            ("_alerts", false),
            ("-alerts", false),
            ("a/b", false),
            ("a b", false),
            ("a,b", false),
            (".", false),
            ("", false),
        ] {
            assert_eq!(index_problem(index).is_none(), ok, "{index:?}");
        }
        assert!(index_problem(&"a".repeat(256)).is_some());
    }

    fn reply(body: &str) -> Reply {
        Reply {
            status: 200,
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn item_results_acknowledge_up_to_the_first_failure() {
        let ok = r#"{"create":{"status":201}}"#;
        let conflict = r#"{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}}"#;
        let busy = r#"{"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}}"#;
        let bad = r#"{"create":{"status":400,"error":{"type":"document_parsing_exception","reason":"failed to parse"}}}"#;
        let body = |items: &[&str]| format!(r#"{{"errors":true,"items":[{}]}}"#, items.join(","));
        assert_eq!(items(&reply(&body(&[ok, conflict, ok])), 3), Ok(()));
        let err = items(&reply(&body(&[ok, conflict, busy, ok])), 4).unwrap_err();
        assert_eq!(err.acknowledged, 2);
        assert!(matches!(err.error, SinkError::Retry { .. }), "{err}");
        let err = items(&reply(&body(&[ok, bad])), 2).unwrap_err();
        assert_eq!(err.acknowledged, 1);
        assert!(matches!(err.error, SinkError::Reject { .. }), "{err}");
        assert!(
            err.error.reason().contains("document_parsing_exception"),
            "{err}"
        );
        let err = items(&reply(&body(&[ok])), 2).unwrap_err();
        assert!(err.error.reason().contains("invalid response"), "{err}");
        let err = items(&reply("<html>"), 1).unwrap_err();
        assert!(err.error.reason().contains("invalid response"), "{err}");
    }
}
