//! Spawn latency and throughput of sandbox-core, measured the way `benches/peers/floor.c`
//! measures the kernel's floor: N sequential spawn→wait of a program, per-spawn times,
//! median; or a total rate with P spawns in flight at once. Used by `benches/compare.sh`
//! to put every peer side by side in one run; `cargo bench --bench spawn` has the
//! criterion version.
//!
//! ```text
//! cargo bench --bench spawn_loop -- [-n N] [-j P] [-x PROGRAM] [--rootfs DIR] [--heap-mb M]
//!     [--root host|host-ro|dir|overlay|image] [--image PATH] [--image-cache DIR] CONFIG...
//! ```
//! CONFIG is one of `tokio` (plain `tokio::process`), `base` (pid+uts+ipc+mnt), `user`
//! (+user), `net` (+net, loopback), `all` (every namespace), each with `-init` appended to
//! run the built-in init. Output lines: `OURS config=... n=... median_us=...` (like floor's).
//! `--root` picks the root filesystem kind (`dir` and `overlay` over `--rootfs DIR`, `image`
//! from `--image`); `--rootfs DIR` alone means `dir`. `--net none|loopback|bridge` sets the
//! network (`bridge` creates a bridge `sbxbench0` on 10.99.0.0/16 first, and removes it:
//! run it in a network namespace of its own, as `benches/network.sh` does).
//! `--cgroup` gives every sandbox a cgroup (memory and pids limits). `--seccomp off`
//! loads no seccomp filter (the default profile otherwise).
//! `--duration S` spawns sequentially for S seconds and prints the rate of each 5 s window
//! (does throughput hold while the kernel tears namespaces down?).
//! `--pool N` runs every program through a [`Pool`] of N sandboxes made ahead (fresh: each
//! used once), so a spawn is a take, a request to the waiting init and its `execve`.
//! `--reuse` (with `--pool N`) makes it a reused pool: each sandbox runs program after
//! program, reset by its init in between (needs a read-only root: `--root host-ro`).
//! `--pace MS` sleeps MS between sequential spawns, untimed (a pool refills meanwhile).
//! `--timeline` (built with `--features timeline`) spawns sequentially and prints, for every
//! stage of a spawn and its wait (the caller's, the child's, each step of the mount plan), the
//! median time since the spawn began at which it ended and the median step from the stage
//! before: where the time of a spawn goes.

use sandbox_core::{Command, Namespace, Network, Pool, Rootfs, Sandbox};
use std::time::Instant;

fn sandbox(config: &str, rootfs: &Option<Rootfs>) -> Option<Sandbox> {
    let (base, init) = match config.strip_suffix("-init") {
        Some(b) => (b, true),
        None => (config, false),
    };
    let s = Sandbox::new().init(init);
    let s = match base {
        "base" => s
            .share(Namespace::User)
            .share(Namespace::Net)
            .share(Namespace::Cgroup)
            .share(Namespace::Time),
        "user" => s
            .share(Namespace::Net)
            .share(Namespace::Cgroup)
            .share(Namespace::Time),
        "net" => s
            .share(Namespace::Cgroup)
            .share(Namespace::Time)
            .network(Network::loopback()),
        "all" => s,
        _ => return None,
    };
    Some(match rootfs {
        Some(r) => s.rootfs(r.clone()),
        None => s,
    })
}

async fn once(config: &str, sb: &Option<Sandbox>, pool: &Option<Pool>, program: &str) {
    match (sb, pool) {
        (_, Some(p)) => {
            let o = p.status(&Command::new(program)).await.expect("spawn");
            assert!(o.success(), "{config}: {o:?}");
        }
        (Some(s), None) => {
            let o = s.command(program).status().await.expect("spawn");
            assert!(o.success(), "{config}: {o:?}");
        }
        (None, None) => {
            let o = tokio::process::Command::new(program)
                .status()
                .await
                .expect("spawn");
            assert!(o.success());
        }
    }
}

/// `RUNTIME=current` measures on a current-thread runtime; the default is a multi-thread
/// runtime with 2 workers (the loop runs on a worker, as an application's tasks do).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let current = std::env::var("RUNTIME").is_ok_and(|r| r == "current");
    let rt = if current {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
    .expect("runtime");
    rt.block_on(async move { tokio::spawn(measure(args)).await.expect("measure") });
}

