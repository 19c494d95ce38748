//! A blocking client for the rvsd control socket.
//!
//! One request per call; the connection is kept for further calls. Errors
//! distinguish "could not reach the daemon" (rvsctl exits 3) from "the daemon
//! rejected the request" (exit 1).
//!
//! Sizes are not the caller's concern: a request whose line would be longer
//! than [`MAX_LINE`] has its text uploaded in pieces first, and a streamed
//! reply is reassembled ([`Client::call`]) or handed over chunk by chunk
//! ([`Client::call_each`]); see [`crate::proto`] for the framing.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proto::{ErrorBody, Reply, Request, Response, StreamLine, MAX_LINE, MAX_UPLOAD};

/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

/// Bytes of text per [`Request::Upload`]: even if every byte needed a
/// six-byte JSON escape the line stays under [`MAX_LINE`].
pub const UPLOAD_PIECE: usize = MAX_LINE / 8;

/// Bytes of a bad response quoted in the error.
const QUOTE: usize = 200;

/// Socket path from `RVS_SOCKET`, else the default.
pub fn default_socket() -> PathBuf {
    std::env::var_os("RVS_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached or the connection broke.
    #[error("cannot reach rvsd at {path}: {source}")]
    Unreachable {
        /// Socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The daemon answered with something that is not a response.
    #[error("bad response from rvsd: {0}")]
    BadResponse(String),
    /// The request cannot be sent (too large).
    #[error("{0}")]
    TooLarge(String),
    /// The daemon rejected the request.
    #[error("{}", .0.message)]
    Rejected(ErrorBody),
}

/// A [`ClientError::BadResponse`] naming `what` went wrong with `line`,
/// quoting at most its first 200 bytes, and how many bytes of the
/// response (`total`, all lines so far) were received.
pub fn bad_response(what: impl std::fmt::Display, line: &[u8], total: u64) -> ClientError {
    let mut end = line.len().min(QUOTE);
    // Cut before a UTF-8 continuation byte, not inside a character.
    while end > 0 && end < line.len() && line[end] & 0xc0 == 0x80 {
        end -= 1;
    }
    let shown = String::from_utf8_lossy(&line[..end]);
    let more = if line.len() > end { "…" } else { "" };
    ClientError::BadResponse(format!(
        "{what} ({total} bytes received, starting {shown:?}{more})"
    ))
}

/// A connection to rvsd.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Bytes of the current response received so far.
    received: u64,
}

impl Client {
    /// Connects to the socket at `path`; `timeout` bounds each read and
    /// write (a streamed reply may take longer in all).
    pub fn connect(path: &Path, timeout: Option<Duration>) -> Result<Client, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            path: path.display().to_string(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(unreachable)?;
        stream.set_read_timeout(timeout).map_err(unreachable)?;
        stream.set_write_timeout(timeout).map_err(unreachable)?;
        let writer = stream.try_clone().map_err(unreachable)?;
        Ok(Client {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            received: 0,
        })
    }

    /// Sends one request and waits for its whole response.
    pub fn call(&mut self, req: &Request) -> Result<Reply, ClientError> {
        let mut whole: Option<Reply> = None;
        self.call_each(req, |part| {
            match &mut whole {
                None => whole = Some(part),
                Some(w) => w.append(part).map_err(|p| {
                    ClientError::BadResponse(format!("a chunk of another kind of reply: {p:?}"))
                })?,
            }
            Ok(())
        })?;
        whole.ok_or_else(|| ClientError::BadResponse("a stream without chunks".into()))
    }

    /// Sends one request and hands its reply to `each`: once for a
    /// one-line reply, once per chunk for a streamed one (each chunk a
    /// [`Reply`] of the same variant with the next items, see
    /// [`Reply::append`]). An error from `each` stops reading (the rest of
    /// the reply is not read and the connection should be dropped).
    pub fn call_each(
        &mut self,
        req: &Request,
        mut each: impl FnMut(Reply) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        self.send(req)?;
        self.received = 0;
        let mut line = Vec::new();
        self.read_line(&mut line)?;
        match serde_json::from_slice::<Response>(&line) {
            Ok(Response::Ok { result, .. }) => each(result),
            Ok(Response::Err { error, .. }) => Err(ClientError::Rejected(error)),
            Ok(Response::Stream { .. }) => self.stream(&mut line, each),
            Err(e) => Err(bad_response(e, &line, self.received)),
        }
    }

    /// Reads the chunk lines of a streamed reply, up to its end line.
    fn stream(
        &mut self,
        line: &mut Vec<u8>,
        mut each: impl FnMut(Reply) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let (mut items, mut chunks) = (0u64, 0u64);
        loop {
            self.read_line(line)?;
            match serde_json::from_slice::<StreamLine>(line) {
                Ok(StreamLine::Chunk { chunk }) => {
                    items += chunk.items().unwrap_or(0);
                    chunks += 1;
                    each(chunk)?;
                }
                Ok(StreamLine::End { end }) => {
                    if (end.items, end.chunks) != (items, chunks) {
                        return Err(ClientError::BadResponse(format!(
                            "the reply was incomplete: received {items} items in {chunks} chunks, \
                             rvsd sent {} in {}",
                            end.items, end.chunks
                        )));
                    }
                    return Ok(());
                }
                Ok(StreamLine::Err { error, .. }) => return Err(ClientError::Rejected(error)),
                Err(e) => return Err(bad_response(e, line, self.received)),
            }
        }
    }

    fn unreachable(&self, source: std::io::Error) -> ClientError {
        ClientError::Unreachable {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Writes `req`, uploading its text in pieces first when its line
    /// would be too long.
    fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        let text_len = req.text().map_or(0, str::len);
        if text_len <= MAX_LINE {
            let line = serde_json::to_vec(req).map_err(|e| ClientError::TooLarge(e.to_string()))?;
            if line.len() < MAX_LINE {
                return self.write_line(line);
            }
        }
        if text_len as u64 > MAX_UPLOAD {
            return Err(ClientError::TooLarge(format!(
                "the text is {text_len} bytes; a request may carry at most {MAX_UPLOAD} bytes (2 GiB)"
            )));
        }
        self.upload(req)
    }

    /// Sends `req`'s text but for its last piece as [`Request::Upload`]s,
    /// then `req` with that piece inside a [`Request::WithUpload`].
    fn upload(&mut self, req: &Request) -> Result<(), ClientError> {
        let pieces = split_text(req.text().unwrap_or(""), UPLOAD_PIECE);
        let (tail, head) = pieces.split_last().unwrap_or((&"", &[]));
        let Some(last) = req.with_text((*tail).to_string()) else {
            return Err(ClientError::TooLarge(
                "the request is longer than a line and carries no text to upload".into(),
            ));
        };
        let mut offset = 0u64;
        for p in head {
            let up = Request::Upload {
                offset,
                text: (*p).to_string(),
            };
            match self.call(&up)? {
                Reply::Done { count, .. } if count == offset + p.len() as u64 => {}
                other => {
                    return Err(ClientError::BadResponse(format!(
                        "upload at offset {offset}: unexpected answer {other:?}"
                    )))
                }
            }
            offset += p.len() as u64;
        }
        let fin = Request::WithUpload {
            bytes: offset,
            request: Box::new(last),
        };
        let line = serde_json::to_vec(&fin).map_err(|e| ClientError::TooLarge(e.to_string()))?;
        self.write_line(line)
    }

    fn write_line(&mut self, mut line: Vec<u8>) -> Result<(), ClientError> {
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|e| self.unreachable(e))
    }

    /// Reads one response line (without the newline) into `line`.
    fn read_line(&mut self, line: &mut Vec<u8>) -> Result<(), ClientError> {
        line.clear();
        let n = Read::by_ref(&mut self.reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', line)
            .map_err(|e| self.unreachable(e))?;
        self.received += n as u64;
        if n == 0 {
            return Err(self.unreachable(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            )));
        }
        if line.last() != Some(&b'\n') {
            let what = if n > MAX_LINE {
                format!("a response line longer than {MAX_LINE} bytes")
            } else {
                "the connection closed in the middle of a response line".to_string()
            };
            return Err(bad_response(what, line, self.received));
        }
        line.pop();
        Ok(())
    }
}

/// Splits `text` into pieces of at most `max` bytes, at line ends where
/// there are some (else at a character boundary). Always at least one
/// piece.
pub fn split_text(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = rest.as_bytes()[..max]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        if cut == 0 {
            cut = max;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
        }
        let (a, b) = rest.split_at(cut);
        out.push(a);
        rest = b;
    }
    out.push(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn split_text_prefers_line_ends_and_keeps_everything() {
        let t = "aaa\nbbbb\ncc\n";
        assert_eq!(split_text(t, 5), vec!["aaa\n", "bbbb\n", "cc\n"]);
        assert_eq!(split_text(t, 100), vec![t]);
        assert_eq!(split_text("", 4), vec![""]);
        let long = "ééééé"; // 10 bytes, no newline
        let p = split_text(long, 3);
        assert!(p.iter().all(|s| s.len() <= 3 && !s.is_empty()));
        assert_eq!(p.concat(), long);
    }

    /// A fake daemon that answers one request with `reply` and closes.
    fn fake_daemon(reply: Vec<u8>) -> (PathBuf, std::thread::JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!("rvs-ctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("s{}.sock", reply.len()));
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut req = String::new();
            r.read_line(&mut req).unwrap();
            let mut w = s;
            let _ = w.write_all(&reply);
        });
        (path, t)
    }

    #[test]
    fn a_bad_response_is_quoted_briefly_with_its_size() {
        // 5 MiB of a JSON string that never ends, as a truncated reply
        // looks, then garbage of 300 bytes on one line.
        let mut big = br#"{"ok":true,"result":{"flows":[{"flow":""#.to_vec();
        big.resize(5 << 20, b'x');
        for (reply, size) in [
            (big, format!("{} bytes received", MAX_LINE + 1)),
            (
                [vec![b'y'; 300], b"\n".to_vec()].concat(),
                "301 bytes received".into(),
            ),
        ] {
            let (path, t) = fake_daemon(reply);
            let mut c = Client::connect(&path, Some(Duration::from_secs(5))).unwrap();
            let e = c.call(&Request::Ping {}).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, ClientError::BadResponse(_)), "{msg}");
            assert!(msg.len() < 200 + 150, "{} bytes: {msg}", msg.len());
            assert!(msg.contains(&size), "{msg}");
            assert!(msg.ends_with("…)"), "{msg}");
            drop(c);
            t.join().unwrap();
            let _ = std::fs::remove_file(&path);
        }
    }

    #[test]
    fn bad_response_cuts_at_a_character_boundary() {
        let line = "é".repeat(150); // 300 bytes
        let ClientError::BadResponse(m) = bad_response("x", line.as_bytes(), 300) else {
            panic!()
        };
        assert!(m.contains(&format!("\"{}\"…", "é".repeat(100))), "{m}");
    }
}
