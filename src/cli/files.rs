//! `roost files …` and `roost send NAME --file PATH`: file transfers
//! through the daemon's API, with a progress bar on a terminal (or JSON
//! lines with `--json`) while waiting.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use roost::api::client::{ApiClient, escape};
use roost::api::terminal::printable_line as field;
use roost::api::{Empty, EventView, FileRow, GetFileRequest, SendFileRequest, SendFileView};

use super::output::Out;

/// How often `roost send --file --wait` asks the daemon how much of our
/// file was sent (a download follows the event stream instead).
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Subcommand)]
pub(crate) enum FilesCmd {
    /// List transfers (the default).
    List,
    /// Download an offered file (or resume a paused one).
    Get {
        /// The file id (from `roost files`).
        id: String,
        /// Where it lands [default: <data-dir>/files/<name>].
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Stay until it is complete, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Stop a transfer: a download pauses (`get` resumes it), an offer of
    /// mine is withdrawn.
    Cancel {
        /// The file id.
        id: String,
    },
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

fn row_text(r: &FileRow) -> String {
    let arrow = if r.direction == "in" { "<" } else { ">" };
    format!(
        "{} {arrow} {:<11} {}/{} {}",
        field(&r.id),
        field(&r.state),
        r.done,
        r.size,
        field(&r.name)
    )
}

/// Runs `roost files …`.
pub(crate) async fn run(client: &ApiClient, out: &Out, cmd: Option<FilesCmd>) -> Result<()> {
    match cmd.unwrap_or(FilesCmd::List) {
        FilesCmd::List => {
            let rows: Vec<FileRow> = client.get("files").await?;
            out.rows(&rows, row_text)
        }
        FilesCmd::Get { id, out: to, wait } => {
            let body = GetFileRequest {
                out: to
                    .map(|p| absolute(&p))
                    .transpose()?
                    .map(|p| p.display().to_string()),
            };
            let row: FileRow = client
                .post(&format!("files/{}/get", escape(&id)), &body)
                .await?;
            // Refused (the quota, the free-space margin): nothing to wait for.
            if row.state == "failed" {
                bail!(
                    "{}: {}",
                    row.name,
                    row.error.unwrap_or_else(|| "failed".into())
                );
            }
            if wait {
                follow(client, out, &row.id, false).await
            } else {
                out.object(&row, || row_text(&row))
            }
        }
        FilesCmd::Cancel { id } => {
            let row: FileRow = client
                .post(&format!("files/{}/cancel", escape(&id)), &Empty {})
                .await?;
            out.object(&row, || row_text(&row))
        }
    }
}

/// `roost send NAME --file PATH [--wait]`.
pub(crate) async fn send(
    client: &ApiClient,
    out: &Out,
    to: String,
    path: &Path,
    wait: bool,
) -> Result<()> {
    let path = absolute(path).with_context(|| format!("cannot read {}", path.display()))?;
    let body = SendFileRequest {
        to,
        path: path.display().to_string(),
    };
    let v: SendFileView = client.post("files/send", &body).await?;
    out.object(&v, || {
        format!(
            "{} {} {} ({} bytes)",
            field(&v.file.id),
            field(&v.state),
            field(&v.file.name),
            v.file.size
        )
    })?;
    if wait {
        follow(client, out, &v.file.id, true).await?;
    }
    Ok(())
}

/// Shows a transfer's progress until it ends: for a download until it is
/// complete (or fails or pauses), re-reading the row on each of its
/// `file_progress` events; for our offer until its size was sent, asking
/// every [`POLL`] (bytes served are not evented).
async fn follow(client: &ApiClient, out: &Out, id: &str, sending: bool) -> Result<()> {
    // Opened before the first read, so no change between the two is missed.
    let mut events = if sending {
        None
    } else {
        Some(client.events(None).await?)
    };
    let bar = (!out.json && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b
    });
    let mut last: Option<(u64, String)> = None;
    loop {
        let r: FileRow = client.get(&format!("files/{}", escape(id))).await?;
        let done = if sending {
            r.served.min(r.size)
        } else {
            r.done
        };
        if let Some(b) = &bar {
            b.set_length(r.size);
            b.set_position(done);
            b.set_message(format!("{} {}", field(&r.name), field(&r.state)));
        } else if out.json && last.as_ref() != Some(&(done, r.state.clone())) {
            let line = serde_json::json!({
                "id": r.id, "state": r.state, "done": done, "size": r.size,
            });
            println!("{line}");
        }
        last = Some((done, r.state.clone()));
        let finished = if sending {
            done >= r.size || r.state == "failed"
        } else {
            matches!(r.state.as_str(), "complete" | "failed" | "paused")
        };
        if finished {
            if let Some(b) = bar {
                b.finish();
            }
            if r.state == "failed" {
                bail!("{}: {}", r.name, r.error.unwrap_or_else(|| "failed".into()));
            }
            if !out.json {
                println!("{}", row_text(&r));
            }
            return Ok(());
        }
        match events.as_mut() {
            Some(events) => loop {
                match events.next().await? {
                    Some(EventView::FileProgress { id: of, .. }) if of == r.id => break,
                    Some(_) => {}
                    None => bail!("the daemon closed its event stream"),
                }
            },
            None => tokio::time::sleep(POLL).await,
        }
    }
}
