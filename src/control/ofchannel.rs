//! The OpenFlow channel: controller connections for every bridge.
//!
//! # What?
//! [`run`] keeps, for each bridge, one task per controller target
//! (`rvsctl set-controller`): `ptcp:`/`pssl:`/`punix:` targets listen and
//! serve any number of connections at once (that is how `ovs-ofctl`
//! reaches a bridge; a `punix:` listener replaces nothing but a stale
//! socket and removes its socket when it ends, see
//! [`crate::control::punix`]), `tcp:`/`ssl:`/`unix:` targets connect and
//! reconnect with backoff ([`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`]);
//! `ssl:`/`pssl:` put mutually authenticated TLS ([`crate::control::tls`])
//! under the same OpenFlow connection code. Each connection speaks
//! the codec in [`crate::openflow`]: HELLO negotiation (1.3 or 1.0), ECHO
//! both ways, FEATURES, GET/SET_CONFIG, ROLE, GET/SET_ASYNC, BARRIER,
//! FLOW_MOD, PACKET_OUT and the MULTIPART statistics; it forwards
//! PACKET_IN and PORT_STATUS of its bridge.
//!
//! # Design
//! Flow mods and statistics go through the same [`Switch`] methods (and
//! so the same tables, counters and persistence) as `rvsctl`; every
//! `Switch` call runs under `spawn_blocking`, never on an async thread.
//! The manager reconciles the running tasks with the configuration when
//! the switch signals a change (and once a second, which is also when it
//! notices ports going up or down and sends PORT_STATUS). Punted frames
//! come from the datapath over a bounded channel as plain
//! [`ControllerPacket`]s (see [`crate::datapath::controller`]); the
//! manager makes each a PACKET_IN ([`crate::control::convert`]) and fans
//! it out per bridge with a `broadcast` channel; a connection that lags
//! loses messages rather than stalling the others.
//!
//! # Invariants
//! Nothing a peer sends closes the connection except a framing error (a
//! length field below 8) or a failed version negotiation: every message
//! rvs cannot honour gets the codec's ERROR. Nicira/experimenter messages
//! get BAD_EXPERIMENTER (1.0: BAD_VENDOR), so `ovs-ofctl` falls back to
//! standard messages.
//!
//! # Thread-safety
//! Tasks on the tokio runtime; the switch behind its mutex.
//!
//! # Limits
//! No buffering (buffer_id is always NO_BUFFER), no
//! auxiliary connections, roles are accepted and
//! echoed but not enforced (every connection may modify flows), table
//! statistics report no lookup counts. Every message fits in 65535
//! bytes (see [`crate::openflow::encode`]): a PACKET_IN carries as much of
//! its frame as fits, and FLOW stats leave out (and log) flows whose
//! actions alone are longer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowtable::{PortNo, TableId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;
use tokio::task::{JoinHandle, JoinSet};

use crate::control::busypoll::BusyPoll;
use crate::control::switch::{OfBridge, OfPort, Switch};
use crate::control::tls::Tls;
use crate::control::{bundle, punix};
use crate::datapath::controller::{ControllerPacket, OfShared};
use crate::openflow::error::{bad_request, ErrorType, OfpError};
use crate::openflow::msg::{
    AsyncConfig, FeaturesReply, PacketIn, PortDesc, PortStatus, Role, SwitchConfig, CAPABILITIES,
    NO_BUFFER, OF10_ACTIONS,
};
use crate::openflow::multipart::{
    AggregateStats, Desc, FlowStats, MpReply, MpRequest, PortStats, TableFeatures, TableStats,
};
use crate::openflow::{self as of, Hello, Message, OFP10_VERSION, SUPPORTED_VERSIONS};

/// First reconnection delay of an active target.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest reconnection delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Idle time after which we send an ECHO_REQUEST.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// Idle time after which a connection is dropped.
pub const DEAD_INTERVAL: Duration = Duration::from_secs(15);
/// PACKET_INs queued between the datapath and the channel.
pub const PACKET_IN_QUEUE: usize = 1024;
/// Asynchronous messages queued per bridge for its connections.
const ASYNC_QUEUE: usize = 1024;
/// Tables rvs has (0-254).
const N_TABLES: u8 = TableId::COUNT as u8;
/// OFPT_FLOW_MOD, the same number in 1.0 and 1.3.
const FLOW_MOD: u8 = 14;
/// Bytes read from a connection at a time (at least).
const READ_CHUNK: usize = 256 * 1024;
/// Connections one listening target serves at once; more are closed.
pub const MAX_CONNECTIONS: usize = 64;
/// Batches up to this many FLOW_MODs run on the channel's own thread
/// when the switch lock is free.
const INLINE_BATCH: usize = 16;
/// Most FLOW_MODs applied under one lock.
const MAX_BATCH: usize = 4096;
/// Flows per table announced in table features/stats.
const MAX_ENTRIES: u32 = 1_000_000;

/// A controller target, as ovs-vsctl spells it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `ptcp:PORT[:IP]`: listen (IP defaults to 127.0.0.1).
    PTcp(SocketAddr),
    /// `punix:PATH`: listen on a unix socket.
    PUnix(PathBuf),
    /// `tcp:IP[:PORT]`: connect (port defaults to 6653).
    Tcp(SocketAddr),
    /// `unix:PATH`: connect to a unix socket.
    Unix(PathBuf),
    /// `pssl:PORT[:IP]`: listen for TLS (IP defaults to 127.0.0.1).
    PSsl(SocketAddr),
    /// `ssl:IP[:PORT]`: connect with TLS (port defaults to 6653).
    Ssl(SocketAddr),
}

impl Target {
    /// Whether this target listens (`ptcp:`, `punix:`, `pssl:`).
    pub fn is_passive(&self) -> bool {
        matches!(self, Target::PTcp(_) | Target::PUnix(_) | Target::PSsl(_))
    }

