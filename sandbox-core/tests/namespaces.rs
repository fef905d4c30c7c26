//! Every namespace a sandbox creates has an id different from the host's, and every one it
//! shares the host's (read from the host: the inodes of `/proc/<pid>/ns/*`); without a
//! user namespace of its own, root may share any namespace it asks for.
mod common;
use sandbox_core::{Namespace, NamespaceIds, Sandbox};

async fn ids_of(sandbox: Sandbox) -> NamespaceIds {
    common::while_running(&sandbox, |child| {
        let ids = child.namespace_ids().unwrap();
        // The same numbers as the host's own reading of the init's /proc entries.
        assert_eq!(ids, NamespaceIds::of_pid(child.id().unwrap()).unwrap());
        ids
    })
    .await
}

#[tokio::test]
async fn every_namespace_is_new_by_default() {
    common::require_root();
    let host = NamespaceIds::of_self().unwrap();
    let ids = ids_of(Sandbox::new()).await;
    for ns in Namespace::ALL {
        assert_ne!(ids.get(ns), host.get(ns), "{ns} namespace should be new");
    }
}

#[tokio::test]
async fn shared_namespaces_are_the_hosts() {
    common::require_root();
    let host = NamespaceIds::of_self().unwrap();
    let shared = [
        Namespace::Net,
        Namespace::Ipc,
        Namespace::Time,
        Namespace::Cgroup,
    ];
    let mut s = Sandbox::new();
    for ns in shared {
        s = s.share(ns);
    }
    let ids = ids_of(s).await;
    for ns in Namespace::ALL {
        if shared.contains(&ns) {
            assert_eq!(ids.get(ns), host.get(ns), "{ns} namespace should be shared");
        } else {
            assert_ne!(ids.get(ns), host.get(ns), "{ns} namespace should be new");
        }
    }
}

#[tokio::test]
async fn without_a_user_namespace_root_shares_everything_it_asks() {
    common::require_root();
    let host = NamespaceIds::of_self().unwrap();
    let ids = ids_of(Sandbox::new().share(Namespace::User).share(Namespace::Pid)).await;
    assert_eq!(ids.user, host.user);
    assert_eq!(ids.pid, host.pid);
    assert_ne!(ids.mnt, host.mnt);
    assert_ne!(ids.uts, host.uts);
}
