//! rvsd: the rvs switch daemon.
//!
//! Starts the datapath worker and the control socket, creates the
//! configured bridges and ports (from `--config FILE`, or the embedded
//! default), and serves `rvsctl` until SIGTERM/SIGINT.
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

fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    s.parse()
        .map_err(|_| format!("unknown log level {s:?} (error, warn, info, debug, trace)"))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    logging::init(args.log_level);
    logging::exit_on_panic();
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
    // One thread polls every control connection: a controller's flow-mod +
    // barrier round trip is then one epoll wake-up, no hand-off between
    // scheduler threads. Anything slow runs on the blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("rvs-ctl")
        .build()?;
    let epoch = Instant::now();
    let switch = Arc::new(Mutex::new(control::switch::Switch::new(
        epoch,
        Some(store.clone()),
        args.workers.map_or_else(default_workers, usize::from),
    )?));
    {
        let mut sw = switch.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
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
    }
    // The datapath workers exist now, at the default priority; the
    // control plane (this thread, and every thread it starts from here on:
    // the blocking pool, the journal's syncer and compactor) runs at a
    // lower one, so that a controller's flood of flow mods takes CPU from
    // nothing but itself when the host is busy.
    if let Err(e) = rvs::netdev::set_thread_nice(CONTROL_NICE) {
        log::warn!("cannot lower the control plane's priority: {e}");
    }
    let result = rt.block_on(async {
        let listener = control::server::bind(&args.socket)?;
        log::info!(
            "rvsd {} listening on {}",
            env!("CARGO_PKG_VERSION"),
            args.socket.display()
        );
        let handler = Arc::new(control::SwitchHandler {
            switch: switch.clone(),
        });
        let server = tokio::spawn(control::server::serve(
            listener,
            handler,
            Duration::from_secs(args.client_timeout.max(1)),
        ));
        let openflow = tokio::spawn(control::ofchannel::run(switch.clone()));
        let sw = switch.clone();
        let expiry = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let sw = sw.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut s) = sw.lock() {
                        s.expire_flows();
                        if let Err(e) = s.flush_journal() {
                            log::error!("saving state after flow expiry: {e}");
                        }
                        s.reattach();
                    }
                })
                .await;
            }
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => log::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => log::info!("SIGINT: stopping"),
        }
        server.abort();
        expiry.abort();
        openflow.abort();
        anyhow::Ok(())
    });
    let _ = std::fs::remove_file(&args.socket);
    if let Ok(mut s) = switch.lock() {
        s.shutdown();
    }
    result
}
