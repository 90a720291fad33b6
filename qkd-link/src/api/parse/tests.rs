#![allow(clippy::unwrap_used)]
use super::*;

const ID1: &str = "bc490419-7d60-487f-adc1-4ddcc177c139";
const ID2: &str = "0a782fb5-3434-48fe-aa4d-14f41d46cf92";
const KEY256: &str = "wHHVxRwDJs3/bXd38GHP3oe4svTuRpZS0yCC7x4Ly+s=";

fn one(number: usize, size_bits: Option<u32>) -> KeyExpectation<'static> {
    KeyExpectation {
        number,
        size_bits,
        ids: None,
    }
}

fn container(entries: &[(&str, &str)]) -> Vec<u8> {
    let keys: Vec<_> = entries
        .iter()
        .map(|(id, k)| serde_json::json!({"key_ID": id, "key": k}))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
}

#[test]
fn spec_example_container_parses() {
    let body = format!(
        r#"{{"keys":[{{"key_ID":"{ID1}","key":"{KEY256}"}}],"key_container_extension":{{}}}}"#
    );
    let keys = parse_key_container(body.as_bytes(), &one(1, Some(256))).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id().to_string(), ID1);
    assert_eq!(keys[0].expose().len(), 32);
    assert_eq!(keys[0].expose()[0], 0xc0);
}

#[test]
fn key_extensions_and_unknown_members_are_tolerated() {
    let body = format!(
        r#"{{"keys":[{{"key_ID":"{ID1}","key":"{KEY256}","key_ID_extension":{{}},
        "key_extension":{{"x":1}},"vendor":true}}],"other":1}}"#
    );
    assert!(parse_key_container(body.as_bytes(), &one(1, None)).is_ok());
}

