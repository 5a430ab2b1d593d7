//! QR codes as SVG, drawn by the daemon so the page needs no QR library and
//! a phone can scan an ID or invite off the screen.

use qrcode::{Color, QrCode};

/// Longest text drawn: an invite with a few addresses fits well within it.
pub const MAX_QR_TEXT: usize = 2048;

/// Errors drawing a QR code.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text is over [`MAX_QR_TEXT`] bytes.
    #[error("QR text is limited to {MAX_QR_TEXT} bytes")]
    TooLong,
    /// The QR encoder refused it.
    #[error("cannot draw a QR code: {0}")]
    Encode(#[from] qrcode::types::QrError),
}

/// `text` as an SVG image: one path of dark modules on white, with the
/// four-module quiet zone readers need.
pub fn svg(text: &str) -> Result<String, QrError> {
    if text.len() > MAX_QR_TEXT {
        return Err(QrError::TooLong);
    }
    let code = QrCode::new(text.as_bytes())?;
    let width = code.width();
    let size = width + 8;
    let mut path = String::new();
    for (i, c) in code.to_colors().iter().enumerate() {
        if *c == Color::Dark {
            let (x, y) = (i % width + 4, i / width + 4);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" shape-rendering=\"crispEdges\">\
<rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_id_and_refuses_oversize_text() {
        let s = svg("12D3KooWabc").expect("draws");
        assert!(s.starts_with("<svg") && s.contains("M4 4h1v1h-1z"), "{s}");
        assert!(matches!(
            svg(&"x".repeat(MAX_QR_TEXT + 1)),
            Err(QrError::TooLong)
        ));
    }
}
