//! The web app: static files embedded in the binary, served on the TCP API
//! next to `/api/v1`, and what keeps other web pages out of it.
//!
//! A browser cannot send the bearer token, so it gets a session cookie
//! instead: `roost open` asks the daemon over the Unix socket for a
//! one-time login token ([`socket_routes`]), opens `/login#<token>`, and
//! the page trades the token for an HttpOnly, SameSite=Strict cookie.
//! [`guard`] runs before every TCP request: the Host header must name this
//! loopback listener (DNS rebinding), a state-changing request must come
//! from the app's own origin (or, for bearer-token clients, carry none),
//! and the request needs the token or a live session. Every answer carries
//! a strict Content-Security-Policy. See docs/ui.md.

mod qr;
pub mod sessions;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::views::MessageView;
use super::{ApiError, AppState};
use crate::store::MessageState;
use crate::wire::files::PART_TYPE;
use sessions::Sessions;

/// The policy sent with every TCP answer: only this origin's own files, no
/// inline script or style, no framing, no plugins.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// The web app's state in the daemon: where the TCP API listens (for the
/// Host and Origin checks and the login URL) and who is logged in.
pub(crate) struct Web {
    addr: SocketAddr,
    sessions: Mutex<Sessions>,
}

impl Web {
    /// Nobody logged in yet, for the TCP listener at `addr`.
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            sessions: Mutex::new(Sessions::new()),
        }
    }

    /// The session cookie's name. Browsers share cookies between the ports
    /// of one host, so the port is in the name: two daemons on one machine
    /// do not overwrite each other's login.
    fn cookie_name(&self) -> String {
        format!("roost_session_{}", self.addr.port())
    }

    /// The Host header values that name this listener.
    fn host_ok(&self, host: &str) -> bool {
        let port = self.addr.port();
        let mut ok = [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ]
        .iter()
        .any(|h| h == host);
        if !self.addr.ip().is_unspecified() {
            ok |= self.addr.to_string() == host;
        }
        ok
    }

    /// Where a browser reaches the app.
    fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// 32 random bytes as hex, or `None` when the system has no randomness.
fn secret() -> Option<String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).ok()?;
    Some(hex::encode(raw))
}

/// One embedded file: its path under `/assets/`, type and bytes.
type Asset = (&'static str, &'static str, &'static [u8]);

const JS: &str = "text/javascript; charset=utf-8";

/// The app's files, compiled into the binary.
const ASSETS: &[Asset] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("web/assets/style.css"),
    ),
    ("login.js", JS, include_bytes!("web/assets/login.js")),
    ("js/app.js", JS, include_bytes!("web/assets/js/app.js")),
    ("js/api.js", JS, include_bytes!("web/assets/js/api.js")),
    ("js/dom.js", JS, include_bytes!("web/assets/js/dom.js")),
    (
        "js/buddies.js",
        JS,
        include_bytes!("web/assets/js/buddies.js"),
    ),
    (
        "js/conversation.js",
        JS,
        include_bytes!("web/assets/js/conversation.js"),
    ),
    ("js/me.js", JS, include_bytes!("web/assets/js/me.js")),
    ("js/keys.js", JS, include_bytes!("web/assets/js/keys.js")),
    (
        "js/groups.js",
        JS,
        include_bytes!("web/assets/js/groups.js"),
    ),
    ("js/files.js", JS, include_bytes!("web/assets/js/files.js")),
    (
        "bell.svg",
        "image/svg+xml",
        include_bytes!("web/assets/bell.svg"),
    ),
    (
        "clip.svg",
        "image/svg+xml",
        include_bytes!("web/assets/clip.svg"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("web/assets/icon.svg"),
    ),
];

