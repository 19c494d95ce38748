//! A blocking client for the rvsd control socket.
//!
//! One request per call; the connection is kept for further calls. Errors
//! distinguish "could not reach the daemon" (rvsctl exits 3) from "the daemon
//! rejected the request" (exit 1).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proto::{ErrorBody, Reply, Request, Response, MAX_LINE};

/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

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
    /// The daemon rejected the request.
    #[error("{}", .0.message)]
    Rejected(ErrorBody),
}

/// A connection to rvsd.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the socket at `path`; `timeout` bounds each request.
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
        })
    }

    /// Sends one request and waits for its response.
    pub fn call(&mut self, req: &Request) -> Result<Reply, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            path: self.path.display().to_string(),
            source,
        };
        let mut line =
            serde_json::to_string(req).map_err(|e| ClientError::BadResponse(e.to_string()))?;
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(unreachable)?;
        let mut resp = String::new();
        let n = Read::by_ref(&mut self.reader)
            .take(MAX_LINE as u64 + 1)
            .read_line(&mut resp)
            .map_err(unreachable)?;
        if n == 0 {
            return Err(unreachable(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            )));
        }
        match serde_json::from_str::<Response>(&resp) {
            Ok(Response::Ok { result, .. }) => Ok(result),
            Ok(Response::Err { error, .. }) => Err(ClientError::Rejected(error)),
            Err(e) => Err(ClientError::BadResponse(format!(
                "{e}: {}",
                resp.trim_end()
            ))),
        }
    }
}
