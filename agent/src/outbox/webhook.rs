//! The webhook sink (`[[sinks]] type = "webhook"`): one HTTP POST per alert of the alert's
//! JSON, as the outbox holds it (`Content-Type: application/json`), optionally with a bearer
//! token and a Standard Webhooks signature (<https://www.standardwebhooks.com/>). The user's
//! documentation is `docs/sinks/webhook.md`.
//!
//! # Signature (Standard Webhooks, "Signature scheme", symmetric `v1`)
//!
//! Each request carries `webhook-id` and `webhook-timestamp`, and with `hmac_secret_file`
//! set `webhook-signature` too:
//!
//! - `webhook-id`: the alert id, as INTERFACE.md says: the same on every resend, so a
//!   receiver deduplicates the at-least-once deliveries by it. An alert raised again after its
//!   dedup window keeps its id (same rule, host and dedup key): a receiver deduplicating by
//!   `webhook-id` takes that raise as a repeat of the alert it has; the body's `detected_at`
//!   and `suppressed` tell the raises apart. (Elasticsearch, which stores documents, keys each
//!   raise apart instead: see that sink.)
//! - `webhook-timestamp`: the send time, integer seconds since the Unix epoch (taken for each
//!   attempt, so a retry is signed afresh and passes a receiver's tolerance window).
//! - `webhook-signature`: `v1,` and the standard base64 of HMAC-SHA256(key,
//!   `{webhook-id}.{webhook-timestamp}.{body}`).
//!
//! The secret file holds either `whsec_` followed by the standard base64 of the key (the
//! spec's form, as receivers' libraries generate it), or the key's raw bytes. White space
//! around it is dropped. The key must be at least 16 bytes (the spec recommends 24 to 64).
//!
//! # Classification
//!
//! Transport failures are retried ([`super::http::transport_error`]). Statuses follow
//! [`super::http::common_status`]: 2xx delivered; 408, 429 and 5xx but 501 retried; 501 and
//! other 4xx rejected (dead-lettered), except 401 and 403 (and 404, 405, 410, and 3xx), which
//! give up: the issue asked to reject every 4xx but 408 and 429, but a refused credential or a
//! wrong URL refuses every alert alike, and rejecting would dead-letter them all (the dead
//! letters are bounded, so they would end dropped); giving up keeps them pending while the
//! operator fixes the configuration, and says why. A batch is acknowledged up to its first
//! failure.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use daemoneye_lib::config::{HumanDuration, SinkConfig};
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use ureq::http::Uri;

use super::build::{BuildError, options};
use super::format::parse_alert;
use super::http::{self, HttpClient, MAX_BODY, Secret, common_status, read_secret};
use super::tls::TlsFiles;
use super::{BatchError, Delivery, Sink, SinkError};

/// The least key length of a signature secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The webhook sink's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookOptions {
    url: String,
    bearer_token_file: Option<std::path::PathBuf>,
    hmac_secret_file: Option<std::path::PathBuf>,
    timeout: Option<HumanDuration>,
    ca_file: Option<std::path::PathBuf>,
    client_cert: Option<std::path::PathBuf>,
    client_key: Option<std::path::PathBuf>,
}

/// Alerts POSTed to a URL, one request each (see the module documentation).
pub struct WebhookSink {
    name: String,
    client: HttpClient,
    url: Uri,
    bearer: Option<String>,
    signing_key: Option<Secret>,
}

impl WebhookSink {
    /// The sink a `[[sinks]] type = "webhook"` table describes; reads the secret files and
    /// the TLS material, never connects.
    pub fn from_config(sink: &SinkConfig) -> Result<Self, BuildError> {
        let options: WebhookOptions = options(sink)?;
        let tls = TlsFiles {
            ca_file: options.ca_file,
            client_cert: options.client_cert,
            client_key: options.client_key,
        };
        let (client, url) = HttpClient::from_keys(sink, &options.url, options.timeout, &tls)?;
        let bearer = match &options.bearer_token_file {
            None => None,
            Some(path) => {
                let secret = read_secret(sink, "bearer_token_file", path)?;
                let token = secret.header_text().ok_or_else(|| {
                    BuildError::new(
                        sink,
                        "bearer_token_file: the token must be one word of visible ASCII",
                    )
                })?;
                Some(format!("Bearer {token}"))
            }
        };
        let signing_key = match &options.hmac_secret_file {
            None => None,
            Some(path) => Some(
                signing_key(&read_secret(sink, "hmac_secret_file", path)?).map_err(|reason| {
                    BuildError::new(sink, format!("hmac_secret_file: {reason}"))
                })?,
            ),
        };
        Ok(Self {
            name: sink.name.clone(),
            client,
            url,
            bearer,
            signing_key,
        })
    }

    fn send(&self, delivery: &Delivery<'_>) -> Result<(), SinkError> {
        let alert = parse_alert(delivery.payload)?;
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        if let Some(bearer) = &self.bearer {
            headers.push(("authorization", bearer));
        }
        let id = alert.id.to_string();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or_default()
            .to_string();
        // The id and the timestamp go with every request (a receiver can deduplicate by the
        // id without verifying signatures); the signature when a key is configured.
        headers.push(("webhook-id", &id));
        headers.push(("webhook-timestamp", &timestamp));
        let signature;
        if let Some(key) = &self.signing_key {
            signature = sign(key.bytes(), &id, &timestamp, delivery.payload);
            headers.push(("webhook-signature", &signature));
        }
        let reply = self
            .client
            .post(&self.url, &headers, delivery.payload, MAX_BODY)?;
        match common_status(&reply) {
            None => Ok(()),
            Some(err) => Err(err),
        }
    }
}

/// The HMAC key a secret file's content gives: `whsec_` + base64, or raw bytes.
fn signing_key(secret: &Secret) -> Result<Secret, String> {
    let bytes = secret.bytes();
    let key = match bytes.strip_prefix(b"whsec_") {
        Some(encoded) => STANDARD
            .decode(encoded)
            .map_err(|err| format!("whsec_ secret is not base64: {err}"))?,
        None => bytes.to_vec(),
    };
    if key.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the key is {} bytes, at least {MIN_SECRET_BYTES} are needed",
            key.len()
        ));
    }
    Ok(Secret::from_bytes(key))
}

/// `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Delivery<'_>]) -> Result<(), BatchError> {
        http::deliver_each(batch, |delivery| self.send(delivery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The known-answer values of the Standard Webhooks reference libraries' tests (secret,
        // message id, timestamp, body); the expected signature was checked independently
        // with Python's hmac module.
        let key = signing_key(&Secret::from_bytes(
            b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec(),
        ))
        .unwrap();
        let signature = sign(
            key.bytes(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_whsec_base64_or_raw_and_long_enough() {
        assert!(signing_key(&Secret::from_bytes(b"whsec_!!!notbase64".to_vec())).is_err());
        let short = signing_key(&Secret::from_bytes(b"short".to_vec())).unwrap_err();
        assert!(short.contains("at least 16"), "{short}");
        let raw = signing_key(&Secret::from_bytes(b"0123456789abcdef0123".to_vec())).unwrap();
        assert_eq!(raw.bytes(), b"0123456789abcdef0123");
    }
}
