//! Tests of the canonical entry encoding: every kind, strict decoding, encode(decode(b)) == b.

use proptest::prelude::*;

use super::*;

/// 2025-11-21T10:00:00.123Z.
const T: i64 = 1_763_719_200_123;
/// The bytes of `T`, big-endian, worked out by hand (0x0000_019a_a5db_3d7b).
const T_BE: [u8; 8] = [0x00, 0x00, 0x01, 0x9a, 0xa5, 0xdb, 0x3d, 0x7b];

fn h(start: u8) -> Hash {
    std::array::from_fn(|i| start.wrapping_add(u8::try_from(i).unwrap()))
}

/// One body of every kind, in kind order.
fn samples() -> Vec<Body> {
    vec![
        Body::LedgerCreated {
            hash_alg: "blake3".into(),
            verifier_key: "host+1a2b3c4d+AQID".into(),
        },
        Body::ProcmondStarted {
            version: "0.1.0".into(),
            pid: 4242,
        },
        Body::ProcmondStopped {
            reason: "signal TERM".into(),
        },
        Body::PrivilegesDropped {
            user: "daemoneye".into(),
            uid: 998,
            gid: 997,
            effective_caps: (1 << 19) | (1 << 2),
        },
        Body::Scan {
            scan_id: 7,
            started_ms: T - 500,
            finished_ms: T,
            process_count: 312,
            records_hash: h(0),
        },
        Body::AgentStarted {
            version: "0.1.0".into(),
            pid: 1,
        },
        Body::AgentStopped {
            reason: String::new(),
        },
        Body::AlertRaised {
            alert_id: "al-1".into(),
            rule_id: "DE-LNX-0001".into(),
            severity: "high".into(),
            host: "plant-7-hmi".into(),
        },
        Body::AlertDelivered {
            alert_id: "al-1".into(),
            sink: "siem".into(),
        },
        Body::BundleAccepted {
            name: "core-rules".into(),
            version: "12".into(),
            sha256: h(0x40),
        },
        Body::BundleRefused {
            name: None,
            version: Some("ü".into()),
            sha256: h(0x80),
            reason: "bad signature".into(),
        },
        Body::BundleRolledBack {
            name: "core-rules".into(),
            from_version: "12".into(),
            to_version: "11".into(),
        },
        Body::ConfigChanged {
            source: "/etc/daemoneye/config.toml".into(),
            config_hash: h(0xc0),
        },
        Body::StoreRecovered {
            path: "/var/lib/daemoneye/events.redb".into(),
            moved_to: "/var/lib/daemoneye/events.redb.damaged-20261203T014500Z".into(),
            reason: "redb panicked: internal error".into(),
        },
        Body::ProcmondRestarted {
            pid: 4242,
            reason: "no answer to a health check within 5s".into(),
        },
        Body::AlertsDropped {
            sink: "siem".into(),
            count: 3,
            reason: "full".into(),
            first_alert_id: "0123456789abcdef0123456789abcdef".into(),
            last_alert_id: "fedcba9876543210fedcba9876543210".into(),
        },
        Body::AlertRecorded {
            alert_id: "0123456789abcdef0123456789abcdef".into(),
            rule_id: "DE-LNX-0001".into(),
            severity: "high".into(),
            host: "plant-7-hmi".into(),
            alert_hash: h(0x20),
        },
        Body::AlertsExported {
            count: 1000,
            first_index: 17,
            last_index: 4242,
            alerts_hash: h(0x60),
        },
        Body::ExecEventsDropped {
            count: 120,
            total: 4000,
            reason: "the kernel's buffer overran".into(),
        },
    ]
}

fn entry(body: Body) -> Entry {
    Entry {
        source: Source::Procmond,
        time_ms: T,
        body,
    }
}

// ----- negative tests first -----------------------------------------------------------

#[test]
fn every_truncation_of_every_kind_fails() {
    for body in samples() {
        let bytes = entry(body.clone()).encode().unwrap();
        for cut in 0..bytes.len() {
            let err = Entry::decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, EntryError::Truncated { .. }),
                "{} cut at {cut}: {err}",
                body.kind()
            );
        }
        let body_bytes = body.encode().unwrap();
        for cut in 0..body_bytes.len() {
            assert!(matches!(
                Body::decode(body.kind(), &body_bytes[..cut]),
                Err(EntryError::Truncated { .. })
            ));
        }
    }
}

