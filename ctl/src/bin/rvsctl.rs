//! rvsctl: the command line for rvsd, with ovs-vsctl / ovs-ofctl / ovs-appctl
//! verbs.
//!
//! Exit codes: 0 success, 1 request rejected (message on stderr), 2 usage
//! error, 3 daemon unreachable.

use std::io::{Read, Write};

/// `writeln!` that ends quietly when stdout is closed (`rvsctl … | head`).
macro_rules! outln {
    ($w:expr) => {
        if writeln!($w).is_err() {
            std::process::exit(0)
        }
    };
    ($w:expr, $($t:tt)*) => {
        if writeln!($w, $($t)*).is_err() {
            std::process::exit(0)
        }
    };
}

/// `write!` that ends quietly when stdout is closed.
macro_rules! out {
    ($w:expr, $($t:tt)*) => {
        if write!($w, $($t)*).is_err() {
            std::process::exit(0)
        }
    };
}
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use rvs_ctl::pretty::PrettyJson;
use rvs_ctl::proto::{FdbEntry, FlowInfo, PortStats, Reply, Request, TraceResult, WorkerInfo};
use rvs_ctl::{Client, ClientError};

#[derive(Parser, Debug)]
#[command(name = "rvsctl", version, about = "Control the rvs software switch")]
struct Cli {
    /// Control socket of rvsd (default: $RVS_SOCKET or /run/rvs/rvsd.sock).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Seconds to wait for the daemon's answer.
    #[arg(long, global = true, default_value_t = 30)]
    timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print a flow normalized as `dump-flows --no-stats` would (no daemon needed).
    ParseFlow { flow: String },
    /// Parse a flow file (or - for stdin) and print the normalized flows.
    ParseFlows { file: String },
    /// Create a bridge.
    AddBr {
        #[arg(value_parser = netdev_name)]
        bridge: String,
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete a bridge.
    DelBr {
        bridge: String,
        #[arg(long)]
        if_exists: bool,
    },
    /// List bridges.
    ListBr,
    /// Show bridges and ports.
    Show,
    /// Add a port: add-port BR PORT
    /// [type=tap|system|internal|patch|vxlan|geneve|gre]
    /// [tag=VID] [trunks=V1,V2] [vlan_mode=MODE] [ofport_request=N]
    /// [peer=PORT] [split_horizon=true|false]
    /// [ingress_policing_rate=KBPS ingress_policing_burst=KBIT
    /// ingress_policing_kpkts_rate=KPPS ingress_policing_kpkts_burst=KPKTS
    /// egress_rate=KBPS egress_burst=KBIT]
    /// [options:remote_ip=IP options:local_ip=IP options:key=VNI
    /// options:dst_port=PORT ...] [external_ids:KEY=VALUE ...].
    AddPort {
        #[arg(value_parser = netdev_name)]
        bridge: String,
        #[arg(value_parser = netdev_name)]
        port: String,
        /// key=value settings.
        #[arg(value_parser = key_value)]
        settings: Vec<String>,
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete a port: del-port [BR] PORT.
    DelPort {
        #[arg(num_args = 1..=2, required = true)]
        names: Vec<String>,
        #[arg(long)]
        if_exists: bool,
    },
    /// List the ports of a bridge.
    ListPorts { bridge: String },
    /// Change settings: set port PORT key=value... | set bridge BR key=value...
    Set {
        #[command(subcommand)]
        what: SetCmd,
    },
    /// Set the OpenFlow controllers of a bridge (replaces the list):
    /// ptcp:PORT[:IP], pssl:PORT[:IP], punix:PATH, tcp:IP[:PORT],
    /// ssl:IP[:PORT], unix:PATH.
    SetController {
        bridge: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Print a bridge's controller targets.
    GetController { bridge: String },
    /// Remove a bridge's controllers.
    DelController { bridge: String },
    /// Set the fail mode: standalone (NORMAL while no controller is connected) or secure.
    SetFailMode { bridge: String, mode: String },
    /// Print a bridge's fail mode.
    GetFailMode { bridge: String },
    /// Delete the fail mode setting (back to standalone).
    DelFailMode { bridge: String },
    /// Add one flow.
    AddFlow { bridge: String, flow: String },
    /// Add flows from a file (or - for stdin); all or nothing.
    AddFlows { bridge: String, file: String },
    /// Modify the actions of matching flows.
    ModFlows {
        bridge: String,
        flow: String,
        #[arg(long)]
        strict: bool,
    },
    /// Delete flows matching MATCH (all flows if omitted).
    DelFlows {
        bridge: String,
        filter: Option<String>,
        #[arg(long)]
        strict: bool,
    },
    /// Replace all flows with those in a file, atomically.
    ReplaceFlows { bridge: String, file: String },
    /// Print flows, optionally those matching MATCH.
    DumpFlows {
        bridge: String,
        filter: Option<String>,
        #[arg(long)]
        no_stats: bool,
    },
    /// Port counters.
    DumpPorts {
        bridge: String,
        port: Option<String>,
    },
    /// Add an OpenFlow meter, in ovs-ofctl's syntax:
    /// add-meter BR 'meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000'.
    AddMeter { bridge: String, meter: String },
    /// Replace a meter's configuration (same syntax as add-meter).
    ModMeter { bridge: String, meter: String },
    /// Delete meters (all, or meter=N) and the flows that use them.
    DelMeters {
        bridge: String,
        meter: Option<String>,
    },
    /// Meters' configurations (all, or meter=N).
    DumpMeters {
        bridge: String,
        meter: Option<String>,
    },
    /// Meters' statistics: frames and bytes in, per band what it dropped
    /// or remarked (all, or meter=N).
    MeterStats {
        bridge: String,
        meter: Option<String>,
    },
    /// MAC learning table.
    FdbShow { bridge: String },
    /// Empty the MAC learning table.
    FdbFlush { bridge: String },
    /// Datapath workers: ports polled, frames, batches, exact-match cache hits.
    PmdStatsShow,
    /// Memory: resident, held by rvsd, kept by the allocator, flows per bridge.
    MemoryShow,
    /// Trace a synthetic packet through the pipeline.
    Trace { bridge: String, flow: String },
    /// Make the running state equal to a TOML file (or - for stdin); prints the difference.
    Apply {
        file: String,
        /// Only print the difference.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the running state as TOML that `apply` accepts.
    Export,
}

#[derive(Subcommand, Debug)]
enum SetCmd {
    /// set port PORT key=value...
    Port {
        port: String,
        #[arg(required = true, value_parser = key_value)]
        settings: Vec<String>,
    },
    /// set bridge BR key=value...
    Bridge {
        bridge: String,
        #[arg(required = true, value_parser = key_value)]
        settings: Vec<String>,
    },
}

/// Checks a bridge or port name before anything is sent: Linux netdev
/// names are 1-15 bytes without '/', ':' or whitespace.
fn netdev_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a name cannot be empty".into());
    }
    if s.len() > 15 {
        return Err(format!(
            "\"{s}\" is {} bytes long; network device names are at most 15 bytes",
            s.len()
        ));
    }
    if s == "." || s == ".." || s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!(
            "\"{s}\" is not a valid network device name (no '/', ':' or spaces)"
        ));
    }
    Ok(s.to_string())
}

