//! The handlers of `/api/v1/`. Each is a thin translation between JSON and
//! a [`NodeHandle`] call; see docs/api.md for the contract.

use super::group_dispatch::LogQuery;
use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use libp2p::PeerId;
use serde::Deserialize;

use super::requests::*;
use super::views::*;
use super::{ApiError, AppState};
use crate::node::{BuddyChange, Content, Own, OwnStatus};
use crate::wire::presence::{MAX_CONTEXT, MAX_NOTE, PresenceInfo};

type ApiResult<T> = Result<Json<T>, ApiError>;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/id", get(id))
        .route("/api/v1/status", get(status))
        .route("/api/v1/send", post(send))
        .route("/api/v1/log/{peer}", get(log))
        .route("/api/v1/inbox", get(inbox))
        .route("/api/v1/read/{peer}", post(mark_read))
        .route("/api/v1/buddies", get(buddies).post(add_buddy))
        .route("/api/v1/invite", get(invite))
        .route("/api/v1/buddies/{peer}/{action}", post(buddy_action))
        .route("/api/v1/requests", get(requests))
        .route("/api/v1/presence", get(own_presence).post(set_presence))
        .route("/api/v1/presence/buddies", get(presence_of_buddies))
        .route("/api/v1/events", get(events))
        .merge(super::rooms::routes())
        .merge(super::groups::routes())
        .merge(super::files::routes())
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

async fn names(s: &AppState) -> Result<HashMap<PeerId, String>, ApiError> {
    Ok(s.node
        .buddies()
        .await?
        .into_iter()
        .map(|b| (b.peer, b.name))
        .collect())
}

async fn id(State(s): State<AppState>) -> ApiResult<IdView> {
    let addrs = s.node.dial_addrs().await?;
    Ok(Json(IdView {
        id: s.node.peer_id().to_string(),
        addrs: addrs.iter().map(|a| a.to_string()).collect(),
    }))
}

async fn status(State(s): State<AppState>) -> ApiResult<StatusView> {
    let addrs = s.node.dial_addrs().await?;
    let reach = s.node.reach_status().await?;
    Ok(Json(StatusView {
        reachability: reach.reachability.as_str().into(),
        relays: reach.relays.iter().map(|a| a.to_string()).collect(),
        connections: reach
            .connections
            .into_iter()
            .map(|c| ConnectionRow {
                peer: c.peer.to_string(),
                addr: c.addr.to_string(),
                relayed: c.relayed,
            })
            .collect(),
        id: s.node.peer_id().to_string(),
        peers: s.node.connected_peers().await?.len(),
        addrs: addrs.iter().map(|a| a.to_string()).collect(),
        outbox: s.node.outbox_len().await?,
        held: s.node.held_len().await?,
        buddies: s
            .node
            .buddies()
            .await?
            .iter()
            .filter(|b| !b.blocked)
            .count(),
    }))
}

async fn send(State(s): State<AppState>, Json(req): Json<SendRequest>) -> ApiResult<SendView> {
    let to = s.node.resolve(&req.to).await?;
    let data = match (req.text, req.hex, req.base64) {
        (Some(t), None, None) => t.into_bytes(),
        (None, Some(h), None) => {
            hex::decode(h.trim()).map_err(|_| bad_request("hex body is not valid hex"))?
        }
        (None, None, Some(b)) => data_encoding::BASE64
            .decode(b.trim().as_bytes())
            .map_err(|_| bad_request("base64 body is not valid base64"))?,
        _ => {
            return Err(bad_request(
                "give exactly one of \"text\", \"hex\" and \"base64\"",
            ));
        }
    };
    let content = Content {
        content_type: req.content_type.unwrap_or_else(|| "text/plain".into()),
        subject: req.subject,
        data,
    };
    let id = s.node.send(to, content).await?;
    Ok(Json(SendView {
        id: id.to_string(),
        state: "queued".into(),
    }))
}