#[test]
fn a_trailing_byte_fails() {
    for body in samples() {
        let mut bytes = entry(body.clone()).encode().unwrap();
        bytes.push(0);
        assert_eq!(Entry::decode(&bytes), Err(EntryError::TrailingBytes(1)));
        let mut body_bytes = body.encode().unwrap();
        body_bytes.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            Body::decode(body.kind(), &body_bytes),
            Err(EntryError::TrailingBytes(3))
        );
    }
    assert_eq!(
        EntryError::TrailingBytes(3).to_string(),
        "3 trailing bytes after the entry"
    );
}

#[test]
fn bad_version_kind_and_source_fail() {
    let good = entry(samples()[2].clone()).encode().unwrap();
    for version in [0u8, 2, 0xff] {
        let mut bytes = good.clone();
        bytes[0] = version;
        assert_eq!(
            Entry::decode(&bytes),
            Err(EntryError::UnknownVersion(version))
        );
    }
    assert_eq!(
        EntryError::UnknownVersion(2).to_string(),
        "unknown entry version 2"
    );
    for kind in [0u8, 20, 99, 0xff] {
        let mut bytes = good.clone();
        bytes[1] = kind;
        assert_eq!(Entry::decode(&bytes), Err(EntryError::UnknownKind(kind)));
    }
    assert_eq!(
        EntryError::UnknownKind(99).to_string(),
        "unknown entry kind 99"
    );
    for source in [0u8, 3, 0xff] {
        let mut bytes = good.clone();
        bytes[2] = source;
        assert_eq!(
            Entry::decode(&bytes),
            Err(EntryError::UnknownSource(source))
        );
    }
    let err = Body::decode("foo", b"").unwrap_err();
    assert_eq!(err.to_string(), "unknown entry kind `foo`");
    let err = Body::decode("Scan", b"").unwrap_err();
    assert_eq!(err, EntryError::UnknownKindName("Scan".into()));
    let err = Body::decode("x\ny", b"").unwrap_err();
    assert_eq!(err.to_string(), "unknown entry kind `x\\ny`");
    assert!(Entry::decode(&[]).is_err_and(|e| e
        == EntryError::Truncated {
            field: "version",
            offset: 0
        }));
}

#[test]
fn procmond_only_kinds_from_the_agent_fail() {
    for body in samples() {
        let from_agent = Entry {
            source: Source::Agent,
            ..entry(body.clone())
        };
        let mut bytes = entry(body.clone()).encode().unwrap();
        bytes[2] = Source::Agent.code();
        if body.agent_may_append() {
            assert_eq!(Entry::decode(&bytes).unwrap(), from_agent);
            assert_eq!(from_agent.encode().unwrap(), bytes);
        } else {
            let expected = EntryError::SourceNotAllowed {
                kind: body.kind(),
                claimed: Source::Agent,
            };
            assert_eq!(from_agent.encode(), Err(expected.clone()));
            assert_eq!(Entry::decode(&bytes), Err(expected));
        }
    }
    let err = Entry {
        source: Source::Agent,
        ..entry(samples()[4].clone())
    }
    .encode()
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry kind `scan` cannot come from the agent"
    );
}

#[test]
fn bad_utf8_fails() {
    let body = Body::AlertRaised {
        alert_id: "a".into(),
        rule_id: "r".into(),
        severity: "s".into(),
        host: "hh".into(),
    };
    let mut bytes = entry(body).encode().unwrap();
    // header 11, alert_id 3, rule_id 3, severity 3: host's length is at 20.
    assert_eq!(&bytes[20..], &[0, 2, b'h', b'h']);
    for bad in [[0xffu8, 0x41], [0xc3, 0x28], [0xed, 0xa0]] {
        bytes[22..24].copy_from_slice(&bad);
        let err = Entry::decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            EntryError::InvalidUtf8 {
                field: "host",
                offset: 20
            }
        );
        assert_eq!(
            err.to_string(),
            "field `host` at byte 20 is not valid UTF-8"
        );
    }
}