    /// Whether this target needs `rvsd --private-key --certificate --ca-cert`.
    pub fn is_tls(&self) -> bool {
        matches!(self, Target::PSsl(_) | Target::Ssl(_))
    }
}

/// What [`Target::from_str`] accepts, for its errors.
const TARGET_FORMS: &str =
    "expected ptcp:PORT[:IP], pssl:PORT[:IP], punix:PATH, tcp:IP[:PORT], ssl:IP[:PORT] or unix:PATH";

/// `PORT[:IP]` of a passive target (IP defaults to 127.0.0.1, the port to
/// [`DEFAULT_PORT`]).
fn parse_passive(rest: &str, t: &str) -> Result<SocketAddr, String> {
    let (port, ip) = match rest.split_once(':') {
        Some((p, ip)) => (p, parse_ip(ip, t)?),
        None => (rest, IpAddr::from([127, 0, 0, 1])),
    };
    let port = if port.is_empty() {
        DEFAULT_PORT
    } else {
        parse_port(port, t)?
    };
    Ok(SocketAddr::new(ip, port))
}

/// `IP[:PORT]` of an active target; IPv6 addresses come in brackets
/// (`tcp:[::1]:6653`).
fn parse_active(rest: &str, t: &str) -> Result<SocketAddr, String> {
    let (ip, port) = match rest.rsplit_once(':') {
        Some((ip, p)) if !rest.starts_with('[') || ip.ends_with(']') => (ip, parse_port(p, t)?),
        _ => (rest, DEFAULT_PORT),
    };
    Ok(SocketAddr::new(parse_ip(ip, t)?, port))
}

/// The default OpenFlow port.
pub const DEFAULT_PORT: u16 = 6653;

fn parse_ip(s: &str, t: &str) -> Result<IpAddr, String> {
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("{t}: \"{s}\" is not an IP address"))
}

fn parse_port(s: &str, t: &str) -> Result<u16, String> {
    s.parse()
        .map_err(|_| format!("{t}: \"{s}\" is not a port number"))
}

impl std::str::FromStr for Target {
    type Err = String;

    /// Parses the forms of [`TARGET_FORMS`], as `ovs-vsctl set-controller`.
    fn from_str(t: &str) -> Result<Target, String> {
        let (kind, rest) = t
            .split_once(':')
            .ok_or_else(|| format!("{t}: {TARGET_FORMS}"))?;
        match kind {
            "ptcp" => Ok(Target::PTcp(parse_passive(rest, t)?)),
            "pssl" => Ok(Target::PSsl(parse_passive(rest, t)?)),
            "tcp" => Ok(Target::Tcp(parse_active(rest, t)?)),
            "ssl" => Ok(Target::Ssl(parse_active(rest, t)?)),
            "punix" if !rest.is_empty() => Ok(Target::PUnix(PathBuf::from(rest))),
            "unix" if !rest.is_empty() => Ok(Target::Unix(PathBuf::from(rest))),
            _ => Err(format!("{t}: {TARGET_FORMS}")),
        }
    }
}

/// A message for every connection of a bridge.
#[derive(Debug)]
enum AsyncMsg {
    PacketIn(PacketIn),
    FlowRemoved(Box<crate::openflow::msg::FlowRemoved>),
    /// OFPPR_ADD 0, DELETE 1, MODIFY 2.
    PortStatus(u8, OfPort),
}

/// What a connection needs to reach its bridge.
#[derive(Clone)]
struct Ctx {
    switch: Arc<Mutex<Switch>>,
    bridge: String,
    of: Arc<OfShared>,
    tx: broadcast::Sender<Arc<AsyncMsg>>,
    /// `rvsd --private-key --certificate --ca-cert`, for `ssl:`/`pssl:`.
    tls: Option<Arc<Tls>>,
    /// The `punix:` sockets this rvsd's listeners hold.
    bound: punix::Bound,
}

/// Runs `f` on the switch on the blocking pool; `None` if the switch is
/// poisoned or the task failed.
async fn with_switch<T: Send + 'static>(
    sw: &Arc<Mutex<Switch>>,
    f: impl FnOnce(&mut Switch) -> T + Send + 'static,
) -> Option<T> {
    let sw = sw.clone();
    tokio::task::spawn_blocking(move || sw.lock().ok().map(|mut s| f(&mut s)))
        .await
        .ok()
        .flatten()
}

/// One bridge's running targets.
struct BridgeChan {
    id: u32,
    tx: broadcast::Sender<Arc<AsyncMsg>>,
    tasks: HashMap<Target, JoinHandle<()>>,
    ports: Vec<OfPort>,
}

impl Drop for BridgeChan {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort();
        }
    }
}

/// Runs the OpenFlow channel of every bridge until dropped; `tls` serves
/// the `ssl:`/`pssl:` targets (without it they log an error and idle).
pub async fn run(switch: Arc<Mutex<Switch>>, tls: Option<Arc<Tls>>) {
    let (pin_tx, mut pin_rx) = tokio::sync::mpsc::channel::<ControllerPacket>(PACKET_IN_QUEUE);
    // FLOW_REMOVED goes straight from the switch into the bridge's
    // broadcast while the flow mod that caused it is being applied, so a
    // connection finds it queued before it answers a later BARRIER.
    let senders: Senders = Arc::default();
    let s2 = senders.clone();
    let sink: crate::control::flows::FlowRemovedSink = Arc::new(move |ev| {
        let m = s2.lock().ok().and_then(|m| m.get(&ev.bridge).cloned());
        if let Some(tx) = m {
            let _ = tx.send(Arc::new(AsyncMsg::FlowRemoved(Box::new(flow_removed_msg(
                &ev,
            )))));
        }
    });
    let Some((changed, bound)) = with_switch(&switch, move |s| {
        s.set_packet_in_sink(pin_tx);
        s.set_flow_removed_sink(sink);
        (s.changed(), s.punix_bound())
    })
    .await
    else {
        log::error!("openflow: cannot reach the switch");
        return;
    };
    let mut chans: HashMap<String, BridgeChan> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = changed.notified() => reconcile(&switch, &mut chans, &senders, &tls, &bound).await,
            _ = tick.tick() => reconcile(&switch, &mut chans, &senders, &tls, &bound).await,
            ev = pin_rx.recv() => {
                let Some(ev) = ev else { return };
                if let Some(c) = chans.values().find(|c| c.id == ev.bridge) {
                    let _ = c.tx.send(Arc::new(AsyncMsg::PacketIn(ev.into())));
                }
            }
        }
    }
}

