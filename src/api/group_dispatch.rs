//! `/api/v1/groups…` as the one surface for private groups and public
//! rooms (docs/rooms.md, docs/api.md): each handler finds which kind GROUP
//! names and hands the call to that kind's [`crate::node::NodeHandle`]
//! methods. A name that private groups and joined rooms share is refused
//! with the ids of both, so a message never goes to the wrong audience.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use libp2p::PeerId;
use serde::Deserialize;

use super::groups::{
    self, ChangeView, CreateRequest, GroupRef, GroupRow, GroupSendRequest, GroupSendView,
    InviteRequest, LogLine, MemberRow, RemoveRequest, RoleRequest,
};
use super::{ApiError, AppState};
use crate::wire::group::Role;
use crate::wire::room;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Most log rows one request returns.
const MAX_LOG_ROWS: usize = 10_000;

/// The routes only the shared surface has: bans apply to public rooms.
pub(super) fn routes() -> Router<AppState> {
    use axum::routing::post;
    Router::new()
        .route("/api/v1/groups/{group}/ban", post(ban))
        .route("/api/v1/groups/{group}/unban", post(unban))
}

/// A group or room as the resolver sees it: its id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    /// Its id (hex).
    pub(crate) id: String,
    /// Its name.
    pub(crate) name: String,
}

/// Which kind a GROUP argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A private group (or nothing we know: the private side answers with
    /// its own error).
    Private,
    /// The joined public room with this id.
    Room(String),
}

