//! Reading a UTF-8 text file as lines, with errors that name the file and the line.

use std::path::Path;

use crate::error::{DatasetError, Result};

/// The lines of a UTF-8 file, without their `\n` / `\r\n` endings. `hint` says where the file
/// should come from when it is missing. Invalid UTF-8 is reported with its 1-based line number.
pub fn read_lines(path: &Path, hint: &str) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => {
            DatasetError::MissingFile { path: path.to_path_buf(), hint: hint.to_string() }
        }
        _ => DatasetError::Io { path: path.to_path_buf(), source },
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..good].iter().filter(|&&b| b == b'\n').count() + 1;
        DatasetError::MalformedLine {
            path: path.to_path_buf(),
            line,
            reason: format!("invalid UTF-8 at byte {good}"),
        }
    })?;
    Ok(text.lines().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_reported_with_its_line() {
        let path = std::env::temp_dir().join(format!("saturn-lines-{}.txt", std::process::id()));
        std::fs::write(&path, b"ok\r\nfine\n\xff bad\n").unwrap();
        let err = read_lines(&path, "test").unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(matches!(err, DatasetError::MalformedLine { line: 3, .. }), "{err}");
    }

    #[test]
    fn missing_file_carries_the_hint() {
        let err = read_lines(Path::new("/nonexistent/file.txt"), "get it from X").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/file.txt") && msg.contains("get it from X"), "{msg}");
    }

    #[test]
    fn crlf_endings_are_stripped() {
        let path = std::env::temp_dir().join(format!("saturn-crlf-{}.txt", std::process::id()));
        std::fs::write(&path, "a b\r\nc\r\n").unwrap();
        let lines = read_lines(&path, "test").unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(lines, ["a b", "c"]);
    }
}
