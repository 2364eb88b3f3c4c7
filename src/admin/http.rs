//! Small HTTP helpers: bounded body reading, strict JSON, query strings, and
//! response building.

use super::error::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{header, Request, Response, StatusCode};
use serde::de::DeserializeOwned;

pub const MAX_BODY: usize = 64 * 1024;

pub type Resp = Response<Full<Bytes>>;

/// Reads at most 64 KiB; a declared or actual larger body is a 413. An empty
/// body parses as `{}` so optional-body routes accept no body at all.
pub async fn json_body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        let n: usize = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ApiError::bad_request("invalid Content-Length"))?;
        if n > MAX_BODY {
            return Err(ApiError::too_large());
        }
    }
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::too_large()
            } else {
                ApiError::bad_request(format!("could not read the request body: {e}"))
            }
        })?
        .to_bytes();
    parse_json(&body)
}

/// The strict body parse on its own, so it can be tested and fuzzed without
/// a connection. An empty body parses as `{}`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if body.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}"
    } else {
        body
    };
    // serde's derived structs also accept a positional array (`["cache","10m"]`);
    // the API takes objects only. Checked on the bytes, not through a `Value`,
    // which would silently merge duplicate keys that the struct parse rejects.
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid JSON body: expected a JSON object",
        ));
    }
    serde_json::from_slice(text)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

pub fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

pub fn text(status: StatusCode, body: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub fn error(e: &ApiError) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(e.body())));
    *r.status_mut() = e.status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if e.status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

/// Decoded `key=value` pairs of a query string; malformed escapes are a 400.
pub fn query_pairs(q: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for part in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((pct_decode(k)?, pct_decode(v)?));
    }
    Ok(out)
}

fn pct_decode(s: &str) -> Result<String, ApiError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .ok_or_else(|| ApiError::bad_request("bad % escape in query"))?;
                let s = std::str::from_utf8(hex)
                    .map_err(|_| ApiError::bad_request("bad % escape in query"))?;
                out.push(
                    u8::from_str_radix(s, 16)
                        .map_err(|_| ApiError::bad_request("bad % escape in query"))?,
                );
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request("query is not UTF-8"))
}

/// Query parameters of a route: unknown ones are a 400, like unknown JSON fields.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>, allowed: &[&str]) -> Result<Query, ApiError> {
        let pairs = query_pairs(q)?;
        for (k, _) in &pairs {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {k:?}; allowed: {}",
                    allowed.join(", ")
                )));
            }
        }
        Ok(Query(pairs))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// `limit`, default 100, at most 1000: list sizes stay bounded.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.get("limit") {
            None => Ok(100),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(
                    "limit must be an integer from 1 to 1000",
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_json;
    use crate::admin::bodies::{CreateRequest, Empty, Reason};

    #[test]
    fn bodies_are_strict_objects() {
        let b: CreateRequest = parse_json(br#"{"target":"cache","duration":"1h"}"#).unwrap();
        assert_eq!(
            (b.target.as_str(), b.duration.as_deref()),
            ("cache", Some("1h"))
        );
        assert!(parse_json::<Empty>(b" \n").is_ok());
        for bad in [
            &br#"["cache","10m"]"#[..],
            br#"{"reason":"a","reason":"b"}"#,
            br#"{"reason":"a","x":1}"#,
            b"{",
            b"\xff",
        ] {
            let e = parse_json::<Reason>(bad).err().expect("rejected");
            assert_eq!(e.status.as_u16(), 400, "{bad:?}");
        }
    }
}