async fn log(
    State(s): State<AppState>,
    Path(peer): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Vec<MessageView>> {
    let peer = s.node.resolve(&peer).await?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    let msgs = if q.parts == Some(false) {
        s.node.conversation_lines(peer, limit).await?
    } else {
        s.node.conversation(peer, limit).await?
    };
    let name = names(&s).await?.remove(&peer);
    let me = s.node.peer_id().to_string();
    Ok(Json(
        msgs.iter()
            .map(|m| MessageView::new(m, &me, name.clone()))
            .collect(),
    ))
}

#[derive(Deserialize)]
struct InboxQuery {
    from: Option<String>,
}

async fn inbox(
    State(s): State<AppState>,
    Query(q): Query<InboxQuery>,
) -> ApiResult<Vec<MessageView>> {
    let from = match q.from {
        Some(f) => Some(s.node.resolve(&f).await?),
        None => None,
    };
    let mut msgs = s.node.received().await?;
    msgs.retain(|m| from.is_none_or(|f| m.peer_id() == Some(f)));
    msgs.sort_by_key(|m| (m.sent_at, m.id));
    let names = names(&s).await?;
    let me = s.node.peer_id().to_string();
    Ok(Json(
        msgs.iter()
            .map(|m| MessageView::new(m, &me, m.peer_id().and_then(|p| names.get(&p).cloned())))
            .collect(),
    ))
}

async fn mark_read(State(s): State<AppState>, Path(peer): Path<String>) -> ApiResult<ReadView> {
    let peer = s.node.resolve(&peer).await?;
    let read = s.node.mark_read(peer).await?;
    Ok(Json(ReadView { read }))
}

async fn buddies(State(s): State<AppState>) -> ApiResult<Vec<BuddyRow>> {
    Ok(Json(
        s.node.buddies().await?.iter().map(BuddyRow::from).collect(),
    ))
}

async fn add_buddy(State(s): State<AppState>, Json(req): Json<AddBuddy>) -> ApiResult<BuddyRow> {
    let name_ok = |n: &str| !n.is_empty() && n.len() <= 64 && crate::identity::parse_id(n).is_err();
    if req.name.as_deref().is_some_and(|n| !name_ok(n)) {
        return Err(bad_request(
            "a buddy name must be 1 to 64 characters and not an ID",
        ));
    }
    let peer = match (req.id, req.invite) {
        (Some(id), None) => {
            let peer = crate::identity::parse_id(&id).map_err(|e| bad_request(e.to_string()))?;
            let name = req
                .name
                .unwrap_or_else(|| crate::identity::default_name(&peer));
            s.node.add_buddy(peer, name).await?;
            peer
        }
        (None, Some(invite)) => s.node.add_buddy_by_invite(&invite, req.name).await?,
        _ => return Err(bad_request("give exactly one of \"id\" and \"invite\"")),
    };
    buddy_row(&s, peer).await
}

#[derive(Deserialize)]
struct InviteQuery {
    expires: Option<String>,
}

/// An invite to this node, valid for `?expires=` (e.g. `7d`, the default).
async fn invite(State(s): State<AppState>, Query(q): Query<InviteQuery>) -> ApiResult<InviteView> {
    let lifetime = match q.expires {
        Some(text) => {
            crate::clock::parse_duration(&text).map_err(|e| bad_request(e.to_string()))?
        }
        None => crate::wire::invite::DEFAULT_LIFETIME,
    };
    let (uri, inv) = s.node.invite(lifetime).await?;
    Ok(Json(InviteView {
        uri,
        id: inv.peer.to_string(),
        addrs: inv.addrs.iter().map(|a| a.to_string()).collect(),
        expires_at: inv.expires_at,
        expires: crate::clock::format_utc(inv.expires_at),
    }))
}

async fn buddy_row(s: &AppState, peer: PeerId) -> ApiResult<BuddyRow> {
    s.node
        .buddies()
        .await?
        .iter()
        .find(|b| b.peer == peer)
        .map(|b| Json(BuddyRow::from(b)))
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("{peer} is not on the buddy list"),
            )
        })
}

