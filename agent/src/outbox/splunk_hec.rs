//! The Splunk HTTP Event Collector sink (`[[sinks]] type = "splunk_hec"`): one POST per batch
//! to `{url}/services/collector/event`, with `Authorization: Splunk <token>`. The user's
//! documentation is `docs/sinks/splunk_hec.md`.
//!
//! # Request
//!
//! The body is the batch's events concatenated, one JSON object per alert and a newline
//! after each (HEC's batch form, "Format events for HTTP Event Collector"):
//!
//! ```text
//! {"time":1764750000.123,"host":"web-1","source":"daemoneye","sourcetype":"daemoneye:alert","index":"security","event":{...the alert...}}
//! ```
//!
//! `time` is the alert's `detected_at` in seconds with milliseconds; `host` is the alert's
//! host; `source` and `index` are sent only when configured (HEC then applies the token's
//! defaults); `event` is the alert's JSON.
//!
//! # Answers (HEC's status codes, "Troubleshoot HTTP Event Collector")
//!
//! HEC answers `{"text":"Success","code":0}` with 200, or an error object
//! `{"text":..,"code":N}` (with `"invalid-event-number"` for a malformed event):
//!
//! | HTTP | HEC code | meaning | class |
//! |---|---|---|---|
//! | 2xx | 0 | indexed | delivered |
//! | 400 | 7 incorrect index, 10/11 data channel (indexer acknowledgement on), 14, 16 | the configuration | GiveUp |
//! | 400 | 5, 6, 12, 13, 15 and any other 400 | malformed data | the batch is sent again one event per request; the event refused alone is Reject |
//! | 413 | | the request is too large | as 400: one event per request; one refused alone is Reject |
//! | 401, 403 | 1, 2, 3, 4 | token disabled, missing, refused | GiveUp |
//! | 408, 429, 500, 503 | 8, 9, 18-20 | busy, failing | Retry |
//! | other 4xx, 501 | | a refusal of the data | as 400 |
//! | 3xx, 404, 405, 410 | | the URL | GiveUp ([`super::http::common_status`]) |
//!
//! Why one event per request after a 400: HEC refuses a whole batch for one malformed event,
//! and whether it indexed the events before that one is not something its documentation
//! promises. Rejecting the batch would dead-letter good alerts; trusting
//! `invalid-event-number` could lose the ones before it. Sending each event of that batch
//! alone, in order, finds the malformed one: the events before it are acknowledged as each
//! is accepted (some may then be indexed twice, the outbox delivers at least once), it is
//! rejected, and the rest go with the next batch.

use daemoneye_lib::config::{HumanDuration, SinkConfig};
use daemoneye_lib::text;
use serde::Deserialize;
use ureq::http::Uri;

use super::build::{BuildError, options};
use super::format::{json_line, parse_alert};
use super::http::{
    HttpClient, MAX_BODY, Reply, after_prefix, common_status, encode_prefix, join_url, read_secret,
};
use super::tls::TlsFiles;
use super::{BatchError, Delivery, Sink, SinkError};

/// The default `sourcetype`.
pub const DEFAULT_SOURCETYPE: &str = "daemoneye:alert";

/// The path of HEC's JSON event endpoint.
pub const EVENT_PATH: &str = "services/collector/event";

/// The Splunk HEC sink's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SplunkOptions {
    url: String,
    token_file: std::path::PathBuf,
    index: Option<String>,
    sourcetype: Option<String>,
    source: Option<String>,
    timeout: Option<HumanDuration>,
    ca_file: Option<std::path::PathBuf>,
    client_cert: Option<std::path::PathBuf>,
    client_key: Option<std::path::PathBuf>,
}

/// Alerts sent to Splunk's HTTP Event Collector (see the module documentation).
pub struct SplunkHecSink {
    name: String,
    client: HttpClient,
    url: Uri,
    authorization: String,
    /// `"source":..,"sourcetype":..,"index":..,` ready to splice into each event.
    fields: String,
}

