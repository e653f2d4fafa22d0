//! Request bodies as Flinks clients really send them (`docs/flinks-wire.md`, "Request parsing"):
//! keys in any case, booleans as JSON booleans or strings, no `Content-Type`, or no body at all.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde_json::{Map, Value};

use crate::error::{ApiError, FlinksCode, Reason};

/// Path parameters, whose rejections also leave as the envelope.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParams<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::invalid_request(
            Reason::PathInvalid,
            format!("The path could not be read: {rejection}."),
        )
    }
}

/// The largest body bankgate reads.
pub const BODY_LIMIT: usize = 64 * 1024;
/// How long a client may take to send its body.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The raw body, read within [`BODY_LIMIT`]; parse it with [`parse`] when the handler is ready.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(body_rejection)
    }
}

/// A JSON body parsed leniently into `T` (see [`parse`]).
pub struct FlinksJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for FlinksJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse(&bytes).map(FlinksJson)
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large_error()
    } else {
        unreadable_error(&rejection)
    }
}

/// A body that could not be read: too slow (the body read timeout), or cut off.
fn unreadable_error(error: &(dyn std::error::Error + 'static)) -> ApiError {
    let timed_out = std::iter::successors(Some(error), |error| error.source())
        .any(|error| error.is::<tower_http::timeout::TimeoutError>());
    let hint = if timed_out {
        "The request body did not arrive within the body read timeout (--body-read-timeout, 30s \
         by default); send the whole body at once, with a Content-Length that matches it."
    } else {
        "The request body could not be read."
    };
    ApiError::invalid_request(Reason::BodyUnreadable, hint)
}

/// Reads a whole body within [`BODY_LIMIT`], for handlers that must act before refusing one.
pub async fn read(body: axum::body::Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|error| {
            let error = error.into_inner();
            if error.is::<http_body_util::LengthLimitError>() {
                too_large_error()
            } else {
                unreadable_error(&*error)
            }
        })
}

fn too_large_error() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        FlinksCode::InvalidRequest,
        "The request is invalid",
        Reason::BodyTooLarge,
        format!("Request bodies are limited to {} KiB.", BODY_LIMIT / 1024),
    )
}

/// Parses a body: empty means `{}`; top-level keys match `T`'s field names whatever their
/// case; unknown keys are ignored by `T`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice::<Value>(bytes).map_err(|error| {
            let hint = if looks_form_encoded(bytes) {
                "The body is form-encoded (name=value&…); Flinks endpoints take a JSON object \
                 with Content-Type: application/json."
                    .to_owned()
            } else {
                format!("The body is not valid JSON ({error}); send a JSON object.")
            };
            ApiError::invalid_request(Reason::BodyNotJson, hint)
        })?
    };
    let Value::Object(fields) = value else {
        return Err(ApiError::invalid_request(
            Reason::BodyNotObject,
            "The body must be a JSON object.",
        ));
    };
    // Only the top level: nested keys (MFA prompts) are data and keep their case.
    let names = field_names::<T>();
    let renamed: Map<String, Value> = fields
        .into_iter()
        .map(|(key, value)| {
            let declared = names.iter().find(|name| name.eq_ignore_ascii_case(&key));
            (declared.map_or(key, |name| (*name).to_owned()), value)
        })
        .collect();
    serde_json::from_value(Value::Object(renamed.clone())).map_err(|error| {
        // serde_json's error loses the field's name: find it by parsing one field at a time.
        // (Only for bodies whose fields are all optional; else every field alone would fail.)
        let all_optional = serde_json::from_value::<T>(Value::Object(Map::new())).is_ok();
        let culprit = renamed
            .iter()
            .filter(|_| all_optional)
            .find(|(key, value)| {
                let alone = Map::from_iter([((*key).clone(), (*value).clone())]);
                serde_json::from_value::<T>(Value::Object(alone)).is_err()
            });
        let hint = match culprit {
            Some((key, value)) => format!(
                "The field {key} is {}, which it cannot be ({error}).",
                json_kind(value)
            ),
            None => format!("The body has a field of the wrong type: {error}."),
        };
        ApiError::invalid_request(Reason::BodyInvalid, hint)
    })
}

