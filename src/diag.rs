//! Errors placed in a file: `file:line:col: message`, the shape every
//! compiler here reports (config, analysis templates, rule files), and the
//! helpers that find a line and column.

use std::fmt;
use std::path::{Path, PathBuf};

/// One error at a position in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// the file
    pub file: PathBuf,
    /// 1-based line; 0 for a whole-file problem (printed without position)
    pub line: usize,
    /// 1-based column (characters)
    pub column: usize,
    /// what is wrong and what was expected
    pub message: String,
}

impl Located {
    /// An error at byte `offset` of `text`, the content of `file`.
    pub fn at(
        file: impl Into<PathBuf>,
        text: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> Located {
        let (line, column) = line_col(text, offset);
        Located {
            file: file.into(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            // A whole-file problem (cannot read it): no position to give.
            return write!(f, "{}: {}", self.file.display(), self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl std::error::Error for Located {}

/// 1-based line and column (characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// A TOML error's message; the toml crate leaves some lexer errors
/// without one.
pub fn toml_message(e: &toml::de::Error) -> String {
    if e.message().trim().is_empty() {
        "invalid TOML here (expected a key, a table header or a value)".to_string()
    } else {
        e.message().trim_end().to_string()
    }
}

/// Reads a text file; invalid UTF-8 is an error at its line and column,
/// an unreadable file a whole-file error (`what` names the file's role).
pub fn read_text(path: &Path, what: &str) -> Result<String, Located> {
    let bytes = std::fs::read(path).map_err(|e| Located {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("{what}: cannot read it: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let ok = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..ok]).into_owned();
        Located::at(
            path,
            &text,
            text.len(),
            format!("{what}: invalid UTF-8: expected a text file"),
        )
    })
}
