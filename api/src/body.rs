//! The JSON body extractor of every handler: axum's `Json`, except that the body must be a
//! JSON object. serde reads a struct from an array too (`[null, null]` is an
//! `UpdateUserBody` with both fields absent), and a `Value` body from anything, so a
//! body outside its documented `type: object` was accepted (ADR 0024).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A request body that is a JSON object deserialised into `T`. Rejections are axum's
/// (415 without a JSON content type, 400 for malformed JSON, 422 when it does not fit `T`),
/// plus 422 `invalid-body` for valid JSON that is not an object.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonObject<T>(pub T);

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

impl<T, S> FromRequest<S> for JsonObject<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            // axum's own rejection (415), read to the end like every other.
            return Json::<T>::from_request(req, state)
                .await
                .map(|Json(v)| JsonObject(v))
                .map_err(IntoResponse::into_response);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
        // Not an object: refused as such, unless it is not JSON at all (axum's 400 then).
        if first.is_some_and(|b| b != b'{')
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
        {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "Unprocessable Entity",
            )
            .with_detail("the body must be a JSON object")
            .into_response());
        }
        Json::<T>::from_bytes(&bytes)
            .map(|Json(v)| JsonObject(v))
            .map_err(IntoResponse::into_response)
    }
}
