//! rvsd: the rvs switch daemon.
//!
//! Starts the datapath worker and the control socket, creates the
//! configured bridges and ports (from `--config FILE`, or the embedded
//! default), and serves `rvsctl` until SIGTERM/SIGINT. It first locks its
//! state directory ([`control::lockfile`]): a second rvsd on the same
//! directory exits with an error naming the first one's pid. Under
//! systemd (`Type=notify`, `config/rvsd.service`) it sends `READY=1` once
//! state is restored and the control socket listens, and `STOPPING=1`
//! when it begins to stop ([`control::notify`]).
//!
//! # Failure policy
//! rvsd does not limp on. A panic in any thread (control plane, OpenFlow
//! channel, tokio tasks, journal threads, datapath workers) is logged and
//! ends the process with status 101 ([`logging::exit_on_panic`]); a
//! datapath worker that stops with an error is logged by name and ends it
//! with status 1 (the supervisor thread below). The journal makes that
//! safe: a restart on the same state directory restores every
//! acknowledged change, and a service manager restarts a daemon that
//! exits non-zero.
//!
//! # Fault injection (debug builds only)
//! To test that policy without a backdoor in what ships, a debug build
//! started with `--debug-faults` answers the hidden control request
//! `{"type":"debug_fault","fault":...}` (see `rvs_ctl::proto::Request`)
//! by panicking or failing a worker on purpose. Release builds compile
//! neither the flag nor the request; a debug build without the flag
//! refuses the request.

use rvs::{config, control, logging};

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

/// mimalloc, tuned in `main` (see [`rvs::alloc`]).
#[global_allocator]
static GLOBAL: rvs::alloc::Allocator = rvs::alloc::Allocator(mimalloc::MiMalloc);
use clap::Parser;

/// Command line of rvsd.
#[derive(Parser, Debug)]
#[command(name = "rvsd", version, about = "rvs userspace software switch daemon")]
struct Args {
    /// Configuration to start from (TOML); default: the embedded config/default.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// State directory (default: $RVS_STATE_DIR or /var/lib/rvs).
    #[arg(long, env = "RVS_STATE_DIR", default_value = "/var/lib/rvs")]
    state_dir: PathBuf,
    /// Control socket (default: $RVS_SOCKET or /run/rvs/rvsd.sock).
    #[arg(long, env = "RVS_SOCKET", default_value = rvs_ctl::client::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Group that may use the control socket (name or number): the
    /// socket is then mode 0660 with that group, for operators who are
    /// not root. Default: mode 0600, root only.
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// error, warn, info, debug or trace.
    #[arg(long, default_value = "info", value_parser = parse_level)]
    log_level: log::LevelFilter,
    /// Seconds a control client may stay silent before it is disconnected.
    #[arg(long, default_value_t = 60, hide = true)]
    client_timeout: u64,
    /// Datapath worker threads, 1-8; ports are spread over them. Default:
    /// half the CPUs (at least 1, at most 8): the other half is left to the
    /// kernel work and the VMs or processes the switch serves.
    #[arg(long, env = "RVS_WORKERS", value_parser = clap::value_parser!(u8).range(1..=8))]
    workers: Option<u8>,
    /// PEM private key of this switch, for OpenFlow over TLS (`ssl:`/`pssl:`
    /// controller targets); needs --certificate and --ca-cert too.
    #[arg(long, requires_all = ["certificate", "ca_cert"])]
    private_key: Option<PathBuf>,
    /// PEM certificate of this switch (signed by the CA controllers trust).
    #[arg(long, requires_all = ["private_key", "ca_cert"])]
    certificate: Option<PathBuf>,
    /// PEM CA certificate that controllers' certificates must chain to.
    #[arg(long, requires_all = ["private_key", "certificate"])]
    ca_cert: Option<PathBuf>,
    /// Serve OVSDB (RFC 7047, the `Open_vSwitch` database) on this remote,
    /// so the real ovs-vsctl, libvirt and ovsdbapp configure rvs:
    /// `punix:PATH` (mode 0600) or `ptcp:PORT[:IP]`. Repeatable. With
    /// `punix:/var/run/openvswitch/db.sock`, ovs-vsctl without `--db`
    /// talks to rvs. Default: none (no OVSDB endpoint).
    #[arg(long = "ovsdb-remote", value_name = "REMOTE", value_parser = parse_remote)]
    ovsdb_remote: Vec<rvs::ovsdb::server::Remote>,
    /// Stay in the foreground (rvsd never daemonizes; accepted for compatibility).
    #[arg(long)]
    foreground: bool,
    /// Debug builds only: serve the `debug_fault` request (crash tests).
    #[cfg(debug_assertions)]
    #[arg(long, hide = true)]
    debug_faults: bool,
}

