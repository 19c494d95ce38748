//! TAP I/O: one `read`/`write` per frame (epoll) against io_uring batching.
//!
//! # What?
//! A measurement for issue 6, not datapath code. Two TAPs made with
//! [`rvs::port::TapPort::create`] (IFF_VNET_HDR + offloads, so every frame
//! starts with a 10-byte virtio-net header) are moved into two network
//! namespaces `rvu<pid>a` / `rvu<pid>b` (addresses 10.77.0.1/24 and
//! 10.77.0.2/24, static ARP). A forwarder thread in this process moves frames
//! tap0→tap1 and tap1→tap0 verbatim (header included) in two modes:
//!
//! * `epoll`: non-blocking `read` until `EAGAIN`, one `write` per frame,
//!   `epoll_wait` when both are drained — what rvsd does today.
//! * `uring`: [`RING_READS`] reads kept outstanding per TAP; every
//!   completed read becomes a write to the other TAP plus a re-armed read
//!   into a fresh buffer, and all of those go to the kernel in the same
//!   `io_uring_enter` that waits for the next completions.
//!
//! Load: `udpblast` (64-byte UDP payload, `sendmmsg` ×32) from namespace A
//! to B for [`SECONDS`] s, [`RUNS`] runs per mode. Reported per run:
//! frames the forwarder moved per second, frames B's interface received per
//! second (`rx_packets`), forwarder thread CPU (`getrusage(RUSAGE_THREAD)`)
//! and syscalls per frame (epoll mode: `read`+`write`+`epoll_wait`; uring
//! mode: `io_uring_enter`).
//!
//! # Design
//! Run with `cargo bench -p rvs --bench tap_io` as root. Not root, or no
//! `udpblast.c` found (searched as `shared/peerbench/tools/udpblast.c` in
//! the ancestors of the crate dir, or `RVS_UDPBLAST_SRC`): prints why and
//! exits 0. The sender is pinned to CPU 0 and the forwarder to CPU 1 when
//! there are two or more CPUs.
//!
//! # Invariants
//! Namespaces and TAPs carry the `rvu<pid>` prefix and are removed by
//! [`Lab`]'s `Drop`, which also runs on panic. io_uring buffers outlive every
//! request that points at them: the loop cancels and reaps all requests
//! before they are freed (and leaks them if it cannot).
//!
//! # Thread-safety
//! One forwarder thread owns the fds for the duration of a run.
//!
//! # Limits
//! udpblast refuses destinations outside 10.77.0.0/24, so the private
//! namespaces use that range rather than 10.123.0.0/24. The return traffic
//! is only B's ICMP port-unreachable replies (rate-limited by the kernel).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};
use rvs::port::TapPort;

/// Seconds of load per run.
const SECONDS: u32 = 5;
/// Runs per mode.
const RUNS: usize = 3;
/// Reads kept outstanding per TAP in uring mode.
const RING_READS: usize = 32;
/// Buffer size: a 64 KiB GSO frame plus its virtio-net header.
const BUF_LEN: usize = 65_536 + 64;
/// Frames read per TAP per wakeup in epoll mode before serving the other.
const EPOLL_BATCH: usize = 32;

/// What one forwarder run counted.
#[derive(Debug, Default, Clone, Copy)]
struct FwdStats {
    /// Frames written to the other TAP.
    frames: u64,
    /// Syscalls that did I/O or waited.
    syscalls: u64,
    /// Forwarder thread CPU time (user + system), seconds.
    cpu_s: f64,
    /// Forwarder wall time, seconds.
    wall_s: f64,
    /// Frames read but not written (write error).
    tx_errors: u64,
}

