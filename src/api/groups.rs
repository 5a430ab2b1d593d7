//! `/api/v1/groups…`: private groups (see docs/api.md, docs/rooms.md);
//! `group_dispatch` sends each call here or to the public rooms.
//! GROUP in a path is a group's id or the name of one group we are in; a
//! name several groups share is a 400 naming their ids.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::group_dispatch::{self as d, LogQuery};
use super::views::EventView;
use super::{ApiError, AppState};
use crate::node::groups::{Answer, GroupEvent, GroupOpError};
use crate::wire::group::Role;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The group routes, merged into the API's router.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/groups", get(d::list).post(d::create))
        .route("/api/v1/groups/invitations", get(invitations))
        .route("/api/v1/groups/{group}/invite", post(d::invite))
        .route("/api/v1/groups/{group}/join", post(d::join))
        .route("/api/v1/groups/{group}/leave", post(d::leave))
        .route("/api/v1/groups/{group}/remove", post(d::remove))
        .route("/api/v1/groups/{group}/promote", post(d::promote))
        .route("/api/v1/groups/{group}/demote", post(d::demote))
        .route("/api/v1/groups/{group}/members", get(d::members))
        .route("/api/v1/groups/{group}/send", post(d::send))
        .route("/api/v1/groups/{group}/log", get(d::log))
        .merge(d::routes())
}

/// The status code of a group error: unknown → 404, refused → 400.
pub(crate) fn status_of(e: &GroupOpError) -> StatusCode {
    match e {
        GroupOpError::Unknown(_) | GroupOpError::UnknownGroup => StatusCode::NOT_FOUND,
        GroupOpError::Store(_) | GroupOpError::NoRandomness => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// `POST /api/v1/groups`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The group's name.
    pub name: String,
    /// A public room (made by `group_dispatch`).
    #[serde(default)]
    pub public: bool,
}

/// `{"id","name"}`: a group made or joined.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupRef {
    /// Its id (64 hex characters).
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A row of `GET /api/v1/groups`.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupRow {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// How many members.
    pub members: usize,
    /// Public room or private group.
    pub public: bool,
}

/// A row of `GET /api/v1/groups/invitations`.
#[derive(Debug, Serialize, Deserialize)]
pub struct InvitationRow {
    /// The group's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Who invited us (its creator).
    pub from: String,
}

/// `POST …/invite`.
#[derive(Debug, Serialize, Deserialize)]
pub struct InviteRequest {
    /// IDs to add.
    pub ids: Vec<String>,
}

/// `POST …/remove`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RemoveRequest {
    /// The ID to remove.
    pub id: String,
}

/// `POST …/promote` and `POST …/demote`: the member, by ID or buddy name.
pub type RoleRequest = RemoveRequest;

/// `POST …/send`.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupSendRequest {
    /// The text.
    pub text: String,
}

/// `{"state"}`: `done`, or `requested` (asked of the creator).
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeView {
    /// done | requested.
    pub state: String,
}

/// `{"id","state"}` of a group message sent.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupSendView {
    /// Its id.
    pub id: String,
    /// `queued`: every member's copy is in the durable outbox.
    pub state: String,
}

/// A row of `GET …/members`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MemberRow {
    /// The member's ID.
    pub id: String,
    /// My name for it (its buddy name, or the default name).
    pub name: String,
    /// admin | member.
    pub role: String,
}

/// A row of `GET …/log`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogLine {
    /// The message's id (`state-N` for a membership change).
    pub id: String,
    /// Its sender's ID.
    pub from: String,
    /// My name for the sender.
    pub from_name: String,
    /// The sender's clock, Unix ms.
    pub sent_at: u64,
    /// The text (a membership change in words, as `* …`).
    pub text: String,
}

/// Members named by ID or by buddy name, as everywhere else in the API.
async fn ids(s: &AppState, list: &[String]) -> Result<Vec<PeerId>, ApiError> {
    let mut out = Vec::with_capacity(list.len());
    for who in list {
        out.push(s.node.resolve(who).await?);
    }
    Ok(out)
}

/// My names for peers: buddy names, else the default name.
pub(super) async fn names(s: &AppState) -> Result<impl Fn(&PeerId) -> String, ApiError> {
    let buddies: HashMap<PeerId, String> = s
        .node
        .buddies()
        .await?
        .into_iter()
        .map(|b| (b.peer, b.name))
        .collect();
    Ok(move |p: &PeerId| {
        buddies
            .get(p)
            .cloned()
            .unwrap_or_else(|| crate::identity::default_name(p))
    })
}

fn change_view(a: Answer) -> Json<ChangeView> {
    Json(ChangeView {
        state: if a == Answer::Requested {
            "requested"
        } else {
            "done"
        }
        .into(),
    })
}