/// Checks a `key=value` setting before anything is sent.
fn key_value(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((k, _)) if !k.is_empty() => Ok(s.to_string()),
        _ => Err(format!("expected key=value, got \"{s}\"")),
    }
}

/// The usage line of the (sub)command that `args` name, for errors where
/// clap prints none (invalid values).
fn usage_for(args: &[String]) -> String {
    let mut cmd = Cli::command();
    cmd.build();
    let mut cur = &cmd;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if matches!(a.as_str(), "--socket" | "--format" | "--timeout") {
            it.next();
            continue;
        }
        if a.starts_with('-') {
            continue;
        }
        match cur.find_subcommand(a) {
            Some(sc) => cur = sc,
            None => break,
        }
    }
    cur.clone().render_usage().to_string()
}

/// A failure with its exit code.
struct Fail {
    code: u8,
    msg: String,
}

fn fail(code: u8, msg: impl Into<String>) -> Fail {
    Fail {
        code,
        msg: msg.into(),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            let text = e.to_string();
            let _ = e.print();
            // Usage errors always come with the usage line (clap leaves it
            // out for invalid values).
            if code == 2 && !text.contains("Usage:") {
                eprintln!("\n{}", usage_for(&args));
            }
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("rvsctl: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

fn read_file_arg(file: &str) -> Result<String, Fail> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| fail(1, format!("reading standard input: {e}")))?;
        Ok(s)
    } else {
        // Refuse what the daemon would refuse before reading it all.
        let len = std::fs::metadata(file).map_or(0, |m| m.len());
        if len > rvs_ctl::proto::MAX_UPLOAD {
            return Err(fail(
                1,
                format!(
                    "{file}: {len} bytes; a request may carry at most {} bytes (2 GiB)",
                    rvs_ctl::proto::MAX_UPLOAD
                ),
            ));
        }
        std::fs::read_to_string(file).map_err(|e| fail(1, format!("{file}: {e}")))
    }
}

