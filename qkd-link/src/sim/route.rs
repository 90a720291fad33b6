//! From an HTTP request to an ETSI GS QKD 014 call (§5.1, Table 2), without I/O.
//!
//! * `GET /api/v1/keys/{slave_SAE_ID}/status`
//! * `GET /api/v1/keys/{slave_SAE_ID}/enc_keys[?number=N][&size=S]` or `POST` with a Key request
//!   (an empty POST body counts as `{}`)
//! * `GET /api/v1/keys/{master_SAE_ID}/dec_keys?key_ID=UUID` or `POST` with Key IDs
//!
//! Unknown query parameters and unknown JSON members are ignored (reference §5: clients in the
//! field send `key_length`, or `master_SAE_ID` inside key ID entries). Malformed numbers, IDs or
//! JSON give 400 with an ETSI error body; unknown paths 404, wrong methods 405.

use http::Method;

use super::engine::{ApiRequest, Reply};
use crate::api::{API_PREFIX, Call, KeyIds, KeyRequest};
use crate::ids::{KeyId, SaeId, excerpt};

/// Parses one request.
pub fn parse_request(
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<ApiRequest, Reply> {
    let rest = path
        .strip_prefix(API_PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| not_found(path))?;
    let (peer, call) = rest.split_once('/').ok_or_else(|| not_found(path))?;
    let call = Call::from_segment(call).ok_or_else(|| not_found(path))?;
    let peer = SaeId::new(peer).map_err(|e| Reply::error(400, format!("SAE ID in URL: {e}")))?;
    let params = Query::parse(query.unwrap_or(""))?;
    match (call, method) {
        (Call::Status, &Method::GET) => Ok(ApiRequest::Status { slave: peer }),
        (Call::EncKeys, &Method::GET) => Ok(ApiRequest::EncKeys {
            slave: peer,
            request: KeyRequest {
                number: params.number("number")?,
                size: params.number("size")?,
                ..KeyRequest::default()
            },
        }),
        (Call::EncKeys, &Method::POST) => {
            let request = if body.iter().all(u8::is_ascii_whitespace) {
                KeyRequest::default()
            } else {
                serde_json::from_slice(body).map_err(|e| bad_json("key request", &e))?
            };
            Ok(ApiRequest::EncKeys {
                slave: peer,
                request,
            })
        }
        (Call::DecKeys, &Method::GET) => {
            let ids = params.all("key_ID");
            let [one] = ids.as_slice() else {
                return Err(Reply::error(
                    400,
                    "GET dec_keys takes exactly one key_ID query parameter; use POST for more",
                ));
            };
            Ok(ApiRequest::DecKeys {
                master: peer,
                ids: vec![parse_key_id(one)?],
            })
        }
        (Call::DecKeys, &Method::POST) => {
            let body: KeyIds = serde_json::from_slice(body).map_err(|e| bad_json("key IDs", &e))?;
            let ids = body
                .key_ids
                .iter()
                .map(|e| parse_key_id(&e.key_id))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ApiRequest::DecKeys { master: peer, ids })
        }
        (call, _) => {
            let allowed = if call == Call::Status {
                "GET"
            } else {
                "GET, POST"
            };
            Err(Reply::error(
                405,
                format!(
                    "method {method} not allowed on {}; use {allowed}",
                    call.segment()
                ),
            ))
        }
    }
}

fn not_found(path: &str) -> Reply {
    Reply::error(404, format!("no such resource: {}", excerpt(path)))
}

fn bad_json(what: &str, e: &serde_json::Error) -> Reply {
    Reply::error(
        400,
        format!("invalid {what} body: {}", excerpt(&e.to_string())),
    )
}

fn parse_key_id(s: &str) -> Result<KeyId, Reply> {
    KeyId::parse(s).map_err(|e| Reply::error(400, e.to_string()))
}

