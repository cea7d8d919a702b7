//! The control socket: a Unix socket speaking [`protocol`](crate::control::protocol) lines.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::control::commands::Control;
use crate::control::protocol::{ErrorBody, MAX_REQUEST_BYTES, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another dialhound is already listening on `{0}`")]
    InUse(String),
    #[error("cannot listen on `{path}`: {source}")]
    Bind {
        path: String,
        source: std::io::Error,
    },
}

/// Binds the control socket with mode 0600, replacing a stale socket file left by a
/// daemon that died, but never one that a live daemon answers on.
pub async fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    let bind_failed = |source| SocketError::Bind {
        path: shown.clone(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(bind_failed)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(SocketError::InUse(shown));
        }
        std::fs::remove_file(path).map_err(bind_failed)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_failed)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_failed)?;
    Ok(listener)
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: UnixListener, control: Arc<Control>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let control = Arc::clone(&control);
                tokio::spawn(async move {
                    if let Err(error) = connection(stream, control).await {
                        tracing::debug!(%error, "control connection ended");
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "control socket accept failed"),
        }
    }
}

/// One connection: any number of requests, each answered in order.
async fn connection(stream: UnixStream, control: Arc<Control>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let response = match read_line(&mut reader, &mut line).await? {
            LineRead::End => return Ok(()),
            LineRead::TooLong => Response::failure(ErrorBody::new(
                "request_too_large",
                format!("a request line may hold at most {MAX_REQUEST_BYTES} bytes"),
            )),
            LineRead::Line if line.iter().all(u8::is_ascii_whitespace) => continue,
            LineRead::Line => match Request::parse(&line) {
                Ok(request) => {
                    let (events, mut event_lines) = mpsc::channel(16);
                    let handler = {
                        let control = Arc::clone(&control);
                        tokio::spawn(async move { control.handle(request, events).await })
                    };
                    while let Some(event) = event_lines.recv().await {
                        let mut text =
                            serde_json::to_vec(&event).expect("events are plain JSON values");
                        text.push(b'\n');
                        write.write_all(&text).await?;
                    }
                    handler.await.unwrap_or_else(|error| {
                        Response::failure(ErrorBody::new(
                            "internal",
                            format!("the request failed: {error}"),
                        ))
                    })
                }
                Err(error) => {
                    control
                        .metrics
                        .socket_requests
                        .with_label_values(&["unknown", &error.code])
                        .inc();
                    Response::failure(error)
                }
            },
        };
        write.write_all(&response.to_line()).await?;
    }
}

enum LineRead {
    Line,
    TooLong,
    End,
}

/// Reads one `\n`-terminated line of at most [`MAX_REQUEST_BYTES`]. A longer line is
/// consumed to its end and reported, so the connection stays usable. A last line
/// without a newline counts as a line.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<LineRead> {
    let mut too_long = false;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => LineRead::TooLong,
                (false, true) => LineRead::End,
                (false, false) => LineRead::Line,
            });
        }
        let (taken, done) = match buffer.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buffer.len(), false),
        };
        if !too_long {
            let content = &buffer[..if done { taken - 1 } else { taken }];
            if line.len() + content.len() > MAX_REQUEST_BYTES {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(content);
            }
        }
        reader.consume(taken);
        if done {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_line_is_skipped_and_the_next_is_read() {
        let mut input = vec![b'x'; MAX_REQUEST_BYTES + 10];
        input.extend_from_slice(b"\n{\"command\":\"status\"}\n");
        let mut reader = BufReader::new(input.as_slice());
        let mut line = Vec::new();
        assert!(matches!(
            read_line(&mut reader, &mut line).await.unwrap(),
            LineRead::TooLong
        ));
        line.clear();
        assert!(matches!(
            read_line(&mut reader, &mut line).await.unwrap(),
            LineRead::Line
        ));
        assert_eq!(line, b"{\"command\":\"status\"}");
        line.clear();
        assert!(matches!(
            read_line(&mut reader, &mut line).await.unwrap(),
            LineRead::End
        ));
    }

    #[tokio::test]
    async fn last_line_without_newline_counts() {
        let mut reader = BufReader::new(&b"abc"[..]);
        let mut line = Vec::new();
        assert!(matches!(
            read_line(&mut reader, &mut line).await.unwrap(),
            LineRead::Line
        ));
        assert_eq!(line, b"abc");
    }
}
