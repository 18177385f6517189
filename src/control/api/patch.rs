//! PATCH bodies (a placeholder until the patch module lands).
use serde_json::Value;

use super::resources::Resource;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(String);

pub fn apply(_r: &Resource, _current: &Value, _patch: &[u8], _ty: PatchType) -> Result<Value, PatchError> {
    Err(PatchError("not yet".into()))
}
