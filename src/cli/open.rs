//! `roost open`: logs a browser in to the daemon's web app. The daemon
//! makes a one-time login link (asked over the Unix socket, so only its
//! user can); the browser trades it for a session cookie (docs/ui.md).
//! The browser is handed a page in the 0700 data dir that leads to the
//! link, never the link itself: a command line is readable by every local
//! user (`/proc/<pid>/cmdline`), who could spend the token first.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
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
pub(crate) async fn run(
    client: &ApiClient,
    out: &Out,
    data_dir: &Path,
    args: OpenArgs,
) -> Result<()> {
    let login: LoginView = client.post("web/login", &Empty {}).await?;
    if args.print || out.json {
        return out.object(&login, || login.url.clone());
    }
    let page = write_redirect(data_dir, &login.url)?;
    match launch(&page.display().to_string()) {
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

/// Writes `<data-dir>/open.html` (0600, replaced each time), a page that
/// leads the browser to `url`, and returns its path. The data dir is 0700
/// (the daemon made it so), so only this user can read the token in it.
fn write_redirect(data_dir: &Path, url: &str) -> Result<std::path::PathBuf> {
    let path = data_dir.join("open.html");
    let tmp = data_dir.join("open.html.tmp");
    let _ = std::fs::remove_file(&tmp);
    let attr = html_escape(url);
    let page = format!(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<meta http-equiv=\"refresh\" content=\"0;url={attr}\">\n<title>roost</title>\n<p><a href=\"{attr}\">Open the roost web app</a></p>\n"
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(page.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Escapes `s` for a double-quoted HTML attribute.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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