/// Exit status when a datapath worker stopped with an error.
const WORKER_EXIT: i32 = 1;

/// Half the CPUs this process may run on, 1 to 8.
/// Nice level of the control-plane threads (the datapath's is 0).
const CONTROL_NICE: i32 = 5;

fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    (cpus / 2).clamp(1, 8)
}

fn parse_remote(s: &str) -> Result<rvs::ovsdb::server::Remote, String> {
    s.parse()
}

fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    s.parse()
        .map_err(|_| format!("unknown log level {s:?} (error, warn, info, debug, trace)"))
}

/// Tells systemd `state` when it started us (`Type=notify`).
fn ready(state: &str) {
    match control::notify::notify(state) {
        Ok(true) => log::debug!("told systemd {state}"),
        Ok(false) => {}
        Err(e) => log::warn!("cannot tell systemd {state}: {e}"),
    }
}

fn main() -> std::process::ExitCode {
    rvs::alloc::tune();
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The gid of `--socket-group`: a group name, else a number.
fn socket_gid(group: &str) -> anyhow::Result<u32> {
    match rvs::netdev::group_id(group) {
        Ok(Some(gid)) => Ok(gid),
        Ok(None) => group
            .parse()
            .map_err(|_| anyhow::anyhow!("--socket-group {group}: no such group")),
        Err(e) => anyhow::bail!("--socket-group {group}: cannot look the group up: {e}"),
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    logging::init(args.log_level);
    logging::exit_on_panic();
    // Certificates are checked before anything is opened or created.
    let tls = match (&args.private_key, &args.certificate, &args.ca_cert) {
        (Some(k), Some(c), Some(ca)) => Some(Arc::new(
            control::tls::Tls::load(&control::tls::TlsFiles {
                private_key: k.clone(),
                certificate: c.clone(),
                ca_cert: ca.clone(),
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        )),
        _ => None,
    };
    let gid = args.socket_group.as_deref().map(socket_gid).transpose()?;
    // One rvsd per state directory: refused before anything is touched
    // (netdevs, journal, control socket). Held until run() returns.
    let _lock = control::lockfile::StateLock::acquire(&args.state_dir)?;
    let store = control::state::StateStore::open(&args.state_dir)?;
    // Saved state wins; a fresh state dir is seeded from --config or the
    // embedded default. An unreadable state file stops us (and is kept).
    let (cfg, restoring, text, origin) = match store.load()? {
        Some(saved) => {
            if args.config.is_some() {
                log::warn!(
                    "{} exists: restoring it and ignoring --config (use rvsctl apply to change it)",
                    store.path().display()
                );
            }
            // Read again only to point errors at lines; load() checked it.
            let text = std::fs::read_to_string(store.path()).unwrap_or_default();
            (saved, true, text, store.path().display().to_string())
        }
        None => match &args.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let origin = p.display().to_string();
                (config::Config::parse(&text, &origin)?, false, text, origin)
            }
            None => (
                config::Config::embedded_default()?,
                false,
                config::DEFAULT_TOML.to_string(),
                "<embedded default config/default.toml>".to_string(),
            ),
        },
    };
    // OVSDB endpoints: the command line's and the configuration's.
    let mut remotes = args.ovsdb_remote.clone();
    for r in &cfg.ovsdb_remote {
        let r: rvs::ovsdb::server::Remote = r
            .parse()
            .map_err(|e| anyhow::anyhow!("{origin}: ovsdb_remote: {e}"))?;
        if !remotes.contains(&r) {
            remotes.push(r);
        }
    }
    // One thread polls every control connection: a controller's flow-mod +
    // barrier round trip is then one epoll wake-up, no hand-off between
    // scheduler threads. Anything slow runs on the blocking pool.
    // Blocking-pool threads are kept (not retired after tokio's default
    // 10 s idle): each thread that exits abandons its allocator heap, whose
    // pages stay committed until some other thread happens to reclaim
    // them, and controller sessions that come and go then grow RSS with
    // nothing held (benches/soak.sh: held flat, committed +50 % in 2 min).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("rvs-ctl")
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .build()?;
    let epoch = Instant::now();
    let mut ovsdb = None;
    let switch = Arc::new(Mutex::new(control::switch::Switch::new(
        epoch,
        Some(store.clone()),
        args.workers.map_or_else(default_workers, usize::from),
    )?));
    {
        let mut sw = switch.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        sw.set_tls(tls.is_some());
        // Before anything is restored: no punix: target may take it.
        sw.set_control_socket(&args.socket);
        #[cfg(debug_assertions)]
        if args.debug_faults {
            log::warn!("--debug-faults: the debug_fault request can crash this daemon");
            sw.enable_debug_faults();
        }
        // Supervision: a worker that stops by itself leaves its ports
        // without forwarding; exit so that the service manager restarts us.
        let exits = sw.worker_exits();
        std::thread::Builder::new()
            .name("rvs-supervise".into())
            .spawn(move || {
                // Disconnected: every worker was shut down in order.
                if let Ok(exit) = exits.recv() {
                    log::error!("{exit}; exiting with status {WORKER_EXIT}");
                    std::process::exit(WORKER_EXIT);
                }
            })
            .context("starting the supervisor thread")?;
        // The whole configuration is checked first, so that a bad one names
        // file, line and key and nothing is created.
        if let Err(e) = sw.check(&cfg, &text, &origin) {
            sw.shutdown();
            if restoring {
                anyhow::bail!("{e}; the file was left untouched for inspection (move it away to start from scratch)");
            }
            anyhow::bail!("{e}");
        }
        if let Err(e) = sw.load(&cfg, restoring) {
            sw.shutdown();
            if restoring {
                anyhow::bail!("restoring {}: {e}", store.path().display());
            }
            anyhow::bail!("applying configuration: {e}");
        }
        let started = if restoring {
            sw.resume(&cfg)
        } else {
            sw.save()
        };
        if let Err(e) = started {
            sw.shutdown();
            anyhow::bail!("saving state: {e}");
        }
        if !remotes.is_empty() {
            match rvs::ovsdb::service::Ovsdb::open(Some(&args.state_dir), &mut sw) {
                Ok(o) => ovsdb = Some(Arc::new(Mutex::new(o))),
                Err(e) => {
                    sw.shutdown();
                    anyhow::bail!("OVSDB: {e}");
                }
            }
        }
    }
    // The datapath workers exist now, at the default priority; the
    // control plane (this thread, and every thread it starts from here on:
    // the blocking pool, the journal's syncer and compactor) runs at a
    // lower one, so that a controller's flood of flow mods takes CPU from
    // nothing but itself when the host is busy.
    if let Err(e) = rvs::netdev::set_thread_nice(CONTROL_NICE) {
        log::warn!("cannot lower the control plane's priority: {e}");
    }
    // Removes the socket file when dropped (only if we created it).
    let mut socket_file = None;
    let mut ovsdb_files = Vec::new();
    let result = rt.block_on(async {
        let (listener, file) = control::server::bind(&args.socket, gid)?;
        socket_file = Some(file);
        log::info!(
            "rvsd {} listening on {} (mode {})",
            env!("CARGO_PKG_VERSION"),
            args.socket.display(),
            match (&args.socket_group, gid) {
                (Some(g), Some(id)) => format!("0660, group {g} ({id})"),
                _ => "0600".to_string(),
            }
        );
        let handler = Arc::new(control::SwitchHandler {
            switch: switch.clone(),
        });
        let server = tokio::spawn(control::server::serve(
            listener,
            handler,
            Duration::from_secs(args.client_timeout.max(1)),
        ));
        let openflow = tokio::spawn(control::ofchannel::run(switch.clone(), tls));
        let mut ovsdb_sync = None;
        if let Some(o) = &ovsdb {
            let shared = rvs::ovsdb::server::Shared::new(o.clone(), switch.clone());
            for r in &remotes {
                if let Some(f) = rvs::ovsdb::server::listen(r, shared.clone())? {
                    ovsdb_files.push(f);
                }
            }
            ovsdb_sync = Some(tokio::spawn(rvs::ovsdb::server::sync_loop(shared)));
        }
        let sw = switch.clone();
        let expiry = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let sw = sw.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut s) = sw.lock() {
                        s.expire_flows();
                        s.settle_flows();
                        if let Err(e) = s.flush_journal() {
                            log::error!("saving state after flow expiry: {e}");
                        }
                        s.reattach();
                    }
                })
                .await;
            }
        });
        use tokio::signal::unix::{signal, SignalKind};
        // Handlers first: a SIGTERM right after READY=1 stops us cleanly.
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        // State is restored and the control socket listens (its accept
        // task runs as soon as this task waits): tell systemd.
        ready("READY=1");
        tokio::select! {
            _ = term.recv() => log::info!("SIGTERM: stopping"),
            _ = int.recv() => log::info!("SIGINT: stopping"),
        }
        ready("STOPPING=1");
        server.abort();
        expiry.abort();
        openflow.abort();
        if let Some(t) = ovsdb_sync {
            t.abort();
        }
        anyhow::Ok(())
    });
    drop(socket_file);
    drop(ovsdb_files);
    if let Ok(mut s) = switch.lock() {
        s.shutdown();
    }
    result
}
