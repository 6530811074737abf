//! Tests of the sink encodings: refusals first, then exact lines, then properties over any
//! string in any field (one line, CEF escapes that read back, RFC 5424 values with no bare
//! `"`, `\` or `]`).

use daemoneye_lib::ids::AlertId;
use proptest::prelude::*;

use super::*;

pub(crate) fn alert() -> Alert {
    Alert {
        id: AlertId::parse("0123456789abcdef0123456789abcdef").unwrap(),
        rule_id: "DE-LNX-0001".into(),
        rule_name: "Deleted binary".into(),
        severity: Severity::High,
        mitre: vec!["T1070.004".into(), "T1036".into()],
        host: "web-1".into(),
        site: Some("plant-7".into()),
        scan_id: 3,
        detected_at: "2026-11-21T10:00:00.000Z".into(),
        dedup_key: "[1]".into(),
        suppressed: 2,
        rows: vec![serde_json::Map::from_iter([("pid".to_owned(), 1.into())])],
        summary: "Deleted binary: pid=1".into(),
    }
}

fn payload(alert: &Alert) -> Vec<u8> {
    serde_json::to_vec(alert).unwrap()
}

fn rejected(result: Result<impl std::fmt::Debug, SinkError>, want: &str) {
    match result {
        Err(SinkError::Reject { reason }) => assert!(reason.contains(want), "{reason}"),
        other => panic!("want a rejection containing {want:?}, got {other:?}"),
    }
}

#[test]
fn payloads_that_are_not_the_alert_object_are_rejected() {
    let check = |payload: &[u8], want: &str| {
        rejected(parse_alert(payload), want);
        rejected(json_line(payload), want);
        rejected(Encoding::Cef.encode(payload), want);
    };
    check(b"", "not a JSON object");
    check(b"not json", "not a JSON object");
    check(b"[1, 2]", "not a JSON object");
    check(b"{}", "missing field");
    check(b"{\"id\": 1}", "payload is not an alert");
    check(b"\xff\xfe{", "not a JSON object");
    // The alert as an array is what serde would take for a struct: refused all the same.
    let as_array = serde_json::to_vec(&serde_json::Value::Array(
        serde_json::to_value(alert())
            .unwrap()
            .as_object()
            .unwrap()
            .values()
            .cloned()
            .collect(),
    ))
    .unwrap();
    check(&as_array, "not a JSON object");
    // An unreadable time cannot become CEF's rt or syslog's TIMESTAMP.
    let bad_time = Alert {
        detected_at: "yesterday".into(),
        ..alert()
    };
    check(&payload(&bad_time), "invalid RFC 3339 time");
    // Trailing garbage after the object.
    let mut trailing = payload(&alert());
    trailing.extend_from_slice(b" {}");
    check(&trailing, "payload is not an alert");
}

#[test]
fn a_json_line_is_the_payload_compacted() {
    let compact = payload(&alert());
    assert_eq!(json_line(&compact).unwrap().as_bytes(), compact.as_slice());
    let pretty = serde_json::to_vec_pretty(&alert()).unwrap();
    assert!(pretty.contains(&b'\n'));
    assert_eq!(json_line(&pretty).unwrap().as_bytes(), compact.as_slice());
    // Whitespace inside strings, escaped quotes and backslashes stay exactly as they were.
    let tricky = Alert {
        summary: "a \"b\"  \\\" c\n\td".into(),
        ..alert()
    };
    let line = json_line(&serde_json::to_vec_pretty(&tricky).unwrap()).unwrap();
    assert_eq!(line.as_bytes(), payload(&tricky).as_slice());
    assert!(!line.contains('\n'));
    // It is what the stdout output prints for the same alert.
    assert_eq!(
        line,
        crate::output::render(&tricky, crate::output::AlertFormat::Json)
    );
}

#[test]
fn cef_lines_are_exact() {
    let line = Encoding::Cef.encode(&payload(&alert())).unwrap();
    assert_eq!(
        line,
        format!(
            "CEF:0|DaemonEye|daemoneye-agent|{VERSION}|DE-LNX-0001|Deleted binary|8|\
             rt=1795255200000 dvchost=web-1 cnt=3 cs1Label=rule_id cs1=DE-LNX-0001 \
             cs2Label=alert_id cs2=0123456789abcdef0123456789abcdef cs3Label=site \
             cs3=plant-7 cs4Label=mitre cs4=T1070.004,T1036 cs5Label=dedup_key cs5=[1] \
             cn1Label=scan_id cn1=3 msg=Deleted binary: pid\\=1"
        )
    );
    let hostile = Alert {
        rule_id: "a|b\\c".into(),
        rule_name: "x=y|z\nw".into(),
        site: None,
        summary: "p|q=r\\s\r\nt".into(),
        ..alert()
    };
    let line = cef(&hostile);
    assert!(
        line.contains("|a\\|b\\\\c|x=y\\|z\\nw|8|rt="),
        "header: {line}"
    );
    assert!(!line.contains("cs3"), "{line}");
    assert!(line.ends_with(" msg=p|q\\=r\\\\s\\r\\nt"), "{line}");
}