fn split_settings(verb: &str, items: &[String]) -> Result<Vec<(String, String)>, Fail> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(fail(2, format!("{verb}: expected key=value, got \"{s}\""))),
        })
        .collect()
}

fn run(cli: &Cli) -> Result<(), Fail> {
    let no_port = |_: &str| None;
    let req = match &cli.cmd {
        Cmd::ParseFlow { flow } => {
            let f = flowtable::syntax::parse_flow(flow, &no_port)
                .map_err(|e| fail(1, format!("parse-flow: {e}")))?;
            return print_parsed(cli.format, &[f]);
        }
        Cmd::ParseFlows { file } => {
            let text = read_file_arg(file)?;
            let flows = flowtable::syntax::parse_flows(&text, &no_port)
                .map_err(|e| fail(1, format!("parse-flows: {file}: {e}")))?;
            return print_parsed(cli.format, &flows);
        }
        Cmd::AddBr { bridge, may_exist } => Request::AddBr {
            name: bridge.clone(),
            may_exist: *may_exist,
        },
        Cmd::DelBr { bridge, if_exists } => Request::DelBr {
            name: bridge.clone(),
            if_exists: *if_exists,
        },
        Cmd::ListBr => Request::ListBr {},
        Cmd::Show => Request::Show {},
        Cmd::AddPort {
            bridge,
            port,
            settings,
            may_exist,
        } => Request::AddPort {
            bridge: bridge.clone(),
            name: port.clone(),
            settings: split_settings("add-port", settings)?,
            may_exist: *may_exist,
        },
        Cmd::DelPort { names, if_exists } => {
            let (bridge, name) = match names.as_slice() {
                [p] => (None, p.clone()),
                [b, p] => (Some(b.clone()), p.clone()),
                _ => return Err(fail(2, "del-port: expected [BRIDGE] PORT")),
            };
            Request::DelPort {
                bridge,
                name,
                if_exists: *if_exists,
            }
        }
        Cmd::ListPorts { bridge } => Request::ListPorts {
            bridge: bridge.clone(),
        },
        Cmd::Set { what } => match what {
            SetCmd::Port { port, settings } => Request::SetPort {
                name: port.clone(),
                settings: split_settings("set port", settings)?,
            },
            SetCmd::Bridge { bridge, settings } => Request::SetBridge {
                name: bridge.clone(),
                settings: split_settings("set bridge", settings)?,
            },
        },
        Cmd::SetController { bridge, targets } => Request::SetController {
            bridge: bridge.clone(),
            targets: targets.clone(),
        },
        Cmd::GetController { bridge } | Cmd::GetFailMode { bridge } => Request::GetController {
            bridge: bridge.clone(),
        },
        Cmd::DelController { bridge } => Request::DelController {
            bridge: bridge.clone(),
        },
        Cmd::SetFailMode { bridge, mode } => Request::SetFailMode {
            bridge: bridge.clone(),
            mode: mode.clone(),
        },
        Cmd::DelFailMode { bridge } => Request::SetFailMode {
            bridge: bridge.clone(),
            mode: String::new(),
        },
        Cmd::AddFlow { bridge, flow } => Request::AddFlows {
            bridge: bridge.clone(),
            text: flow.clone(),
        },
        Cmd::AddFlows { bridge, file } => Request::AddFlows {
            bridge: bridge.clone(),
            text: read_file_arg(file)?,
        },
        Cmd::ModFlows {
            bridge,
            flow,
            strict,
        } => Request::ModFlows {
            bridge: bridge.clone(),
            flow: flow.clone(),
            strict: *strict,
        },
        Cmd::DelFlows {
            bridge,
            filter,
            strict,
        } => Request::DelFlows {
            bridge: bridge.clone(),
            filter: filter.clone().unwrap_or_default(),
            strict: *strict,
        },
        Cmd::ReplaceFlows { bridge, file } => Request::ReplaceFlows {
            bridge: bridge.clone(),
            text: read_file_arg(file)?,
        },
        Cmd::DumpFlows { bridge, filter, .. } => Request::DumpFlows {
            bridge: bridge.clone(),
            filter: filter.clone().unwrap_or_default(),
        },
        Cmd::DumpPorts { bridge, port } => Request::DumpPorts {
            bridge: bridge.clone(),
            port: port.clone(),
        },
        Cmd::AddMeter { bridge, meter } | Cmd::ModMeter { bridge, meter } => Request::AddMeter {
            bridge: bridge.clone(),
            meter: meter.clone(),
            modify: matches!(cli.cmd, Cmd::ModMeter { .. }),
        },
        Cmd::DelMeters { bridge, meter } => Request::DelMeters {
            bridge: bridge.clone(),
            meter: meter.clone().unwrap_or_default(),
        },
        Cmd::DumpMeters { bridge, meter } | Cmd::MeterStats { bridge, meter } => {
            Request::DumpMeters {
                bridge: bridge.clone(),
                meter: meter.clone().unwrap_or_default(),
            }
        }
        Cmd::FdbShow { bridge } => Request::FdbShow {
            bridge: bridge.clone(),
        },
        Cmd::FdbFlush { bridge } => Request::FdbFlush {
            bridge: bridge.clone(),
        },
        Cmd::PmdStatsShow => Request::PmdStatsShow {},
        Cmd::MemoryShow => Request::MemoryShow {},
        Cmd::Trace { bridge, flow } => Request::Trace {
            bridge: bridge.clone(),
            flow: flow.clone(),
        },
        Cmd::Apply { file, dry_run } => Request::Apply {
            text: read_file_arg(file)?,
            origin: if file == "-" {
                "<stdin>".to_string()
            } else {
                file.clone()
            },
            dry_run: *dry_run,
        },
        Cmd::Export => Request::Export {},
    };
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(rvs_ctl::client::default_socket);
    let timeout = (cli.timeout > 0).then(|| Duration::from_secs(cli.timeout));
    let mut client = Client::connect(&socket, timeout).map_err(|e| fail(3, e.to_string()))?;
    // Buffered: a large dump is millions of lines. Each piece of the reply
    // is printed as it arrives.
    let mut w = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut printer = Printer::new(cli.format, &cli.cmd);
    let r = client.call_each(&req, |part| {
        printer.part(&mut w, part);
        Ok(())
    });
    // What arrived before an error is printed before the error.
    if w.flush().is_err() {
        std::process::exit(0)
    }
    r.map_err(|e| match e {
        ClientError::Rejected(body) => fail(1, body.message),
        e @ ClientError::TooLarge(_) => fail(1, e.to_string()),
        other => fail(3, other.to_string()),
    })?;
    printer.finish(&mut w);
    if w.flush().is_err() {
        std::process::exit(0)
    }
    Ok(())
}