const INDEX: &[u8] = include_bytes!("web/assets/index.html");
const LOGIN: &[u8] = include_bytes!("web/assets/login.html");
const HTML: &str = "text/html; charset=utf-8";
/// What a browser without a session sees instead of the app.
const LOGGED_OUT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>roost</title>\
<link rel=\"stylesheet\" href=\"/assets/style.css\"></head><body class=\"login\"><main>\
<h1 class=\"brand\">roost</h1><p>This browser is not logged in.</p>\
<p>Run <code>roost open</code> to open the app with a login link.</p></main></body></html>";

/// Files anyone may fetch: what the login page needs, holding no data.
const PUBLIC: &[&str] = &[
    "/login",
    "/assets/login.js",
    "/assets/style.css",
    "/assets/icon.svg",
];

/// The pages and files of the app, served on TCP only.
pub(super) fn page_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page(INDEX) }))
        .route("/login", get(|| async { page(LOGIN) }).post(login))
        .route("/assets/{*file}", get(asset))
}

/// Routes served on both the socket and TCP, for the app and other clients.
pub(super) fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/conversations", get(conversations))
        .route("/api/v1/qr", get(qr_svg))
}

/// Routes served on the Unix socket only: whoever may use the socket may
/// log a browser in.
pub(super) fn socket_routes() -> Router<AppState> {
    Router::new().route("/api/v1/web/login", post(new_login))
}

fn page(body: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, HTML)], body).into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, ty, body)) => ([(header::CONTENT_TYPE, *ty)], *body).into_response(),
        None => ApiError(StatusCode::NOT_FOUND, "no such file".into()).into_response(),
    }
}

/// `POST /api/v1/web/login` answer: the URL that logs a browser in once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginView {
    /// `http://127.0.0.1:PORT/login#<token>`.
    pub url: String,
    /// Seconds the link works for.
    pub expires_in: u64,
}

async fn new_login(State(s): State<AppState>) -> Result<Json<LoginView>, ApiError> {
    let token = secret()
        .ok_or_else(|| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "no randomness".into()))?;
    s.web.sessions().add_login(token.clone(), Instant::now());
    Ok(Json(LoginView {
        url: format!("{}/login#{token}", s.web.base_url()),
        expires_in: sessions::LOGIN_TTL.as_secs(),
    }))
}

#[derive(Deserialize)]
struct LoginBody {
    token: String,
}

/// Trades a one-time login token for a session cookie.
async fn login(State(s): State<AppState>, Json(body): Json<LoginBody>) -> Response {
    let Some(session) = secret() else {
        return ApiError(StatusCode::INTERNAL_SERVER_ERROR, "no randomness".into()).into_response();
    };
    if !s
        .web
        .sessions()
        .redeem(body.token.trim(), Instant::now(), session.clone())
    {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "this login link was used already or has expired: run `roost open` again".into(),
        )
        .into_response();
    }
    let cookie = format!(
        "{}={session}; HttpOnly; SameSite=Strict; Path=/",
        s.web.cookie_name()
    );
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

/// One conversation in `GET /api/v1/conversations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationRow {
    /// The other party's ID.
    pub peer: String,
    /// Its buddy name, if it is a buddy.
    pub name: Option<String>,
    /// Incoming messages not read yet (the parts of small files aside).
    pub unread: usize,
    /// The latest message either way, if any (the parts of small files
    /// aside).
    pub last: Option<MessageView>,
}