/// The two namespaces and their TAPs; removed on drop (also on panic).
struct Lab {
    ns: [String; 2],
    ports: Vec<TapPort>,
    ifnames: [String; 2],
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Closing the fds deletes the (non-persistent) TAPs.
        self.ports.clear();
        for ns in &self.ns {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn run(cmd: &[&str]) -> io::Result<String> {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{}: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Lab {
    fn new() -> io::Result<Lab> {
        let pid = std::process::id();
        let ns = [format!("rvu{pid}a"), format!("rvu{pid}b")];
        let ifnames = [format!("rvu{pid}t0"), format!("rvu{pid}t1")];
        let mut lab = Lab {
            ns: ns.clone(),
            ports: Vec::new(),
            ifnames: ifnames.clone(),
        };
        for n in &ns {
            run(&["ip", "netns", "add", n])?;
        }
        let ips = ["10.77.0.1", "10.77.0.2"];
        let macs = ["02:7b:00:00:00:01", "02:7b:00:00:00:02"];
        for i in 0..2 {
            let port = TapPort::create(&ifnames[i]).map_err(io::Error::other)?;
            lab.ports.push(port);
            let (n, d) = (ns[i].as_str(), ifnames[i].as_str());
            run(&["ip", "link", "set", d, "netns", n])?;
            run(&["ip", "-n", n, "link", "set", d, "address", macs[i]])?;
            run(&[
                "ip",
                "netns",
                "exec",
                n,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ])?;
            run(&[
                "ip",
                "-n",
                n,
                "addr",
                "add",
                &format!("{}/24", ips[i]),
                "dev",
                d,
            ])?;
            run(&["ip", "-n", n, "link", "set", d, "up"])?;
            run(&[
                "ip",
                "-n",
                n,
                "neigh",
                "replace",
                ips[1 - i],
                "lladdr",
                macs[1 - i],
                "dev",
                d,
                "nud",
                "permanent",
            ])?;
        }
        Ok(lab)
    }

    /// Counter `name` (`rx_packets`, `tx_dropped`, ...) of the TAP in
    /// namespace `i`.
    fn stat(&self, i: usize, name: &str) -> io::Result<u64> {
        let path = format!("/sys/class/net/{}/statistics/{name}", self.ifnames[i]);
        run(&["ip", "netns", "exec", &self.ns[i], "cat", &path])?
            .trim()
            .parse()
            .map_err(io::Error::other)
    }
}

fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on an fd this process owns (the TapPort keeps
    // it open for the whole benchmark); no pointers involved.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data, zeroed is a valid empty set;
    // sched_setaffinity(0, ..) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn thread_cpu_s() -> f64 {
    cpu_s(libc::RUSAGE_THREAD)
}

/// User + system CPU seconds of `who` (`RUSAGE_THREAD` or `RUSAGE_SELF`,
/// the latter including io_uring's io-wq worker threads).
fn cpu_s(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes one rusage into the zeroed local.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Mode 1: epoll + one non-blocking read/write per frame.
fn forward_epoll(fds: [RawFd; 2], stop: &AtomicBool) -> io::Result<FwdStats> {
    for fd in fds {
        set_nonblocking(fd, true)?;
    }
    // SAFETY: epoll_create1 has no pointer arguments.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    for (i, fd) in fds.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: i as u64,
        };
        // SAFETY: `ev` is a live epoll_event; `ep` and `fd` are open.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, *fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let mut st = FwdStats::default();
    let mut buf = vec![0u8; BUF_LEN];
    let mut ready = [false; 2];
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if !ready[0] && !ready[1] {
            // SAFETY: `events` is a live array of 4 epoll_events.
            let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 4, 100) };
            st.syscalls += 1;
            for ev in events.iter().take(n.max(0) as usize) {
                ready[ev.u64 as usize] = true;
            }
            continue;
        }
        for i in 0..2 {
            if !ready[i] {
                continue;
            }
            for _ in 0..EPOLL_BATCH {
                // SAFETY: `buf` is a live, exclusively borrowed buffer of
                // BUF_LEN bytes.
                let n = unsafe { libc::read(fds[i], buf.as_mut_ptr().cast(), BUF_LEN) };
                st.syscalls += 1;
                if n <= 0 {
                    ready[i] = false;
                    break;
                }
                // SAFETY: writes the `n` bytes just read from `buf`.
                let w = unsafe { libc::write(fds[1 - i], buf.as_ptr().cast(), n as usize) };
                st.syscalls += 1;
                if w == n {
                    st.frames += 1;
                } else {
                    st.tx_errors += 1;
                }
            }
        }
    }
    st.wall_s = t0.elapsed().as_secs_f64();
    st.cpu_s = thread_cpu_s() - cpu0;
    // SAFETY: `ep` is an epoll fd this function created and owns.
    unsafe { libc::close(ep) };
    Ok(st)
}