/// Prints a reply piece by piece (one piece, or one per chunk of a
/// streamed reply).
struct Printer<'a> {
    cmd: &'a Cmd,
    json: Option<PrettyJson>,
    pieces: u64,
    /// `apply`: changes printed, and whether they were applied.
    changes: Option<(u64, bool)>,
}

impl<'a> Printer<'a> {
    fn new(format: Format, cmd: &'a Cmd) -> Printer<'a> {
        Printer {
            cmd,
            json: (format == Format::Json).then(PrettyJson::new),
            pieces: 0,
            changes: None,
        }
    }

    fn part(&mut self, w: &mut dyn Write, reply: Reply) {
        self.pieces += 1;
        if let Some(j) = &mut self.json {
            if j.part(w, reply).is_err() {
                std::process::exit(0)
            }
            return;
        }
        match reply {
            Reply::Fdb { fdb } => print_fdb(w, &fdb, self.pieces == 1),
            Reply::Apply { changes, applied } => {
                let (n, a) = self.changes.get_or_insert((0, applied));
                *n += changes.len() as u64;
                *a = applied;
                for c in changes {
                    outln!(w, "{c}");
                }
            }
            other => print_table(w, self.cmd, &other),
        }
    }

    fn finish(self, w: &mut dyn Write) {
        if let Some(j) = self.json {
            if j.finish(w).is_err() {
                std::process::exit(0)
            }
            return;
        }
        match self.changes {
            Some((0, _)) => outln!(w, "no changes"),
            Some((_, false)) => outln!(w, "(dry run: nothing was changed)"),
            _ => {}
        }
    }
}

fn print_parsed(format: Format, flows: &[flowtable::syntax::Flow]) -> Result<(), Fail> {
    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
    let w = &mut w;
    if format == Format::Json {
        let v: Vec<String> = flows.iter().map(|f| f.to_string()).collect();
        let s = serde_json::to_string_pretty(&serde_json::json!({ "flows": v }))
            .map_err(|e| fail(1, e.to_string()))?;
        outln!(w, "{s}");
    } else {
        for f in flows {
            outln!(w, "{f}");
        }
    }
    if w.flush().is_err() {
        std::process::exit(0)
    }
    Ok(())
}

fn print_table(w: &mut dyn Write, cmd: &Cmd, reply: &Reply) {
    match reply {
        Reply::Done { message, .. } => {
            if !message.is_empty() {
                outln!(w, "{message}");
            }
        }
        Reply::Bridges { bridges } => match cmd {
            Cmd::ListBr => bridges.iter().for_each(|b| outln!(w, "{}", b.name)),
            Cmd::ListPorts { .. } => bridges
                .iter()
                .flat_map(|b| b.ports.iter().filter(|p| p.name != b.name))
                .for_each(|p| outln!(w, "{}", p.name)),
            _ => {
                for b in bridges {
                    outln!(w, "Bridge {}", b.name);
                    outln!(
                        w,
                        "    mac_aging_time: {}s, mac_table_size: {}",
                        b.mac_aging_time,
                        b.mac_table_size
                    );
                    for p in &b.ports {
                        let ofport = flowtable::PortNo(p.ofport);
                        let state = if p.up {
                            "up".to_string()
                        } else {
                            format!(
                                "down: {}",
                                p.down_reason.as_deref().unwrap_or("unknown reason")
                            )
                        };
                        outln!(
                            w,
                            "    Port {} (ofport {ofport}, {}, {state})",
                            p.name,
                            p.kind
                        );
                        if let Some(t) = p.tag {
                            outln!(w, "        tag: {t}");
                        }
                        if !p.trunks.is_empty() {
                            let t: Vec<String> = p.trunks.iter().map(u16::to_string).collect();
                            outln!(w, "        trunks: [{}]", t.join(", "));
                        }
                        outln!(w, "        vlan_mode: {}", p.vlan_mode);
                        if let Some(peer) = &p.peer {
                            outln!(w, "        peer: {peer}");
                        }
                        if !p.options.is_empty() {
                            let o: Vec<String> = p
                                .options
                                .iter()
                                .map(|(k, v)| format!("{k}=\"{v}\""))
                                .collect();
                            outln!(w, "        options: {{{}}}", o.join(", "));
                        }
                        let tunnel = matches!(p.kind.as_str(), "vxlan" | "geneve" | "gre");
                        if p.split_horizon != tunnel {
                            outln!(w, "        split_horizon: {}", p.split_horizon);
                        }
                        for (k, v) in &p.qos {
                            outln!(w, "        {k}: {v}");
                        }
                        if !p.external_ids.is_empty() {
                            let o: Vec<String> = p
                                .external_ids
                                .iter()
                                .map(|(k, v)| format!("{k}=\"{v}\""))
                                .collect();
                            outln!(w, "        external_ids: {{{}}}", o.join(", "));
                        }
                        if let Some(t) = &p.too_big {
                            outln!(w, "        too_big: {t}");
                        }
                    }
                }
            }
        },
        Reply::Flows { flows } => {
            let no_stats = matches!(cmd, Cmd::DumpFlows { no_stats: true, .. });
            print_flows(w, flows, no_stats)
        }
        Reply::Ports { ports } => print_ports(w, ports),
        Reply::Fdb { fdb } => print_fdb(w, fdb, true),
        Reply::Meters { meters } => {
            for m in meters {
                if matches!(cmd, Cmd::MeterStats { .. }) {
                    outln!(
                        w,
                        "meter:{} flow_count:{} packet_in_count:{} byte_in_count:{} duration:{:.3}s bands:",
                        m.id,
                        m.flow_count,
                        m.packet_in_count,
                        m.byte_in_count,
                        m.duration_ms as f64 / 1000.0
                    );
                    for (i, b) in m.bands.iter().enumerate() {
                        outln!(
                            w,
                            "  {i}: packet_count:{} byte_count:{}",
                            b.packets,
                            b.bytes
                        );
                    }
                } else {
                    outln!(w, "{}", m.meter);
                }
            }
        }
        Reply::Workers { workers } => print_workers(w, workers),
        Reply::Memory { memory } => print_memory(w, memory),
        Reply::Trace { trace } => print_trace(w, trace),
        Reply::Config { toml } => out!(w, "{toml}"),
        Reply::Controller {
            controllers,
            fail_mode,
            failing,
            ..
        } => {
            if matches!(cmd, Cmd::GetFailMode { .. }) {
                outln!(w, "{fail_mode}");
            } else {
                controllers.iter().for_each(|c| outln!(w, "{c}"));
                // stdout stays the list of targets, as ovs-vsctl prints it.
                for f in failing {
                    eprintln!(
                        "rvsctl: controller {} is not running: {}",
                        f.target, f.error
                    );
                }
            }
        }
        Reply::Apply { changes, applied } => {
            if changes.is_empty() {
                outln!(w, "no changes");
            }
            for c in changes {
                outln!(w, "{c}");
            }
            if !changes.is_empty() && !applied {
                outln!(w, "(dry run: nothing was changed)");
            }
        }
    }
}

fn print_flows(w: &mut dyn Write, flows: &[FlowInfo], no_stats: bool) {
    for f in flows {
        if no_stats {
            outln!(w, "{}", f.flow);
        } else {
            outln!(w, " {}", f.text);
        }
    }
}

fn print_ports(w: &mut dyn Write, ports: &[PortStats]) {
    for p in ports {
        let no = flowtable::PortNo(p.ofport);
        outln!(
            w,
            "port {no:>5} {:<15} {}: rx pkts={}, bytes={} tx pkts={}, bytes={}",
            p.name,
            if p.up { "up" } else { "DOWN" },
            p.rx_packets,
            p.rx_bytes,
            p.tx_packets,
            p.tx_bytes
        );
        let fmt = |m: &std::collections::BTreeMap<String, u64>| {
            let v: Vec<String> = m.iter().map(|(k, n)| format!("{k}={n}")).collect();
            if v.is_empty() {
                "0".to_string()
            } else {
                v.join(", ")
            }
        };
        outln!(
            w,
            "      rx dropped: {}   tx dropped: {}",
            fmt(&p.rx_dropped),
            fmt(&p.tx_dropped)
        );
    }
}

fn print_fdb(w: &mut dyn Write, fdb: &[FdbEntry], header: bool) {
    if header {
        outln!(w, " port  VLAN  MAC                Age");
    }
    for e in fdb {
        let port = if e.port_name.is_empty() {
            flowtable::PortNo(e.port).to_string()
        } else {
            e.port_name.clone()
        };
        outln!(w, "{port:>5}  {:>4}  {}  {:>3}", e.vlan, e.mac, e.age);
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn print_memory(w: &mut dyn Write, m: &rvs_ctl::proto::MemoryInfo) {
    outln!(w, "resident (VmRSS): {}", mib(m.rss_bytes));
    match (m.allocated_bytes, m.committed_bytes) {
        (Some(a), Some(c)) => outln!(
            w,
            "allocator: {} held by rvsd, {} committed ({} kept for reuse)",
            mib(a),
            mib(c),
            mib(c.saturating_sub(a))
        ),
        (Some(a), None) => outln!(w, "allocator: {} held by rvsd", mib(a)),
        _ => outln!(w, "allocator: not counted"),
    }
    outln!(w, "threads: {} ({} datapath workers)", m.threads, m.workers);
    for b in &m.bridges {
        outln!(
            w,
            "bridge {}: {} ports, {} flows ({} counter bytes per flow)",
            b.name,
            b.ports,
            b.flows,
            b.counter_bytes_per_flow
        );
    }
}

fn print_workers(w: &mut dyn Write, workers: &[WorkerInfo]) {
    for k in workers {
        outln!(w, "worker {} (rvs-dp{}):", k.id, k.id);
        if k.ports.is_empty() {
            outln!(w, "  ports: (none)");
        } else {
            outln!(w, "  ports: {}", k.ports.join(", "));
        }
        let per_batch = if k.batches > 0 {
            k.rx_packets as f64 / k.batches as f64
        } else {
            0.0
        };
        outln!(
            w,
            "  packets received: {} in {} batches ({per_batch:.1} per batch)",
            k.rx_packets,
            k.batches
        );
        let lookups = k.emc_hits + k.emc_misses;
        let rate = if lookups > 0 {
            100.0 * k.emc_hits as f64 / lookups as f64
        } else {
            0.0
        };
        outln!(
            w,
            "  exact-match cache: {} hits, {} misses ({rate:.1} % hit rate)",
            k.emc_hits,
            k.emc_misses
        );
    }
}

fn print_trace(w: &mut dyn Write, t: &TraceResult) {
    outln!(w, "Flow: {}", t.packet);
    for s in &t.steps {
        let indent = "    ".repeat(s.depth as usize);
        match (s.table, &s.rule) {
            (Some(table), Some(rule)) => {
                outln!(w, "{indent}{table}. {rule}");
                if !s.detail.is_empty() {
                    outln!(w, "{indent}    {}", s.detail);
                }
            }
            (Some(table), None) => outln!(w, "{indent}{table}. No match. {}", s.detail),
            _ => outln!(w, "{indent}    {}", s.detail),
        }
    }
    outln!(w);
    if t.outputs.is_empty() {
        outln!(
            w,
            "Datapath actions: drop ({})",
            t.drop_reason.as_deref().unwrap_or("no output")
        );
    } else {
        let v: Vec<String> = t
            .outputs
            .iter()
            .map(|o| match o.vlan {
                Some(v) => format!("{} (vlan {v})", o.name),
                None => format!("{} (untagged)", o.name),
            })
            .collect();
        outln!(w, "Outputs: {}", v.join(", "));
    }
}