#[test]
fn truncation_names_the_field_and_its_offset() {
    let bytes = entry(samples()[7].clone()).encode().unwrap();
    // alert_id "al-1" takes 6 bytes from 11, rule_id starts at 17.
    let err = Entry::decode(&bytes[..20]).unwrap_err();
    assert_eq!(
        err,
        EntryError::Truncated {
            field: "rule_id",
            offset: 17
        }
    );
    assert_eq!(
        err.to_string(),
        "entry ends inside field `rule_id` at byte 17"
    );
    assert_eq!(
        Entry::decode(&bytes[..5]),
        Err(EntryError::Truncated {
            field: "time_ms",
            offset: 3
        })
    );
}

#[test]
fn string_of_4097_bytes_fails_and_4096_passes() {
    let body = |reason: String| Body::ProcmondStopped { reason };
    let err = body("x".repeat(MAX_STR + 1)).encode().unwrap_err();
    assert_eq!(
        err,
        EntryError::StringTooLong {
            field: "reason",
            len: 4097,
            limit: 4096
        }
    );
    let err = entry(body("x".repeat(5000))).encode().unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `reason` is 5000 bytes, the limit is 4096"
    );
    // Longer than a u16 can say: refused, never wrapped.
    assert!(entry(body("x".repeat(70_000))).encode().is_err());

    let ok = entry(body("x".repeat(MAX_STR)));
    let bytes = ok.encode().unwrap();
    assert_eq!(Entry::decode(&bytes).unwrap(), ok);

    // A hand-made 4097-byte string is refused by the decoder, before its bytes are read.
    let mut bytes = vec![1, 3, 1];
    bytes.extend_from_slice(&T_BE);
    bytes.extend_from_slice(&4097u16.to_be_bytes());
    bytes.extend_from_slice(&[b'x'; 4097]);
    assert_eq!(
        Entry::decode(&bytes),
        Err(EntryError::StringTooLong {
            field: "reason",
            len: 4097,
            limit: 4096
        })
    );
    assert!(Entry::decode(&bytes[..13]).is_err());
}

#[test]
fn option_tag_2_fails() {
    let bytes = entry(samples()[10].clone()).encode().unwrap();
    assert_eq!(bytes[11], 0, "name is absent");
    for tag in [2u8, 0x80, 0xff] {
        let mut bad = bytes.clone();
        bad[11] = tag;
        let err = Entry::decode(&bad).unwrap_err();
        assert_eq!(
            err,
            EntryError::BadOptionTag {
                field: "name",
                offset: 11,
                tag
            }
        );
    }
    assert_eq!(
        EntryError::BadOptionTag {
            field: "name",
            offset: 11,
            tag: 2
        }
        .to_string(),
        "field `name` at byte 11 has option tag 2, expected 0 or 1"
    );
}

#[test]
fn entry_over_max_entry_bytes_fails() {
    // Four strings at the limit are each fine, together too many.
    let big = Body::AlertRaised {
        alert_id: "a".repeat(MAX_STR),
        rule_id: "r".repeat(MAX_STR),
        severity: "s".repeat(MAX_STR),
        host: "h".repeat(MAX_STR),
    };
    let len = HEADER_BYTES + 4 * (2 + MAX_STR);
    assert_eq!(len, 16_403);
    let err = entry(big.clone()).encode().unwrap_err();
    assert_eq!(
        err,
        EntryError::TooLarge {
            len,
            limit: MAX_ENTRY_BYTES
        }
    );
    assert_eq!(err.to_string(), "entry is 16403 bytes, the limit is 16384");
    assert_eq!(
        big.encode(),
        Err(EntryError::BodyTooLarge {
            len: len - HEADER_BYTES,
            limit: MAX_BODY_BYTES
        })
    );

    // The decoder refuses by size before it reads anything, even a valid-looking prefix.
    let mut bytes = entry(samples()[2].clone()).encode().unwrap();
    bytes.resize(17_000, 0);
    let err = Entry::decode(&bytes).unwrap_err();
    assert_eq!(err.to_string(), "entry is 17000 bytes, the limit is 16384");
    assert!(matches!(
        Body::decode("agent_stopped", &vec![0; MAX_BODY_BYTES + 1]),
        Err(EntryError::BodyTooLarge { .. })
    ));

    // Just at the limit: encodes and decodes.
    let host_len = MAX_ENTRY_BYTES - HEADER_BYTES - 3 * (2 + MAX_STR) - 2;
    let fits = entry(Body::AlertRaised {
        alert_id: "a".repeat(MAX_STR),
        rule_id: "r".repeat(MAX_STR),
        severity: "s".repeat(MAX_STR),
        host: "h".repeat(host_len),
    });
    let bytes = fits.encode().unwrap();
    assert_eq!(bytes.len(), MAX_ENTRY_BYTES);
    assert_eq!(Entry::decode(&bytes).unwrap(), fits);
}

