//! A minimal stderr logger for the `log` facade, and the panic policy of
//! `rvsd`.
//!
//! # What?
//! [`init`] installs a logger that writes `rvsd LEVEL message` lines to
//! stderr (journald adds the time stamps under systemd). [`exit_on_panic`]
//! makes any panic, in any thread, fatal: it logs the panic through this
//! logger and exits the process with [`PANIC_EXIT`].
//!
//! # Design
//! A panic used to unwind one thread only: a request handler's panic
//! poisoned the switch mutex and left a daemon that answered every request
//! with an error and never exited, a datapath worker's left a switch that
//! no longer forwarded, and tokio swallowed panics of its tasks. None of
//! that state can be trusted after a panic, and none needs to be: every
//! accepted change is in the journal (`control::journal`: one `write` per
//! batch under the switch lock, a torn last record dropped on restore,
//! snapshots renamed into place), so dying at once loses nothing that was
//! acknowledged and systemd (`Restart=on-failure`) restarts the daemon on
//! the same state. The hook exits from the panicking thread before
//! anything unwinds, so no lock is poisoned and no half-done request is
//! answered.
//!
//! The hook exits with a status rather than aborting: `panic = "abort"`
//! would also need this hook for the log line (the default hook prints no
//! level and is lost among other lines), and an abort dumps core, which for
//! a daemon holding a million flows is gigabytes per crash. The hook is
//! installed by `rvsd`'s `main` only: unit tests and the test harness keep
//! Rust's unwinding panics (they catch them to report failures).
//!
//! # Invariants
//! Logging never panics: a stderr that is gone (closed, `EPIPE`) loses the
//! line instead of panicking inside the logger or the panic hook.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Exit status of `rvsd` after a panic (Rust's own status for a panicking
/// main thread).
pub const PANIC_EXIT: i32 = 101;

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            let lvl = match r.level() {
                Level::Error => "ERROR",
                Level::Warn => "WARN",
                Level::Info => "INFO",
                Level::Debug => "DEBUG",
                Level::Trace => "TRACE",
            };
            // Not eprintln!: it panics when stderr is gone.
            let _ = writeln!(std::io::stderr().lock(), "rvsd {lvl} {}", r.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// Installs the logger at `level`.
pub fn init(level: LevelFilter) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// The text of a panic payload (`panic!` with a literal or a format).
pub fn panic_payload(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(a panic payload that is not a string)"
    }
}

/// The log line of a panic: thread, location and message.
pub fn panic_line(thread: Option<&str>, location: Option<String>, message: &str) -> String {
    format!(
        "panic in thread {} at {}: {message}; exiting with status {PANIC_EXIT} \
         (the state on disk holds every acknowledged change)",
        thread.unwrap_or("<unnamed>"),
        location.as_deref().unwrap_or("<unknown location>"),
    )
}

/// Makes every panic fatal: logs it (with a backtrace when
/// `RUST_BACKTRACE` asks for one) and exits with [`PANIC_EXIT`]. Call once,
/// from `main`, after [`init`].
pub fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        log::error!(
            "{}",
            panic_line(thread.name(), location, panic_payload(info.payload()))
        );
        let bt = std::backtrace::Backtrace::capture();
        if bt.status() == std::backtrace::BacktraceStatus::Captured {
            log::error!("backtrace:\n{bt}");
        }
        std::process::exit(PANIC_EXIT);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_line_names_thread_location_and_message() {
        let l = panic_line(Some("rvs-dp0"), Some("src/x.rs:1:2".into()), "boom");
        assert_eq!(
            l,
            "panic in thread rvs-dp0 at src/x.rs:1:2: boom; exiting with status 101 \
             (the state on disk holds every acknowledged change)"
        );
        assert!(panic_line(None, None, "x").starts_with("panic in thread <unnamed> at <unknown"));
    }

    #[test]
    fn payloads_of_both_string_kinds() {
        let a: Box<dyn std::any::Any + Send> = Box::new("lit");
        let b: Box<dyn std::any::Any + Send> = Box::new(format!("n={}", 3));
        let c: Box<dyn std::any::Any + Send> = Box::new(7u8);
        assert_eq!(panic_payload(&*a), "lit");
        assert_eq!(panic_payload(&*b), "n=3");
        assert!(panic_payload(&*c).contains("not a string"));
    }
}
