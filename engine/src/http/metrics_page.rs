//! The metrics page: `GET /metrics` on its own address.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `GET /metrics` until the task is dropped. This is a scrape endpoint only:
/// one small request per connection, answered and closed.
pub async fn serve(
    listener: TcpListener,
    render: impl Fn() -> String + Send + Sync + Clone + 'static,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut request = [0u8; 2048];
            let mut read = 0;
            // Read until the end of the request head, a full buffer, or EOF.
            while read < request.len() {
                match stream.read(&mut request[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
                if request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&request[..read]);
            let (status, content_type, body) =
                match head.split_whitespace().take(2).collect::<Vec<_>>()[..] {
                    ["GET", "/metrics"] => (
                        "200 OK",
                        "text/plain; version=0.0.4; charset=utf-8",
                        render(),
                    ),
                    ["GET", _] => (
                        "404 Not Found",
                        "text/plain",
                        "only /metrics is served here\n".to_owned(),
                    ),
                    _ => (
                        "400 Bad Request",
                        "text/plain",
                        "expected GET /metrics\n".to_owned(),
                    ),
                };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
