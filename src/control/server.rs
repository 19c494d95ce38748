//! The control socket server: JSON lines over a unix stream socket.
//!
//! # Design
//! A tokio task accepts connections; each connection gets its own task that
//! reads one request line at a time (bounded by [`MAX_LINE`]), hands it to
//! the [`Handler`] and writes the response line. A client that sends
//! nothing for the idle timeout ([`IDLE_TIMEOUT`] by default) is
//! disconnected; a line that is too long or
//! not valid JSON gets an error response (the oversized line also closes the
//! connection, since the rest of the stream cannot be framed).
//!
//! # Thread-safety
//! Handlers are shared across connection tasks; the switch model behind them
//! serialises changes with its own lock.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rvs_ctl::proto::{ErrorKind, Request, Response, MAX_LINE};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Default time after which a silent client is disconnected.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Processes one request.
pub trait Handler: Send + Sync + 'static {
    /// Answers `req`.
    fn handle(&self, req: Request) -> impl std::future::Future<Output = Response> + Send;
}

/// Socket setup failures.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the socket failed.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Another daemon is serving this socket.
    #[error("{0} is in use by another running rvsd")]
    InUse(PathBuf),
}

/// Binds the socket at `path` with mode 0600, replacing a stale socket file.
pub fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let bind_err = |source| ServerError::Bind {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(bind_err)?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServerError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok(listener)
}

/// Clients served at once; the next one gets an error and is closed.
pub const MAX_CLIENTS: usize = 256;

/// Serves connections until the task is dropped.
pub async fn serve<H: Handler>(listener: UnixListener, handler: Arc<H>, idle: Duration) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        match listener.accept().await {
            Ok((mut stream, _)) => {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    let resp = Response::err(
                        ErrorKind::System,
                        format!("rvsd serves {MAX_CLIENTS} control connections at most; try again"),
                    );
                    if let Ok(mut b) = serde_json::to_vec(&resp) {
                        b.push(b'\n');
                        let _ = stream.write_all(&b).await;
                    }
                    continue;
                };
                let h = handler.clone();
                tokio::spawn(async move {
                    connection(stream, h, idle).await;
                    drop(permit);
                });
            }
            Err(e) => {
                log::warn!("control socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection<H: Handler>(stream: UnixStream, handler: Arc<H>, idle: Duration) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        let read = tokio::time::timeout(idle, read_line(&mut rd, &mut line)).await;
        let (resp, close) = match read {
            Err(_) => (
                Response::err(ErrorKind::BadRequest, "timed out waiting for a request"),
                true,
            ),
            Ok(Err(e)) => {
                log::debug!("control connection read failed: {e}");
                return;
            }
            Ok(Ok(LineRead::Eof)) => return,
            Ok(Ok(LineRead::TooLong)) => (
                Response::err(
                    ErrorKind::BadRequest,
                    format!("request longer than {MAX_LINE} bytes"),
                ),
                true,
            ),
            Ok(Ok(LineRead::Line)) => match serde_json::from_slice::<Request>(&line) {
                Ok(req) => (handler.handle(req).await, false),
                Err(e) => (
                    Response::err(ErrorKind::BadRequest, format!("malformed request: {e}")),
                    false,
                ),
            },
        };
        let mut out = match serde_json::to_vec(&resp) {
            Ok(v) => v,
            Err(e) => {
                log::error!("cannot serialize response: {e}");
                return;
            }
        };
        out.push(b'\n');
        if wr.write_all(&out).await.is_err() || close {
            return;
        }
    }
}

enum LineRead {
    Line,
    Eof,
    TooLong,
}

/// Reads up to and excluding `\n`, at most `MAX_LINE` bytes.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<LineRead> {
    loop {
        let buf = rd.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > MAX_LINE {
            return Ok(LineRead::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        rd.consume(if done { take + 1 } else { take });
        if done {
            if line.iter().all(u8::is_ascii_whitespace) {
                line.clear();
                continue;
            }
            return Ok(LineRead::Line);
        }
    }
}