async fn buddy_action(
    State(s): State<AppState>,
    Path((peer, action)): Path<(String, String)>,
    body: Option<Json<BuddyAction>>,
) -> ApiResult<BuddyActionView> {
    let peer = s.node.resolve(&peer).await?;
    let on_list = s.node.buddies().await?.iter().any(|b| b.peer == peer);
    let change = match action.as_str() {
        "remove" => BuddyChange::Remove,
        "rename" => {
            let name = body
                .and_then(|b| b.0.name)
                .filter(|n| !n.is_empty() && n.len() <= 64);
            BuddyChange::Rename(name.ok_or_else(|| {
                bad_request("rename needs {\"name\": \"...\"} (1 to 64 characters)")
            })?)
        }
        "hide" => BuddyChange::Hide(true),
        "show" => BuddyChange::Hide(false),
        "block" => BuddyChange::Block(true),
        "unblock" => BuddyChange::Block(false),
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown buddy action {other:?}"),
            ));
        }
    };
    if !on_list && !matches!(change, BuddyChange::Block(true)) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{peer} is not on the buddy list"),
        ));
    }
    s.node.change_buddy(peer, change).await?;
    Ok(Json(BuddyActionView {
        done: action,
        id: peer.to_string(),
    }))
}

async fn requests(State(s): State<AppState>) -> ApiResult<Vec<RequestRow>> {
    Ok(Json(
        s.node
            .buddy_requests()
            .await?
            .iter()
            .map(RequestRow::from)
            .collect(),
    ))
}

fn own_view(o: &Own) -> OwnPresence {
    OwnPresence {
        status: match o.status {
            OwnStatus::Online => "online",
            OwnStatus::Away => "away",
            OwnStatus::Busy => "busy",
            OwnStatus::Invisible => "invisible",
        }
        .into(),
        note: o.note.clone(),
        activity: o.activity.clone(),
        location: o.location.clone(),
        until: o.until.clone(),
    }
}

async fn own_presence(State(s): State<AppState>) -> ApiResult<OwnPresence> {
    Ok(Json(own_view(&s.node.presence().await?)))
}

async fn set_presence(
    State(s): State<AppState>,
    Json(p): Json<OwnPresence>,
) -> ApiResult<OwnPresence> {
    let status: OwnStatus = p.status.parse().map_err(bad_request)?;
    let own = Own {
        status,
        note: p.note,
        activity: p.activity,
        location: p.location,
        until: p.until,
    };
    let check = PresenceInfo {
        status: crate::wire::presence::Status::Online,
        note: own.note.clone(),
        activity: own.activity.clone(),
        location: own.location.clone(),
        until: own.until.clone(),
    };
    if !check.is_within_limits() {
        return Err(bad_request(format!(
            "note is limited to {MAX_NOTE} characters, activity, location and until to {MAX_CONTEXT}"
        )));
    }
    s.node.set_presence(own.clone()).await?;
    Ok(Json(own_view(&own)))
}

async fn presence_of_buddies(State(s): State<AppState>) -> ApiResult<Vec<BuddyRow>> {
    let list = s.node.buddies().await?;
    Ok(Json(
        list.iter()
            .filter(|b| !b.blocked)
            .map(BuddyRow::from)
            .collect(),
    ))
}

#[derive(Deserialize)]
struct EventsQuery {
    from: Option<String>,
}

/// Server-sent events: one `data:` line of JSON ([`EventView`]) per event;
/// with `?from=`, only the events about that peer (a name resolves here,
/// by the same rule as everywhere else).
async fn events(
    State(s): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let only = match q.from {
        Some(f) => Some(s.node.resolve(&f).await?.to_string()),
        None => None,
    };
    let rx = s.node.events();
    let me = s.node.peer_id().to_string();
    let stream = futures::stream::unfold((rx, me, only), |(mut rx, me, only)| async move {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    let view = EventView::new(&e, &me);
                    if only.as_ref().is_some_and(|o| o != view.peer()) {
                        continue;
                    }
                    let data = serde_json::to_string(&view).unwrap_or_default();
                    return Some((Ok(SseEvent::default().data(data)), (rx, me, only)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("event stream listener fell behind; {n} events skipped");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
