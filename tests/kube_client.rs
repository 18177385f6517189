//! The API server driven by a real Rust client, kube-rs: typed create/get/list/patch/replace/
//! delete, a 409 on a stale replace, and kube's watcher following changes.

mod common;

use common::apiserver::Server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;

async fn client(s: &Server) -> kube::Client {
    let kc = Kubeconfig::read_from(&s.kubeconfig).expect("read the kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kubeconfig");
    kube::Client::try_from(cfg).expect("client")
}

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "kube-test"}},
        "data": {"k": value},
    }))
    .unwrap()
}

#[test]
fn kube_rs_client_works_against_the_server() {
    let s = Server::start("kube");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let c = client(&s).await;
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
        // kube's watcher (list, then watch from the list's resourceVersion) in the background.
        let w = watcher(cms.clone(), watcher::Config::default().labels("app=kube-test"));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let follow = tokio::spawn(async move {
            let mut w = std::pin::pin!(w);
            while let Some(ev) = w.next().await {
                match ev {
                    Ok(watcher::Event::Apply(o)) => {
                        let _ = tx.send(format!(
                            "apply {} {}",
                            o.metadata.name.unwrap_or_default(),
                            o.data.unwrap_or_default()["k"]
                        ));
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        let _ = tx.send(format!("delete {}", o.metadata.name.unwrap_or_default()));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(format!("error {e}"));
                    }
                }
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;

        let made = cms.create(&PostParams::default(), &cm("one", "1")).await.expect("create");
        assert!(made.metadata.uid.is_some() && made.metadata.resource_version.is_some());
        let got = cms.get("one").await.expect("get");
        assert_eq!(got.data.as_ref().unwrap()["k"], "1");
        let list = cms.list(&ListParams::default().labels("app=kube-test")).await.expect("list");
        assert_eq!(list.items.len(), 1);
        assert!(list.metadata.resource_version.is_some());

        let patched = cms
            .patch("one", &PatchParams::default(), &Patch::Merge(serde_json::json!({"data": {"k": "2"}})))
            .await
            .expect("merge patch");
        assert_eq!(patched.data.unwrap()["k"], "2");
        // A replace from the old read: 409 Conflict.
        let mut stale = got.clone();
        stale.data = Some([("k".to_string(), "3".to_string())].into());
        match cms.replace("one", &PostParams::default(), &stale).await {
            Err(kube::Error::Api(e)) => assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"), "{e:?}"),
            other => panic!("a stale replace was not refused: {other:?}"),
        }
        match cms.get("nope").await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
            other => panic!("{other:?}"),
        }
        cms.delete("one", &DeleteParams::default()).await.expect("delete");

        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while seen.len() < 3 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => seen.push(e),
                _ => break,
            }
        }
        follow.abort();
        assert_eq!(seen, ["apply one 1", "apply one 2", "delete one"], "the watcher's events");
    });
}
