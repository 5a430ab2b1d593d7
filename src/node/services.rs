//! The services a node runs beside its network task, started together
//! by [`Services::spawn`] and wired to the network's events by the router.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::lifecycle::Tasks;
use super::messenger::{self, Request};
use super::presence::service as presence_service;
use super::{EVENT_CAPACITY, Event, NodeError, files, groups, rooms, router};
use crate::config::Config;
use crate::crypto::Sealer;
use crate::identity::Identity;
use crate::net::{NetClient, NetError, NetEvent};
use crate::store::Worker;

/// The services a node runs beside its network task, each behind a channel
/// or a shared handle, wired to the network task's events by the router.
pub(super) struct Services {
    pub(super) events: broadcast::Sender<Event>,
    pub(super) presence: mpsc::Sender<presence_service::Request>,
    pub(super) group_ctx: Arc<groups::Ctx>,
    pub(super) messages: mpsc::Sender<Request>,
    pub(super) rooms: Arc<rooms::Rooms>,
    pub(super) files: files::Files,
}

impl Services {
    /// Starts presence, messaging, the groups' gossip, rooms and files on
    /// `tasks`, and the router that hands them the network's events.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn spawn(
        config: &Config,
        identity: &Identity,
        sealer: &Arc<Sealer>,
        store: &Worker,
        net: &NetClient,
        control: &libp2p_stream::Control,
        net_rx: mpsc::Receiver<NetEvent>,
        tasks: &Tasks,
    ) -> Result<Self, NodeError> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let pushed_to_us = control
            .clone()
            .accept(crate::wire::presence::PUSH_PROTOCOL)
            .map_err(|_| NetError::Setup("presence push protocol registered twice".into()))?;
        let presence = presence_service::spawn(
            store.clone(),
            net.clone(),
            (control.clone(), pushed_to_us),
            events.clone(),
            config.auto_away,
            tasks,
        )
        .await?;
        let group_ctx = groups::Ctx::new(identity.clone(), sealer.clone(), config.group_fast);
        let messages = messenger::spawn(
            store.clone(),
            store.sibling().await?,
            sealer.clone(),
            net.clone(),
            control.clone(),
            events.clone(),
            config.mailbox.clone(),
            presence.clone(),
            tasks,
            group_ctx.clone(),
        )
        .map_err(|_| NetError::Setup("message protocol registered twice".into()))?;
        groups::fast_service::spawn(
            group_ctx.clone(),
            net.clone(),
            store.clone(),
            messages.clone(),
            events.clone(),
            tasks,
        );
        let (rooms_tx, rooms_rx) = mpsc::channel(256);
        let rooms = rooms::spawn(
            identity.clone(),
            net.clone(),
            store.clone(),
            events.clone(),
            config.room_limits,
            rooms_rx,
            tasks,
        );
        let files = files::spawn(
            &config.data_dir,
            config.files,
            store.clone(),
            net.clone(),
            control.clone(),
            &events,
            tasks,
        )
        .map_err(|_| NetError::Setup("file protocol registered twice".into()))?;
        tasks.spawn(router::route_net_events(
            net_rx,
            messages.clone(),
            presence.clone(),
            rooms_tx,
            tasks.clone(),
        ));
        Ok(Self {
            events,
            presence,
            group_ctx,
            messages,
            rooms,
            files,
        })
    }
}