/// The command line: how many spawns, how, of what, in which configurations.
struct Options {
    /// Spawns per configuration (`-n`).
    n: usize,
    /// Spawns in flight at once (`-j`); 0 measures each sequential spawn instead.
    jobs: usize,
    /// Ballast on our heap, in MiB (`--heap-mb`).
    heap_mb: usize,
    /// What every sandbox runs (`-x`).
    program: String,
    rootfs: Option<String>,
    root: Option<String>,
    image: Option<String>,
    cache: Option<String>,
    net: Option<String>,
    cgroup: bool,
    seccomp_off: bool,
    /// Seconds of sequential spawns measured as rates (`--duration`); 0 for none.
    duration: u64,
    /// Print each stage's time instead (`--timeline`).
    timeline: bool,
    /// Run through a pool of this many sandboxes made ahead (`--pool N`); 0 for none.
    pool: usize,
    /// The pool reuses its sandboxes (`--reuse`, with `--pool N`).
    reuse: bool,
    /// Milliseconds between sequential spawns (`--pace MS`), untimed: a pool refills
    /// meanwhile, as it would between a service's requests.
    pace: u64,
    configs: Vec<String>,
}

fn parse_args(args: Vec<String>) -> Options {
    let mut args = args.into_iter();
    let (mut n, mut jobs, mut heap_mb) = (1000usize, 0usize, 0usize);
    let mut program = String::from("/bin/true");
    let mut rootfs: Option<String> = None;
    let (mut root, mut image, mut cache): (Option<String>, Option<String>, Option<String>) =
        (None, None, None);
    let mut net: Option<String> = None;
    let mut cgroup = false;
    let mut seccomp_off = false;
    let mut duration: u64 = 0;
    let mut timeline = false;
    let mut pool = 0usize;
    let mut reuse = false;
    let mut pace = 0u64;
    let mut configs = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-n" => n = args.next().and_then(|v| v.parse().ok()).expect("-n N"),
            "-j" => jobs = args.next().and_then(|v| v.parse().ok()).expect("-j P"),
            "-x" => program = args.next().expect("-x PROGRAM"),
            "--rootfs" => rootfs = args.next(),
            "--root" => root = args.next(),
            "--net" => net = args.next(),
            "--cgroup" => cgroup = true,
            "--seccomp" => {
                seccomp_off = match args.next().as_deref() {
                    Some("off") => true,
                    Some("default") => false,
                    other => panic!("--seccomp {other:?}: default or off"),
                }
            }
            "--duration" => {
                duration = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--duration S")
            }
            "--image" => image = args.next(),
            "--image-cache" => cache = args.next(),
            "--heap-mb" => heap_mb = args.next().and_then(|v| v.parse().ok()).expect("MB"),
            "--timeline" => timeline = true,
            "--pace" => pace = args.next().and_then(|v| v.parse().ok()).expect("--pace MS"),
            "--reuse" => reuse = true,
            "--pool" => pool = args.next().and_then(|v| v.parse().ok()).expect("--pool N"),
            "--bench" => {}
            c => configs.push(c.to_string()),
        }
    }
    Options {
        n,
        jobs,
        heap_mb,
        program,
        rootfs,
        root,
        image,
        cache,
        net,
        cgroup,
        seccomp_off,
        duration,
        timeline,
        pool,
        reuse,
        pace,
        configs,
    }
}

/// The root filesystem of `--root` (or `--rootfs` alone), and its kind for the tags.
fn root(o: &Options) -> (Option<String>, Option<Rootfs>) {
    let tree = || o.rootfs.clone().expect("--rootfs DIR");
    match (o.root.as_deref(), &o.rootfs) {
        (None, None) => (None, None),
        (None, Some(dir)) => (Some("rootfs".into()), Some(Rootfs::dir(dir))),
        (Some("host"), _) => (Some("host".into()), Some(Rootfs::host())),
        (Some("host-ro"), _) => (Some("host-ro".into()), Some(Rootfs::host_readonly())),
        (Some("dir"), _) => (Some("dir".into()), Some(Rootfs::dir(tree()))),
        (Some("overlay"), _) => (Some("overlay".into()), Some(Rootfs::overlay([tree()]))),
        (Some("image"), _) => {
            let mut r = Rootfs::image(o.image.clone().expect("--image PATH"));
            if let Some(c) = &o.cache {
                r = r.cache_dir(c);
            }
            (Some("image".into()), Some(r))
        }
        (Some(other), _) => panic!("--root {other}: host, host-ro, dir, overlay or image"),
    }
}

