//! `roost open`: logs a browser in to the daemon's web app. The daemon
//! makes a one-time login link (asked over the Unix socket, so only its
//! user can); the browser trades it for a session cookie (docs/ui.md).

use std::process::{Command, Stdio};

use anyhow::Result;
use roost::api::Empty;
use roost::api::client::ApiClient;
use roost::api::web::LoginView;

use super::output::Out;

/// Arguments of `roost open`.
#[derive(Debug, clap::Args)]
pub(crate) struct OpenArgs {
    /// Print the login link instead of opening a browser (it works once,
    /// for two minutes).
    #[arg(long)]
    pub(crate) print: bool,
}

/// Asks the daemon for a login link and opens it, or prints it with
/// `--print`, `--json`, or when no browser can be started.
pub(crate) async fn run(client: &ApiClient, out: &Out, args: OpenArgs) -> Result<()> {
    let login: LoginView = client.post("web/login", &Empty {}).await?;
    if args.print || out.json {
        return out.object(&login, || login.url.clone());
    }
    match launch(&login.url) {
        Some(how) => out.object(&login, || {
            format!(
                "Opened the web app with {how}. If no browser window appeared, run `roost open --print` and open the link yourself (it works once, within {} s).",
                login.expires_in
            )
        }),
        None => out.object(&login, || {
            format!(
                "No browser could be started ($BROWSER, xdg-open). Open this link (it works once, within {} s):\n{}",
                login.expires_in, login.url
            )
        }),
    }
}

/// Starts a browser on `url`: each command of `$BROWSER` (colon-separated,
/// `%s` standing for the URL) in turn, then `xdg-open`. Returns the one
/// that started.
fn launch(url: &str) -> Option<String> {
    let mut candidates: Vec<String> = std::env::var("BROWSER")
        .unwrap_or_default()
        .split(':')
        .filter(|c| !c.trim().is_empty())
        .map(str::to_string)
        .collect();
    candidates.push("xdg-open".into());
    for cmd in candidates {
        let mut words: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
        if words.is_empty() {
            continue;
        }
        if words.iter().any(|w| w.contains("%s")) {
            for w in &mut words {
                *w = w.replace("%s", url);
            }
        } else {
            words.push(url.to_string());
        }
        let started = Command::new(&words[0])
            .args(&words[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = started else { continue };
        // xdg-open exits at once, with a failure when it found no browser;
        // a browser named in $BROWSER may keep running, so it is not waited for.
        if words[0] == "xdg-open" {
            if child.wait().is_ok_and(|s| s.success()) {
                return Some(cmd);
            }
            continue;
        }
        return Some(cmd);
    }
    None
}
