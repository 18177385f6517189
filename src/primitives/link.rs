//! PLACEHOLDER by the lead so the crate compiles; helper-1 replaces this file.
#![allow(unused)]
use crate::error::{Error, Result};
use std::net::IpAddr;
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkInfo {
    pub name: String,
    pub index: u32,
    pub up: bool,
    pub kind: Option<String>,
    pub master: Option<String>,
    pub addrs: Vec<String>,
}
pub fn create_veth(netns: Option<&str>, name: &str, peer: &str, peer_netns: Option<&str>) -> Result<()> {
    Err(Error::Missing("veth".into()))
}
pub fn create_bridge(netns: Option<&str>, name: &str) -> Result<()> {
    Err(Error::Missing("bridge".into()))
}
pub fn set_master(netns: Option<&str>, link: &str, bridge: &str) -> Result<()> {
    Err(Error::Missing("x".into()))
}
pub fn set_up(netns: Option<&str>, link: &str) -> Result<()> {
    Ok(())
}
pub fn set_down(netns: Option<&str>, link: &str) -> Result<()> {
    Ok(())
}
pub fn add_addr(netns: Option<&str>, link: &str, cidr: &str) -> Result<()> {
    Err(Error::Missing("x".into()))
}
pub fn add_route(
    netns: Option<&str>,
    dst_cidr: Option<&str>,
    gateway: Option<IpAddr>,
    dev: Option<&str>,
) -> Result<()> {
    Err(Error::Missing("x".into()))
}
pub fn delete(netns: Option<&str>, link: &str) -> Result<()> {
    Ok(())
}
pub fn exists(netns: Option<&str>, link: &str) -> bool {
    false
}
pub fn list(netns: Option<&str>) -> Result<Vec<LinkInfo>> {
    Ok(vec![])
}
pub fn get(netns: Option<&str>, link: &str) -> Result<Option<LinkInfo>> {
    Ok(None)
}