#[test]
fn display_never_breaks_the_line() {
    let hostile = "evil\n2026-01-01T00:00:00.000Z procmond scan\r\u{85}\u{2028}\u{2029}\
                   \u{202e}\u{0}\u{1b}[31m\"\\\t\u{feff}\u{200b}";
    let e = Entry {
        source: Source::Agent,
        time_ms: T,
        body: Body::AlertRaised {
            alert_id: hostile.into(),
            rule_id: hostile.into(),
            severity: "high".into(),
            host: hostile.into(),
        },
    };
    let line = e.to_string();
    for bad in [
        '\n', '\r', '\u{85}', '\u{2028}', '\u{2029}', '\u{202e}', '\u{1b}', '\0',
    ] {
        assert!(!line.contains(bad), "{bad:?} in {line}");
    }
    assert!(line.starts_with("2025-11-21T10:00:00.123Z agent alert_raised alert_id=\"evil\\n"));
    assert!(line.contains(r#"\"\\\t\u{feff}\u{200b}""#), "{line}");
}

// ----- positive tests -----------------------------------------------------------------

#[test]
fn every_kind_round_trips() {
    let bodies = samples();
    let codes: Vec<u8> = bodies.iter().map(Body::kind_code).collect();
    assert_eq!(codes, (1..=19).collect::<Vec<u8>>());
    for body in bodies {
        for source in [Source::Procmond, Source::Agent] {
            if source == Source::Agent && !body.agent_may_append() {
                continue;
            }
            for time_ms in [T, 0, -1, i64::MIN, i64::MAX] {
                let e = Entry {
                    source,
                    time_ms,
                    body: body.clone(),
                };
                let bytes = e.encode().unwrap();
                assert_eq!(bytes[..3], [1, body.kind_code(), source.code()]);
                assert_eq!(bytes[3..11], time_ms.to_be_bytes());
                assert_eq!(bytes[11..], body.encode().unwrap());
                assert_eq!(Entry::decode(&bytes).unwrap(), e);
            }
        }
    }
}

#[test]
fn known_answer_alert_delivered() {
    // The example of the module documentation, byte by byte from the specification.
    let mut expected = vec![0x01, 0x09, 0x02];
    expected.extend_from_slice(&T_BE);
    expected.extend_from_slice(&[0x00, 0x02, b'a', b'1']);
    expected.extend_from_slice(&[0x00, 0x04, b's', b'i', b'e', b'm']);
    let e = Entry {
        source: Source::Agent,
        time_ms: T,
        body: Body::AlertDelivered {
            alert_id: "a1".into(),
            sink: "siem".into(),
        },
    };
    assert_eq!(expected.len(), 21);
    assert_eq!(e.encode().unwrap(), expected);
    assert_eq!(Entry::decode(&expected).unwrap(), e);
}

#[test]
fn known_answer_scan() {
    let expected: Vec<u8> = [
        &[0x01, 0x05, 0x01][..],   // version 1, scan, procmond
        &T_BE,                     // time_ms
        &[0, 0, 0, 0, 0, 0, 0, 7], // scan_id 7
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], // started_ms -2
        &[0, 0, 0, 0, 0, 0, 0x01, 0x00], // finished_ms 256
        &[0, 0, 0, 0, 0, 0, 0x01, 0x38], // process_count 312
        &[
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
            0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
            0x1c, 0x1d, 0x1e, 0x1f,
        ], // records_hash
    ]
    .concat();
    let e = entry(Body::Scan {
        scan_id: 7,
        started_ms: -2,
        finished_ms: 256,
        process_count: 312,
        records_hash: h(0),
    });
    assert_eq!(expected.len(), 11 + 32 + 32);
    assert_eq!(e.encode().unwrap(), expected);
    assert_eq!(Entry::decode(&expected).unwrap(), e);
}

#[test]
fn known_answer_bundle_refused() {
    let expected: Vec<u8> = [
        &[0x01, 0x0b, 0x01][..],
        &T_BE,
        &[0x00],                         // name absent
        &[0x01, 0x00, 0x02, 0xc3, 0xbc], // version present, "ü" (2 bytes of UTF-8)
        &[0xaa; 32],                     // sha256
        &[0x00, 0x03, b'b', b'a', b'd'], // reason "bad"
    ]
    .concat();
    let e = entry(Body::BundleRefused {
        name: None,
        version: Some("ü".into()),
        sha256: [0xaa; 32],
        reason: "bad".into(),
    });
    assert_eq!(e.encode().unwrap(), expected);
    assert_eq!(Entry::decode(&expected).unwrap(), e);
    // An empty present string is not the same as an absent one.
    let mut present_empty = expected.clone();
    present_empty.splice(11..12, [0x01, 0x00, 0x00]);
    let decoded = Entry::decode(&present_empty).unwrap();
    assert!(matches!(decoded.body, Body::BundleRefused { name: Some(ref n), .. } if n.is_empty()));
}

#[test]
fn agent_may_append_is_false_exactly_for_kinds_1_to_5_and_19() {
    for body in samples() {
        assert_eq!(
            body.agent_may_append(),
            body.kind_code() > 5 && body.kind_code() != 19,
            "{}",
            body.kind()
        );
    }
    let names: Vec<&str> = samples()
        .iter()
        .filter(|b| !b.agent_may_append())
        .map(Body::kind)
        .collect();
    assert_eq!(
        names,
        [
            "ledger_created",
            "procmond_started",
            "procmond_stopped",
            "privileges_dropped",
            "scan",
            "exec_events_dropped"
        ]
    );
}

#[test]
fn body_decode_by_kind_name_round_trips() {
    for body in samples() {
        let bytes = body.encode().unwrap();
        assert_eq!(Body::decode(body.kind(), &bytes).unwrap(), body);
        // What procmond does with an AppendAudit: the body always fits an entry.
        let e = Entry {
            source: Source::Agent,
            time_ms: T,
            body: body.clone(),
        };
        if body.agent_may_append() {
            assert_eq!(&e.encode().unwrap()[HEADER_BYTES..], bytes);
        }
    }
}

/// The body bytes carry no kind: under another kind name they either fail or decode as
/// that other kind, never as the original. Same-shaped kinds do decode: the kind byte of
/// the entry header (and `AppendAudit.kind`) is what tells them apart.
#[test]
fn body_decode_with_the_wrong_kind_fails_or_decodes_as_that_kind() {
    let mut cross = Vec::new();
    for body in samples() {
        let bytes = body.encode().unwrap();
        for other in KIND_NAMES.iter().filter(|k| **k != body.kind()) {
            if let Ok(decoded) = Body::decode(other, &bytes) {
                assert_eq!(decoded.kind(), *other);
                assert_ne!(decoded, body);
                assert_eq!(decoded.encode().unwrap(), bytes);
                cross.push((body.kind(), *other));
            }
        }
    }
    // The pairs with the same field shapes (given these samples' lengths).
    assert!(cross.contains(&("procmond_started", "agent_started")));
    assert!(cross.contains(&("agent_started", "procmond_started")));
    assert!(cross.contains(&("procmond_stopped", "agent_stopped")));
    assert!(cross.contains(&("agent_stopped", "procmond_stopped")));
    assert!(cross.contains(&("ledger_created", "alert_delivered")));
    assert!(cross.contains(&("alert_delivered", "ledger_created")));
    assert_eq!(
        Body::decode(
            "agent_started",
            &Body::ProcmondStarted {
                version: "1".into(),
                pid: 9
            }
            .encode()
            .unwrap()
        ),
        Ok(Body::AgentStarted {
            version: "1".into(),
            pid: 9
        })
    );
    // A scan body read as a string kind fails.
    let scan = samples()[4].encode().unwrap();
    assert!(Body::decode("agent_stopped", &scan).is_err());
}

#[test]
fn kind_names_match_the_table() {
    for (index, name) in KIND_NAMES.iter().enumerate() {
        assert_eq!(kind_code_of(name), Some(u8::try_from(index + 1).unwrap()));
    }
    for body in samples() {
        assert_eq!(KIND_NAMES[usize::from(body.kind_code()) - 1], body.kind());
    }
    assert_eq!(Source::from_code(1), Some(Source::Procmond));
    assert_eq!(Source::from_name("agent"), Some(Source::Agent));
    assert_eq!(Source::from_code(0), None);
}

#[test]
fn display_is_one_documented_line() {
    let line = entry(samples()[4].clone()).to_string();
    assert_eq!(
        line,
        "2025-11-21T10:00:00.123Z procmond scan scan_id=7 started_ms=1763719199623 \
         finished_ms=1763719200123 process_count=312 \
         records_hash=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    );
    let line = entry(samples()[10].clone()).to_string();
    assert!(
        line.contains(" bundle_refused name=- version=\"ü\" sha256=8081"),
        "{line}"
    );
    assert!(line.ends_with(" reason=\"bad signature\""), "{line}");
}

#[test]
fn to_json_has_the_documented_keys() {
    for body in samples() {
        let e = entry(body.clone());
        let value = e.to_json();
        let object = value.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["fields", "kind", "source", "time", "time_ms", "version"]
        );
        assert_eq!(value["version"], 1);
        assert_eq!(value["kind"], body.kind());
        assert_eq!(value["source"], "procmond");
        assert_eq!(value["time_ms"], T);
        assert_eq!(value["time"], "2025-11-21T10:00:00.123Z");
        let fields = value["fields"].as_object().unwrap();
        let expected: Vec<&str> = body.fields().iter().map(|(n, _)| *n).collect();
        assert_eq!(fields.len(), expected.len());
        for name in expected {
            assert!(fields.contains_key(name), "{name}");
        }
    }
    let value = entry(samples()[4].clone()).to_json();
    assert_eq!(value["fields"]["process_count"], 312);
    assert_eq!(
        value["fields"]["records_hash"],
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    );
    let value = entry(samples()[10].clone()).to_json();
    assert_eq!(value["fields"]["name"], Value::Null);
    assert_eq!(value["fields"]["version"], "ü");
}

#[test]
fn time_formatting_edges() {
    assert_eq!(format_time_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(format_time_ms(-1), "1969-12-31T23:59:59.999Z");
    assert_eq!(format_time_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(
        format_time_ms(253_402_300_799_999),
        "9999-12-31T23:59:59.999Z"
    );
    assert_eq!(
        format_time_ms(253_402_300_800_000),
        "+10000-01-01T00:00:00.000Z"
    );
    assert_eq!(
        format_time_ms(-62_167_219_200_000),
        "0000-01-01T00:00:00.000Z"
    );
    assert_eq!(
        format_time_ms(-62_167_219_200_001),
        "-00001-12-31T23:59:59.999Z"
    );
    // Never panics at the extremes.
    assert!(format_time_ms(i64::MIN).starts_with('-'));
    assert!(format_time_ms(i64::MAX).starts_with('+'));
}

// ----- property tests -----------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,24}",
        1 => "[\\x00-\\x7f]{0,8}",
        1 => proptest::collection::vec(any::<char>(), 0..300).prop_map(String::from_iter),
    ]
}

fn hash() -> impl Strategy<Value = Hash> {
    any::<Hash>()
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (text(), text()).prop_map(|(hash_alg, verifier_key)| Body::LedgerCreated {
            hash_alg,
            verifier_key
        }),
        (text(), any::<u32>()).prop_map(|(version, pid)| Body::ProcmondStarted { version, pid }),
        text().prop_map(|reason| Body::ProcmondStopped { reason }),
        (text(), any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
            |(user, uid, gid, effective_caps)| Body::PrivilegesDropped {
                user,
                uid,
                gid,
                effective_caps
            }
        ),
        (
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<u64>(),
            hash()
        )
            .prop_map(
                |(scan_id, started_ms, finished_ms, process_count, records_hash)| Body::Scan {
                    scan_id,
                    started_ms,
                    finished_ms,
                    process_count,
                    records_hash
                }
            ),
        (text(), any::<u32>()).prop_map(|(version, pid)| Body::AgentStarted { version, pid }),
        text().prop_map(|reason| Body::AgentStopped { reason }),
        (text(), text(), text(), text()).prop_map(|(alert_id, rule_id, severity, host)| {
            Body::AlertRaised {
                alert_id,
                rule_id,
                severity,
                host,
            }
        }),
        (text(), text()).prop_map(|(alert_id, sink)| Body::AlertDelivered { alert_id, sink }),
        (text(), text(), hash()).prop_map(|(name, version, sha256)| Body::BundleAccepted {
            name,
            version,
            sha256
        }),
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            hash(),
            text()
        )
            .prop_map(|(name, version, sha256, reason)| Body::BundleRefused {
                name,
                version,
                sha256,
                reason
            }),
        (text(), text(), text()).prop_map(|(name, from_version, to_version)| {
            Body::BundleRolledBack {
                name,
                from_version,
                to_version,
            }
        }),
        (text(), hash()).prop_map(|(source, config_hash)| Body::ConfigChanged {
            source,
            config_hash
        }),
        (text(), text(), text()).prop_map(|(path, moved_to, reason)| Body::StoreRecovered {
            path,
            moved_to,
            reason
        }),
        (any::<u32>(), text()).prop_map(|(pid, reason)| Body::ProcmondRestarted { pid, reason }),
        (text(), any::<u64>(), text(), text(), text()).prop_map(
            |(sink, count, reason, first_alert_id, last_alert_id)| Body::AlertsDropped {
                sink,
                count,
                reason,
                first_alert_id,
                last_alert_id
            }
        ),
        (text(), text(), text(), text(), hash()).prop_map(
            |(alert_id, rule_id, severity, host, alert_hash)| Body::AlertRecorded {
                alert_id,
                rule_id,
                severity,
                host,
                alert_hash
            }
        ),
        (any::<u64>(), any::<u64>(), any::<u64>(), hash()).prop_map(
            |(count, first_index, last_index, alerts_hash)| Body::AlertsExported {
                count,
                first_index,
                last_index,
                alerts_hash
            }
        ),
        (any::<u64>(), any::<u64>(), text()).prop_map(|(count, total, reason)| {
            Body::ExecEventsDropped {
                count,
                total,
                reason,
            }
        }),
    ]
}