/// Every buddy and every key that wrote to us, with unread counts and the
/// latest message: what a chat window's list shows.
async fn conversations(State(s): State<AppState>) -> Result<Json<Vec<ConversationRow>>, ApiError> {
    let me = s.node.peer_id().to_string();
    let buddies = s.node.buddies().await?;
    let names: HashMap<_, _> = buddies.iter().map(|b| (b.peer, b.name.clone())).collect();
    let mut unread: BTreeMap<libp2p::PeerId, usize> = buddies.iter().map(|b| (b.peer, 0)).collect();
    for m in s.node.received().await? {
        if let Some(p) = m.peer_id() {
            let counts = m.state == MessageState::Unread && m.content_type != PART_TYPE;
            *unread.entry(p).or_default() += usize::from(counts);
        }
    }
    let mut rows = Vec::with_capacity(unread.len());
    for (peer, n) in unread {
        let name = names.get(&peer).cloned();
        // The parts of a small file follow its offer and have no line of
        // their own: the latest message shown is before them.
        let recent = s.node.conversation_lines(peer, 1).await?;
        let last = recent.last();
        rows.push(ConversationRow {
            peer: peer.to_string(),
            unread: n,
            last: last.map(|m| MessageView::new(m, &me, name.clone())),
            name,
        });
    }
    Ok(Json(rows))
}

#[derive(Deserialize)]
struct QrQuery {
    text: String,
}

/// `GET /api/v1/qr?text=…`: the text as a QR code (SVG).
async fn qr_svg(Query(q): Query<QrQuery>) -> Response {
    match qr::svg(&q.text) {
        Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Err(e) => ApiError(StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

fn refuse(code: StatusCode, why: &str) -> Response {
    ApiError(code, why.into()).into_response()
}

/// The value of cookie `name` in the request's Cookie headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Why a TCP request is refused, if it is; `None` lets it through.
fn check(s: &AppState, req: &Request) -> Option<Response> {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !s.web.host_ok(host) {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "wrong Host header: use the address `roost open` gives",
        ));
    }
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD);
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("?"));
    if changes && origin.is_some_and(|o| o != format!("http://{host}")) {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "request from another web page (Origin) refused",
        ));
    }
    let path = req.uri().path();
    if PUBLIC.contains(&path) && (req.method() == Method::GET || path == "/login") {
        return (changes && origin.is_none())
            .then(|| refuse(StatusCode::FORBIDDEN, "a login needs an Origin header"));
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|given| bool::from(given.as_bytes().ct_eq(s.token.as_bytes()))) {
        return None;
    }
    let by_cookie =
        cookie(headers, &s.web.cookie_name()).is_some_and(|c| s.web.sessions().is_session(c));
    if !by_cookie {
        if !path.starts_with("/api/") {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, HTML)],
                    LOGGED_OUT,
                )
                    .into_response(),
            );
        }
        return Some(refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token (or session: run `roost open`)",
        ));
    }
    if changes && origin.is_none() {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "a browser request that changes something needs an Origin header",
        ));
    }
    None
}

/// Guards every TCP request (Host, Origin, token or session; see the
/// module's doc), counts it as user activity, and adds the security
/// headers to every answer, refusals included. A route's own CSP (a
/// stricter one, e.g. `sandbox` on message bodies) is kept, the app's
/// added beside it: a browser enforces both.
pub(super) async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = match check(&s, &req) {
        Some(refused) => refused,
        None => super::activity(State(s), req, next).await,
    };
    let h = resp.headers_mut();
    let own_csp = h.remove(header::CONTENT_SECURITY_POLICY);
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if let Some(own) = own_csp {
        h.append(header::CONTENT_SECURITY_POLICY, own);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_listeners_names_pass_the_host_check() {
        let w = Web::new("127.0.0.1:4100".parse().expect("addr"));
        for ok in ["127.0.0.1:4100", "localhost:4100", "[::1]:4100"] {
            assert!(w.host_ok(ok), "{ok}");
        }
        for bad in [
            "evil.example:4100",
            "127.0.0.1:4101",
            "localhost",
            "",
            "127.0.0.1",
        ] {
            assert!(!w.host_ok(bad), "{bad}");
        }
        assert_eq!(w.base_url(), "http://127.0.0.1:4100");
    }

    #[test]
    fn finds_the_named_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; roost_session_4100=abc; b=2"),
        );
        assert_eq!(cookie(&h, "roost_session_4100"), Some("abc"));
        assert_eq!(cookie(&h, "roost_session_4101"), None);
    }
}