#[test]
fn severities_map_to_their_bands() {
    let cef_bands: Vec<u8> = Severity::ALL.into_iter().map(cef_severity).collect();
    assert_eq!(cef_bands, [1, 3, 5, 8, 10]);
    let syslog_levels: Vec<u8> = Severity::ALL.into_iter().map(syslog_severity).collect();
    assert_eq!(syslog_levels, [6, 5, 4, 3, 2]);
}

#[test]
fn facilities_outside_0_to_23_are_refused() {
    assert_eq!(Facility::new(24), None);
    assert_eq!(Facility::new(255), None);
    assert_eq!(Facility::new(23).map(Facility::code), Some(23));
    assert_eq!(Facility::default().code(), 16);
}

#[test]
fn syslog_messages_are_exact() {
    let line = syslog(&alert(), Facility::LOCAL0, Some(4242));
    assert_eq!(
        line,
        "<131>1 2026-11-21T10:00:00.000Z web-1 daemoneye-agent 4242 alert \
         [daemoneye@32473 id=\"0123456789abcdef0123456789abcdef\" rule_id=\"DE-LNX-0001\" \
         rule_name=\"Deleted binary\" severity=\"high\" host=\"web-1\" site=\"plant-7\" \
         scan_id=\"3\" detected_at=\"2026-11-21T10:00:00.000Z\" suppressed=\"2\" \
         mitre=\"T1070.004,T1036\" dedup_key=\"[1\\]\"] Deleted binary: pid=1"
    );
    let hostile = Alert {
        host: "bad host".into(),
        site: None,
        severity: Severity::Info,
        detected_at: "+10000-01-01T00:00:00.000Z".into(),
        dedup_key: "a]b\"c\\d\ne".into(),
        summary: "gnp.\u{202e}exé\n".into(),
        ..alert()
    };
    let line = syslog(&hostile, Facility::new(4).unwrap(), None);
    assert!(
        line.starts_with("<38>1 - - daemoneye-agent - alert [daemoneye@32473 "),
        "{line}"
    );
    assert!(!line.contains("site="), "{line}");
    assert!(
        line.contains(" dedup_key=\"a\\]b\\\"c\\\\d\\ne\"] "),
        "{line}"
    );
    assert!(
        line.ends_with("] \u{feff}gnp.\\u{202e}exé\\n"),
        "MSG escaped for a person: {line}"
    );
    // An ASCII MSG has no BOM.
    assert!(syslog(&alert(), Facility::LOCAL0, None).ends_with("] Deleted binary: pid=1"));
}

/// Reads a CEF line back: the seven header fields and the extension pairs, unescaped.
fn unescape_cef(line: &str) -> (Vec<String>, Vec<(String, String)>) {
    let mut header = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while header.len() < 7 {
        match chars.next() {
            Some('\\') => match chars.next() {
                Some('n') => field.push('\n'),
                Some('r') => field.push('\r'),
                Some(c @ ('\\' | '|')) => field.push(c),
                other => panic!("bad header escape {other:?} in {line:?}"),
            },
            Some('|') => header.push(std::mem::take(&mut field)),
            Some(c) => field.push(c),
            None => panic!("short header: {line:?}"),
        }
    }
    // The extension: `key=value` pairs; a value ends at the space before the next key, whose
    // `=` is the next unescaped one.
    let raw: Vec<char> = chars.collect();
    let mut equals = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            '\\' => i += 1,
            '=' => equals.push(i),
            _ => {}
        }
        i += 1;
    }
    let mut pairs = Vec::new();
    let mut key_start = 0;
    for (n, &eq) in equals.iter().enumerate() {
        let key: String = raw[key_start..eq].iter().collect();
        let value_end = match equals.get(n + 1) {
            Some(&next) => {
                let space = raw[..next].iter().rposition(|&c| c == ' ').unwrap();
                key_start = space + 1;
                space
            }
            None => raw.len(),
        };
        let mut value = String::new();
        let mut it = raw[eq + 1..value_end].iter();
        while let Some(&c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some(&c @ ('\\' | '=')) => value.push(c),
                    other => panic!("bad extension escape {other:?} in {line:?}"),
                }
            } else {
                value.push(c);
            }
        }
        pairs.push((key, value));
    }
    (header, pairs)
}

