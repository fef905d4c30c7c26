//! Criterion benchmark of spawn → wait of `/bin/true`:
//! - `tokio_process`: plain `tokio::process::Command` (no isolation), the baseline;
//! - `pid_uts_ipc_mnt`: those four namespaces, the host's tree with a fresh `/proc`;
//! - `plus_user`: and a user namespace (uid/gid maps written over the handshake);
//! - `plus_net`: and a network namespace with `lo` up;
//! - `default`: `Sandbox::new()`: every namespace and the built-in init;
//!
//! the program is PID 1 unless the name ends in `_init` (or is `default`). The
//! `throughput` group spawns 8 sandboxes at once.
//!
//! `benches/compare.sh` puts the same configurations side by side with the C clone loop,
//! hakoniwa and bubblewrap in one run.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sandbox_core::{Namespace, Network, Sandbox};
use std::time::{Duration, Instant};

fn configs() -> Vec<(&'static str, Sandbox)> {
    let base = Sandbox::new()
        .init(false)
        .share(Namespace::Cgroup)
        .share(Namespace::Time);
    let pid_uts_ipc_mnt = base.clone().share(Namespace::User).share(Namespace::Net);
    let plus_user = base.clone().share(Namespace::Net);
    let plus_net = base.network(Network::loopback());
    vec![
        ("pid_uts_ipc_mnt", pid_uts_ipc_mnt.clone()),
        ("pid_uts_ipc_mnt_init", pid_uts_ipc_mnt.init(true)),
        ("plus_user", plus_user),
        ("plus_net", plus_net),
        ("default", Sandbox::new()),
    ]
}

fn spawn(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("spawn_wait_true");
    g.sample_size(30)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("tokio_process", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    let s = tokio::process::Command::new("/bin/true")
                        .status()
                        .await
                        .unwrap();
                    assert!(s.success());
                }
                t.elapsed()
            })
        })
    });
    for (name, sandbox) in configs() {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        let o = sandbox.command("/bin/true").status().await.unwrap();
                        assert!(o.success());
                    }
                    t.elapsed()
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("throughput");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(8));
    let sandbox = Sandbox::new();
    g.bench_function("default_8_in_flight", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    let all = (0..8).map(|_| {
                        let s = sandbox.clone();
                        tokio::spawn(async move { s.command("/bin/true").status().await })
                    });
                    for h in futures::future::join_all(all).await {
                        assert!(h.unwrap().unwrap().success());
                    }
                }
                t.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, spawn);
criterion_main!(benches);
