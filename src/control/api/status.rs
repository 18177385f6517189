//! Errors as the API server answers them: a `Status` object with an HTTP code and a reason.
//!
//! Clients branch on `reason` (NotFound, AlreadyExists, Conflict, Invalid, ...), not on the
//! text: kubectl prints `message`, and for Invalid lists `details.causes`, one per bad field.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::control::store::StoreError;

/// An API error: what the server answers instead of an object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status (name, kind, causes), when there are any.
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { code, reason, message: message.into(), details: None }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn not_found(plural: &str, name: &str) -> ApiError {
        let mut e = ApiError::new(404, "NotFound", format!("{plural} \"{name}\" not found"));
        e.details = Some(json!({"name": name, "kind": plural}));
        e
    }

    pub fn already_exists(plural: &str, name: &str) -> ApiError {
        let mut e = ApiError::new(409, "AlreadyExists", format!("{plural} \"{name}\" already exists"));
        e.details = Some(json!({"name": name, "kind": plural}));
        e
    }

    pub fn conflict(plural: &str, name: &str) -> ApiError {
        let mut e = ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        );
        e.details = Some(json!({"name": name, "kind": plural}));
        e
    }

    /// 422 Invalid with one cause per field, the way `kubectl` prints them:
    /// `The Pod "web" is invalid: spec.containers[0].image: Required value`.
    pub fn invalid(kind: &str, name: &str, causes: &[(String, String)]) -> ApiError {
        let list: Vec<String> =
            causes.iter().map(|(f, m)| if f.is_empty() { m.clone() } else { format!("{f}: {m}") }).collect();
        let message = match list.len() {
            1 => format!("{kind} \"{name}\" is invalid: {}", list[0]),
            _ => format!("{kind} \"{name}\" is invalid: [{}]", list.join(", ")),
        };
        let causes: Vec<Value> =
            causes.iter().map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f})).collect();
        let mut e = ApiError::new(422, "Invalid", message);
        e.details = Some(json!({"name": name, "kind": kind, "causes": causes}));
        e
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    /// An error of a PATCH body, with the code the patch module gives it.
    pub fn from_patch(e: &super::patch::PatchError, what: &str) -> ApiError {
        let code = e.status();
        let reason = match code {
            400 => "BadRequest",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            _ => "Invalid",
        };
        ApiError::new(code, reason, format!("the patch of {what} cannot be applied: {e}"))
    }

    /// The Status object.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }

    /// A store error about the object `plural`/`name`.
    pub fn from_store(e: StoreError, plural: &str, name: &str) -> ApiError {
        match e {
            StoreError::NotFound(_) => ApiError::not_found(plural, name),
            StoreError::AlreadyExists(_) => ApiError::already_exists(plural, name),
            StoreError::Conflict { .. } => ApiError::conflict(plural, name),
            StoreError::Compacted { requested, .. } => {
                ApiError::new(410, "Expired", format!("too old resource version: {requested}"))
            }
            StoreError::Backend(m) => ApiError::internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.status())).into_response()
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_the_fields() {
        let e = ApiError::invalid("Pod", "web", &[("spec.containers[0].image".into(), "Required value".into())]);
        assert_eq!(e.code, 422);
        assert_eq!(e.message, "Pod \"web\" is invalid: spec.containers[0].image: Required value");
        assert_eq!(e.status()["details"]["causes"][0]["field"], "spec.containers[0].image");
        assert_eq!(ApiError::not_found("pods", "x").status()["reason"], "NotFound");
    }
}
