//! The canonical formatter.

use crate::diag::Diagnostics;

/// Formats a rules file canonically.
pub fn format(source: &str) -> Result<String, Diagnostics> {
    let file = crate::parse::parse_file(source).map_err(|e| Diagnostics::new("<input>", e))?;
    let _ = file;
    Ok(source.to_string())
}
