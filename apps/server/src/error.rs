//! Errors as OpenAI's API writes them: a status and
//! `{"error": {"message", "type", "param", "code"}}`, so clients raise their usual exceptions.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use voyager_runtime::{Error, ErrorKind};

/// One failed request.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, ...
    pub kind: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400: the request is wrong; `param` names the field.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_owned),
            code: None,
        }
    }

    /// 400 for a field with a value out of its range.
    pub fn out_of_range(param: &str, message: impl Into<String>) -> Self {
        Self {
            code: Some("invalid_value"),
            ..Self::invalid(Some(param), message)
        }
    }

    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "invalid or missing API key: send `Authorization: Bearer KEY` with the key \
                      the server was started with (--api-key)"
                .into(),
            kind: "authentication_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    pub fn model_not_found(asked: &str, served: &[String]) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "the model `{asked}` does not exist here; this server runs {}",
                served.join(", ")
            ),
            kind: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found"),
        }
    }

    pub fn not_found(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "no route {path}: the server answers /v1/chat/completions, /v1/completions, \
                 /v1/models and /health"
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("unknown_url"),
        }
    }

    pub fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: "this route does not take that method (completions are POST, lists GET)"
                .into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("method_not_allowed"),
        }
    }

    /// 503: every session is busy and the queue is full.
    pub fn busy(parallel: usize, queue: usize) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "the server is busy: {parallel} requests running and {queue} waiting; retry \
                 shortly"
            ),
            kind: "server_error",
            param: None,
            code: Some("server_busy"),
        }
    }

    /// A request body that cannot be read (too large, cut off).
    pub fn body(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: (status == StatusCode::PAYLOAD_TOO_LARGE).then_some("request_too_large"),
        }
    }

    /// The engine's error, by kind: what the caller asked for is a 4xx, the machine a 5xx.
    pub fn engine(e: &Error) -> Self {
        let (status, kind) = match e.kind() {
            ErrorKind::InvalidArgument | ErrorKind::Context => {
                (StatusCode::BAD_REQUEST, "invalid_request_error")
            }
            ErrorKind::Budget => (StatusCode::SERVICE_UNAVAILABLE, "server_error"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        };
        Self {
            status,
            message: e.to_string(),
            kind,
            param: None,
            code: None,
        }
    }

    /// 500: a blocking worker (tokenizing, generating) died instead of answering.
    pub fn worker(e: &tokio::task::JoinError) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("the request's worker failed: {e}"),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    /// The JSON body (also sent as the last event of a stream that fails midway).
    pub fn body_json(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            log::warn!("{} {}", self.status.as_u16(), self.message);
        } else {
            log::info!("{} {}", self.status.as_u16(), self.message);
        }
        (self.status, axum::Json(self.body_json())).into_response()
    }
}
