//! `/api/v1/rooms…`: public rooms (see docs/rooms.md, "Public rooms").
//! `/api/v1/groups…` covers them too, through `group_dispatch`, and is
//! what the CLI uses; these routes stay for existing clients. Each handler
//! is a thin translation between JSON and a [`crate::node::NodeHandle`]
//! room method.

use super::group_dispatch::LogQuery;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::requests::Empty;
use super::{ApiError, AppState};
use crate::node::rooms::RoomFailure;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Most log rows one request returns.
const MAX_LOG_ROWS: usize = 10_000;

/// `POST /api/v1/rooms` and `/api/v1/rooms/join`: a room's name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomName {
    /// The name (normalised by the daemon).
    pub name: String,
}

/// `POST /api/v1/rooms/{room}/send`: the text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomText {
    /// ≤ 4096 bytes.
    pub text: String,
}

/// `POST /api/v1/rooms/{room}/ban|unban`: whose key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomPeer {
    /// An ID, or a buddy's name.
    pub id: String,
}

/// A room created or joined.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomView {
    /// Its id (hex).
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A row of `GET /api/v1/rooms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRow {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Members seen now (us included).
    pub members: usize,
    /// Always `true`: a public room.
    pub public: bool,
}

/// A row of `GET /api/v1/rooms/{room}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomMemberRow {
    /// The member's ID.
    pub id: String,
    /// Its buddy name, if it is a buddy.
    pub name: Option<String>,
    /// `owner` | `member`.
    pub role: String,
}

/// What `POST /api/v1/rooms/{room}/send` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomSent {
    /// The message id.
    pub id: String,
    /// `sent` (gossiped) | `alone` (no member there; kept in our log).
    pub state: String,
}

/// A row of `GET /api/v1/rooms/{room}/log`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomLogRow {
    /// The message id.
    pub id: String,
    /// Its sender's ID.
    pub from: String,
    /// The sender's buddy name, if any.
    pub from_name: Option<String>,
    /// Unix ms, as the sender says.
    pub sent_at: u64,
    /// The text.
    pub text: String,
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rooms", get(list).post(create))
        .route("/api/v1/rooms/join", post(join))
        .route("/api/v1/rooms/{room}/members", get(members))
        .route("/api/v1/rooms/{room}/send", post(send))
        .route("/api/v1/rooms/{room}/log", get(log))
        .route("/api/v1/rooms/{room}/leave", post(leave))
        .route("/api/v1/rooms/{room}/{action}", post(ban))
}

/// The HTTP status of a room failure.
pub(super) fn status_of(f: &RoomFailure) -> StatusCode {
    match f {
        RoomFailure::NoSuchRoom(_) | RoomFailure::NotJoined(_) => StatusCode::NOT_FOUND,
        RoomFailure::NameTaken(..) => StatusCode::CONFLICT,
        RoomFailure::NotOwner => StatusCode::FORBIDDEN,
        RoomFailure::Invalid(_) | RoomFailure::Full(_) => StatusCode::BAD_REQUEST,
        RoomFailure::Network(_) => StatusCode::BAD_GATEWAY,
    }
}

async fn names(s: &AppState) -> Result<HashMap<PeerId, String>, ApiError> {
    Ok(s.node
        .buddies()
        .await?
        .into_iter()
        .map(|b| (b.peer, b.name))
        .collect())
}

async fn create(State(s): State<AppState>, Json(b): Json<RoomName>) -> ApiResult<RoomView> {
    let (id, name) = s.node.room_create(&b.name).await?;
    Ok(Json(RoomView {
        id: id.to_string(),
        name,
    }))
}

async fn join(State(s): State<AppState>, Json(b): Json<RoomName>) -> ApiResult<RoomView> {
    let (id, name) = s.node.room_join(&b.name).await?;
    Ok(Json(RoomView {
        id: id.to_string(),
        name,
    }))
}

async fn list(State(s): State<AppState>) -> ApiResult<Vec<RoomRow>> {
    let rooms = s.node.rooms().await?;
    Ok(Json(
        rooms
            .into_iter()
            .map(|r| RoomRow {
                id: r.id.to_string(),
                name: r.name,
                members: r.members,
                public: true,
            })
            .collect(),
    ))
}

async fn members(
    State(s): State<AppState>,
    Path(room): Path<String>,
) -> ApiResult<Vec<RoomMemberRow>> {
    let list = s.node.room_members(&room).await?;
    let mut names = names(&s).await?;
    Ok(Json(
        list.into_iter()
            .map(|m| RoomMemberRow {
                id: m.id.to_string(),
                name: names.remove(&m.id),
                role: if m.owner { "owner" } else { "member" }.into(),
            })
            .collect(),
    ))
}

async fn send(
    State(s): State<AppState>,
    Path(room): Path<String>,
    Json(b): Json<RoomText>,
) -> ApiResult<RoomSent> {
    let (id, state) = s.node.room_send(&room, &b.text).await?;
    Ok(Json(RoomSent {
        id,
        state: state.as_str().into(),
    }))
}

async fn log(
    State(s): State<AppState>,
    Path(room): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Vec<RoomLogRow>> {
    let limit = q.limit.unwrap_or(100).min(MAX_LOG_ROWS);
    let rows = s.node.room_log(&room, limit).await?;
    let names = names(&s).await?;
    Ok(Json(
        rows.into_iter()
            .map(|e| RoomLogRow {
                id: e.id,
                from: e.from.to_string(),
                from_name: names.get(&e.from).cloned(),
                sent_at: e.sent_at,
                text: e.text,
            })
            .collect(),
    ))
}

async fn leave(
    State(s): State<AppState>,
    Path(room): Path<String>,
    Json(_): Json<Empty>,
) -> ApiResult<Empty> {
    s.node.room_leave(&room).await?;
    Ok(Json(Empty {}))
}

async fn ban(
    State(s): State<AppState>,
    Path((room, action)): Path<(String, String)>,
    Json(b): Json<RoomPeer>,
) -> ApiResult<Empty> {
    let ban = match action.as_str() {
        "ban" => true,
        "unban" => false,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no room action {other:?}"),
            ));
        }
    };
    let peer = s.node.resolve(&b.id).await?;
    s.node.room_ban(&room, peer, ban).await?;
    Ok(Json(Empty {}))
}