pub(super) async fn list(State(s): State<AppState>) -> ApiResult<Vec<GroupRow>> {
    Ok(Json(
        s.node
            .group_list()
            .await?
            .into_iter()
            .filter(|g| g.joined)
            .map(|g| GroupRow {
                id: g.id.to_string(),
                name: g.name,
                members: g.members,
                public: false,
            })
            .collect(),
    ))
}

async fn invitations(State(s): State<AppState>) -> ApiResult<Vec<InvitationRow>> {
    Ok(Json(
        s.node
            .group_list()
            .await?
            .into_iter()
            .filter(|g| !g.joined)
            .map(|g| InvitationRow {
                id: g.id.to_string(),
                name: g.name,
                from: g.creator.to_string(),
            })
            .collect(),
    ))
}

pub(super) async fn create(
    State(s): State<AppState>,
    Json(req): Json<CreateRequest>,
) -> ApiResult<GroupRef> {
    let (id, name) = s.node.group_create(&req.name).await?;
    Ok(Json(GroupRef {
        id: id.to_string(),
        name,
    }))
}

pub(super) async fn invite(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Json(req): Json<InviteRequest>,
) -> ApiResult<ChangeView> {
    Ok(change_view(
        s.node
            .group_invite(&group, ids(&s, &req.ids).await?)
            .await?,
    ))
}

pub(super) async fn join(
    State(s): State<AppState>,
    Path(group): Path<String>,
) -> ApiResult<GroupRef> {
    let id = s.node.group_join(&group).await?;
    let name = s
        .node
        .group_list()
        .await?
        .into_iter()
        .find(|g| g.id == id)
        .map(|g| g.name)
        .unwrap_or_default();
    Ok(Json(GroupRef {
        id: id.to_string(),
        name,
    }))
}

pub(super) async fn leave(
    State(s): State<AppState>,
    Path(group): Path<String>,
) -> ApiResult<ChangeView> {
    Ok(change_view(s.node.group_leave(&group).await?))
}

pub(super) async fn remove(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Json(req): Json<RemoveRequest>,
) -> ApiResult<ChangeView> {
    let id = s.node.resolve(&req.id).await?;
    Ok(change_view(s.node.group_remove(&group, id).await?))
}

/// `POST …/promote` (to `Admin`) and `…/demote` (to `Member`).
pub(super) async fn set_role(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Json(req): Json<RoleRequest>,
    role: Role,
) -> ApiResult<ChangeView> {
    let id = s.node.resolve(&req.id).await?;
    Ok(change_view(s.node.group_set_role(&group, id, role).await?))
}

pub(super) async fn members(
    State(s): State<AppState>,
    Path(group): Path<String>,
) -> ApiResult<Vec<MemberRow>> {
    let members = s.node.group_members(&group).await?;
    let name = names(&s).await?;
    Ok(Json(
        members
            .into_iter()
            .map(|(p, role)| MemberRow {
                id: p.to_string(),
                name: name(&p),
                role: role.as_str().into(),
            })
            .collect(),
    ))
}

pub(super) async fn send(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Json(req): Json<GroupSendRequest>,
) -> ApiResult<GroupSendView> {
    let id = s.node.group_send(&group, &req.text).await?;
    Ok(Json(GroupSendView {
        id,
        state: "queued".into(),
    }))
}

pub(super) async fn log(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Vec<LogLine>> {
    let lines = s.node.group_log(&group, q.limit.unwrap_or(50)).await?;
    let name = names(&s).await?;
    Ok(Json(
        lines
            .into_iter()
            .map(|l| {
                let from = PeerId::from_bytes(&l.from).ok();
                LogLine {
                    id: l.id,
                    from: from.map(|p| p.to_string()).unwrap_or_default(),
                    from_name: from.map(|p| name(&p)).unwrap_or_default(),
                    sent_at: l.sent_at,
                    text: if l.system {
                        format!("* {}", l.text)
                    } else {
                        l.text
                    },
                }
            })
            .collect(),
    ))
}

/// The event-stream view of a group event.
pub(crate) fn event_view(e: &GroupEvent) -> EventView {
    match e {
        GroupEvent::Message {
            group,
            from,
            id,
            sent_at,
            text,
        } => EventView::GroupMessage {
            group: group.to_string(),
            id: id.clone(),
            from: from.to_string(),
            sent_at: *sent_at,
            text: text.clone(),
        },
        GroupEvent::Change { group, text } => EventView::GroupChange {
            group: group.to_string(),
            text: text.clone(),
        },
        GroupEvent::Invitation { group, name, from } => EventView::GroupInvitation {
            group: group.to_string(),
            name: name.clone(),
            from: from.to_string(),
        },
    }
}
