//! The fleet's heartbeats (issue 13): what each box last reported, for `hub fleet` and the
//! operators.
//!
//! `PUT /v1/heartbeat` takes a [`Heartbeat`] from a device certificate and keeps the newest
//! per device. The hub checks its shape before storing: every text field is a short code or
//! version of a fixed alphabet, every map a bounded set of such codes with counts. A box (or
//! whoever holds its key) therefore cannot park free text, let alone an exam's values, in the
//! fleet table.

use fgw_format::package::protocol::Heartbeat;

/// What is wrong with a heartbeat. Names the field, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    /// Not JSON of the heartbeat's shape.
    #[error("heartbeat: not a heartbeat document")]
    Shape,
    /// A field holds something other than a short code.
    #[error("heartbeat: {field} must be 1 to 64 characters of A-Z a-z 0-9 . _ - @ : + (a code, version or time)")]
    Field {
        /// The field.
        field: &'static str,
    },
    /// A map has too many entries.
    #[error("heartbeat: {field} has more than 64 entries")]
    TooMany {
        /// The field.
        field: &'static str,
    },
}

/// A code, version or RFC 3339 time: 1 to 64 characters of a small alphabet.
fn is_code(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_@:+".contains(&b))
}

/// Parses and checks a heartbeat body.
pub fn parse(bytes: &[u8]) -> Result<Heartbeat, HeartbeatError> {
    let hb: Heartbeat = serde_json::from_slice(bytes).map_err(|_| HeartbeatError::Shape)?;
    let code =
        |field, v: &str| if is_code(v) { Ok(()) } else { Err(HeartbeatError::Field { field }) };
    code("sent_at", &hb.sent_at)?;
    code("os_version", &hb.os_version)?;
    code("policy_version", &hb.policy_version)?;
    code("key_store", &hb.key_store)?;
    code("vpn", &hb.vpn)?;
    if let Some(v) = &hb.last_error_class {
        code("last_error_class", v)?;
    }
    if let Some(v) = &hb.cert_not_after {
        code("cert_not_after", v)?;
    }
    if hb.updates.len() > 8 {
        return Err(HeartbeatError::TooMany { field: "updates" });
    }
    for (kind, u) in &hb.updates {
        for v in [kind, &u.version, &u.outcome, &u.at] {
            code("updates", v)?;
        }
    }
    for (field, map) in [("queue", &hb.queue), ("quarantine", &hb.quarantine)] {
        if map.len() > 64 {
            return Err(HeartbeatError::TooMany { field });
        }
        for k in map.keys() {
            code(field, k)?;
        }
    }
    Ok(hb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "sent_at": "2026-12-05T10:00:00Z",
            "os_version": "0.1.0",
            "policy_version": "jed-basic@1",
            "queue": { "acked": 3, "quarantined": 1 },
            "bytes_uploaded": 12345,
            "quarantine": { "identifier-in-pixels": 1 },
            "last_error_class": null,
            "cert_not_after": "2027-01-04T10:00:00Z",
            "disk": { "total_bytes": 100, "available_bytes": 50 },
            "key_store": "tpm",
            "vpn": "up"
        })
    }

    #[test]
    fn a_heartbeat_of_codes_and_counts_is_taken() {
        let hb = parse(sample().to_string().as_bytes()).unwrap();
        assert_eq!(hb.queue["acked"], 3);
    }

    #[test]
    fn free_text_in_any_field_is_refused_by_field_name() {
        for (field, value) in [
            ("os_version", serde_json::json!("山田 太郎")),
            ("policy_version", serde_json::json!("a b")),
            ("last_error_class", serde_json::json!("upload of exam 12345 for Taro Yamada")),
            ("vpn", serde_json::json!("")),
        ] {
            let mut v = sample();
            v[field] = value.clone();
            let e = parse(v.to_string().as_bytes()).unwrap_err();
            assert_eq!(e, HeartbeatError::Field { field }, "{field}");
            assert!(!e.to_string().contains(value.as_str().unwrap_or("")) || value == "");
        }
        let mut v = sample();
        v["updates"] = serde_json::json!({ "policy": { "version": "2", "outcome": "failed: 山田", "at": "x" } });
        assert_eq!(
            parse(v.to_string().as_bytes()).unwrap_err(),
            HeartbeatError::Field { field: "updates" }
        );
        let mut v = sample();
        v["quarantine"] = serde_json::json!({ "patient Yamada": 1 });
        assert_eq!(
            parse(v.to_string().as_bytes()).unwrap_err(),
            HeartbeatError::Field { field: "quarantine" }
        );
        let many: serde_json::Map<String, serde_json::Value> =
            (0..65).map(|i| (format!("r{i}"), serde_json::json!(1))).collect();
        let mut v = sample();
        v["queue"] = serde_json::Value::Object(many);
        assert_eq!(
            parse(v.to_string().as_bytes()).unwrap_err(),
            HeartbeatError::TooMany { field: "queue" }
        );
        assert_eq!(parse(b"{}").unwrap_err(), HeartbeatError::Shape);
    }
}
