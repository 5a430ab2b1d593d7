//! [ui] `roost chat` driven as a person would: in a pseudo-terminal under
//! tmux (keys in with `send-keys`, the screen out with `capture-pane`),
//! against two real daemons that are buddies. The final screen is written
//! to `<target>/test-output/chat/a.txt`, for a person to look at.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Daemon, eventually, roost};

/// A private tmux server (its own socket name), killed when dropped, so a
/// failing test leaves no chat running and touches no one else's tmux.
struct Tmux {
    socket: String,
    /// The socket's file, removed when dropped (tmux leaves it behind).
    path: Option<PathBuf>,
}

impl Tmux {
    /// Starts a server with one detached 100×30 session running `cmd`.
    fn start(cmd: &[&str]) -> Self {
        let version = Command::new("tmux").arg("-V").output();
        assert!(
            version.as_ref().is_ok_and(|o| o.status.success()),
            "tmux is needed to drive `roost chat` in a pseudo-terminal: install it \
             (`apt-get install tmux`; .ci/run does): {version:?}"
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut t = Self {
            socket: format!("roost-chat-{}-{nanos}", std::process::id()),
            path: None,
        };
        let mut args = vec!["new-session", "-d", "-x", "100", "-y", "30", "-s", "chat"];
        args.extend_from_slice(cmd);
        let out = t.run(&args);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        let path = t.run(&["display-message", "-p", "#{socket_path}"]).stdout;
        t.path = Some(PathBuf::from(String::from_utf8_lossy(&path).trim()));
        t
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env("TERM", "xterm")
            .env_remove("ROOST_HOME")
            .output()
            .expect("run tmux")
    }

    /// The screen as text.
    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "chat"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally, then presses Enter.
    fn type_line(&self, text: &str) {
        assert!(
            self.run(&["send-keys", "-t", "chat", "-l", text])
                .status
                .success()
        );
        self.key("Enter");
    }

    fn key(&self, key: &str) {
        assert!(self.run(&["send-keys", "-t", "chat", key]).status.success());
    }

    /// Waits until the screen shows `text`; returns the screen.
    async fn shows(&self, text: &str, what: &str) -> String {
        let found = common::poll_within(common::DEADLINE, || async {
            let s = self.screen();
            s.contains(text).then_some(s)
        })
        .await;
        found.unwrap_or_else(|| panic!("{what}: {text:?} not on screen:\n{}", self.screen()))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Where the test writes what a person would look at.
fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("test-output")
        .join("chat");
    std::fs::create_dir_all(&dir).expect("create the test output dir");
    dir
}

/// `roost --json log <peer>` of `d`: the messages as JSON.
fn log(d: &Daemon, peer: &str) -> Vec<serde_json::Value> {
    d.rows(&["log", peer])
}

/// `roost chat` of daemon `a` in a private tmux. Once the chat ends, its
/// exit code lands in the returned file, and the shell shows whether the
/// terminal is back in canonical mode (`icanon`, not raw mode's
/// `-icanon`) on the normal screen, then waits.
fn start_chat(a: &Daemon) -> (Tmux, PathBuf) {
    let bin = env!("CARGO_BIN_EXE_roost");
    let data = a.dir.path().to_str().expect("a UTF-8 temp path");
    let exit = a.dir.path().join("chat-exit");
    let exit_arg = exit.to_str().expect("a UTF-8 temp path");
    let tmux = Tmux::start(&[
        "sh",
        "-c",
        r#""$0" --data-dir "$1" chat; echo $? > "$2"; echo "tty: $(stty -a | grep -o -- '-\?icanon')"; echo chat-ended; sleep 600"#,
        bin,
        data,
        exit_arg,
    ]);
    (tmux, exit)
}

/// Two daemons that are buddies: A calls B "bob", B calls A "alice".
async fn buddies() -> (Daemon, Daemon) {
    let a = Daemon::start(None).await;
    let b = Daemon::start(Some(&a.addr().await)).await;
    a.befriend("alice", &b, "bob");
    (a, b)
}

/// A file B offers shows in A's open chat as a readable line that follows
/// the download to `complete` (its parts have no line), and a text A's
/// command line sends shows live in A's chat (`message_sent`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_is_a_readable_line_and_our_cli_messages_show_live() {
    let (a, b) = buddies().await;
    let (tmux, _exit) = start_chat(&a);
    tmux.shows("bob online", "A's chat lists bob, open").await;

    let files = tempfile::tempdir().expect("temp dir");
    let path = files.path().join("notes.txt");
    std::fs::write(&path, "x".repeat(150 * 1024)).expect("write the file");
    b.rows(&[
        "send",
        "alice",
        "--file",
        path.to_str().expect("a UTF-8 path"),
    ]);
    let screen = tmux
        .shows(
            "< 📎 notes.txt · 150.0 KiB · complete",
            "the offer is a readable line, complete",
        )
        .await;
    let lines: Vec<&str> = screen.lines().filter(|l| l.contains(" < ")).collect();
    assert_eq!(
        lines.len(),
        1,
        "one line for the offer and its parts:\n{screen}"
    );

    a.rows(&["send", "bob", "sent from A's command line"]);
    tmux.shows(
        "> sent from A's command line",
        "A's CLI message shows live in A's chat",
    )
    .await;
    std::fs::write(output_dir().join("a-files.txt"), tmux.screen()).expect("write the screen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_typed_in_the_chat_reaches_a_buddy_and_its_answer_shows_live() {
    let (a, b) = buddies().await;
    let (tmux, exit) = start_chat(&a);
    tmux.shows("bob online", "A's chat lists bob, online").await;
    tmux.shows("Enter send", "the help line").await;

    // Typed in A's chat, the message reaches B...
    tmux.type_line("hello from the terminal");
    eventually("B has the message typed in A's chat", || async {
        log(&b, "alice")
            .iter()
            .any(|m| m["direction"] == "in" && m["text"] == "hello from the terminal")
            .then_some(())
    })
    .await;
    // ... and A's pane shows it delivered, live.
    tmux.shows(
        "> hello from the terminal [delivered]",
        "the state of A's message updates live",
    )
    .await;

    // B reads it: the line on A's screen turns `read`.
    b.rows(&["read", "alice"]);
    tmux.shows(
        "> hello from the terminal [read]",
        "the read receipt shows live in A's chat",
    )
    .await;

    // B answers: it appears in A's open conversation without a key pressed,
    // and, being open, it is read (B gets the receipt).
    b.rows(&["send", "alice", "hi from B"]);
    tmux.shows("< hi from B", "B's message appears live in A's chat")
        .await;
    eventually(
        "B's message is read once shown in A's open chat",
        || async {
            log(&b, "alice")
                .iter()
                .any(|m| m["text"] == "hi from B" && m["state"] == "read")
                .then_some(())
        },
    )
    .await;

    resize_then_quit(&tmux, &exit).await;
}

/// A smaller terminal redraws to fit; Esc ends the chat with exit code 0
/// and gives the terminal back (normal screen, canonical mode).
async fn resize_then_quit(tmux: &Tmux, exit: &Path) {
    let resized = tmux.run(&["resize-window", "-t", "chat", "-x", "60", "-y", "20"]);
    assert!(resized.status.success(), "tmux resize-window: {resized:?}");
    let fits = common::poll_within(common::DEADLINE, || async {
        let s = tmux.screen();
        let rows: Vec<&str> = s.lines().collect();
        let drawn = rows.first().is_some_and(|r| r.ends_with('┐'))
            && rows.iter().any(|r| r.contains("< hi from B"))
            && rows.iter().any(|r| r.contains("[read]"))
            && rows.iter().all(|r| r.chars().count() <= 60);
        drawn.then_some(())
    })
    .await;
    assert!(
        fits.is_some(),
        "not redrawn at 60 columns:\n{}",
        tmux.screen()
    );

    let screen = tmux.screen();
    let file = output_dir().join("a.txt");
    std::fs::write(&file, &screen).expect("write the screen");
    println!("A's chat:\n{screen}\n(written to {})", file.display());

    // Esc quits, cleanly.
    tmux.key("Escape");
    let code = eventually("Esc ends the chat", || async {
        std::fs::read_to_string(exit)
            .ok()
            .filter(|c| c.ends_with('\n'))
    })
    .await;
    assert_eq!(code.trim(), "0", "the chat's exit code");
    // ... and gives the terminal back as it found it: off the alternate
    // screen (the chat is gone from view) and out of raw mode.
    let after = tmux.shows("chat-ended", "the shell after the chat").await;
    assert!(after.contains("tty: icanon"), "raw mode left on:\n{after}");
    assert!(
        !after.contains("conversations"),
        "still on the chat's screen:\n{after}"
    );
}

#[test]
fn chat_refuses_when_stdout_is_not_a_terminal() {
    // No daemon is needed to be refused: the terminal is checked first.
    let dir = tempfile::tempdir().unwrap();
    let out = roost(dir.path(), &["chat"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("`roost chat` needs a terminal: stdout is not one"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing drawn: {out:?}");
}

/// `/get` typed in B's chat downloads the newest file A offered in the
/// open conversation, one too large to come by itself (above B's
/// `auto_accept_mib` and `inline_kib`): its line follows the download to
/// `complete`, and the bytes that landed are A's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_typed_in_the_chat_downloads_the_offered_file() {
    let (a, mut b) = buddies().await;
    // B restarts with the config; it finds A again through its bootstrap.
    b.restart_with_config("[files]\nauto_accept_mib = 1\n")
        .await;
    let (tmux, _exit) = start_chat(&b);
    tmux.shows("alice online", "B's chat lists alice, online")
        .await;

    let files = tempfile::tempdir().expect("temp dir");
    let path = files.path().join("big.bin");
    let bytes = common::random::bytes(2 * 1024 * 1024 + 7, 11);
    std::fs::write(&path, &bytes).expect("write the file");
    a.rows(&[
        "send",
        "bob",
        "--file",
        path.to_str().expect("a UTF-8 path"),
    ]);
    tmux.shows(
        "< 📎 big.bin · 2.0 MiB · offered",
        "the offer waits to be asked for",
    )
    .await;
    let row = |d: &Daemon| {
        d.rows(&["files"])
            .into_iter()
            .find(|r| r["name"] == "big.bin")
            .expect("B lists the file")
    };
    assert_eq!(row(&b)["state"], "offered", "it came by itself");
    tmux.type_line("/get");
    tmux.shows(
        "< 📎 big.bin · 2.0 MiB · complete",
        "the download asked for in the chat completes",
    )
    .await;
    let landed = row(&b)["path"].as_str().expect("a path").to_string();
    assert!(
        std::fs::read(&landed).expect("the file landed") == bytes,
        "the bytes differ"
    );
    std::fs::write(output_dir().join("b-get.txt"), tmux.screen()).expect("write the screen");
}
