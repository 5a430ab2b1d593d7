//! How the CLI prints: human text, or JSON only (`--json`), and the error
//! line on stderr.

use std::io::Write;

use anyhow::Result;
use roost::api::terminal::printable;

/// The error and its causes on one line, as scripts expect.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

/// The ID as a QR code in Unicode half blocks, for a phone to scan.
pub(crate) fn qr_text(id: &str) -> Result<String> {
    let code = qrcode::QrCode::new(id.as_bytes())?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build())
}

/// A message body's later lines indented, so a body cannot pass for
/// further rows of the listing.
pub(crate) fn indented(text: &str) -> String {
    text.replace('\n', "\n    ")
}

/// Printing in the two modes: human text, or JSON only. Human text goes
/// through [`printable`]: it carries other people's words, and a terminal
/// must not take them for escape sequences.
pub(crate) struct Out {
    pub(crate) json: bool,
}

impl Out {
    /// Prints one object: as JSON, or as the text `human` makes.
    pub(crate) fn object<T: serde::Serialize>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer(&mut stdout, value)?;
            writeln!(stdout)?;
        } else {
            writeln!(stdout, "{}", printable(&human()))?;
        }
        Ok(())
    }

    /// Prints a list, one row per line, flushed as each is written (for
    /// `--follow`).
    pub(crate) fn rows<T: serde::Serialize>(
        &self,
        rows: &[T],
        human: impl Fn(&T) -> String,
    ) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        for r in rows {
            if self.json {
                serde_json::to_writer(&mut stdout, r)?;
            } else {
                write!(stdout, "{}", printable(&human(r)))?;
            }
            writeln!(stdout)?;
            stdout.flush()?;
        }
        Ok(())
    }
}
