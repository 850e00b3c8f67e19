//! Response bodies: JSON documents, `Status` errors, and watch streams.

use std::io;

use bytes::Bytes;
use futures_util::Stream;
use http::{Response, StatusCode, header};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use serde_json::Value;

use super::status::ApiError;

/// Every response body: a whole document, or a stream.
pub(super) type Body = UnsyncBoxBody<Bytes, io::Error>;

pub(super) fn json(code: StatusCode, document: &Value) -> Response<Body> {
    let body = Full::new(Bytes::from(document.to_string())).map_err(|never| match never {});
    let mut response = Response::new(body.boxed_unsync());
    *response.status_mut() = code;
    let json = header::HeaderValue::from_static("application/json");
    response.headers_mut().insert(header::CONTENT_TYPE, json);
    response
}

pub(super) fn error(e: &ApiError) -> Response<Body> {
    json(e.code, &e.status())
}

pub(super) fn text(code: StatusCode, text: &'static str) -> Response<Body> {
    let body = Full::new(Bytes::from_static(text.as_bytes())).map_err(|never| match never {});
    let mut response = Response::new(body.boxed_unsync());
    *response.status_mut() = code;
    response
}

/// A `200` whose body is `frames`, sent as they come (chunked on HTTP/1.1).
pub(super) fn stream(
    frames: impl Stream<Item = Result<Frame<Bytes>, io::Error>> + Send + 'static,
) -> Response<Body> {
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    let json = header::HeaderValue::from_static("application/json");
    response.headers_mut().insert(header::CONTENT_TYPE, json);
    response
}