impl SplunkHecSink {
    /// The sink a `[[sinks]] type = "splunk_hec"` table describes; reads the token and the
    /// TLS material, never connects.
    pub fn from_config(sink: &SinkConfig) -> Result<Self, BuildError> {
        let options: SplunkOptions = options(sink)?;
        let tls = TlsFiles {
            ca_file: options.ca_file,
            client_cert: options.client_cert,
            client_key: options.client_key,
        };
        let (client, base) = HttpClient::from_keys(sink, &options.url, options.timeout, &tls)?;
        let url = if base.path().trim_end_matches('/').ends_with(EVENT_PATH) {
            base
        } else {
            join_url(&base, EVENT_PATH, None).map_err(|reason| BuildError::new(sink, reason))?
        };
        let token = read_secret(sink, "token_file", &options.token_file)?;
        let token = token.header_text().ok_or_else(|| {
            BuildError::new(
                sink,
                "token_file: the token must be one word of visible ASCII",
            )
        })?;
        let mut fields = String::new();
        let field = |key: &str, value: &str, fields: &mut String| -> Result<(), BuildError> {
            if value.is_empty() || value.chars().any(char::is_control) {
                return Err(BuildError::new(
                    sink,
                    format!("{key}: must be non-empty, without control characters"),
                ));
            }
            fields.push_str(&format!("{}:{},", json_string(key), json_string(value)));
            Ok(())
        };
        if let Some(source) = &options.source {
            field("source", source, &mut fields)?;
        }
        field(
            "sourcetype",
            options.sourcetype.as_deref().unwrap_or(DEFAULT_SOURCETYPE),
            &mut fields,
        )?;
        if let Some(index) = &options.index {
            field("index", index, &mut fields)?;
        }
        Ok(Self {
            name: sink.name.clone(),
            client,
            url,
            authorization: format!("Splunk {token}"),
            fields,
        })
    }

    /// One HEC event object (without the newline) for a payload.
    fn event(&self, delivery: &Delivery<'_>) -> Result<String, SinkError> {
        let alert = parse_alert(delivery.payload)?;
        let line = json_line(delivery.payload)?;
        let ms = text::parse_time_ms(&alert.detected_at).unwrap_or_default();
        let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
        Ok(format!(
            r#"{{"time":{secs}.{millis:03},"host":{},{}"event":{line}}}"#,
            json_string(&alert.host),
            self.fields
        ))
    }

    fn post(&self, events: &[String]) -> Result<Reply, SinkError> {
        let mut body = String::with_capacity(events.iter().map(|e| e.len() + 1).sum());
        for event in events {
            body.push_str(event);
            body.push('\n');
        }
        self.client.post(
            &self.url,
            &[
                ("content-type", "application/json"),
                ("authorization", &self.authorization),
            ],
            body.as_bytes(),
            MAX_BODY,
        )
    }