/// Each bridge's asynchronous-message broadcast, by bridge id.
type Senders = Arc<Mutex<HashMap<u32, broadcast::Sender<Arc<AsyncMsg>>>>>;

/// The FLOW_REMOVED message for `ev`.
fn flow_removed_msg(
    ev: &crate::control::flows::FlowRemovedEvent,
) -> crate::openflow::msg::FlowRemoved {
    let f = &ev.entry;
    crate::openflow::msg::FlowRemoved {
        cookie: f.cookie,
        priority: f.priority.0,
        reason: ev.reason as u8,
        table_id: f.data.table.0,
        duration_sec: (ev.duration_ms / 1000) as u32,
        duration_nsec: ((ev.duration_ms % 1000) * 1_000_000) as u32,
        idle_timeout: f.idle_timeout,
        hard_timeout: f.hard_timeout,
        packet_count: f.data.n_packets(),
        byte_count: f.data.n_bytes(),
        m: f.m,
    }
}

async fn reconcile(
    switch: &Arc<Mutex<Switch>>,
    chans: &mut HashMap<String, BridgeChan>,
    senders: &Senders,
    tls: &Option<Arc<Tls>>,
    bound: &punix::Bound,
) {
    let Some(bridges) = with_switch(switch, |s| s.of_bridges()).await else {
        return;
    };
    chans.retain(|name, c| bridges.iter().any(|b| &b.name == name && b.id == c.id));
    for b in bridges {
        let c = chans.entry(b.name.clone()).or_insert_with(|| BridgeChan {
            id: b.id,
            tx: broadcast::channel(ASYNC_QUEUE).0,
            tasks: HashMap::new(),
            ports: b.ports.clone(),
        });
        c.tasks.retain(|t, h| {
            let keep = b.targets.contains(t) && !h.is_finished();
            if !keep {
                h.abort();
            }
            keep
        });
        for t in &b.targets {
            if c.tasks.contains_key(t) {
                continue;
            }
            let ctx = Ctx {
                switch: switch.clone(),
                bridge: b.name.clone(),
                of: b.of.clone(),
                tx: c.tx.clone(),
                tls: tls.clone(),
                bound: bound.clone(),
            };
            log::info!("bridge {}: controller {t:?}", b.name);
            c.tasks
                .insert(t.clone(), tokio::spawn(target_task(t.clone(), ctx)));
        }
        port_changes(c, &b);
    }
    if let Ok(mut m) = senders.lock() {
        *m = chans.values().map(|c| (c.id, c.tx.clone())).collect();
    }
}

/// Sends PORT_STATUS for ports added, deleted or changed since last time.
fn port_changes(c: &mut BridgeChan, b: &OfBridge) {
    for old in &c.ports {
        if !b.ports.iter().any(|p| p.ofport == old.ofport) {
            let _ = c.tx.send(Arc::new(AsyncMsg::PortStatus(1, old.clone())));
        }
    }
    for p in &b.ports {
        match c.ports.iter().find(|o| o.ofport == p.ofport) {
            None => {
                let _ = c.tx.send(Arc::new(AsyncMsg::PortStatus(0, p.clone())));
            }
            Some(o) if o != p => {
                let _ = c.tx.send(Arc::new(AsyncMsg::PortStatus(2, p.clone())));
            }
            Some(_) => {}
        }
    }
    c.ports = b.ports.clone();
}

