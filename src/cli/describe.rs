//! `podlab describe pod`: the pod in kubectl's describe layout, with its events.

use std::fmt::Write;

use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod};
use podlab::pod::status::Event;

fn state_lines(out: &mut String, title: &str, s: &ContainerState) {
    if let Some(r) = &s.running {
        let _ = writeln!(out, "    {title}:          Running");
        if let Some(t) = &r.started_at {
            let _ = writeln!(out, "      Started:      {}", t.0);
        }
    } else if let Some(w) = &s.waiting {
        let _ = writeln!(out, "    {title}:          Waiting");
        let _ = writeln!(out, "      Reason:       {}", w.reason.clone().unwrap_or_default());
        if let Some(m) = &w.message {
            let _ = writeln!(out, "      Message:      {m}");
        }
    } else if let Some(t) = &s.terminated {
        let _ = writeln!(out, "    {title}:          Terminated");
        let _ = writeln!(out, "      Reason:       {}", t.reason.clone().unwrap_or_default());
        if let Some(m) = &t.message {
            let _ = writeln!(out, "      Message:      {m}");
        }
        let _ = writeln!(out, "      Exit Code:    {}", t.exit_code);
        if let Some(s) = t.signal {
            let _ = writeln!(out, "      Signal:       {s}");
        }
        if let Some(x) = &t.started_at {
            let _ = writeln!(out, "      Started:      {}", x.0);
        }
        if let Some(x) = &t.finished_at {
            let _ = writeln!(out, "      Finished:     {}", x.0);
        }
    } else {
        let _ = writeln!(out, "    {title}:          <none>");
    }
}

fn container(out: &mut String, c: &k8s_openapi::api::core::v1::Container, st: Option<&ContainerStatus>) {
    let _ = writeln!(out, "  {}:", c.name);
    if let Some(s) = st.and_then(|s| s.container_id.clone()) {
        let _ = writeln!(out, "    Container ID:   {s}");
    }
    let _ = writeln!(out, "    Image:          {}", c.image.clone().unwrap_or_default());
    if let Some(s) = st {
        let _ = writeln!(out, "    Image ID:       {}", s.image_id);
    }
    let ports: Vec<String> = c
        .ports
        .iter()
        .flatten()
        .map(|p| format!("{}/{}", p.container_port, p.protocol.clone().unwrap_or_else(|| "TCP".into())))
        .collect();
    if !ports.is_empty() {
        let _ = writeln!(out, "    Port:           {}", ports.join(", "));
    }
    if let Some(cmd) = &c.command {
        let _ = writeln!(out, "    Command:        {}", cmd.join(" "));
    }
    if let Some(args) = &c.args {
        let _ = writeln!(out, "    Args:           {}", args.join(" "));
    }
    if let Some(s) = st {
        state_lines(out, "State", &s.state.clone().unwrap_or_default());
        if let Some(last) = &s.last_state
            && (last.terminated.is_some() || last.running.is_some() || last.waiting.is_some())
        {
            state_lines(out, "Last State", last);
        }
        let _ = writeln!(out, "    Ready:          {}", if s.ready { "True" } else { "False" });
        let _ = writeln!(out, "    Restart Count:  {}", s.restart_count);
    }
    if let Some(r) = &c.resources {
        for (title, map) in [("Limits", &r.limits), ("Requests", &r.requests)] {
            if let Some(m) = map {
                let _ = writeln!(out, "    {title}:");
                for (k, v) in m {
                    let _ = writeln!(out, "      {k}:  {}", v.0);
                }
            }
        }
    }
    for (title, p) in
        [("Liveness", &c.liveness_probe), ("Readiness", &c.readiness_probe), ("Startup", &c.startup_probe)]
    {
        if let Some(p) = p {
            let what = if let Some(h) = &p.http_get {
                format!(
                    "http-get {}:{:?}{}",
                    h.host.clone().unwrap_or_default(),
                    h.port,
                    h.path.clone().unwrap_or_default()
                )
            } else if let Some(t) = &p.tcp_socket {
                format!("tcp-socket :{:?}", t.port)
            } else if let Some(e) = &p.exec {
                format!("exec [{}]", e.command.clone().unwrap_or_default().join(" "))
            } else {
                "?".into()
            };
            let _ = writeln!(
                out,
                "    {title}:{:w$}{what} delay={}s timeout={}s period={}s #success={} #failure={}",
                "",
                p.initial_delay_seconds.unwrap_or(0),
                p.timeout_seconds.unwrap_or(1),
                p.period_seconds.unwrap_or(10),
                p.success_threshold.unwrap_or(1),
                p.failure_threshold.unwrap_or(3),
                w = 16 - title.len() - 1
            );
        }
    }
    let env = c.env.clone().unwrap_or_default();
    if !env.is_empty() {
        let _ = writeln!(out, "    Environment:");
        for e in env {
            let v = e.value.clone().unwrap_or_else(|| "<set from a reference>".into());
            let _ = writeln!(out, "      {}:  {v}", e.name);
        }
    }
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    if !mounts.is_empty() {
        let _ = writeln!(out, "    Mounts:");
        for m in mounts {
            let ro = if m.read_only == Some(true) { "ro" } else { "rw" };
            let _ = writeln!(out, "      {} from {} ({ro})", m.mount_path, m.name);
        }
    }
}