/// Reads the structured data element of a message back, checking that every `"`, `\` and
/// `]` inside a value is escaped; returns the unescaped values and the rest (` MSG`).
fn read_sd(line: &str) -> (Vec<(String, String)>, String) {
    let start = line.find(&format!("[{SD_ID}")).unwrap() + SD_ID.len() + 1;
    let mut chars = line[start..].chars().peekable();
    let mut params = Vec::new();
    loop {
        match chars.next() {
            Some(']') => break,
            Some(' ') => {}
            other => panic!("expected a parameter or ], got {other:?} in {line:?}"),
        }
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert!(!name.is_empty() && name.len() <= 32, "{name:?}");
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some(c @ ('"' | '\\' | ']')) => value.push(c),
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    other => panic!("a bare backslash before {other:?} in {line:?}"),
                },
                Some('"') => break,
                Some(']') => panic!("an unescaped ] in a value: {line:?}"),
                Some(c) => value.push(c),
                None => panic!("unterminated value in {line:?}"),
            }
        }
        params.push((name, value));
    }
    (params, chars.collect())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        r#"[\\|="\]\n\r ab]{0,16}"#,
        Just(String::new()),
    ]
}

prop_compose! {
    fn any_alert()(
        rule_id in any_text(),
        rule_name in any_text(),
        host in any_text(),
        site in proptest::option::of(any_text()),
        dedup_key in any_text(),
        summary in any_text(),
        mitre in proptest::collection::vec(any_text(), 0..3),
        suppressed in any::<u64>(),
        scan_id in any::<i64>(),
        severity in proptest::sample::select(Severity::ALL.to_vec()),
        time_ms in -62_135_596_800_000_i64..253_402_300_799_999,
    ) -> Alert {
        Alert {
            rule_id, rule_name, host, site, dedup_key, summary, mitre, suppressed, scan_id,
            severity,
            detected_at: text::format_time_ms(time_ms),
            ..alert()
        }
    }
}

proptest! {
    #[test]
    fn every_encoding_is_one_line(alert in any_alert()) {
        let payload = payload(&alert);
        for line in [
            json_line(&payload).unwrap(),
            Encoding::Cef.encode(&payload).unwrap(),
            syslog(&alert, Facility::LOCAL0, Some(1)),
        ] {
            prop_assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        }
    }

    #[test]
    fn cef_escapes_read_back(alert in any_alert()) {
        let (header, pairs) = unescape_cef(&cef(&alert));
        prop_assert_eq!(
            header,
            ["CEF:0", "DaemonEye", "daemoneye-agent", VERSION, &alert.rule_id,
             &alert.rule_name, &cef_severity(alert.severity).to_string()]
        );
        let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        prop_assert_eq!(get("dvchost"), Some(alert.host.clone()));
        prop_assert_eq!(get("cs1"), Some(alert.rule_id.clone()));
        prop_assert_eq!(get("cs3"), alert.site.clone());
        prop_assert_eq!(get("cs4"), Some(alert.mitre.join(",")));
        prop_assert_eq!(get("cs5"), Some(alert.dedup_key.clone()));
        prop_assert_eq!(get("msg"), Some(alert.summary.clone()));
        prop_assert_eq!(get("cnt"), Some(alert.suppressed.saturating_add(1).to_string()));
        prop_assert_eq!(
            get("rt"),
            Some(text::parse_time_ms(&alert.detected_at).unwrap().to_string())
        );
    }

    #[test]
    fn syslog_values_have_no_bare_quote_backslash_or_bracket(alert in any_alert()) {
        let line = syslog(&alert, Facility::LOCAL0, None);
        let (params, rest) = read_sd(&line);
        let get = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        prop_assert_eq!(get("rule_id"), Some(alert.rule_id.clone()));
        prop_assert_eq!(get("rule_name"), Some(alert.rule_name.clone()));
        prop_assert_eq!(get("host"), Some(alert.host.clone()));
        prop_assert_eq!(get("site"), alert.site.clone());
        prop_assert_eq!(get("dedup_key"), Some(alert.dedup_key.clone()));
        prop_assert_eq!(get("mitre"), Some(alert.mitre.join(",")));
        let msg = text::escape(&alert.summary);
        let bom = if msg.is_ascii() { "" } else { "\u{feff}" };
        prop_assert_eq!(rest, format!(" {bom}{msg}"));
        // The header before the SD: five space-separated fields, none empty or with a space.
        let head = &line[..line.find(" [").unwrap()];
        prop_assert_eq!(head.split(' ').count(), 6);
        prop_assert!(head.split(' ').all(|f| !f.is_empty() && f.is_ascii()), "{head:?}");
    }
}

#[test]
fn a_cef_value_ending_in_a_pipe_keeps_the_next_key_apart() {
    // Found by cef_escapes_read_back: the separator was once skipped after a value ending
    // in `|`, gluing `cs1=|cs2Label=…` together.
    let line = cef(&Alert {
        rule_id: "|".into(),
        ..alert()
    });
    assert!(line.contains(" cs1=| cs2Label=alert_id "), "{line}");
}