/// Picks the kind `text` names among private groups and joined rooms: an
/// exact id first, then names (a room's name as normalised). A name both
/// kinds hold is an error naming every id it could mean; ambiguity among
/// private groups alone is left to the private side, which reports it.
pub(crate) fn choose(text: &str, private: &[Named], rooms: &[Named]) -> Result<Target, String> {
    if private.iter().any(|g| g.id == text) {
        return Ok(Target::Private);
    }
    if let Some(r) = rooms.iter().find(|r| r.id == text) {
        return Ok(Target::Room(r.id.clone()));
    }
    let normal = room::normalize(text).ok();
    let room_hits: Vec<&Named> = rooms
        .iter()
        .filter(|r| Some(&r.name) == normal.as_ref())
        .collect();
    let private_hits: Vec<&Named> = private.iter().filter(|g| g.name == text).collect();
    match (private_hits.is_empty(), room_hits.as_slice()) {
        (_, []) => Ok(Target::Private),
        (true, [one]) => Ok(Target::Room(one.id.clone())),
        _ => Err(format!(
            "several groups and rooms are called {text:?}; use an id: {}",
            private_hits
                .iter()
                .chain(room_hits.iter())
                .map(|n| n.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// The private groups (invitations included) this node knows of.
async fn privates(s: &AppState) -> Result<Vec<Named>, ApiError> {
    Ok(s.node
        .group_list()
        .await?
        .into_iter()
        .map(|g| Named {
            id: g.id.to_string(),
            name: g.name,
        })
        .collect())
}

/// The public rooms this node is in.
async fn joined_rooms(s: &AppState) -> Result<Vec<Named>, ApiError> {
    Ok(s.node
        .rooms()
        .await?
        .into_iter()
        .map(|r| Named {
            id: r.id.to_string(),
            name: r.name,
        })
        .collect())
}

async fn target(s: &AppState, text: &str) -> Result<Target, ApiError> {
    choose(text, &privates(s).await?, &joined_rooms(s).await?).map_err(bad)
}

const NO_ROSTER: &str = "public rooms have no roster: ban instead";

/// `GET /api/v1/groups`: private groups we are in, then joined rooms.
pub(super) async fn list(State(s): State<AppState>) -> ApiResult<Vec<GroupRow>> {
    let Json(mut rows) = groups::list(State(s.clone())).await?;
    rows.extend(s.node.rooms().await?.into_iter().map(|r| GroupRow {
        id: r.id.to_string(),
        name: r.name,
        members: r.members,
        public: true,
    }));
    Ok(Json(rows))
}

/// `POST /api/v1/groups`: `public: true` makes a public room.
pub(super) async fn create(
    State(s): State<AppState>,
    Json(req): Json<CreateRequest>,
) -> ApiResult<GroupRef> {
    if !req.public {
        return groups::create(State(s), Json(req)).await;
    }
    let (id, name) = s.node.room_create(&req.name).await?;
    Ok(Json(GroupRef {
        id: id.to_string(),
        name,
    }))
}

/// One private group as `join` weighs it.
#[derive(Debug, Clone)]
pub(crate) struct Joinable {
    /// Its id.
    pub(crate) id: String,
    /// Its name.
    pub(crate) name: String,
    /// Still an invitation (not accepted yet).
    pub(crate) invitation: bool,
    /// Its creator is a buddy (not blocked).
    pub(crate) from_buddy: bool,
}

/// What `join TEXT` names on the private side, if anything: a group by
/// its id always; an invitation by its name only when a buddy sent it.
/// Anyone can invite us to a group of any name, so a stranger's
/// invitation named `lobby` must not capture `join lobby`, which then
/// means the public room. Several buddies' invitations of that name: the
/// name itself, which the private side refuses as ambiguous.
pub(crate) fn private_join(text: &str, groups: &[Joinable]) -> Option<String> {
    if let Some(g) = groups.iter().find(|g| g.id == text) {
        return Some(g.id.clone());
    }
    let mut named = groups
        .iter()
        .filter(|g| g.invitation && g.from_buddy && g.name == text);
    match (named.next(), named.next()) {
        (Some(g), None) => Some(g.id.clone()),
        (Some(_), Some(_)) => Some(text.to_string()),
        _ => None,
    }
}

/// `POST …/join`: a private group's id, or a buddy's pending invitation
/// by name, goes to the private side ([`private_join`]); anything else is
/// a public room's name.
pub(super) async fn join(
    State(s): State<AppState>,
    Path(group): Path<String>,
) -> ApiResult<GroupRef> {
    let buddies: Vec<PeerId> = s
        .node
        .buddies()
        .await?
        .into_iter()
        .filter(|b| !b.blocked)
        .map(|b| b.peer)
        .collect();
    let groups: Vec<Joinable> = s
        .node
        .group_list()
        .await?
        .into_iter()
        .map(|g| Joinable {
            id: g.id.to_string(),
            name: g.name,
            invitation: !g.joined,
            from_buddy: buddies.contains(&g.creator),
        })
        .collect();
    if let Some(target) = private_join(&group, &groups) {
        return groups::join(State(s), Path(target)).await;
    }
    let (id, name) = match joined_rooms(&s).await?.into_iter().find(|r| r.id == group) {
        Some(r) => (r.id, r.name),
        None => {
            let (id, name) = s.node.room_join(&group).await?;
            (id.to_string(), name)
        }
    };
    Ok(Json(GroupRef { id, name }))
}

/// `POST …/invite`: private groups only.
pub(super) async fn invite(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Json(req): Json<InviteRequest>,
) -> ApiResult<ChangeView> {
    match target(&s, &group).await? {
        Target::Private => groups::invite(State(s), Path(group), Json(req)).await,
        Target::Room(_) => Err(bad(NO_ROSTER)),
    }
}

/// `POST …/remove`: private groups only.
pub(super) async fn remove(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Json(req): Json<RemoveRequest>,
) -> ApiResult<ChangeView> {
    match target(&s, &group).await? {
        Target::Private => groups::remove(State(s), Path(group), Json(req)).await,
        Target::Room(_) => Err(bad(NO_ROSTER)),
    }
}

/// `POST …/promote`: private groups only.
pub(super) async fn promote(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Json(req): Json<RoleRequest>,
) -> ApiResult<ChangeView> {
    set_role(s, group, req, Role::Admin).await
}

/// `POST …/demote`: private groups only.
pub(super) async fn demote(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Json(req): Json<RoleRequest>,
) -> ApiResult<ChangeView> {
    set_role(s, group, req, Role::Member).await
}

async fn set_role(
    s: AppState,
    group: String,
    req: RoleRequest,
    role: Role,
) -> ApiResult<ChangeView> {
    match target(&s, &group).await? {
        Target::Private => groups::set_role(State(s), Path(group), Json(req), role).await,
        Target::Room(_) => Err(bad(NO_ROSTER)),
    }
}

/// `POST …/leave`.
pub(super) async fn leave(
    State(s): State<AppState>,
    Path(group): Path<String>,
) -> ApiResult<ChangeView> {
    match target(&s, &group).await? {
        Target::Private => groups::leave(State(s), Path(group)).await,
        Target::Room(id) => {
            s.node.room_leave(&id).await?;
            Ok(done())
        }
    }
}

fn done() -> Json<ChangeView> {
    Json(ChangeView {
        state: "done".into(),
    })
}

/// `GET …/members`: a room's role is `owner` or `member`.
pub(super) async fn members(
    State(s): State<AppState>,
    Path(group): Path<String>,
) -> ApiResult<Vec<MemberRow>> {
    let id = match target(&s, &group).await? {
        Target::Private => return groups::members(State(s), Path(group)).await,
        Target::Room(id) => id,
    };
    let list = s.node.room_members(&id).await?;
    let name = groups::names(&s).await?;
    Ok(Json(
        list.into_iter()
            .map(|m| MemberRow {
                id: m.id.to_string(),
                name: name(&m.id),
                role: if m.owner { "owner" } else { "member" }.into(),
            })
            .collect(),
    ))
}

/// `POST …/send`: a room's state is `sent`, or `alone` when no member
/// was there.
pub(super) async fn send(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Json(req): Json<GroupSendRequest>,
) -> ApiResult<GroupSendView> {
    let room = match target(&s, &group).await? {
        Target::Private => return groups::send(State(s), Path(group), Json(req)).await,
        Target::Room(id) => id,
    };
    let (id, state) = s.node.room_send(&room, &req.text).await?;
    Ok(Json(GroupSendView {
        id,
        state: state.as_str().into(),
    }))
}

/// `?limit=K` of `GET …/log`.
#[derive(Deserialize)]
pub(super) struct LogQuery {
    /// How many of the last lines.
    pub(super) limit: Option<usize>,
    /// `parts=false`: a 1:1 log without the parts of small files, which
    /// have no line of their own, so `limit` counts the lines shown.
    #[serde(default)]
    pub(super) parts: Option<bool>,
}

/// `GET …/log`.
pub(super) async fn log(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Vec<LogLine>> {
    let room = match target(&s, &group).await? {
        Target::Private => return groups::log(State(s), Path(group), Query(q)).await,
        Target::Room(id) => id,
    };
    let limit = q.limit.unwrap_or(50).min(MAX_LOG_ROWS);
    let rows = s.node.room_log(&room, limit).await?;
    let name = groups::names(&s).await?;
    Ok(Json(
        rows.into_iter()
            .map(|e| LogLine {
                id: e.id,
                from: e.from.to_string(),
                from_name: name(&e.from),
                sent_at: e.sent_at,
                text: e.text,
            })
            .collect(),
    ))
}

async fn set_ban(s: AppState, group: String, who: &str, ban: bool) -> ApiResult<ChangeView> {
    let room = match target(&s, &group).await? {
        Target::Private => {
            return Err(bad(
                "private groups have no bans: remove the member instead",
            ));
        }
        Target::Room(id) => id,
    };
    let peer: PeerId = s.node.resolve(who).await?;
    s.node.room_ban(&room, peer, ban).await?;
    Ok(done())
}

/// `POST …/ban {"id"}`: the room's owner bans a key.
async fn ban(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Json(req): Json<RemoveRequest>,
) -> ApiResult<ChangeView> {
    set_ban(s, group, &req.id, true).await
}

/// `POST …/unban {"id"}`: the room's owner lifts a ban.
async fn unban(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Json(req): Json<RemoveRequest>,
) -> ApiResult<ChangeView> {
    set_ban(s, group, &req.id, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(id: &str, name: &str) -> Named {
        Named {
            id: id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_name_both_kinds_hold_is_refused_with_every_id() {
        let private = [n("aa", "lobby"), n("bb", "Team")];
        let rooms = [n("cc", "lobby"), n("dd", "news")];
        let err = choose("lobby", &private, &rooms).unwrap_err();
        assert!(err.contains("aa") && err.contains("cc"), "{err}");
        assert_eq!(choose("Team", &private, &rooms), Ok(Target::Private));
        assert_eq!(
            choose("News", &private, &rooms),
            Ok(Target::Room("dd".into()))
        );
        assert_eq!(
            choose("cc", &private, &rooms),
            Ok(Target::Room("cc".into()))
        );
        assert_eq!(choose("aa", &private, &rooms), Ok(Target::Private));
        assert_eq!(choose("nothing", &private, &rooms), Ok(Target::Private));
    }

    fn g(id: &str, name: &str, invitation: bool, from_buddy: bool) -> Joinable {
        Joinable {
            id: id.into(),
            name: name.into(),
            invitation,
            from_buddy,
        }
    }

    #[test]
    fn a_strangers_invitation_is_joined_by_id_only() {
        let groups = [g("aa", "lobby", true, false), g("bb", "team", true, true)];
        // `join lobby` means the public room, not the stranger's group.
        assert_eq!(private_join("lobby", &groups), None);
        // By its id it is accepted.
        assert_eq!(private_join("aa", &groups), Some("aa".into()));
        // A buddy's invitation by its name.
        assert_eq!(private_join("team", &groups), Some("bb".into()));
        // Two buddies' invitations of one name: the name, for the private
        // side to refuse as ambiguous.
        let two = [g("cc", "x", true, true), g("dd", "x", true, true)];
        assert_eq!(private_join("x", &two), Some("x".into()));
        // A group joined already is not an invitation: its name is a room's.
        assert_eq!(private_join("y", &[g("ee", "y", false, true)]), None);
    }
}