/// The whole text of `describe pod`.
pub fn pod(p: &Pod, events: &[Event]) -> String {
    let mut out = String::new();
    let spec = p.spec.clone().unwrap_or_default();
    let status = p.status.clone().unwrap_or_default();
    let m = &p.metadata;
    let kv = |map: &Option<std::collections::BTreeMap<String, String>>| -> String {
        let list: Vec<String> = map.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
        if list.is_empty() { "<none>".into() } else { list.join("\n              ") }
    };
    let _ = writeln!(out, "Name:             {}", m.name.clone().unwrap_or_default());
    let _ = writeln!(out, "Namespace:        {}", m.namespace.clone().unwrap_or_default());
    let _ = writeln!(out, "Priority:         0");
    let _ = writeln!(
        out,
        "Node:             {}/{}",
        spec.node_name.clone().unwrap_or_default(),
        status.host_ip.clone().unwrap_or_default()
    );
    if let Some(t) = &status.start_time {
        let _ = writeln!(out, "Start Time:       {}", t.0);
    }
    let _ = writeln!(out, "Labels:           {}", kv(&m.labels));
    let _ = writeln!(out, "Annotations:      {}", kv(&m.annotations));
    let _ = writeln!(
        out,
        "Status:           {}",
        if m.deletion_timestamp.is_some() { "Terminating".into() } else { status.phase.clone().unwrap_or_default() }
    );
    let _ = writeln!(out, "IP:               {}", status.pod_ip.clone().unwrap_or_default());
    let _ = writeln!(out, "UID:              {}", m.uid.clone().unwrap_or_default());
    let statuses =
        |list: &Option<Vec<ContainerStatus>>, name: &str| list.iter().flatten().find(|s| s.name == name).cloned();
    if let Some(inits) = &spec.init_containers {
        let _ = writeln!(out, "Init Containers:");
        for c in inits {
            container(&mut out, c, statuses(&status.init_container_statuses, &c.name).as_ref());
        }
    }
    let _ = writeln!(out, "Containers:");
    for c in &spec.containers {
        container(&mut out, c, statuses(&status.container_statuses, &c.name).as_ref());
    }
    let _ = writeln!(out, "Conditions:\n  Type                        Status");
    for c in status.conditions.iter().flatten() {
        let _ = writeln!(out, "  {:<27} {}", c.type_, c.status);
    }
    let vols = spec.volumes.clone().unwrap_or_default();
    let _ = writeln!(out, "Volumes:{}", if vols.is_empty() { "          <none>" } else { "" });
    for v in vols {
        let kind = if v.empty_dir.is_some() {
            "EmptyDir (a temporary directory that shares a pod's lifetime)"
        } else if v.host_path.is_some() {
            "HostPath (bare host directory volume)"
        } else if v.config_map.is_some() {
            "ConfigMap (a volume populated by a ConfigMap)"
        } else if v.secret.is_some() {
            "Secret (a volume populated by a Secret)"
        } else if v.downward_api.is_some() {
            "DownwardAPI (a volume populated by information about the pod)"
        } else if v.projected.is_some() {
            "Projected (a volume that contains injected data from multiple sources)"
        } else {
            "other"
        };
        let _ = writeln!(out, "  {}:\n    Type:       {kind}", v.name);
    }
    let _ = writeln!(out, "QoS Class:        {}", status.qos_class.clone().unwrap_or_default());
    if events.is_empty() {
        let _ = writeln!(out, "Events:           <none>");
    } else {
        let _ = writeln!(out, "Events:");
        let mut rows = vec![vec!["  Type".to_string(), "Reason".into(), "Age".into(), "From".into(), "Message".into()]];
        rows.push(vec!["  ----".into(), "------".into(), "----".into(), "----".into(), "-------".into()]);
        for e in events {
            let age = e
                .time
                .parse::<k8s_openapi::jiff::Timestamp>()
                .map(|t| {
                    let secs = podlab::pod::status::timestamp_now().duration_since(t).as_secs().max(0) as u64;
                    super::pod::age(std::time::Duration::from_secs(secs))
                })
                .unwrap_or_default();
            rows.push(vec![format!("  {}", e.kind), e.reason.clone(), age, "podlab-node".into(), e.message.clone()]);
        }
        let widths: Vec<usize> = (0..5).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for r in rows {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| if i == 4 { c.clone() } else { format!("{c:<w$}", w = widths[i]) })
                .collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
        }
    }
    out
}
