//! The tracked links' server: `GET /TOKEN` on the `[links] listen` address
//! records a click and redirects (302) to the link's target.
//!
//! It is handed the function that looks a link up and records the click;
//! it knows no store or SMS. What it decides itself: whether an opening is
//! a person's or a link preview's (a `HEAD`, or a user agent that says it
//! is a bot or a preview: those are redirected but not clicks), and which
//! address is guessing tokens (too many unknown ones in a minute locks the
//! address out for ten, logged once).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

/// One opening of a link, as the server hands it on.
#[derive(Debug, Clone)]
pub struct Opening {
    pub token: String,
    /// The visitor's address: the peer's, or the proxy's `X-Forwarded-For`
    /// when `trust_proxy` is set.
    pub address: IpAddr,
    pub user_agent: String,
    /// A `HEAD` or a link-preview fetch: redirected, not a click.
    pub preview: bool,
}

/// Looks the link up and records the opening; the target, `None` for a
/// token no SMS has, or an error to log. Blocking.
pub type OpenLink = Arc<dyn Fn(Opening) -> Result<Option<String>, String> + Send + Sync>;

/// Unknown tokens an address may try in [`GUESS_WINDOW`] before it is
/// locked out for [`LOCKOUT`].
const GUESSES_ALLOWED: u32 = 20;
const GUESS_WINDOW: Duration = Duration::from_secs(60);
const LOCKOUT: Duration = Duration::from_secs(600);
/// Addresses the guess tracker remembers at most; past it the quiet ones
/// are forgotten first.
const TRACKED_ADDRESSES: usize = 10_000;

struct LinkServer {
    open: OpenLink,
    trust_proxy: bool,
    guesses: Mutex<Guesses>,
}

/// Serves the links on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, trust_proxy: bool, open: OpenLink) {
    let server = Arc::new(LinkServer {
        open,
        trust_proxy,
        guesses: Mutex::new(Guesses::default()),
    });
    let app = Router::new()
        .route("/{token}", get(follow))
        .fallback(|| async { not_found() })
        .with_state(server);
    if let Err(error) = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    {
        tracing::error!(%error, "the link server stopped");
    }
}

async fn follow(
    State(server): State<Arc<LinkServer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let address = if server.trust_proxy {
        forwarded_for(&headers).unwrap_or(peer.ip())
    } else {
        peer.ip()
    };
    if server.guesses().is_locked(address, Instant::now()) {
        return too_many();
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let preview = method == Method::HEAD || is_link_preview(&user_agent);
    let target = if is_token(&token) {
        let open = Arc::clone(&server.open);
        let opening = Opening {
            token,
            address,
            user_agent,
            preview,
        };
        match tokio::task::spawn_blocking(move || open(opening)).await {
            Ok(Ok(target)) => target,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot look a tracked link up");
                return (StatusCode::SERVICE_UNAVAILABLE, "try again in a moment\n")
                    .into_response();
            }
            Err(error) => {
                tracing::error!(%error, "the tracked-link lookup panicked");
                return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
            }
        }
    } else {
        None
    };
    match target {
        Some(target) => redirect(&target),
        None => {
            if server.guesses().miss(address, Instant::now()) {
                tracing::warn!(%address, "an address tried too many unknown link tokens; it is locked out for 10 minutes");
            }
            not_found()
        }
    }
}

impl LinkServer {
    fn guesses(&self) -> std::sync::MutexGuard<'_, Guesses> {
        self.guesses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn redirect(target: &str) -> Response {
    match header::HeaderValue::from_str(target) {
        Ok(location) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                (
                    header::CACHE_CONTROL,
                    header::HeaderValue::from_static("no-store"),
                ),
                (
                    header::REFERRER_POLICY,
                    header::HeaderValue::from_static("no-referrer"),
                ),
            ],
        )
            .into_response(),
        Err(_) => {
            tracing::error!("a tracked link's target cannot be a Location header");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "this link's target is broken\n",
            )
                .into_response()
        }
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such link\n").into_response()
}

fn too_many() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, LOCKOUT.as_secs().to_string())],
        "too many unknown links from this address\n",
    )
        .into_response()
}

/// The shape a token may have (letters and digits, not too long), checked
/// before anything is looked up.
fn is_token(token: &str) -> bool {
    (1..=64).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The client address a proxy in front of the daemon reports: the last
/// `X-Forwarded-For` entry, the one the proxy itself added.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last_header = headers.get_all("x-forwarded-for").iter().next_back()?;
    let last_entry = last_header.to_str().ok()?.rsplit(',').next()?;
    last_entry.trim().parse().ok()
}

