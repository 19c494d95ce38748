//! The control socket server: JSON lines over a unix stream socket.
//!
//! # Design
//! A tokio task accepts connections; each connection gets its own task that
//! reads one request line at a time (bounded by [`MAX_LINE`]), hands it to
//! the [`Handler`] and writes the answer: one response line, or the lines
//! of a streamed reply as a producer hands them over a bounded channel
//! ([`Answer::Lines`], framed by [`rvs_ctl::stream`]), so a slow client
//! slows the producer instead of growing a buffer. A client that sends
//! nothing for the idle timeout ([`IDLE_TIMEOUT`] by default) is
//! disconnected; a line that is too long or
//! not valid JSON gets an error response (the oversized line also closes the
//! connection, since the rest of the stream cannot be framed).
//!
//! Requests too large for a line arrive in pieces ([`Request::Upload`]);
//! the connection keeps them in its [`Upload`] buffer and runs the
//! [`Request::WithUpload`] that follows as one ordinary request with the
//! whole text, so the handler never sees pieces.
//!
//! The socket is never reachable by anyone but its owner before it has
//! its final mode: [`bind`] creates it inside a fresh 0700 directory,
//! sets its mode (0600, or 0660 and a group for `--socket-group`) and
//! only then renames it into place.
//!
//! # Thread-safety
//! Handlers are shared across connection tasks; the switch model behind them
//! serialises changes with its own lock. Upload buffers are per connection.
//!
//! # Limits
//! An upload holds at most [`MAX_UPLOAD`] bytes, in lines of at most
//! [`MAX_TEXT_LINE`] bytes. A client that stops reading a streamed reply
//! keeps its producer (a blocking-pool thread and the entries it
//! collected) waiting until it reads on or disconnects.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rvs_ctl::proto::{ErrorKind, Reply, Request, Response, MAX_LINE, MAX_TEXT_LINE, MAX_UPLOAD};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// Default time after which a silent client is disconnected.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Processes one request.
pub trait Handler: Send + Sync + 'static {
    /// Answers `req`.
    fn handle(&self, req: Request) -> impl std::future::Future<Output = Answer> + Send;
}

/// What a [`Handler`] answers.
#[derive(Debug)]
pub enum Answer {
    /// One response line.
    One(Response),
    /// Whole lines (each ending in `\n`), with a flag set on the last one
    /// of the reply. A channel that closes before the last line makes the
    /// connection end the reply with an error line.
    Lines(mpsc::Receiver<(Vec<u8>, bool)>),
}

impl From<Response> for Answer {
    fn from(r: Response) -> Answer {
        Answer::One(r)
    }
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
    /// Something that is not a socket is in the way.
    #[error("cannot listen on {}: it exists and is not a socket ({kind}); refusing to replace it", path.display())]
    NotSocket {
        /// Socket path.
        path: PathBuf,
        /// What is there instead.
        kind: &'static str,
    },
}

/// What a file is, in words, for errors about it.
pub fn file_kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_fifo() {
        "a FIFO"
    } else {
        "a device"
    }
}

/// Which file `m` describes: device, inode and status-change time (an
/// inode number alone is soon reused: tmpfs hands a removed file's number
/// to the next file created).
pub fn file_id(m: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

/// Binds the control socket at `path`: mode 0600 owned by us, or 0660
/// with group `group` (`--socket-group`). A stale socket (one nobody
/// listens on) is replaced; anything else there is an error.
///
/// The socket is bound inside a new directory of mode 0700 next to
/// `path`, given its mode and group there, and renamed into place, so
/// nobody else can connect before it has its final mode. (Setting the
/// umask around `bind` would do the same, but the umask is
/// process-wide: the datapath workers and the journal already run and
/// may create files meanwhile. A `chmod` after `bind` leaves a window in
/// which the socket is open to everyone the umask allows.)
///
/// The returned [`SocketFile`] removes the socket's path when dropped.
pub fn bind(path: &Path, group: Option<u32>) -> Result<(UnixListener, SocketFile), ServerError> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    let bind_err = |source| ServerError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(bind_err)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServerError::InUse(path.to_path_buf()));
            }
            // Stale: the rename below replaces it.
        }
        Ok(m) => {
            return Err(ServerError::NotSocket {
                path: path.to_path_buf(),
                kind: file_kind(&m),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err(e)),
    }
    // A fresh private directory: `create` fails if the name exists, so
    // nobody can have prepared it for us.
    let mut private = None;
    for n in 0..100 {
        let p = dir.join(format!(".rvsd.{}.{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => {
                private = Some(p);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(bind_err(e)),
        }
    }
    let Some(private) = private else {
        return Err(bind_err(std::io::Error::other(
            "cannot create a private directory next to it",
        )));
    };
    let tmp = private.join("s");
    let bound = (|| {
        let listener = UnixListener::bind(&tmp)?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(&tmp, None, Some(gid))?;
        }
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, path)?;
        // (The rename changed its ctime: identify it after.)
        let id = file_id(&std::fs::symlink_metadata(path)?);
        Ok((
            listener,
            SocketFile {
                path: path.to_path_buf(),
                id,
            },
        ))
    })();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&private);
    bound.map_err(bind_err)
}