/// The network of `--net`.
fn network(net: Option<&str>) -> Option<Network> {
    match net {
        None => None,
        Some("none") => Some(Network::none()),
        Some("loopback") => Some(Network::loopback()),
        Some("bridge") => Some(Network::bridge_named("sbxbench0")),
        Some(other) => panic!("--net {other}: none, loopback or bridge"),
    }
}

/// One configuration to measure, with the options given.
struct Subject {
    /// The configuration and its options (`all+net-none+cgroup`), for failures.
    config: String,
    /// What the output lines carry: `config`, the root's kind and the ballast.
    tag: String,
    /// `None` for plain `tokio::process`.
    sb: Option<Sandbox>,
    /// Sandboxes made ahead (`--pool N`).
    pool: Option<Pool>,
    /// Milliseconds between sequential spawns, untimed (`--pace`).
    pace: u64,
    program: String,
}

impl Subject {
    fn new(
        config: &str,
        o: &Options,
        kind: &Option<String>,
        root: &Option<Rootfs>,
        network: &Option<Network>,
    ) -> Subject {
        let sb = if config == "tokio" {
            None
        } else {
            let s = sandbox(config, root).unwrap_or_else(|| panic!("config {config}"));
            let s = match network {
                Some(n) => s.network(n.clone()),
                None => s,
            };
            let s = if o.seccomp_off {
                s.seccomp(sandbox_core::Seccomp::off())
            } else {
                s
            };
            // A cgroup per sandbox: memory and pids limits (v1 or v2, as the machine has).
            Some(if o.cgroup {
                s.limits(sandbox_core::Limits::new().memory(256 << 20).pids(64))
            } else {
                s
            })
        };
        let config = &match o.net.as_deref() {
            Some(n) if sb.is_some() => format!("{config}+net-{n}"),
            _ => config.to_string(),
        };
        let config = &if o.cgroup && sb.is_some() {
            format!("{config}+cgroup")
        } else {
            config.clone()
        };
        let config = &if o.seccomp_off && sb.is_some() {
            format!("{config}+noseccomp")
        } else {
            config.clone()
        };
        let tag = match kind {
            Some(k) if sb.is_some() => format!("{config}+{k}"),
            _ => config.clone(),
        };
        let heap_mb = o.heap_mb;
        let tag = if heap_mb > 0 {
            format!("{tag}+heap{heap_mb}M")
        } else {
            tag
        };
        let tag = if o.pool > 0 {
            let kind = if o.reuse { "reused" } else { "pool" };
            format!("{tag}+{kind}{}", o.pool)
        } else {
            tag
        };
        Subject {
            config: config.clone(),
            tag,
            sb,
            pool: None,
            pace: o.pace,
            program: o.program.clone(),
        }
    }

    /// Sequential spawns for `duration` seconds: the rate of each 5 s window, then the
    /// rate overall.
    async fn sustained(&self, duration: u64) {
        let tag = &self.tag;
        let start = Instant::now();
        let (mut window, mut count, mut total) = (Instant::now(), 0u64, 0u64);
        while start.elapsed().as_secs() < duration {
            once(&self.config, &self.sb, &self.pool, &self.program).await;
            count += 1;
            total += 1;
            if window.elapsed().as_secs_f64() >= 5.0 {
                println!(
                    "OURS config={tag} window_end_s={:.0} rate_per_s={:.1}",
                    start.elapsed().as_secs_f64(),
                    count as f64 / window.elapsed().as_secs_f64()
                );
                (window, count) = (Instant::now(), 0);
            }
        }
        println!(
            "OURS config={tag} duration_s={duration} total={total} rate_per_s={:.1}",
            total as f64 / start.elapsed().as_secs_f64()
        );
    }

