//! How objects and lists go out: as they are, or as a Table when kubectl asks for one.
//! (Table printing comes with the table module; until then objects go out as they are.)

use std::collections::HashMap;

use serde_json::Value;

use super::resources::Resource;
use super::watch::Render;

pub fn list(_r: &Resource, list: &Value, _accept: &str, _q: &HashMap<String, String>) -> Value {
    list.clone()
}

pub fn one(_r: &Resource, v: &Value, _accept: &str, _q: &HashMap<String, String>) -> Value {
    v.clone()
}

pub fn watch_renderer(_r: &'static Resource, _accept: &str, _q: &HashMap<String, String>) -> Option<Render> {
    None
}
