//! The stdout sink: each alert as one line on the agent's standard output, as text for a person
//! or as JSON lines, in the forms `crate::output` prints today.
//!
//! Text is `crate::output::render`'s line (untrusted parts through the one escaping policy);
//! JSON is [`format::json_line`], the payload compacted, which for an alert the agent enqueued
//! is byte for byte what `output::render` prints (a test holds them together), and for a
//! payload with fields this agent does not know keeps them rather than dropping them.
//!
//! Errors: a payload that is not an alert is [`SinkError::Reject`]. A closed stdout (the reader
//! of a pipe went away) is not an error, as everywhere in DaemonEye: the batch counts as
//! delivered, because nobody will ever read it there and holding it would only fill the
//! outbox. Any other write error is [`SinkError::Retry`]; lines already written may then
//! appear twice (delivery is at least once).

use std::io::{self, Write};

use super::format::{self, Encoding};
use super::{BatchError, Delivery, Sink, SinkError};
use crate::output::{self, AlertFormat};

/// Alerts on stdout (or, for tests, any writer).
#[derive(Debug)]
pub struct StdoutSink<W = io::Stdout> {
    name: String,
    format: AlertFormat,
    out: W,
}

/// The stdout sink's keys: `format = "json" | "text"` (default: the agent's `--format`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StdoutOptions {
    format: Option<StdoutFormat>,
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum StdoutFormat {
    Json,
    Text,
}

impl StdoutSink {
    /// A sink named `name` writing to the process's stdout.
    pub fn new(name: impl Into<String>, format: AlertFormat) -> Self {
        Self::with_writer(name, format, io::stdout())
    }

    /// The sink a `[[sinks]] type = "stdout"` table describes.
    pub fn from_config(
        sink: &daemoneye_lib::config::SinkConfig,
        context: &super::build::Context,
    ) -> Result<Self, super::build::BuildError> {
        let options: StdoutOptions = super::build::options(sink)?;
        let format = match options.format {
            None => context.stdout_format,
            Some(StdoutFormat::Json) => AlertFormat::Json,
            Some(StdoutFormat::Text) => AlertFormat::Text,
        };
        Ok(Self::new(sink.name.clone(), format))
    }
}

impl<W: Write + Send> StdoutSink<W> {
    /// A sink named `name` writing to `out`.
    pub fn with_writer(name: impl Into<String>, format: AlertFormat, out: W) -> Self {
        Self {
            name: name.into(),
            format,
            out,
        }
    }

    /// The writer, for tests to read what was written.
    pub fn writer(&self) -> &W {
        &self.out
    }
}

/// One payload as one line, without the line end.
pub fn render(payload: &[u8], format: AlertFormat) -> Result<String, SinkError> {
    match format {
        AlertFormat::Json => Encoding::Json.encode(payload),
        AlertFormat::Text => Ok(output::render(
            &format::parse_alert(payload)?,
            AlertFormat::Text,
        )),
    }
}

impl<W: Write + Send> Sink for StdoutSink<W> {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Delivery<'_>]) -> Result<(), BatchError> {
        let mut text = String::new();
        let mut rejected = None;
        for (index, delivery) in batch.iter().enumerate() {
            match render(delivery.payload, self.format) {
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                }
                Err(error) => {
                    rejected = Some(BatchError {
                        acknowledged: index,
                        error,
                    });
                    break;
                }
            }
        }
        if !text.is_empty() {
            match self
                .out
                .write_all(text.as_bytes())
                .and_then(|()| self.out.flush())
            {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {}
                Err(err) => {
                    return Err(SinkError::retry(format!("cannot write to stdout: {err}")).into());
                }
            }
        }
        rejected.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use daemoneye_lib::alert::Alert;
    use daemoneye_lib::ids::AlertId;

    use super::*;
    use crate::outbox::format::tests::alert;

    /// A writer that fails every write with `kind`.
    struct Failing(io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(self.0))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn deliver<W: Write + Send>(
        sink: &mut StdoutSink<W>,
        payloads: &[Vec<u8>],
    ) -> Result<(), BatchError> {
        let id = AlertId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let batch: Vec<Delivery<'_>> = payloads
            .iter()
            .map(|payload| Delivery {
                alert_id: &id,
                payload,
            })
            .collect();
        sink.deliver(&batch)
    }

    fn payload(alert: &Alert) -> Vec<u8> {
        serde_json::to_vec(alert).unwrap()
    }

    #[test]
    fn a_bad_payload_is_rejected_after_the_good_ones_before_it() {
        let mut sink = StdoutSink::with_writer("out", AlertFormat::Json, Vec::new());
        let good = payload(&alert());
        let err = deliver(&mut sink, &[good.clone(), b"[]".to_vec(), good.clone()]).unwrap_err();
        assert_eq!(err.acknowledged, 1);
        assert!(matches!(err.error, SinkError::Reject { .. }), "{err:?}");
        let mut want = good;
        want.push(b'\n');
        assert_eq!(sink.writer(), &want);
    }

    #[test]
    fn write_errors_retry_and_a_closed_pipe_counts_as_delivered() {
        let good = payload(&alert());
        let mut sink =
            StdoutSink::with_writer("out", AlertFormat::Text, Failing(io::ErrorKind::Other));
        let err = deliver(&mut sink, std::slice::from_ref(&good)).unwrap_err();
        assert_eq!(err.acknowledged, 0);
        assert!(matches!(err.error, SinkError::Retry { .. }), "{err:?}");
        let mut sink =
            StdoutSink::with_writer("out", AlertFormat::Text, Failing(io::ErrorKind::BrokenPipe));
        assert_eq!(deliver(&mut sink, &[good]), Ok(()));
    }

    #[test]
    fn lines_are_what_output_prints() {
        let hostile = Alert {
            summary: "x\n\u{1b}[2J".into(),
            ..alert()
        };
        for format in [AlertFormat::Json, AlertFormat::Text] {
            let mut sink = StdoutSink::with_writer("out", format, Vec::new());
            assert_eq!(sink.name(), "out");
            assert_eq!(deliver(&mut sink, &[]), Ok(()));
            deliver(&mut sink, &[payload(&alert()), payload(&hostile)]).unwrap();
            let want = format!(
                "{}\n{}\n",
                output::render(&alert(), format),
                output::render(&hostile, format)
            );
            assert_eq!(String::from_utf8(sink.writer().clone()).unwrap(), want);
        }
    }
}