    /// `n` sequential spawns, each timed: mean, median, p10, p90, min and max.
    async fn latency(&self, n: usize) {
        let tag = &self.tag;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            if self.pace > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(self.pace)).await;
            }
            let t = Instant::now();
            once(&self.config, &self.sb, &self.pool, &self.program).await;
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mean = v.iter().sum::<f64>() / n as f64;
        println!(
            "OURS config={tag} n={n} mean_us={mean:.1} median_us={:.1} p10_us={:.1} p90_us={:.1} min_us={:.1} max_us={:.1}",
            v[n / 2],
            v[n / 10],
            v[n * 9 / 10],
            v[0],
            v[n - 1]
        );
    }

    /// `n` sequential spawns, each with its timeline: for every stage, the median time since
    /// the spawn began at which it ended, and the median step from the stage before.
    #[cfg(feature = "timeline")]
    async fn timeline(&self, n: usize) {
        let tag = &self.tag;
        let sb = self
            .sb
            .as_ref()
            .expect("--timeline: a sandbox configuration");
        // Each stage's offsets (µs), in the order stages first appear; a stage that occurs
        // twice in one spawn (two alike mount steps) is told apart by its number.
        let mut stages: Vec<(String, Vec<f64>)> = Vec::new();
        let mut totals = Vec::with_capacity(n);
        for _ in 0..n {
            if self.pace > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(self.pace)).await;
            }
            let t = Instant::now();
            let mut child = match &self.pool {
                Some(p) => p.spawn(&Command::new(&self.program)).await,
                None => sb.command(&self.program).spawn().await,
            }
            .expect("spawn");
            let o = child.wait().await.expect("wait");
            assert!(o.success(), "{}: {o:?}", self.config);
            totals.push(t.elapsed().as_secs_f64() * 1e6);
            let mut seen: Vec<&str> = Vec::new();
            for (name, at) in child.timeline().marks() {
                let k = seen.iter().filter(|s| **s == name).count();
                seen.push(name);
                let key = if k == 0 {
                    name.to_string()
                } else {
                    format!("{name} #{}", k + 1)
                };
                let us = at.as_secs_f64() * 1e6;
                match stages.iter_mut().find(|(s, _)| *s == key) {
                    Some((_, v)) => v.push(us),
                    None => stages.push((key, vec![us])),
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        let mut rows: Vec<(String, f64, usize)> = stages
            .into_iter()
            .map(|(s, mut v)| {
                let len = v.len();
                (s, median(&mut v), len)
            })
            .collect();
        rows.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        println!(
            "TIMELINE config={tag} n={n} total_median_us={:.1}",
            median(&mut totals)
        );
        println!("| stage | ends at (µs, median) | step (µs) | spawns |");
        println!("|---|---|---|---|");
        let mut before = 0.0;
        for (stage, at, count) in rows {
            println!("| {stage} | {at:.0} | {:.0} | {count} |", at - before);
            before = at;
        }
    }

    #[cfg(not(feature = "timeline"))]
    async fn timeline(&self, _n: usize) {
        panic!("--timeline: build with --features timeline");
    }

    /// `n` spawns, `jobs` in flight at once: the total rate.
    async fn throughput(&self, n: usize, jobs: usize) {
        let tag = &self.tag;
        let t = Instant::now();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..jobs {
            let (sb, pool, next, config, program) = (
                self.sb.clone(),
                self.pool.clone(),
                next.clone(),
                self.config.clone(),
                self.program.clone(),
            );
            workers.push(tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                    once(&config, &sb, &pool, &program).await;
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let wall = t.elapsed().as_secs_f64();
        println!(
            "OURS config={tag} jobs={jobs} total={n} wall_s={wall:.3} rate_per_s={:.1}",
            n as f64 / wall
        );
    }
}

async fn measure(args: Vec<String>) {
    let o = parse_args(args);
    // Ballast: a caller with a big heap (a judge service, a test harness).
    let ballast = vec![1u8; o.heap_mb << 20];
    std::hint::black_box(&ballast);
    let (kind, root) = root(&o);
    let bridge = match o.net.as_deref() {
        Some("bridge") => Some(
            sandbox_core::net::Bridge::create("sbxbench0", "10.99.0.0/16")
                .await
                .expect("create the bridge (run in a network namespace of its own)"),
        ),
        _ => None,
    };
    let network = network(o.net.as_deref());
    for config in &o.configs {
        let mut subject = Subject::new(config, &o, &kind, &root, &network);
        if let (Some(sb), true) = (&subject.sb, o.pool > 0) {
            let pool = if o.reuse {
                Pool::reused(sb.clone(), o.pool).await
            } else {
                Pool::new(sb.clone(), o.pool).await
            };
            subject.pool = Some(pool.expect("make the pool"));
        }
        // Warm-up.
        for _ in 0..20 {
            once(
                &subject.config,
                &subject.sb,
                &subject.pool,
                &subject.program,
            )
            .await;
        }
        if o.timeline {
            subject.timeline(o.n).await;
        } else if o.duration > 0 {
            subject.sustained(o.duration).await;
        } else if o.jobs == 0 {
            subject.latency(o.n).await;
        } else {
            subject.throughput(o.n, o.jobs).await;
        }
    }
    if let Some(b) = bridge {
        b.remove().await.expect("remove the bridge");
    }
}