/// Query parameters as `name=value` pairs (no percent-decoding: valid values never need it).
struct Query<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Query<'a> {
    fn parse(q: &'a str) -> Result<Self, Reply> {
        let pairs: Vec<_> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        if pairs.len() > 32 {
            return Err(Reply::error(400, "too many query parameters"));
        }
        Ok(Self(pairs))
    }

    fn all(&self, name: &str) -> Vec<&'a str> {
        self.0
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .collect()
    }

    fn number(&self, name: &str) -> Result<Option<u32>, Reply> {
        match self.all(name).as_slice() {
            [] => Ok(None),
            [v] => v.parse::<u32>().map(Some).map_err(|_| {
                Reply::error(
                    400,
                    format!(
                        "{name} must be a non-negative integer, got {:?}",
                        excerpt(v)
                    ),
                )
            }),
            _ => Err(Reply::error(400, format!("{name} is given more than once"))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ID: &str = "bc490419-7d60-487f-adc1-4ddcc177c139";

    fn get(path: &str, query: Option<&str>) -> Result<ApiRequest, Reply> {
        parse_request(&Method::GET, path, query, b"")
    }

    fn post(path: &str, body: &str) -> Result<ApiRequest, Reply> {
        parse_request(&Method::POST, path, None, body.as_bytes())
    }

    fn status_of(r: Result<ApiRequest, Reply>) -> u16 {
        r.err().map_or(200, |e| e.status)
    }

    #[test]
    fn every_call_routes() {
        assert!(matches!(
            get("/api/v1/keys/SAE_B/status", None),
            Ok(ApiRequest::Status { .. })
        ));
        let Ok(ApiRequest::EncKeys { request, .. }) = get(
            "/api/v1/keys/SAE_B/enc_keys",
            Some("number=3&size=1024&key_length=256"),
        ) else {
            panic!("enc_keys GET")
        };
        assert_eq!((request.number, request.size), (Some(3), Some(1024)));
        let Ok(ApiRequest::EncKeys { request, .. }) = post("/api/v1/keys/SAE_B/enc_keys", "")
        else {
            panic!("empty POST")
        };
        assert_eq!(request, KeyRequest::default());
        let Ok(ApiRequest::DecKeys { ids, master }) =
            get("/api/v1/keys/SAE_A/dec_keys", Some(&format!("key_ID={ID}")))
        else {
            panic!("dec_keys GET")
        };
        assert_eq!((ids.len(), master.as_str()), (1, "SAE_A"));
        let body = format!(r#"{{"key_IDs":[{{"key_ID":"{ID}","master_SAE_ID":"SAE_A"}}]}}"#);
        assert!(matches!(
            post("/api/v1/keys/SAE_A/dec_keys", &body),
            Ok(ApiRequest::DecKeys { .. })
        ));
    }

    #[test]
    fn malformed_requests_are_400() {
        assert_eq!(
            status_of(get("/api/v1/keys/SAE_B/enc_keys", Some("number=-1"))),
            400
        );
        assert_eq!(
            status_of(get(
                "/api/v1/keys/SAE_B/enc_keys",
                Some("number=1&number=2")
            )),
            400
        );
        assert_eq!(
            status_of(get("/api/v1/keys/SAE_B/enc_keys", Some("size=abc"))),
            400
        );
        assert_eq!(status_of(get("/api/v1/keys/SAE_A/dec_keys", None)), 400);
        assert_eq!(
            status_of(get(
                "/api/v1/keys/SAE_A/dec_keys",
                Some(&format!("key_ID={ID}&key_ID={ID}"))
            )),
            400
        );
        assert_eq!(
            status_of(get("/api/v1/keys/SAE_A/dec_keys", Some("key_ID=42"))),
            400
        );
        assert_eq!(status_of(post("/api/v1/keys/SAE_B/enc_keys", "{")), 400);
        assert_eq!(
            status_of(post("/api/v1/keys/SAE_B/enc_keys", r#"{"number":"3"}"#)),
            400
        );
        assert_eq!(status_of(post("/api/v1/keys/SAE_A/dec_keys", "")), 400);
        assert_eq!(
            status_of(post(
                "/api/v1/keys/SAE_A/dec_keys",
                r#"{"key_IDs":[{"key_ID":"x"}]}"#
            )),
            400
        );
        assert_eq!(status_of(get("/api/v1/keys/SAE%20B/status", None)), 400);
        let many = vec!["a=1"; 40].join("&");
        assert_eq!(
            status_of(get("/api/v1/keys/SAE_B/status", Some(&many))),
            400
        );
    }

    #[test]
    fn unknown_paths_and_methods() {
        assert_eq!(status_of(get("/", None)), 404);
        assert_eq!(status_of(get("/api/v1/keys/SAE_B", None)), 404);
        assert_eq!(status_of(get("/api/v1/keys/SAE_B/status/x", None)), 404);
        assert_eq!(status_of(get("/api/v1/keys/SAE_B/entropy", None)), 404);
        assert_eq!(status_of(post("/api/v1/keys/SAE_B/status", "{}")), 405);
        let put = parse_request(&Method::PUT, "/api/v1/keys/SAE_B/enc_keys", None, b"{}");
        assert_eq!(status_of(put), 405);
    }
}