#[test]
fn escaped_base64_is_unescaped_and_other_escapes_and_types_are_rejected() {
    let parse = |key: &str| {
        let body = format!(r#"{{"keys":[{{"key_ID":"{ID1}","key":{key}}}]}}"#);
        parse_key_container(body.as_bytes(), &one(1, Some(256)))
    };
    let plain = parse(&format!("\"{KEY256}\"")).unwrap();
    for escaped in [KEY256.replace('/', r"\/"), KEY256.replace('+', r"\u002B")] {
        let keys = parse(&format!("\"{escaped}\"")).unwrap();
        assert_eq!(keys[0].expose(), plain[0].expose(), "{escaped}");
    }
    for bad in [
        KEY256.replace('/', r"\u00e9"),
        KEY256.replace('/', r"\n"),
        KEY256.replace('/', r"\u0000"),
    ] {
        let err = parse(&format!("\"{bad}\"")).unwrap_err().to_string();
        assert!(err.contains("keys[0].key"), "{bad}: {err}");
    }
    for not_a_string in ["123", "null", "[]", "{}"] {
        let err = parse(not_a_string).unwrap_err().to_string();
        assert!(err.contains("keys[0].key: not a string"), "{err}");
    }
}

#[test]
fn wrong_key_count_is_rejected() {
    let body = container(&[(ID1, KEY256)]);
    assert!(matches!(
        parse_key_container(&body, &one(2, Some(256))),
        Err(Error::MalformedResponse { .. })
    ));
    let empty = br#"{"keys":[]}"#;
    assert!(parse_key_container(empty, &one(1, None)).is_err());
}

#[test]
fn duplicate_ids_are_rejected() {
    let body = container(&[(ID1, KEY256), (ID1, KEY256)]);
    let err = parse_key_container(&body, &one(2, Some(256))).unwrap_err();
    assert!(err.to_string().contains("repeats"), "{err}");
}

#[test]
fn non_uuid_ids_are_rejected() {
    for id in [
        "1",
        "bc4904197d60487fadc14ddcc177c139",
        "",
        "bc490419-7d60-487f-adc1-4ddcc177c13",
    ] {
        let body = container(&[(id, KEY256)]);
        assert!(parse_key_container(&body, &one(1, None)).is_err(), "{id}");
    }
}

#[test]
fn sloppy_base64_is_rejected() {
    for key in [
        "wHHVxRwDJs3/bXd38GHP3oe4svTuRpZS0yCC7x4Ly+s", // missing padding
        "wHHVxRwDJs3_bXd38GHP3oe4svTuRpZS0yCC7x4Ly-s=", // URL-safe alphabet
        "wHHVxRwDJs3/bXd38GHP3oe4svTuRpZS0yCC7x4Ly+t=", // non-canonical trailing bits
        "wHHVxRwD Js3/bXd38GHP3oe4svTuRpZS0yCC7x4Ly+s=", // whitespace
        "",
        "====",
    ] {
        let body = container(&[(ID1, key)]);
        assert!(parse_key_container(&body, &one(1, None)).is_err(), "{key}");
    }
}

#[test]
fn wrong_decoded_length_is_rejected() {
    let body = container(&[(ID1, KEY256)]);
    assert!(parse_key_container(&body, &one(1, Some(128))).is_err());
    // Without a requested size, keys must at least agree with each other.
    let short = STANDARD.encode([7u8; 16]);
    let body = container(&[(ID1, KEY256), (ID2, &short)]);
    assert!(parse_key_container(&body, &one(2, None)).is_err());
}

#[test]
fn oversized_keys_are_rejected() {
    let big = STANDARD.encode(vec![1u8; MAX_KEY_BYTES + 1]);
    let body = container(&[(ID1, &big)]);
    assert!(parse_key_container(&body, &one(1, None)).is_err());
}

#[test]
fn duplicate_json_members_are_rejected() {
    let body = format!(r#"{{"keys":[{{"key_ID":"{ID1}","key_ID":"{ID2}","key":"{KEY256}"}}]}}"#);
    assert!(parse_key_container(body.as_bytes(), &one(1, None)).is_err());
}

#[test]
fn dec_keys_reply_is_reordered_to_request_order() {
    let k2 = STANDARD.encode([2u8; 32]);
    let body = container(&[(ID2, &k2), (ID1, KEY256)]);
    let wanted = [KeyId::parse(ID1).unwrap(), KeyId::parse(ID2).unwrap()];
    let expect = KeyExpectation {
        number: 2,
        size_bits: None,
        ids: Some(&wanted),
    };
    let keys = parse_key_container(&body, &expect).unwrap();
    assert_eq!(keys[0].id(), wanted[0]);
    assert_eq!(keys[1].expose(), &[2u8; 32]);
}

#[test]
fn dec_keys_reply_with_other_ids_is_rejected() {
    let body = container(&[(ID2, KEY256)]);
    let wanted = [KeyId::parse(ID1).unwrap()];
    let expect = KeyExpectation {
        number: 1,
        size_bits: None,
        ids: Some(&wanted),
    };
    let err = parse_key_container(&body, &expect).unwrap_err();
    assert!(err.to_string().contains("lacks"), "{err}");
}

fn status_json(patch: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v = serde_json::json!({
        "source_KME_ID":"KME_A","target_KME_ID":"KME_B","master_SAE_ID":"SAE_A",
        "slave_SAE_ID":"SAE_B","key_size":352,"stored_key_count":25000,"max_key_count":100000,
        "max_key_per_request":128,"max_key_size":1024,"min_key_size":64,"max_SAE_ID_count":0,
        "status_extension":{}
    });
    patch(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn spec_example_status_parses() {
    let s = parse_status(&status_json(|_| {})).unwrap();
    assert_eq!(s.key_size, 352);
    assert_eq!(s.stored_key_count, 25000);
    assert_eq!(s.max_sae_id_count, 0);
    let without_ext = status_json(|v| {
        v.as_object_mut().unwrap().remove("status_extension");
    });
    assert!(parse_status(&without_ext).is_ok());
}

#[test]
fn inconsistent_status_is_rejected() {
    type Patch = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<Patch> = vec![
        Box::new(|v| v["stored_key_count"] = 200_000.into()),
        Box::new(|v| v["key_size"] = 2048.into()),
        Box::new(|v| v["key_size"] = 0.into()),
        Box::new(|v| v["max_key_per_request"] = 0.into()),
        Box::new(|v| v["key_size"] = (-1).into()),
        Box::new(|v| v["key_size"] = 256.5.into()),
        Box::new(|v| v["key_size"] = "256".into()),
        Box::new(|v| v["slave_SAE_ID"] = "SAE B/1".into()),
        Box::new(|v| {
            v.as_object_mut().unwrap().remove("max_key_count");
        }),
    ];
    for patch in cases {
        let body = status_json(patch);
        assert!(
            matches!(parse_status(&body), Err(Error::MalformedResponse { .. })),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn error_bodies_are_read_tolerantly() {
    let e = parse_error_body(
        br#"{"message":"not all extension_mandatory parameters are supported",
        "details":[{"extension_mandatory_unsupported":"abc_route_type is not supported"}]}"#,
    );
    assert_eq!(
        e.message,
        "not all extension_mandatory parameters are supported"
    );
    assert_eq!(e.details.len(), 1);
    assert_eq!(parse_error_body(b"").message, "(empty body)");
    assert_eq!(parse_error_body(b"Bad Request").message, "Bad Request");
    assert_eq!(parse_error_body(br#"{"details":5}"#).details.len(), 0);
    let many = format!(
        r#"{{"message":"m","details":[{}]}}"#,
        vec!["{}"; 100].join(",")
    );
    assert_eq!(
        parse_error_body(many.as_bytes()).details.len(),
        MAX_ERROR_DETAILS
    );
    let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(10_000));
    assert_eq!(
        parse_error_body(long.as_bytes()).message.len(),
        MAX_ERROR_MESSAGE
    );
    assert!(parse_error_body(&[0xff, 0xfe, 0x00]).message.len() < 100);
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A deterministic sweep over mutations of valid bodies; the fuzz targets go further.
    let seeds = [
        container(&[(ID1, KEY256)]),
        status_json(|_| {}),
        br#"{"message":"m","details":[{"a":1}]}"#.to_vec(),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for seed in &seeds {
        for _ in 0..2000 {
            let mut b = seed.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let pos = (state as usize) % b.len();
                b[pos] = (state >> 32) as u8;
            }
            let _ = parse_key_container(&b, &one(1, Some(256)));
            let _ = parse_key_container(&b, &one(1, None));
            let _ = parse_status(&b);
            let _ = parse_error_body(&b);
        }
    }
}
