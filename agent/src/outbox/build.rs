//! From `[[sinks]]` tables to sinks: each kind's module reads its own keys from
//! [`SinkConfig::options`] with [`options`] (unknown keys refused), and [`build`] dispatches
//! on the kind. Building reads local files (TLS material, secrets) but never connects: a
//! receiver that is down is the delivery loop's business, not a configuration error.

use daemoneye_lib::config::{SinkConfig, SinkKind};
use serde::de::DeserializeOwned;

use super::Sink;
use crate::output::AlertFormat;

/// A sink that could not be built: one line naming `sinks.NAME` and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sinks.{name}: {reason}")]
pub struct BuildError {
    /// The sink's name.
    pub name: String,
    /// Why.
    pub reason: String,
}

impl BuildError {
    /// An error about `sink`.
    pub fn new(sink: &SinkConfig, reason: impl Into<String>) -> Self {
        Self {
            name: sink.name.clone(),
            reason: reason.into(),
        }
    }
}

/// The sink's keys (every key but `name` and `type`) as `T`, whose `serde` derive should say
/// `deny_unknown_fields` so that a misspelt key is an error rather than a default.
pub fn options<T: DeserializeOwned>(sink: &SinkConfig) -> Result<T, BuildError> {
    let table = serde_json::Value::Object(
        sink.options
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    );
    serde_json::from_value(table).map_err(|err| BuildError::new(sink, err.to_string()))
}

/// What every sink may need from the agent besides its table.
#[derive(Debug, Clone)]
pub struct Context {
    /// How the stdout sink prints (`--format`).
    pub stdout_format: AlertFormat,
}

/// Builds the sink `sink` describes.
pub fn build(sink: &SinkConfig, context: &Context) -> Result<Box<dyn Sink>, BuildError> {
    match sink.kind {
        SinkKind::Stdout => Ok(Box::new(super::stdout::StdoutSink::from_config(
            sink, context,
        )?)),
        SinkKind::File => Ok(Box::new(super::file::FileSink::from_config(sink)?)),
        SinkKind::Webhook => Ok(Box::new(super::webhook::WebhookSink::from_config(sink)?)),
        SinkKind::SplunkHec => Ok(Box::new(super::splunk_hec::SplunkHecSink::from_config(
            sink,
        )?)),
        SinkKind::Elasticsearch => Ok(Box::new(
            super::elasticsearch::ElasticsearchSink::from_config(sink)?,
        )),
        SinkKind::Syslog => Ok(Box::new(super::syslog::SyslogSink::from_config(sink)?)),
        SinkKind::Email => Ok(Box::new(super::email::EmailSink::from_config(sink)?)),
        SinkKind::Postgres => Ok(Box::new(super::postgres::PostgresSink::from_config(sink)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn table(kind: SinkKind, options: serde_json::Value) -> SinkConfig {
        SinkConfig {
            name: "s1".into(),
            kind,
            options: serde_json::from_value::<BTreeMap<String, serde_json::Value>>(options)
                .unwrap(),
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_the_sink_named() {
        let context = Context {
            stdout_format: AlertFormat::Json,
        };
        let err = build(
            &table(
                SinkKind::File,
                serde_json::json!({"path": "/tmp/x", "colour": 1}),
            ),
            &context,
        )
        .err()
        .unwrap();
        assert!(err.to_string().starts_with("sinks.s1: "), "{err}");
        assert!(err.to_string().contains("colour"), "{err}");
        assert!(build(&table(SinkKind::Stdout, serde_json::json!({})), &context).is_ok());
    }
}
