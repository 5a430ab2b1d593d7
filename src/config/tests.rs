use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn file_overrides_defaults_and_rejects_typos() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::new(dir.path().into());
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "mdns = false\nbootstrap = [\"/ip4/10.0.0.1/tcp/7117\"]\napi = \"127.0.0.1:5000\"\n\
         max_incoming_connections = 64\n",
    )
    .unwrap();
    c.apply_file().unwrap();
    assert!(!c.mdns);
    assert_eq!(c.bootstrap.len(), 1);
    assert_eq!(c.api.port(), 5000);
    assert_eq!(c.max_incoming_connections, 64);

    std::fs::write(dir.path().join(CONFIG_FILE), "mnds = false\n").unwrap();
    let err = Config::new(dir.path().into()).apply_file().unwrap_err();
    assert!(err.to_string().contains("mnds"), "{err}");
}

#[test]
fn bootstrap_entries_are_multiaddrs_or_invites() {
    let peer = "/ip4/10.0.0.1/tcp/7117/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq";
    let dir = tempfile::tempdir().unwrap();
    let text = format!("bootstrap = [\"{peer}\", \" roost:AB12 \", \"hello\"]\n");
    std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
    let mut c = Config::new(dir.path().into());
    c.bootstrap_invites.push("from a flag read earlier".into());
    c.apply_file().unwrap();
    assert_eq!(c.bootstrap, vec![peer.parse::<Multiaddr>().unwrap()]);
    assert_eq!(c.bootstrap_invites, vec!["roost:AB12", "hello"]);
    assert_eq!(
        "roost:AB12".parse::<Bootstrap>(),
        Ok(Bootstrap::Invite("roost:AB12".into())),
        "the flag reads the same"
    );

    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "bootstrap = [\"/ip4/999.0.0.1\"]\n",
    )
    .unwrap();
    let err = Config::new(dir.path().into()).apply_file().unwrap_err();
    assert!(err.to_string().contains("is not a multiaddr"), "{err}");
}

#[test]
fn dht_mode_replaces_dht_server_which_stays_an_alias() {
    let dir = tempfile::tempdir().unwrap();
    let read = |text: &str| {
        std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
        let mut c = Config::new(dir.path().into());
        c.apply_file().map(|_| c)
    };
    assert_eq!(read("").unwrap().dht_mode, DhtMode::Auto);
    assert_eq!(
        read("dht_server = false\n").unwrap().dht_mode,
        DhtMode::Client
    );
    assert_eq!(
        read("dht_server = true\n").unwrap().dht_mode,
        DhtMode::Server
    );
    let both = read("dht_server = true\ndht_mode = \"auto\"\n").unwrap();
    assert_eq!(both.dht_mode, DhtMode::Auto, "dht_mode wins");
    let err = read("dht_mode = \"sometimes\"\n").unwrap_err();
    assert!(err.to_string().contains("sometimes"), "{err}");
    let c = read("relay_server = false\nupnp = false\nrelay_circuit_secs = 60\n").unwrap();
    assert!(!c.relay_server && !c.upnp);
    assert_eq!(c.relay_limits.max_circuit_duration, Duration::from_secs(60));
    let local = Config::local(dir.path().into());
    assert_eq!(local.dht_mode, DhtMode::Server);
    assert!(!local.upnp);
}

#[test]
fn private_dir_is_0700() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("a/b");
    ensure_private_dir(&d).unwrap();
    let mode = std::fs::metadata(&d).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn the_files_table_sets_the_file_limits() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[files]\nauto_accept_mib = 8\ninline_kib = 99999999\nquota_mib = 100\nfree_margin_mib = 7\n",
    )
    .unwrap();
    let mut c = Config::new(dir.path().into());
    assert_eq!(c.files, FilesConfig::default());
    c.apply_file().unwrap();
    assert_eq!(c.files.auto_accept_bytes, 8 << 20);
    assert_eq!(c.files.inline_bytes, MAX_INLINE_BYTES, "capped");
    assert_eq!(c.files.quota_bytes, 100 << 20);
    assert_eq!(c.files.free_margin_bytes, 7 << 20);

    std::fs::write(dir.path().join(CONFIG_FILE), "[files]\nquota = 1\n").unwrap();
    let err = Config::new(dir.path().into()).apply_file().unwrap_err();
    assert!(err.to_string().contains("quota"), "{err}");
}

#[test]
fn the_rooms_table_sets_the_per_sender_rate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[rooms]\nrate_per_sec = 0.5\nburst = 3\n",
    )
    .unwrap();
    let mut c = Config::new(dir.path().into());
    assert_eq!(c.room_limits, RoomLimits::default());
    c.apply_file().unwrap();
    assert_eq!(
        c.room_limits,
        RoomLimits {
            rate: 0.5,
            burst: 3.0
        }
    );

    std::fs::write(dir.path().join(CONFIG_FILE), "[rooms]\nrate_per_sec = 0\n").unwrap();
    let err = Config::new(dir.path().into()).apply_file().unwrap_err();
    assert!(err.to_string().contains("rate_per_sec"), "{err}");
}

#[test]
fn a_short_idle_timeout_shortens_the_lasting_threshold_with_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CONFIG_FILE), "idle_timeout_secs = 6\n").unwrap();
    let mut c = Config::new(dir.path().into());
    c.apply_file().unwrap();
    assert_eq!(c.idle_timeout, Duration::from_secs(6));
    assert_eq!(c.lasting_connection, Duration::from_secs(3));
    // A longer one leaves the default threshold alone.
    std::fs::write(dir.path().join(CONFIG_FILE), "idle_timeout_secs = 600\n").unwrap();
    let mut c = Config::new(dir.path().into());
    c.apply_file().unwrap();
    assert_eq!(
        c.lasting_connection,
        Config::new(dir.path().into()).lasting_connection
    );
}