const OP_READ: u64 = 0;
const OP_WRITE: u64 = 1;
const OP_CANCEL: u64 = 2;

fn ud(op: u64, port: usize, buf: usize) -> u64 {
    (op << 32) | ((port as u64) << 24) | buf as u64
}

/// Mode 2: io_uring, reads kept armed, writes + re-arms in one enter.
fn forward_uring(fds: [RawFd; 2], stop: &AtomicBool) -> io::Result<FwdStats> {
    // Blocking fds: with O_NONBLOCK io_uring completes reads with EAGAIN
    // instead of arming a poll.
    for fd in fds {
        set_nonblocking(fd, false)?;
    }
    let mut ring = IoUring::new(1024)?;
    let nbufs = 4 * RING_READS;
    let mut bufs: Vec<Vec<u8>> = (0..nbufs).map(|_| vec![0u8; BUF_LEN]).collect();
    let mut free: Vec<usize> = (0..nbufs).rev().collect();
    let mut outstanding = 0usize;
    let mut st = FwdStats::default();
    // Reads a port is owed because no buffer was free.
    let mut owed = [0usize; 2];

    let (submitter, mut sq, mut cq) = ring.split();
    let push = |sq: &mut io_uring::SubmissionQueue<'_>, e: &io_uring::squeue::Entry| {
        // SAFETY: every entry points into `bufs`, which is neither moved nor
        // freed until all requests completed (reaped below, or leaked).
        while unsafe { sq.push(e) }.is_err() {
            sq.sync();
            let _ = submitter.submit();
            sq.sync();
        }
    };
    let read_entry = |port: usize, b: usize, bufs: &mut [Vec<u8>]| {
        opcode::Read::new(types::Fd(fds[port]), bufs[b].as_mut_ptr(), BUF_LEN as u32)
            .build()
            .user_data(ud(OP_READ, port, b))
    };
    for port in 0..2 {
        for _ in 0..RING_READS {
            let b = free.pop().ok_or_else(|| io::Error::other("pool"))?;
            push(&mut sq, &read_entry(port, b, &mut bufs));
            outstanding += 1;
        }
    }
    sq.sync();
    let ts = types::Timespec::new().nsec(100_000_000);
    let args = types::SubmitArgs::new().timespec(&ts);
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    let mut cancelling = false;
    loop {
        match submitter.submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        st.syscalls += 1;
        cq.sync();
        for cqe in &mut cq {
            let u = cqe.user_data();
            let (op, port, b) = (
                u >> 32,
                ((u >> 24) & 0xff) as usize,
                (u & 0xff_ffff) as usize,
            );
            match op {
                OP_READ => {
                    outstanding -= 1;
                    let res = cqe.result();
                    if res > 0 && !cancelling {
                        let w = opcode::Write::new(
                            types::Fd(fds[1 - port]),
                            bufs[b].as_ptr(),
                            res as u32,
                        )
                        .build()
                        .user_data(ud(OP_WRITE, 1 - port, b));
                        push(&mut sq, &w);
                        outstanding += 1;
                        owed[port] += 1;
                    } else {
                        free.push(b);
                        if !cancelling {
                            owed[port] += 1;
                        }
                    }
                }
                OP_WRITE => {
                    outstanding -= 1;
                    if cqe.result() > 0 {
                        st.frames += 1;
                    } else {
                        st.tx_errors += 1;
                    }
                    free.push(b);
                }
                _ => outstanding -= 1,
            }
        }
        if cancelling {
            if outstanding == 0 {
                break;
            }
            if t0.elapsed() > Duration::from_secs(SECONDS as u64 + 30) {
                // Requests we cannot reap still point into `bufs`.
                std::mem::forget(bufs);
                return Err(io::Error::other("io_uring requests did not complete"));
            }
            continue;
        }
        for (port, owed) in owed.iter_mut().enumerate() {
            while *owed > 0 {
                let Some(b) = free.pop() else { break };
                push(&mut sq, &read_entry(port, b, &mut bufs));
                outstanding += 1;
                *owed -= 1;
            }
        }
        if stop.load(Ordering::Relaxed) {
            st.wall_s = t0.elapsed().as_secs_f64();
            st.cpu_s = thread_cpu_s() - cpu0;
            let c = opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(ud(OP_CANCEL, 0, 0));
            push(&mut sq, &c);
            outstanding += 1;
            cancelling = true;
        }
        sq.sync();
    }
    drop(bufs);
    Ok(st)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Epoll,
    Uring,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Epoll => "epoll read/write",
            Mode::Uring => "io_uring",
        }
    }
}

