//! `podlab get services` and `podlab get endpoints`: what the node's service proxy serves,
//! in kubectl's columns.

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use podlab::node::client::Client;
use serde::de::DeserializeOwned;

use super::pod::{GetArgs, Output, print_table};

/// Whether `kind` names Services (`services`, `service`, `svc`).
pub fn is_service_kind(kind: &str) -> bool {
    matches!(kind, "services" | "service" | "svc")
}

/// Whether `kind` names Endpoints (`endpoints`, `ep`).
pub fn is_endpoints_kind(kind: &str) -> bool {
    matches!(kind, "endpoints" | "ep")
}

fn fetch<T: DeserializeOwned>(c: &Client, path: &str) -> anyhow::Result<Vec<T>> {
    let answer = c.get(path).context("ask the node agent (is `podlab node` running?)")?;
    let list: serde_json::Value = answer.json()?;
    Ok(serde_json::from_value(list["items"].clone())?)
}

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// Keep the objects `args` asks for (namespace, name); an unknown name is kubectl's NotFound.
fn pick<T>(
    items: Vec<T>,
    args: &GetArgs,
    kind: &str,
    meta: impl Fn(&T) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> anyhow::Result<Vec<T>> {
    let picked: Vec<T> = items
        .into_iter()
        .filter(|o| args.all_namespaces || namespace_of(meta(o)) == args.namespace)
        .filter(|o| args.name.as_ref().is_none_or(|n| meta(o).name.as_ref() == Some(n)))
        .collect();
    if let Some(name) = &args.name
        && picked.is_empty()
    {
        bail!("Error from server (NotFound): {kind} \"{name}\" not found");
    }
    Ok(picked)
}

/// Print as JSON/YAML/names if asked; true when done.
fn print_as<T: serde::Serialize>(items: &[T], names: &[String], args: &GetArgs, kind: &str) -> anyhow::Result<bool> {
    let whole = || -> serde_json::Value {
        if args.name.is_some() && items.len() == 1 {
            serde_json::to_value(&items[0]).unwrap_or_default()
        } else {
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
        }
    };
    match args.output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&whole())?),
        Some(Output::Yaml) => print!("{}", serde_norway::to_string(&whole())?),
        Some(Output::Name) => names.iter().for_each(|n| println!("{kind}/{n}")),
        _ => return Ok(false),
    }
    Ok(true)
}

/// `podlab get services [NAME] [-n NS | -A] [-o wide|json|yaml|name]`.
pub fn get_services(c: &Client, args: &GetArgs) -> anyhow::Result<i32> {
    let services = pick(fetch::<Service>(c, "/services")?, args, "services", |s| &s.metadata)?;
    let names: Vec<String> = services.iter().map(|s| s.metadata.name.clone().unwrap_or_default()).collect();
    if print_as(&services, &names, args, "service")? {
        return Ok(0);
    }
    if services.is_empty() {
        eprintln!("No resources found in {} namespace.", args.namespace);
        return Ok(0);
    }
    let wide = matches!(args.output, Some(Output::Wide));
    let mut header = vec![];
    if args.all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]);
    if wide {
        header.push("SELECTOR");
    }
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for s in &services {
        let spec = s.spec.clone().unwrap_or_default();
        let mut row = vec![];
        if args.all_namespaces {
            row.push(namespace_of(&s.metadata));
        }
        let ports: Vec<String> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                match p.node_port {
                    Some(n) => format!("{}:{n}/{proto}", p.port),
                    None => format!("{}/{proto}", p.port),
                }
            })
            .collect();
        row.extend([
            s.metadata.name.clone().unwrap_or_default(),
            spec.type_.clone().unwrap_or_else(|| "ClusterIP".into()),
            spec.cluster_ip.clone().unwrap_or_else(|| "<none>".into()),
            "<none>".into(),
            if ports.is_empty() { "<none>".into() } else { ports.join(",") },
        ]);
        if wide {
            let sel = spec.selector.clone().unwrap_or_default();
            let sel: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
            row.push(if sel.is_empty() { "<none>".into() } else { sel.join(",") });
        }
        rows.push(row);
    }
    print_table(&rows);
    Ok(0)
}

/// kubectl's ENDPOINTS column: up to three `ip:port`, then "+ N more...".
fn endpoints_column(e: &Endpoints) -> String {
    let mut all = vec![];
    for subset in e.subsets.iter().flatten() {
        let ports: Vec<i32> = subset.ports.iter().flatten().map(|p| p.port).collect();
        for a in subset.addresses.iter().flatten() {
            if ports.is_empty() {
                all.push(a.ip.clone());
            }
            all.extend(ports.iter().map(|p| format!("{}:{p}", a.ip)));
        }
    }
    match all.len() {
        0 => "<none>".into(),
        1..=3 => all.join(","),
        n => format!("{} + {} more...", all[..3].join(","), n - 3),
    }
}

/// `podlab get endpoints [NAME] [-n NS | -A] [-o json|yaml|name]`.
pub fn get_endpoints(c: &Client, args: &GetArgs) -> anyhow::Result<i32> {
    let eps = pick(fetch::<Endpoints>(c, "/endpoints")?, args, "endpoints", |e| &e.metadata)?;
    let names: Vec<String> = eps.iter().map(|e| e.metadata.name.clone().unwrap_or_default()).collect();
    if print_as(&eps, &names, args, "endpoints")? {
        return Ok(0);
    }
    if eps.is_empty() {
        eprintln!("No resources found in {} namespace.", args.namespace);
        return Ok(0);
    }
    let mut header = vec![];
    if args.all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "ENDPOINTS"]);
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for e in &eps {
        let mut row = vec![];
        if args.all_namespaces {
            row.push(namespace_of(&e.metadata));
        }
        row.extend([e.metadata.name.clone().unwrap_or_default(), endpoints_column(e)]);
        rows.push(row);
    }
    print_table(&rows);
    Ok(0)
}