/// Whether a user agent is a fetch for a link preview or a crawler rather
/// than a person opening the link (an empty one counts as not a person).
pub fn is_link_preview(user_agent: &str) -> bool {
    const MARKS: [&str; 12] = [
        "bot",
        "spider",
        "crawl",
        "preview",
        "facebookexternalhit",
        "whatsapp",
        "slurp",
        "embedly",
        "bingpreview",
        "skypeuripreview",
        "headlesschrome",
        "python-requests",
    ];
    let agent = user_agent.trim().to_ascii_lowercase();
    agent.is_empty() || MARKS.iter().any(|mark| agent.contains(mark))
}

/// Unknown tokens by address, sans-IO: time is passed in.
#[derive(Default)]
struct Guesses {
    by_address: HashMap<IpAddr, Misses>,
}

struct Misses {
    window_start: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

impl Guesses {
    fn is_locked(&self, address: IpAddr, now: Instant) -> bool {
        self.by_address
            .get(&address)
            .and_then(|misses| misses.locked_until)
            .is_some_and(|until| now < until)
    }

    /// Counts an unknown token from `address`; true when that locks it out.
    fn miss(&mut self, address: IpAddr, now: Instant) -> bool {
        if self.by_address.len() >= TRACKED_ADDRESSES && !self.by_address.contains_key(&address) {
            self.forget_quiet(now);
        }
        let misses = self.by_address.entry(address).or_insert(Misses {
            window_start: now,
            count: 0,
            locked_until: None,
        });
        if now.duration_since(misses.window_start) > GUESS_WINDOW {
            misses.window_start = now;
            misses.count = 0;
        }
        misses.count += 1;
        if misses.count > GUESSES_ALLOWED && misses.locked_until.is_none_or(|until| now >= until) {
            misses.locked_until = Some(now + LOCKOUT);
            return true;
        }
        false
    }

    /// Drops the addresses neither locked nor guessing in this window.
    fn forget_quiet(&mut self, now: Instant) {
        self.by_address.retain(|_, misses| {
            misses.locked_until.is_some_and(|until| now < until)
                || now.duration_since(misses.window_start) <= GUESS_WINDOW
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_guessing_tokens_is_locked_out_then_let_back_in() {
        let mut guesses = Guesses::default();
        let guesser: IpAddr = "203.0.113.7".parse().unwrap();
        let other: IpAddr = "198.51.100.2".parse().unwrap();
        let t0 = Instant::now();
        for n in 0..GUESSES_ALLOWED {
            assert!(!guesses.miss(guesser, t0 + Duration::from_millis(u64::from(n))));
        }
        assert!(!guesses.is_locked(guesser, t0));
        assert!(
            guesses.miss(guesser, t0 + Duration::from_secs(1)),
            "the one too many"
        );
        assert!(guesses.is_locked(guesser, t0 + Duration::from_secs(2)));
        assert!(!guesses.is_locked(other, t0 + Duration::from_secs(2)));
        assert!(!guesses.is_locked(guesser, t0 + LOCKOUT + Duration::from_secs(2)));
    }

    #[test]
    fn misses_spread_over_minutes_do_not_lock_anyone_out() {
        let mut guesses = Guesses::default();
        let visitor: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        for n in 0..(GUESSES_ALLOWED as u64 * 3) {
            assert!(!guesses.miss(visitor, t0 + Duration::from_secs(n * 10)));
        }
    }

    #[test]
    fn previews_and_bots_are_told_from_people() {
        assert!(is_link_preview("WhatsApp/2.23.20.0"));
        assert!(is_link_preview("Mozilla/5.0 (compatible; Googlebot/2.1)"));
        assert!(is_link_preview("facebookexternalhit/1.1"));
        assert!(is_link_preview(""));
        assert!(!is_link_preview(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.42"
        ));
        assert!(!is_link_preview(
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
        ));
    }

    #[test]
    fn the_proxy_added_forwarded_address_is_the_visitor() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "10.0.0.1, 203.0.113.9".parse().unwrap());
        assert_eq!(
            forwarded_for(&headers),
            Some("203.0.113.9".parse().unwrap())
        );
        let mut junk = HeaderMap::new();
        junk.append("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(forwarded_for(&junk), None);
    }

    #[test]
    fn only_token_shaped_paths_are_looked_up() {
        assert!(is_token("Ab3dE9xQ"));
        assert!(!is_token("Ab3dE9x!"));
        assert!(!is_token(""));
        assert!(!is_token(&"a".repeat(65)));
        assert!(!is_token("../etc/x"));
    }
}