struct RunResult {
    fwd: FwdStats,
    sent_kpps: f64,
    secs: f64,
    delivered: u64,
    /// Frames A's TAP dropped because the forwarder did not read them in
    /// time (`tx_dropped`: the TAP queue was full).
    tap_dropped: u64,
    /// Whole-process CPU % over the run (forwarder + io-wq workers + the
    /// main thread, which only spawns `ip`).
    proc_cpu: f64,
}

fn one_run(lab: &Lab, mode: Mode, blast: &Path, pin: bool) -> io::Result<RunResult> {
    let fds = [lab.ports[0].fd(), lab.ports[1].fd()];
    let stop = Arc::new(AtomicBool::new(false));
    let proc0 = (cpu_s(libc::RUSAGE_SELF), Instant::now());
    let stop2 = Arc::clone(&stop);
    let fwd = std::thread::spawn(move || {
        if pin {
            pin_to_cpu(1);
        }
        match mode {
            Mode::Epoll => forward_epoll(fds, &stop2),
            Mode::Uring => forward_uring(fds, &stop2),
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let rx0 = lab.stat(1, "rx_packets")?;
    let drop0 = lab.stat(0, "tx_dropped")?;
    let secs = SECONDS.to_string();
    let dst = "10.77.0.2";
    let blast_s = blast.to_string_lossy();
    let mut cmd = vec!["ip", "netns", "exec", &lab.ns[0]];
    if pin {
        cmd.extend(["taskset", "-c", "0"]);
    }
    cmd.extend([&*blast_s, "send", dst, "9", &secs, "64"]);
    let out = run(&cmd);
    std::thread::sleep(Duration::from_millis(200));
    let rx1 = lab.stat(1, "rx_packets");
    let drop1 = lab.stat(0, "tx_dropped");
    stop.store(true, Ordering::Relaxed);
    let fwd = fwd
        .join()
        .map_err(|_| io::Error::other("forwarder panicked"))??;
    let proc_cpu = 100.0 * (cpu_s(libc::RUSAGE_SELF) - proc0.0) / proc0.1.elapsed().as_secs_f64();
    let out = out?;
    let field = |k: &str| -> f64 {
        out.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    Ok(RunResult {
        fwd,
        sent_kpps: field("tx_kpps"),
        secs: field("seconds"),
        delivered: rx1? - rx0,
        tap_dropped: drop1? - drop0,
        proc_cpu,
    })
}

fn find_udpblast_src() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RVS_UDPBLAST_SRC") {
        return Some(PathBuf::from(p));
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/peerbench/tools/udpblast.c"))
        .find(|p| p.is_file())
}

fn main() {
    // cargo bench passes --bench; a `cargo test --benches` run passes
    // nothing: only measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        println!("tap_io: run with `cargo bench -p rvs --bench tap_io`");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("tap_io: skipped: needs root (TAP devices and network namespaces)");
        return;
    }
    let Some(src) = find_udpblast_src() else {
        println!(
            "tap_io: skipped: shared/peerbench/tools/udpblast.c not found (set RVS_UDPBLAST_SRC)"
        );
        return;
    };
    if let Err(e) = bench(&src) {
        eprintln!("tap_io: failed: {e}");
        std::process::exit(1);
    }
}

/// One run's figures.
struct Row {
    mode: Mode,
    sent_kpps: f64,
    fwd_kpps: f64,
    deliv_kpps: f64,
    drop_kpps: f64,
    thread_cpu: f64,
    proc_cpu: f64,
    per_frame: f64,
    us_per_frame: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(src: &Path) -> io::Result<()> {
    let dir = std::env::temp_dir().join(format!("rvu{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let blast = dir.join("udpblast");
    run(&[
        "cc",
        "-O2",
        "-o",
        &blast.to_string_lossy(),
        &src.to_string_lossy(),
    ])?;
    let pin = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    let lab = Lab::new()?;
    println!(
        "tap_io: {RUNS} runs x {SECONDS} s per mode, udpblast 64 B payload, sender on CPU 0, forwarder on CPU 1: {pin}"
    );
    println!(
        "{:<18} {:>3} {:>10} {:>10} {:>11} {:>10} {:>7} {:>7} {:>8} {:>10} {:>7}",
        "mode",
        "run",
        "sent kpps",
        "fwd kpps",
        "deliv kpps",
        "tapA drop",
        "thr CPU",
        "proc CPU",
        "us/frame",
        "sys/frame",
        "tx_err"
    );
    let mut rows: Vec<Row> = Vec::new();
    for mode in [
        Mode::Epoll,
        Mode::Uring,
        Mode::Epoll,
        Mode::Uring,
        Mode::Epoll,
        Mode::Uring,
    ] {
        let r = one_run(&lab, mode, &blast, pin)?;
        let secs = if r.secs > 0.0 { r.secs } else { SECONDS as f64 };
        let row = Row {
            mode,
            sent_kpps: r.sent_kpps,
            fwd_kpps: r.fwd.frames as f64 / secs / 1e3,
            deliv_kpps: r.delivered as f64 / secs / 1e3,
            drop_kpps: r.tap_dropped as f64 / secs / 1e3,
            thread_cpu: 100.0 * r.fwd.cpu_s / r.fwd.wall_s,
            proc_cpu: r.proc_cpu,
            per_frame: r.fwd.syscalls as f64 / r.fwd.frames.max(1) as f64,
            us_per_frame: r.fwd.cpu_s * 1e6 / r.fwd.frames.max(1) as f64,
        };
        let run_no = rows.iter().filter(|x| x.mode == mode).count() + 1;
        println!(
            "{:<18} {:>3} {:>10.1} {:>10.1} {:>11.1} {:>10.1} {:>7.1} {:>7.1} {:>8.2} {:>10.3} {:>7}",
            mode.name(),
            run_no,
            row.sent_kpps,
            row.fwd_kpps,
            row.deliv_kpps,
            row.drop_kpps,
            row.thread_cpu,
            row.proc_cpu,
            row.us_per_frame,
            row.per_frame,
            r.fwd.tx_errors
        );
        rows.push(row);
    }
    println!();
    println!("medians of {RUNS} runs:");
    println!(
        "| mode | sent kpps | forwarded kpps | delivered kpps | TAP A dropped kpps | forwarder thread CPU % | process CPU % | forwarder CPU µs/frame | syscalls/frame |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for mode in [Mode::Epoll, Mode::Uring] {
        let col = |f: fn(&Row) -> f64| {
            let mut v: Vec<f64> = rows.iter().filter(|x| x.mode == mode).map(f).collect();
            median(&mut v)
        };
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.3} |",
            mode.name(),
            col(|x| x.sent_kpps),
            col(|x| x.fwd_kpps),
            col(|x| x.deliv_kpps),
            col(|x| x.drop_kpps),
            col(|x| x.thread_cpu),
            col(|x| x.proc_cpu),
            col(|x| x.us_per_frame),
            col(|x| x.per_frame)
        );
    }
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
