//! The operator's side of the control socket.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::control::protocol::{Event, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at `{path}` (is `dialhound serve` running?)")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("the connection to the daemon failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon closed the connection without answering")]
    NoAnswer,
    #[error("the daemon's answer is not understood: {0}")]
    BadAnswer(String),
}

/// Sends one request and waits for its response, passing events on as they come.
pub async fn call(
    socket: &Path,
    request: &Request,
    mut on_event: impl FnMut(Event),
) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ClientError::Connect {
            path: socket.display().to_string(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut line =
        serde_json::to_vec(request).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.shutdown().await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        if let Ok(event) = serde_json::from_str::<Event>(&line) {
            on_event(event);
            continue;
        }
        return serde_json::from_str(&line)
            .map_err(|e| ClientError::BadAnswer(format!("{e}: {line}")));
    }
    Err(ClientError::NoAnswer)
}