async fn target_task(t: Target, ctx: Ctx) {
    match t {
        Target::PTcp(addr) => listen_tcp(addr, None, ctx).await,
        Target::PSsl(addr) => match ctx.tls.clone() {
            Some(tls) => listen_tcp(addr, Some(tls), ctx).await,
            None => no_tls(&ctx, addr).await,
        },
        Target::Tcp(addr) => connect_tcp(addr, None, ctx).await,
        Target::Ssl(addr) => match ctx.tls.clone() {
            Some(tls) => connect_tcp(addr, Some(tls), ctx).await,
            None => no_tls(&ctx, addr).await,
        },
        Target::PUnix(path) => {
            // Only a stale socket is removed to bind; the guard removes
            // ours again when this task ends (del-controller, shutdown).
            let (l, _listening) = loop {
                match punix::listen(&path, &ctx.bound) {
                    Ok(l) => break l,
                    Err(e) => {
                        log::warn!(
                            "bridge {}: cannot listen on {}: {e}",
                            ctx.bridge,
                            path.display()
                        );
                        tokio::time::sleep(BACKOFF_MAX).await;
                    }
                }
            };
            let mut set = JoinSet::new();
            loop {
                tokio::select! {
                    r = l.accept() => match r {
                        Ok((s, _)) => {
                            if set.len() >= MAX_CONNECTIONS {
                                log::warn!("bridge {}: {}: refusing a connection: {MAX_CONNECTIONS} OpenFlow connections already", ctx.bridge, path.display());
                                continue;
                            }
                            set.spawn(connection(s, format!("unix:{}", path.display()), ctx.clone()));
                        }
                        Err(e) => {
                            log::warn!("bridge {}: accept on {}: {e}", ctx.bridge, path.display());
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                    Some(_) = set.join_next(), if !set.is_empty() => {}
                }
            }
        }
        Target::Unix(path) => {
            let mut backoff = BACKOFF_MIN;
            loop {
                match tokio::net::UnixStream::connect(&path).await {
                    Ok(s) => {
                        connection(s, format!("unix:{}", path.display()), ctx.clone()).await;
                        backoff = BACKOFF_MIN;
                    }
                    Err(e) => log::debug!(
                        "bridge {}: connecting to {}: {e}",
                        ctx.bridge,
                        path.display()
                    ),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// A TLS target on an rvsd started without certificates: said once, then
/// the target stays idle (`set-controller` refuses such targets; this is
/// saved state from a run that had them).
async fn no_tls(ctx: &Ctx, addr: SocketAddr) {
    log::error!(
        "bridge {}: controller target at {addr} needs TLS, but rvsd runs without \
         --private-key, --certificate and --ca-cert; it stays down",
        ctx.bridge
    );
    std::future::pending::<()>().await
}

/// A `ptcp:` (`tls` None) or `pssl:` listener: serves up to
/// [`MAX_CONNECTIONS`] connections at once; with TLS each runs its
/// handshake in its own task (a slow or failing peer delays no other).
async fn listen_tcp(addr: SocketAddr, tls: Option<Arc<Tls>>, ctx: Ctx) {
    let scheme = if tls.is_some() { "pssl" } else { "ptcp" };
    let l = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e) => {
                log::warn!("bridge {}: cannot listen on {addr}: {e}", ctx.bridge);
                tokio::time::sleep(BACKOFF_MAX).await;
            }
        }
    };
    let mut set = JoinSet::new();
    loop {
        tokio::select! {
            r = l.accept() => match r {
                Ok((s, peer)) => {
                    if set.len() >= MAX_CONNECTIONS {
                        log::warn!("bridge {}: {scheme}:{addr}: refusing {peer}: {MAX_CONNECTIONS} OpenFlow connections already", ctx.bridge);
                        continue;
                    }
                    let _ = s.set_nodelay(true);
                    let ctx = ctx.clone();
                    match tls.clone() {
                        None => {
                            set.spawn(connection(s, peer.to_string(), ctx));
                        }
                        Some(tls) => {
                            set.spawn(async move {
                                match tls.accept(s).await {
                                    Ok(s) => connection(s, format!("ssl:{peer}"), ctx).await,
                                    Err(e) => log::warn!(
                                        "bridge {}: pssl:{addr}: refused {peer}: TLS handshake failed: {e}",
                                        ctx.bridge
                                    ),
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    log::warn!("bridge {}: accept on {addr}: {e}", ctx.bridge);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = set.join_next(), if !set.is_empty() => {}
        }
    }
}

/// A `tcp:` (`tls` None) or `ssl:` controller: connects, serves the
/// connection, reconnects with backoff.
async fn connect_tcp(addr: SocketAddr, tls: Option<Arc<Tls>>, ctx: Ctx) {
    let scheme = if tls.is_some() { "ssl" } else { "tcp" };
    let mut backoff = BACKOFF_MIN;
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                log::info!(
                    "bridge {}: connected to controller {scheme}:{addr}",
                    ctx.bridge
                );
                let served = match &tls {
                    None => {
                        connection(s, addr.to_string(), ctx.clone()).await;
                        true
                    }
                    Some(tls) => match tls.connect(addr.ip(), s).await {
                        Ok(s) => {
                            connection(s, format!("ssl:{addr}"), ctx.clone()).await;
                            true
                        }
                        Err(e) => {
                            log::warn!(
                                "bridge {}: ssl:{addr}: TLS handshake failed: {e}",
                                ctx.bridge
                            );
                            false
                        }
                    },
                };
                if served {
                    log::info!(
                        "bridge {}: controller {scheme}:{addr} disconnected",
                        ctx.bridge
                    );
                    backoff = BACKOFF_MIN;
                }
            }
            Err(e) => log::debug!("bridge {}: connecting to {scheme}:{addr}: {e}", ctx.bridge),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Per-connection protocol state.
struct Conn {
    /// Negotiated version, once HELLO arrived.
    version: Option<u8>,
    config: SwitchConfig,
    asyncc: AsyncConfig,
    role: u32,
    /// Open OpenFlow bundles.
    bundles: bundle::Bundles,
    /// Counted in `OfShared` (undone when the connection ends).
    registered: bool,
    next_xid: u32,
}

impl Conn {
    fn v(&self) -> u8 {
        self.version.unwrap_or(of::OFP13_VERSION)
    }

    fn xid(&mut self) -> u32 {
        self.next_xid = self.next_xid.wrapping_add(1);
        self.next_xid
    }
}

/// OFPCR_ROLE_EQUAL / SLAVE.
const ROLE_EQUAL: u32 = 1;
const ROLE_SLAVE: u32 = 3;

async fn connection<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S, peer: String, ctx: Ctx) {
    let mut conn = Conn {
        version: None,
        config: SwitchConfig {
            flags: 0,
            miss_send_len: 128,
        },
        asyncc: AsyncConfig {
            packet_in_mask: [0x7, 0],
            port_status_mask: [0x7, 0x7],
            flow_removed_mask: [0xf, 0],
        },
        role: ROLE_EQUAL,
        bundles: bundle::Bundles::default(),
        registered: false,
        next_xid: 0x7276_0000,
    };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut rx = ctx.tx.subscribe();
    let hello = Message::Hello(Hello {
        versions: SUPPORTED_VERSIONS,
    });
    let xid = conn.xid();
    if let Ok(b) = of::encode(of::OFP13_VERSION, xid, &hello) {
        if wr.write_all(&b).await.is_err() {
            return;
        }
    }
    let mut inbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut last_rx = Instant::now();
    let mut echo_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut busy = BusyPoll::default();
    'conn: loop {
        tokio::select! {
            r = rd.read_buf(&mut inbuf) => {
                match r {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(_) => {}
                }
                last_rx = Instant::now();
                busy.arrived(last_rx);
                echo_at = None;
                let mut wrote = false;
                // Every complete message read so far, handled in order;
                // consecutive FLOW_MODs go to the switch as one batch
                // (one lock, one publish, one journal write).
                let mut off = 0;
                let mut fatal = false;
                let mut msgs: Vec<std::ops::Range<usize>> = Vec::new();
                loop {
                    match of::frame(&inbuf[off..], of::MAX_MSG_LEN) {
                        Ok(Some(n)) => {
                            msgs.push(off..off + n);
                            off += n;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            log::info!("openflow {peer}: {e}; closing");
                            fatal = true;
                            break;
                        }
                    }
                }
                let mut i = 0;
                while i < msgs.len() {
                    let is_fm = |r: &std::ops::Range<usize>| {
                        conn.version.is_some_and(|v| inbuf[r.start] == v && inbuf[r.start + 1] == FLOW_MOD)
                    };
                    let (out, close) = if is_fm(&msgs[i]) {
                        let start = i;
                        while i < msgs.len() && is_fm(&msgs[i]) && i - start < MAX_BATCH {
                            i += 1;
                        }
                        let batch: Vec<&[u8]> = msgs[start..i].iter().map(|r| &inbuf[r.clone()]).collect();
                        flow_mods(&mut conn, &ctx, &batch).await
                    } else {
                        let raw = &inbuf[msgs[i].clone()];
                        i += 1;
                        handle(&mut conn, &ctx, &peer, raw, &mut wr).await
                    };
                    // Asynchronous messages already queued (a FLOW_REMOVED
                    // of a delete just applied) go before these replies.
                    while conn.version.is_some() {
                        match rx.try_recv() {
                            Ok(m) => {
                                if let Some(b) = async_msg(&mut conn, &m) {
                                    if wr.write_all(&b).await.is_err() {
                                        break 'conn;
                                    }
                                }
                            }
                            Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                            Err(_) => break,
                        }
                    }
                    for m in out {
                        if wr.write_all(&m).await.is_err() {
                            break 'conn;
                        }
                        wrote = true;
                    }
                    if close {
                        break 'conn;
                    }
                }
                if fatal {
                    let err = OfpError::new(ErrorType::BadRequest, bad_request::BAD_LEN);
                    let tail = &inbuf[off..];
                    let _ = wr.write_all(&of::error_reply(conn.v(), err, &tail[..tail.len().min(64)])).await;
                    break 'conn;
                }
                inbuf.drain(..off);
                inbuf.reserve(READ_CHUNK);
                if wrote {
                    busy.replied(Instant::now());
                }
            }
            // Busy-polling: yielding lets the runtime poll its I/O driver
            // without sleeping, then the select polls the read again.
            _ = tokio::task::yield_now(), if busy.polling(Instant::now()) => {}
            m = rx.recv(), if conn.version.is_some() => match m {
                Ok(m) => {
                    if let Some(b) = async_msg(&mut conn, &m) {
                        if wr.write_all(&b).await.is_err() {
                            break 'conn;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    log::debug!("openflow {peer}: lagging, {n} asynchronous messages lost");
                }
                Err(broadcast::error::RecvError::Closed) => break 'conn,
            },
            _ = tick.tick() => {
                let idle = last_rx.elapsed();
                if idle >= DEAD_INTERVAL {
                    log::info!("openflow {peer}: no answer for {}s; closing", idle.as_secs());
                    break 'conn;
                }
                if idle >= PROBE_INTERVAL && echo_at.is_none() && conn.version.is_some() {
                    let xid = conn.xid();
                    if let Ok(b) = of::encode(conn.v(), xid, &Message::EchoRequest(Vec::new())) {
                        if wr.write_all(&b).await.is_err() {
                            break 'conn;
                        }
                    }
                    echo_at = Some(Instant::now());
                }
            }
        }
    }
    if conn.registered {
        ctx.of.disconnect(&peer);
    }
    log::debug!("openflow {peer}: connection closed");
}

/// Encodes an asynchronous message for this connection, if its async
/// configuration wants it.
fn async_msg(conn: &mut Conn, m: &AsyncMsg) -> Option<Vec<u8>> {
    let v = conn.v();
    let slot = usize::from(conn.role == ROLE_SLAVE);
    let msg = match m {
        AsyncMsg::PacketIn(p) => {
            if conn.asyncc.packet_in_mask[slot] & (1 << p.reason) == 0 {
                return None;
            }
            Message::PacketIn(p.clone())
        }
        AsyncMsg::FlowRemoved(f) => {
            if conn.asyncc.flow_removed_mask[slot] & (1 << f.reason) == 0 {
                return None;
            }
            Message::FlowRemoved((**f).clone())
        }
        AsyncMsg::PortStatus(reason, p) => {
            if conn.asyncc.port_status_mask[slot] & (1 << reason) == 0 {
                return None;
            }
            Message::PortStatus(PortStatus {
                reason: *reason,
                desc: PortDesc::new(v, p.ofport, &p.name, p.mac, p.up),
            })
        }
    };
    let xid = 0;
    of::encode(v, xid, &msg).ok()
}

fn reply(conn: &Conn, xid: u32, m: &Message) -> Vec<Vec<u8>> {
    match of::encode(conn.v(), xid, m) {
        Ok(b) => vec![b],
        Err(e) => {
            log::warn!("openflow: cannot encode {:?}: {e}", m.msg_type());
            Vec::new()
        }
    }
}

fn error(conn: &Conn, etype: ErrorType, code: u16, raw: &[u8]) -> Vec<Vec<u8>> {
    vec![of::error_reply(conn.v(), OfpError::new(etype, code), raw)]
}

/// Where a connection's messages go.
type Writer<'a> = dyn AsyncWrite + Unpin + Send + 'a;

/// Handles one message; returns the replies and whether to close. Large
/// replies (FLOW statistics) are written to `wr` as they are encoded.
async fn handle(
    conn: &mut Conn,
    ctx: &Ctx,
    peer: &str,
    raw: &[u8],
    wr: &mut Writer<'_>,
) -> (Vec<Vec<u8>>, bool) {
    let (h, msg) = match of::decode(raw) {
        Ok(x) => x,
        Err(e) => {
            log::debug!("openflow {peer}: {e}");
            if conn.version.is_none() {
                return (
                    vec![of::hello_failed(raw.first().copied().unwrap_or(4), 0)],
                    true,
                );
            }
            return (vec![of::error_reply(conn.v(), e.error, raw)], false);
        }
    };
    if conn.version.is_none() {
        let hello = match &msg {
            Message::Hello(h) => *h,
            // A peer that skips HELLO speaks its header's version.
            _ => Hello {
                versions: 1 << h.version,
            },
        };
        match of::negotiate(SUPPORTED_VERSIONS, &hello) {
            Some(v) => {
                conn.version = Some(v);
                conn.registered = true;
                ctx.of.connect(peer);
                log::info!(
                    "bridge {}: controller {peer} connected (OpenFlow {})",
                    ctx.bridge,
                    if v == OFP10_VERSION { "1.0" } else { "1.3" }
                );
            }
            None => return (vec![of::hello_failed(h.version, h.xid)], true),
        }
        if matches!(msg, Message::Hello(_)) {
            return (Vec::new(), false);
        }
    }
    let v = conn.v();
    let xid = h.xid;
    let out = match msg {
        Message::Hello(_) | Message::EchoReply(_) => Vec::new(),
        Message::Error(e) => {
            log::debug!(
                "openflow {peer}: peer sent error type {} code {}",
                e.etype,
                e.code
            );
            Vec::new()
        }
        Message::EchoRequest(d) => reply(conn, xid, &Message::EchoReply(d)),
        Message::Experimenter(e) => match conn.bundles.handle(v, xid, &e, raw) {
            None => error(
                conn,
                ErrorType::BadRequest,
                bad_request::BAD_EXPERIMENTER,
                raw,
            ),
            Some(bundle::Outcome::Reply(r)) => r,
            Some(bundle::Outcome::Commit(mut c)) => {
                let fms = std::mem::take(&mut c.msgs);
                let bridge = ctx.bridge.clone();
                let of10 = v == OFP10_VERSION;
                let Some(r) = with_switch(&ctx.switch, move |s| {
                    let r = s.of_flow_mods_atomic(&bridge, &fms, of10);
                    if let Err(e) = s.flush_journal() {
                        log::error!("saving state after an OpenFlow bundle: {e}");
                    }
                    r
                })
                .await
                else {
                    return (Vec::new(), true);
                };
                bundle::Bundles::committed(v, &c, r)
            }
        },
        Message::FeaturesRequest => {
            let Some(b) = bridge(ctx).await else {
                return (Vec::new(), true);
            };
            let ports = if v == OFP10_VERSION {
                b.ports
                    .iter()
                    .map(|p| PortDesc::new(v, p.ofport, &p.name, p.mac, p.up))
                    .collect()
            } else {
                Vec::new()
            };
            reply(
                conn,
                xid,
                &Message::FeaturesReply(FeaturesReply {
                    datapath_id: b.dpid,
                    n_buffers: 0,
                    n_tables: N_TABLES,
                    auxiliary_id: 0,
                    capabilities: CAPABILITIES,
                    actions: OF10_ACTIONS,
                    ports,
                }),
            )
        }
        Message::GetConfigRequest => reply(conn, xid, &Message::GetConfigReply(conn.config)),
        Message::SetConfig(c) => {
            conn.config = c;
            Vec::new()
        }
        Message::SetAsync(a) => {
            conn.asyncc = a;
            Vec::new()
        }
        Message::GetAsyncRequest => reply(conn, xid, &Message::GetAsyncReply(conn.asyncc)),
        Message::BarrierRequest => {
            // Everything before the barrier is published and written to
            // the journal already (it survives a crash of rvsd); the disk
            // sync follows within the journal's group-commit delay.
            reply(conn, xid, &Message::BarrierReply)
        }
        Message::RoleRequest(r) => {
            if r.role != 0 {
                conn.role = r.role;
            }
            reply(
                conn,
                xid,
                &Message::RoleReply(Role {
                    role: conn.role,
                    generation_id: r.generation_id,
                }),
            )
        }
        Message::FlowMod(_) => return flow_mods(conn, ctx, &[raw]).await,
        Message::MeterMod(mm) => {
            let bridge = ctx.bridge.clone();
            let r = with_switch(&ctx.switch, move |s| {
                let r = s.of_meter_mod(&bridge, &mm);
                if let Err(e) = s.flush_journal() {
                    log::error!("saving state after an OpenFlow meter mod: {e}");
                }
                r
            })
            .await;
            match r {
                None => return (Vec::new(), true),
                Some(Ok(())) => Vec::new(),
                Some(Err(e)) => vec![of::error_reply(v, e, raw)],
            }
        }
        Message::PacketOut(po) => {
            if po.buffer_id != NO_BUFFER {
                error(
                    conn,
                    ErrorType::BadRequest,
                    bad_request::BUFFER_UNKNOWN,
                    raw,
                )
            } else {
                let bridge = ctx.bridge.clone();
                with_switch(&ctx.switch, move |s| s.of_packet_out(&bridge, po)).await;
                Vec::new()
            }
        }
        Message::MultipartRequest(r) => match multipart(conn, ctx, xid, r.body, wr).await {
            Ok(Mp::Written) => Vec::new(),
            Ok(Mp::Reply(body)) => match of::encode_multipart_reply(v, xid, &body, of::MAX_MSG_LEN)
            {
                Ok(msgs) => msgs,
                Err(e) => {
                    log::warn!("openflow {peer}: cannot encode a multipart reply: {e}");
                    error(conn, ErrorType::BadRequest, bad_request::EPERM, raw)
                }
            },
            Ok(Mp::Broken) => return (Vec::new(), true),
            Err((t, c)) => error(conn, t, c, raw),
        },
        // Messages only a switch sends.
        Message::FeaturesReply(_)
        | Message::GetConfigReply(_)
        | Message::PacketIn(_)
        | Message::FlowRemoved(_)
        | Message::PortStatus(_)
        | Message::MultipartReply(_)
        | Message::BarrierReply
        | Message::RoleReply(_)
        | Message::GetAsyncReply(_) => {
            error(conn, ErrorType::BadRequest, bad_request::BAD_TYPE, raw)
        }
    };
    (out, false)
}

/// Applies a run of FLOW_MOD messages as one batch; returns the ERRORs
/// (in message order) and whether to close.
async fn flow_mods(conn: &mut Conn, ctx: &Ctx, raws: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let v = conn.v();
    let mut out = Vec::new();
    let mut fms = Vec::with_capacity(raws.len());
    // Index of each decoded FLOW_MOD's message, for its error reply.
    let mut at = Vec::with_capacity(raws.len());
    for (k, raw) in raws.iter().enumerate() {
        match of::decode(raw) {
            Ok((_, Message::FlowMod(fm))) => {
                fms.push(fm);
                at.push(k);
            }
            Ok(_) => {}
            Err(e) => out.push((k, of::error_reply(v, e.error, raw))),
        }
    }
    if !fms.is_empty() {
        let bridge = ctx.bridge.clone();
        let of10 = v == OFP10_VERSION;
        let apply = move |s: &mut Switch| {
            let r = s.of_flow_mods(&bridge, &fms, of10);
            if let Err(e) = s.flush_journal() {
                log::error!("saving state after OpenFlow flow mods: {e}");
            }
            r
        };
        // A few flow mods (a controller's flow-mod + barrier round trip)
        // take microseconds: run them here when the switch is free rather
        // than pay two thread hand-offs; larger batches go to the
        // blocking pool.
        let inline = if raws.len() <= INLINE_BATCH {
            match ctx.switch.try_lock() {
                Ok(mut s) => Ok(apply(&mut s)),
                Err(_) => Err(apply),
            }
        } else {
            Err(apply)
        };
        let results = match inline {
            Ok(r) => r,
            Err(apply) => match with_switch(&ctx.switch, apply).await {
                Some(r) => r,
                None => return (Vec::new(), true),
            },
        };
        for (r, k) in results.into_iter().zip(at) {
            if let Err(e) = r {
                out.push((k, of::error_reply(v, e, raws[k])));
            }
        }
    }
    out.sort_by_key(|(k, _)| *k);
    (out.into_iter().map(|(_, m)| m).collect(), false)
}

async fn bridge(ctx: &Ctx) -> Option<OfBridge> {
    let name = ctx.bridge.clone();
    with_switch(&ctx.switch, move |s| s.of_bridge(&name))
        .await
        .flatten()
}

/// A meter request for a meter that does not exist (Open vSwitch's
/// answer).
const UNKNOWN_METER: (ErrorType, u16) = (
    ErrorType::MeterModFailed,
    flowtable::meter::code::UNKNOWN_METER,
);

/// How [`multipart`] answered.
enum Mp {
    /// A reply to encode and send.
    Reply(MpReply),
    /// The reply was written already.
    Written,
    /// Writing it failed: the connection is gone.
    Broken,
}

/// Answers a MULTIPART_REQUEST. FLOW statistics are collected as entries
/// under the switch lock ([`Switch::flow_entries`], pointer copies) and
/// encoded and written message by message after it, so memory stays at
/// one message however many flows match; the other replies are small and
/// built whole.
async fn multipart(
    conn: &Conn,
    ctx: &Ctx,
    xid: u32,
    req: MpRequest,
    wr: &mut Writer<'_>,
) -> Result<Mp, (ErrorType, u16)> {
    let v = conn.v();
    let gone = (ErrorType::BadRequest, bad_request::EPERM);
    let name = ctx.bridge.clone();
    Ok(Mp::Reply(match req {
        MpRequest::Desc => MpReply::Desc(Desc {
            mfr_desc: "rvs".into(),
            hw_desc: "rvs userspace switch".into(),
            sw_desc: env!("CARGO_PKG_VERSION").into(),
            serial_num: "None".into(),
            dp_desc: ctx.bridge.clone(),
        }),
        MpRequest::Flow(f) => {
            let filter = f.filter();
            let (flows, now) = with_switch(&ctx.switch, move |s| {
                (s.flow_entries(&name, &filter), s.now_ms())
            })
            .await
            .ok_or(gone)?;
            let mut enc =
                of::MultipartEncoder::new(v, xid, &MpReply::Flow(Vec::new()), of::MAX_MSG_LEN)
                    .map_err(|_| gone)?;
            for e in &flows {
                let fs = FlowStats::new(
                    &crate::datapath::pipeline::flow_of(e),
                    now.saturating_sub(e.created_ms),
                    e.data.n_packets(),
                    e.data.n_bytes(),
                );
                if let Some(m) = enc.push_flow(&fs) {
                    if wr.write_all(&m).await.is_err() {
                        return Ok(Mp::Broken);
                    }
                    // Encoding runs on the control runtime: let the other
                    // connections in between messages.
                    tokio::task::yield_now().await;
                }
            }
            if enc.n_skipped() > 0 {
                log::warn!(
                    "bridge {}: FLOW stats reply left out {} flow(s) whose actions do not fit in an OpenFlow message",
                    ctx.bridge,
                    enc.n_skipped()
                );
            }
            if wr.write_all(&enc.finish()).await.is_err() {
                return Ok(Mp::Broken);
            }
            return Ok(Mp::Written);
        }
        MpRequest::Aggregate(f) => {
            let filter = f.filter();
            let flows = with_switch(&ctx.switch, move |s| s.flow_entries(&name, &filter))
                .await
                .ok_or(gone)?;
            MpReply::Aggregate(AggregateStats {
                packet_count: flows.iter().map(|e| e.data.n_packets()).sum(),
                byte_count: flows.iter().map(|e| e.data.n_bytes()).sum(),
                flow_count: u32::try_from(flows.len()).unwrap_or(u32::MAX),
            })
        }
        MpRequest::Table => {
            let counts = with_switch(&ctx.switch, move |s| s.of_table_counts(&name))
                .await
                .ok_or(gone)?;
            MpReply::Table(
                (0..N_TABLES)
                    .map(|t| {
                        let c = counts.get(usize::from(t)).copied().unwrap_or_default();
                        TableStats {
                            table_id: t,
                            name: format!("table{t}"),
                            max_entries: MAX_ENTRIES,
                            active_count: c.active,
                            lookup_count: c.lookups,
                            matched_count: c.matched,
                        }
                    })
                    .collect(),
            )
        }
        MpRequest::PortStats(p) => {
            let only = (p != PortNo::NONE).then_some(p);
            let stats = with_switch(&ctx.switch, move |s| s.of_port_stats(&name, only))
                .await
                .ok_or(gone)?;
            MpReply::PortStats(
                stats
                    .iter()
                    .map(|s| PortStats {
                        port_no: PortNo(s.ofport),
                        rx_packets: s.rx_packets,
                        tx_packets: s.tx_packets,
                        rx_bytes: s.rx_bytes,
                        tx_bytes: s.tx_bytes,
                        rx_dropped: s.rx_dropped.values().sum(),
                        tx_dropped: s.tx_dropped.values().sum(),
                        ..PortStats::default()
                    })
                    .collect(),
            )
        }
        MpRequest::PortDesc => {
            let b = bridge(ctx).await.ok_or(gone)?;
            MpReply::PortDesc(
                b.ports
                    .iter()
                    .map(|p| PortDesc::new(v, p.ofport, &p.name, p.mac, p.up))
                    .collect(),
            )
        }
        MpRequest::TableFeatures(set) => {
            if !set.is_empty() {
                // rvs's tables cannot be reconfigured.
                return Err((ErrorType::TableFeaturesFailed, 5));
            }
            MpReply::TableFeatures(
                (0..N_TABLES)
                    .map(|t| TableFeatures::rvs(t, N_TABLES, MAX_ENTRIES))
                    .collect(),
            )
        }
        MpRequest::Meter(id) => {
            let stats = with_switch(&ctx.switch, move |s| s.meter_stats(&name, id))
                .await
                .ok_or(gone)?;
            MpReply::Meter(stats.ok_or(UNKNOWN_METER)?)
        }
        MpRequest::MeterConfig(id) => {
            let cfgs = with_switch(&ctx.switch, move |s| s.meter_configs(&name, id))
                .await
                .ok_or(gone)?;
            MpReply::MeterConfig(cfgs.ok_or(UNKNOWN_METER)?)
        }
        MpRequest::MeterFeatures => MpReply::MeterFeatures(crate::control::switch::METER_FEATURES),
        MpRequest::Experimenter { .. } => {
            return Err((ErrorType::BadRequest, bad_request::BAD_EXPERIMENTER))
        }
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::control::switch::{default_dpid, parse_dpid};

    #[test]
    fn targets_parse_like_ovs_vsctl() {
        let p = |s: &str| s.parse::<Target>();
        assert_eq!(
            p("ptcp:6653"),
            Ok(Target::PTcp("127.0.0.1:6653".parse().unwrap()))
        );
        assert_eq!(
            p("ptcp:6654:0.0.0.0"),
            Ok(Target::PTcp("0.0.0.0:6654".parse().unwrap()))
        );
        assert_eq!(
            p("ptcp:"),
            Ok(Target::PTcp("127.0.0.1:6653".parse().unwrap()))
        );
        assert_eq!(
            p("tcp:10.0.0.1"),
            Ok(Target::Tcp("10.0.0.1:6653".parse().unwrap()))
        );
        assert_eq!(
            p("tcp:10.0.0.1:6633"),
            Ok(Target::Tcp("10.0.0.1:6633".parse().unwrap()))
        );
        assert_eq!(
            p("tcp:[::1]:6633"),
            Ok(Target::Tcp("[::1]:6633".parse().unwrap()))
        );
        assert_eq!(
            p("punix:/run/x.sock"),
            Ok(Target::PUnix("/run/x.sock".into()))
        );
        assert_eq!(
            p("unix:/run/x.sock"),
            Ok(Target::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            p("pssl:6654"),
            Ok(Target::PSsl("127.0.0.1:6654".parse().unwrap()))
        );
        assert_eq!(
            p("ssl:10.0.0.1"),
            Ok(Target::Ssl("10.0.0.1:6653".parse().unwrap()))
        );
        assert_eq!(
            p("ssl:[::1]:6634"),
            Ok(Target::Ssl("[::1]:6634".parse().unwrap()))
        );
        assert!(p("pssl:1").unwrap().is_tls() && p("pssl:1").unwrap().is_passive());
        assert!(p("ssl:1.2.3.4").unwrap().is_tls() && !p("ssl:1.2.3.4").unwrap().is_passive());
        assert!(!p("ptcp:1").unwrap().is_tls());
        for bad in [
            "",
            "tcp",
            "tcp:",
            "tcp:host:1",
            "ptcp:99999",
            "ssl:",
            "ssl:host",
            "pssl:x",
            "tls:1.2.3.4",
            "punix:",
        ] {
            assert!(p(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn datapath_ids() {
        let d = default_dpid("br0");
        assert_eq!(d, default_dpid("br0"), "stable");
        assert_ne!(d, default_dpid("br1"));
        assert_eq!(d >> 48, 0, "a MAC in the low 48 bits");
        assert_eq!((d >> 40) & 0x03, 0x02, "locally administered unicast");
        assert_eq!(parse_dpid("00000000000000ab"), Some(0xab));
        assert_eq!(parse_dpid("0x00000000000000AB"), Some(0xab));
        assert_eq!(parse_dpid("ab"), None);
        assert_eq!(parse_dpid("000000000000000g"), None);
    }
}