/// How a JSON value reads in a hint.
fn json_kind(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Whether a body that is not JSON looks form-encoded (`LoginId=…&MostRecentCached=true`).
fn looks_form_encoded(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    !text.starts_with(['{', '[', '"'])
        && text.contains('=')
        && text.split('&').all(|pair| {
            pair.split_once('=')
                .is_some_and(|(name, _)| !name.is_empty())
        })
}

/// The response header naming the top-level body fields the endpoint did not read (bankgate's
/// addition): unknown fields are accepted as Flinks accepts them (`docs/flinks-wire.md`, "Request
/// parsing"), but `most_recent_cached` silently turning a cached read into a live refresh, or
/// `NumberOfBankingStatements` silently taking the default, should be visible to someone.
pub const IGNORED_FIELDS_HEADER: &str = "x-bankgate-ignored-fields";

/// The top-level keys of a JSON object body that `T` does not read, in the caller's spelling
/// (only those a header can carry).
pub fn ignored_fields<'de, T: Deserialize<'de>>(bytes: &[u8]) -> Vec<String> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let names = field_names::<T>();
    fields
        .keys()
        .filter(|key| !names.iter().any(|name| name.eq_ignore_ascii_case(key)))
        .filter(|key| key.bytes().all(|b| b.is_ascii_graphic() && b != b','))
        .take(20)
        .cloned()
        .collect()
}

/// Adds [`IGNORED_FIELDS_HEADER`] to a response when some fields were not read.
pub fn mark_ignored(
    mut response: axum::response::Response,
    ignored: &[String],
) -> axum::response::Response {
    if !ignored.is_empty()
        && let Ok(value) = axum::http::HeaderValue::from_str(&ignored.join(", "))
    {
        response.headers_mut().insert(IGNORED_FIELDS_HEADER, value);
    }
    response
}

/// The field names a struct deserializes, as serde declares them (after its renames): asked of
/// `T` by a deserializer that records them and stops.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Names(Option<&'static [&'static str]>);

    #[derive(Debug)]
    struct Stop;

    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names read")
        }
    }

    impl std::error::Error for Stop {}

    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }

    impl<'de> Deserializer<'de> for &mut Names {
        type Error = Stop;

        fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_struct<V: de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut names = Names(None);
    let _ = T::deserialize(&mut names);
    names.0.unwrap_or(&[])
}

/// A boolean sent as `true`, `"true"`, `"True"`…; `null` counts as absent.
pub fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        Bool(bool),
        Text(String),
    }
    match Option::<Lenient>::deserialize(deserializer) {
        Ok(None) => Ok(None),
        Ok(Some(Lenient::Bool(b))) => Ok(Some(b)),
        Ok(Some(Lenient::Text(text))) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(de::Error::custom(format!(
                "expected true or false, got {text:?}"
            ))),
        },
        Err(_) => Err(de::Error::custom("expected a boolean (true or false)")),
    }
}

/// A body whose fields are all ignored; still has to be JSON if present.
#[derive(Debug, Default, Deserialize)]
pub struct AnyObject {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Sample {
        #[serde(rename = "loginid")]
        login_id: Option<String>,
        #[serde(
            rename = "mostrecentcached",
            default,
            deserialize_with = "lenient_bool"
        )]
        most_recent_cached: Option<bool>,
        #[serde(rename = "nested")]
        nested: Option<Map<String, Value>>,
    }

    #[test]
    fn keys_any_case_and_string_booleans() {
        let s: Sample = parse(
            br#"{"LOGINID":"x","MostRecentCached":"True","Nested":{"Keep Case?":1},"Other":3}"#,
        )
        .unwrap();
        assert_eq!(s.login_id.as_deref(), Some("x"));
        assert_eq!(s.most_recent_cached, Some(true));
        assert!(s.nested.unwrap().contains_key("Keep Case?"));
    }

    #[test]
    fn empty_body_is_an_empty_object() {
        let s: Sample = parse(b"  ").unwrap();
        assert_eq!(
            s,
            Sample {
                login_id: None,
                most_recent_cached: None,
                nested: None
            }
        );
    }

    #[test]
    fn bad_bodies_name_their_problem() {
        assert_eq!(
            parse::<Sample>(b"{").unwrap_err().reason,
            Reason::BodyNotJson
        );
        assert_eq!(
            parse::<Sample>(b"[1]").unwrap_err().reason,
            Reason::BodyNotObject
        );
        assert_eq!(
            parse::<Sample>(br#"{"loginid":5}"#).unwrap_err().reason,
            Reason::BodyInvalid
        );
        assert_eq!(
            parse::<Sample>(br#"{"mostrecentcached":"yes"}"#)
                .unwrap_err()
                .reason,
            Reason::BodyInvalid
        );
        assert_eq!(
            parse::<Sample>(br#"{"mostrecentcached":1}"#)
                .unwrap_err()
                .status,
            400
        );
    }
}