/// The control socket's path, removed on drop if it still is the socket
/// [`bind`] created (never whatever replaced it).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// [`file_id`] of the socket bound.
    id: (u64, u64, i64, i64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| file_id(&m) == self.id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
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
    let mut upload = Upload::default();
    loop {
        line.clear();
        let read = tokio::time::timeout(idle, read_line(&mut rd, &mut line)).await;
        let (answer, close) = match read {
            Err(_) => (
                Response::err(ErrorKind::BadRequest, "timed out waiting for a request").into(),
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
                )
                .into(),
                true,
            ),
            Ok(Ok(LineRead::Line)) => match serde_json::from_slice::<Request>(&line) {
                Ok(req) => match upload.take(req) {
                    Ok(req) => (handler.handle(req).await, false),
                    Err(resp) => (resp.into(), false),
                },
                Err(e) => (
                    Response::err(ErrorKind::BadRequest, format!("malformed request: {e}")).into(),
                    false,
                ),
            },
        };
        if !write_answer(&mut wr, answer).await || close {
            return;
        }
    }
}

/// Writes `answer`; false when the connection is broken. Writes wait for
/// the client as long as it takes (`rvsctl dump-flows | less`).
async fn write_answer(wr: &mut tokio::net::unix::OwnedWriteHalf, answer: Answer) -> bool {
    let mut write = async |b: &[u8]| wr.write_all(b).await.is_ok();
    match answer {
        Answer::One(resp) => {
            let mut out = match serde_json::to_vec(&resp) {
                Ok(v) => v,
                Err(e) => {
                    log::error!("cannot serialize response: {e}");
                    return false;
                }
            };
            out.push(b'\n');
            write(&out).await
        }
        Answer::Lines(mut rx) => {
            while let Some((l, last)) = rx.recv().await {
                if !write(&l).await {
                    return false;
                }
                if last {
                    return true;
                }
            }
            // The producer stopped without finishing (it panicked).
            let out = rvs_ctl::stream::json_line(&Response::err(
                ErrorKind::Internal,
                "the reply broke off (see the rvsd log)",
            ));
            write(&out).await
        }
    }
}

/// The text a connection uploaded for its next [`Request::WithUpload`].
#[derive(Debug)]
pub struct Upload {
    text: String,
    /// Lines completed so far, and the length of the one being received.
    lines: u64,
    line_len: usize,
    /// Most bytes accepted ([`MAX_UPLOAD`]).
    max: u64,
}

impl Default for Upload {
    fn default() -> Upload {
        Upload::with_limit(MAX_UPLOAD)
    }
}

impl Upload {
    /// An empty buffer that takes at most `max` bytes.
    pub fn with_limit(max: u64) -> Upload {
        Upload {
            text: String::new(),
            lines: 0,
            line_len: 0,
            max,
        }
    }

    /// Empties the buffer.
    fn reset(&mut self) {
        *self = Upload::with_limit(self.max);
    }

    /// Passes an ordinary request through; keeps an [`Request::Upload`]
    /// piece (answering it); turns a [`Request::WithUpload`] into its
    /// request with the whole text. Every refusal empties the buffer.
    pub fn take(&mut self, req: Request) -> Result<Request, Response> {
        match req {
            Request::Upload { offset, text } => {
                if offset == 0 {
                    self.reset();
                }
                let have = self.text.len() as u64;
                if offset != have {
                    self.reset();
                    return Err(bad(format!(
                        "upload piece at offset {offset}, but {have} bytes were uploaded; \
                         start again at offset 0"
                    )));
                }
                self.append(&text)?;
                Err(Response::ok(Reply::Done {
                    message: String::new(),
                    count: self.text.len() as u64,
                }))
            }
            Request::WithUpload { bytes, request } => {
                let mut req = *request;
                let have = self.text.len() as u64;
                if bytes != have {
                    self.reset();
                    return Err(bad(format!(
                        "the request counts on {bytes} uploaded bytes, but {have} were uploaded"
                    )));
                }
                let Some(t) = req.text_mut() else {
                    self.reset();
                    return Err(bad(
                        "with_upload carries add_flows, replace_flows or apply only",
                    ));
                };
                let tail = std::mem::take(t);
                self.append(&tail)?;
                *t = std::mem::take(&mut self.text);
                self.reset();
                Ok(req)
            }
            req => Ok(req),
        }
    }