fn any_entry() -> impl Strategy<Value = Entry> {
    (any::<bool>(), any::<i64>(), body()).prop_map(|(agent, time_ms, body)| Entry {
        source: if agent && body.agent_may_append() {
            Source::Agent
        } else {
            Source::Procmond
        },
        time_ms,
        body,
    })
}

/// Bytes that start like an entry (so the decoder gets past the header), then anything.
fn entry_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..=15,
        0u8..=3,
        proptest::collection::vec(any::<u8>(), 0..120),
    )
        .prop_map(|(kind, source, tail)| {
            let mut bytes = vec![VERSION, kind, source];
            bytes.extend_from_slice(&T_BE);
            bytes.extend(tail);
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn prop_entries_round_trip(e in any_entry()) {
        let bytes = e.encode().unwrap();
        let decoded = Entry::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &e);
        prop_assert_eq!(decoded.encode().unwrap(), bytes.clone());
        let body_bytes = e.body.encode().unwrap();
        prop_assert_eq!(&bytes[HEADER_BYTES..], &body_bytes[..]);
        prop_assert_eq!(Body::decode(e.body.kind(), &body_bytes).unwrap(), e.body.clone());
        let line = e.to_string();
        prop_assert!(!line.contains('\n') && !line.contains('\r'));
    }

    #[test]
    fn prop_random_bytes_never_panic_and_are_canonical(bytes in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        entry_like_bytes(),
    ]) {
        if let Ok(e) = Entry::decode(&bytes) {
            prop_assert_eq!(e.encode().unwrap(), bytes.clone());
            let _ = (e.to_string(), e.to_json());
        }
        for kind in KIND_NAMES {
            if let Ok(body) = Body::decode(kind, &bytes) {
                prop_assert_eq!(body.encode().unwrap(), bytes.clone());
            }
        }
    }

    #[test]
    fn prop_mutated_entries_never_panic_and_are_canonical(
        e in any_entry(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = e.encode().unwrap();
        for (index, value) in edits {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(decoded) = Entry::decode(&bytes) {
            prop_assert_eq!(decoded.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn prop_time_matches_humantime(time_ms in 0i64..253_402_300_800_000) {
        let system = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(time_ms).unwrap());
        let expected = humantime::format_rfc3339_millis(system).to_string();
        prop_assert_eq!(format_time_ms(time_ms), expected);
    }

    #[test]
    fn prop_display_stays_on_one_line(s in proptest::collection::vec(any::<char>(), 0..64)) {
        let s: String = s.into_iter().collect();
        let e = entry(Body::AgentStopped { reason: s });
        let line = e.to_string();
        let breaks = ['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'];
        prop_assert!(!line.contains(breaks), "line break in {}", line);
    }
}

/// Kinds 17 and 18 byte by byte, written from the module doc's tables, not from the encoder.
#[test]
fn the_alert_proof_kinds_encode_as_specified() {
    let recorded = Entry {
        source: Source::Agent,
        time_ms: 1_763_719_200_123,
        body: Body::AlertRecorded {
            alert_id: "a1".into(),
            rule_id: "r".into(),
            severity: "high".into(),
            host: "h".into(),
            alert_hash: [0xab; 32],
        },
    };
    let mut expected = vec![1, 17, 2, 0x00, 0x00, 0x01, 0x9a, 0xa5, 0xdb, 0x3d, 0x7b];
    expected.extend_from_slice(&[0, 2, b'a', b'1', 0, 1, b'r']);
    expected.extend_from_slice(&[0, 4, b'h', b'i', b'g', b'h', 0, 1, b'h']);
    expected.extend_from_slice(&[0xab; 32]);
    assert_eq!(recorded.encode().unwrap(), expected);
    assert_eq!(Entry::decode(&expected).unwrap(), recorded);
    assert_eq!(recorded.body.kind(), "alert_recorded");
    assert!(recorded.to_string().ends_with(&format!(
        "agent alert_recorded alert_id=\"a1\" rule_id=\"r\" severity=\"high\" host=\"h\" alert_hash={}",
        "ab".repeat(32)
    )));

    let exported = Entry {
        source: Source::Agent,
        time_ms: 1_763_719_200_123,
        body: Body::AlertsExported {
            count: 3,
            first_index: 0x0102,
            last_index: 0x0a0b,
            alerts_hash: [0xcd; 32],
        },
    };
    let mut expected = vec![1, 18, 2, 0x00, 0x00, 0x01, 0x9a, 0xa5, 0xdb, 0x3d, 0x7b];
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]);
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x01, 0x02]);
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
    expected.extend_from_slice(&[0xcd; 32]);
    assert_eq!(exported.encode().unwrap(), expected);
    assert_eq!(Entry::decode(&expected).unwrap(), exported);
    assert_eq!(exported.to_json()["fields"]["first_index"], 0x0102);
    // A short hash is refused, as every field is.
    assert!(matches!(
        Entry::decode(&expected[..expected.len() - 1]),
        Err(EntryError::Truncated {
            field: "alerts_hash",
            ..
        })
    ));
}