    /// Sends the encoded events in one request, and alone one by one after a 400 or 413.
    fn send(&self, events: &[String]) -> Result<(), BatchError> {
        let reply = self.post(events)?;
        match classify(&reply) {
            Answer::Delivered => Ok(()),
            Answer::Failed(error) => Err(error.into()),
            Answer::Malformed(error) if events.len() == 1 => Err(error.into()),
            Answer::Malformed(_) => {
                for (index, event) in events.iter().enumerate() {
                    let alone = |error| BatchError {
                        acknowledged: index,
                        error,
                    };
                    let reply = self.post(std::slice::from_ref(event)).map_err(alone)?;
                    match classify(&reply) {
                        Answer::Delivered => {}
                        Answer::Failed(error) | Answer::Malformed(error) => {
                            return Err(alone(error));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// What an answer means for the request's events.
enum Answer {
    Delivered,
    /// A refusal of the request's data: one event of it is malformed, or it is too large.
    Malformed(SinkError),
    /// Any other failure, about the whole request.
    Failed(SinkError),
}

/// HEC's error object.
#[derive(Debug, Deserialize)]
struct HecAnswer {
    code: Option<i64>,
}

fn classify(reply: &Reply) -> Answer {
    let code = serde_json::from_slice::<HecAnswer>(&reply.body)
        .ok()
        .and_then(|answer| answer.code);
    let what = reply.describe();
    match (reply.status, code) {
        // Only HEC's own success answer counts: a proxy or a wrong path answering 200 with
        // something else has not indexed anything.
        (200..=299, Some(0)) => Answer::Delivered,
        (200..=299, _) => Answer::Failed(SinkError::retry(format!(
            "invalid response: a success status without HEC's {{\"code\":0}}: {what}"
        ))),
        (400, Some(7)) => Answer::Failed(SinkError::give_up(format!(
            "the index is not allowed for this token or does not exist: {what}"
        ))),
        (400, Some(10 | 11 | 14)) => Answer::Failed(SinkError::give_up(format!(
            "the token requires indexer acknowledgement, which this sink does not use \
             (turn it off for the token): {what}"
        ))),
        (400, Some(16)) => Answer::Failed(SinkError::give_up(format!(
            "refused as a query-string token: {what}"
        ))),
        (400, _) => Answer::Malformed(SinkError::reject(format!("event refused: {what}"))),
        (413, _) => Answer::Malformed(SinkError::reject(format!(
            "event larger than the collector accepts: {what}"
        ))),
        (401 | 403, _) => Answer::Failed(SinkError::give_up(format!("token refused: {what}"))),
        // Any other refusal of the request (another 4xx, 501) is treated as a 400 is.
        _ => match common_status(reply) {
            None => Answer::Delivered,
            Some(error @ SinkError::Reject { .. }) => Answer::Malformed(error),
            Some(error) => Answer::Failed(error),
        },
    }
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

impl Sink for SplunkHecSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Delivery<'_>]) -> Result<(), BatchError> {
        let (events, stopped) = encode_prefix(batch, |delivery| self.event(delivery));
        let sent = events.len();
        let result = if events.is_empty() {
            Ok(())
        } else {
            self.send(&events)
        };
        after_prefix(result, sent, stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(status: u16, body: &str) -> &'static str {
        let reply = Reply {
            status,
            body: body.as_bytes().to_vec(),
            truncated: false,
        };
        match classify(&reply) {
            Answer::Delivered => "delivered",
            Answer::Malformed(_) => "malformed",
            Answer::Failed(SinkError::Retry { .. }) => "retry",
            Answer::Failed(SinkError::GiveUp { .. }) => "give up",
            Answer::Failed(_) => "other",
        }
    }

    #[test]
    fn hec_answers_fall_into_the_documented_classes() {
        for (status, body, expected) in [
            (200, r#"{"text":"Success","code":0}"#, "delivered"),
            (200, "<html>proxy login</html>", "retry"),
            (200, r#"{"text":"Server is busy","code":9}"#, "retry"),
            (400, r#"{"text":"No data","code":5}"#, "malformed"),
            (
                400,
                r#"{"text":"Invalid data format","code":6,"invalid-event-number":2}"#,
                "malformed",
            ),
            (
                400,
                r#"{"text":"Incorrect index","code":7,"invalid-event-number":1}"#,
                "give up",
            ),
            (
                400,
                r#"{"text":"Data channel is missing","code":10}"#,
                "give up",
            ),
            (
                400,
                r#"{"text":"Event field is required","code":12}"#,
                "malformed",
            ),
            (400, "not json", "malformed"),
            (401, r#"{"text":"Token is required","code":2}"#, "give up"),
            (403, r#"{"text":"Token disabled","code":1}"#, "give up"),
            (403, r#"{"text":"Invalid token","code":4}"#, "give up"),
            (413, "", "malformed"),
            (422, "", "malformed"),
            (404, "", "give up"),
            (429, "", "retry"),
            (500, r#"{"text":"Internal server error","code":8}"#, "retry"),
            (503, r#"{"text":"Server is busy","code":9}"#, "retry"),
            (
                503,
                r#"{"text":"HEC is unhealthy, queues are full","code":18}"#,
                "retry",
            ),
        ] {
            assert_eq!(class(status, body), expected, "HTTP {status} {body}");
        }
    }
}