    /// Appends `piece`, checking the total and the line lengths.
    fn append(&mut self, piece: &str) -> Result<(), Response> {
        if self.text.len() as u64 + piece.len() as u64 > self.max {
            let max = self.max;
            self.reset();
            return Err(Response::err(
                ErrorKind::Invalid,
                format!("the request text is longer than {max} bytes; nothing was changed"),
            ));
        }
        for (i, seg) in piece.split('\n').enumerate() {
            if i > 0 {
                self.lines += 1;
                self.line_len = 0;
            }
            self.line_len += seg.len();
            if self.line_len > MAX_TEXT_LINE {
                let n = self.lines + 1;
                self.reset();
                return Err(Response::err(
                    ErrorKind::Invalid,
                    format!(
                        "line {n} of the request text is longer than {MAX_TEXT_LINE} bytes; \
                         nothing was changed"
                    ),
                ));
            }
        }
        self.text.push_str(piece);
        Ok(())
    }
}

fn bad(message: impl Into<String>) -> Response {
    Response::err(ErrorKind::BadRequest, message)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn piece(offset: u64, text: &str) -> Request {
        Request::Upload {
            offset,
            text: text.into(),
        }
    }

    fn add(bytes: u64, text: &str) -> Request {
        Request::WithUpload {
            bytes,
            request: Box::new(Request::AddFlows {
                bridge: "br0".into(),
                text: text.into(),
            }),
        }
    }

    fn message(r: Result<Request, Response>) -> String {
        match r {
            Err(Response::Err { error, .. }) => error.message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pieces_join_into_one_request() {
        let mut u = Upload::default();
        assert!(matches!(
            u.take(piece(0, "priority=1,act")),
            Err(Response::Ok {
                result: Reply::Done { count: 14, .. },
                ..
            })
        ));
        assert!(u.take(piece(14, "ions=drop\npri")).is_err());
        let r = u.take(add(27, "ority=2,actions=drop\n")).unwrap();
        assert_eq!(
            r.text(),
            Some("priority=1,actions=drop\npriority=2,actions=drop\n")
        );
        // The buffer is empty again; other requests pass through.
        assert_eq!(u.take(Request::Ping {}).unwrap(), Request::Ping {});
        assert!(message(u.take(add(1, ""))).contains("1 uploaded bytes, but 0"));
    }

    #[test]
    fn lost_pieces_limits_and_long_lines_are_refused() {
        let mut u = Upload::default();
        let _ = u.take(piece(0, "abc"));
        assert!(message(u.take(piece(5, "x"))).contains("offset 5, but 3 bytes"));
        // The refusal emptied the buffer; offset 0 starts afresh anyway.
        let _ = u.take(piece(0, "abc"));
        let _ = u.take(piece(0, "de"));
        assert_eq!(u.take(add(2, "f")).unwrap().text(), Some("def"));
        let _ = u.take(piece(0, "x"));
        let bad = Request::WithUpload {
            bytes: 1,
            request: Box::new(Request::Ping {}),
        };
        assert!(message(u.take(bad)).contains("add_flows, replace_flows or apply"));

        let mut u = Upload::with_limit(10);
        let _ = u.take(piece(0, "12345"));
        assert!(message(u.take(piece(5, "678901"))).contains("longer than 10 bytes"));
        assert!(message(u.take(add(0, "x".repeat(11).as_str()))).contains("longer than 10"));

        let mut u = Upload::default();
        let long = "y".repeat(MAX_TEXT_LINE / 2 + 1);
        let _ = u.take(piece(0, "ok\nok\n"));
        let _ = u.take(piece(6, &long));
        assert!(message(u.take(piece(6 + long.len() as u64, &long))).contains("line 3 of"));
    }
}
