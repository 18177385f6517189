//! The API server: Kubernetes' REST interface over the store.
//!
//! Every object lives at a URL made of its group, version, resource, namespace and name
//! (`/apis/apps/v1/namespaces/default/deployments/web`); the HTTP verb says what to do (GET,
//! POST to create, PUT to replace, PATCH, DELETE), `?watch=1` turns a GET into a stream of
//! changes. kubectl first reads *discovery* (`/api`, `/apis`) to learn which resources exist.

pub mod alloc;
pub mod crud;
pub mod defaults;
pub mod discovery;
pub mod http;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod path;
pub mod protobuf;
pub mod render;
pub mod resources;
pub mod selector;
pub mod status;
pub mod table;
pub mod watch;
pub mod watchcache;
