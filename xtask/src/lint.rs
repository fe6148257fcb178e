//! `cargo xtask lint`: the hygiene CI checks besides the tests.
//!
//! 1. `cargo fmt --all --check`;
//! 2. `cargo clippy --workspace --all-targets -- -D warnings` (the workspace `[lints]` table in
//!    the root Cargo.toml adds `unsafe_op_in_unsafe_fn` and `undocumented_unsafe_blocks`);
//! 3. `cargo doc --workspace --no-deps` with `RUSTDOCFLAGS="-D warnings"`;
//! 4. the tidy check of docs/ARCHITECTURE.md ([`missing_from_architecture`]): every `.rs` file of
//!    every package is listed in its package's section, and every `.rs` path the map names
//!    exists, so the map a newcomer reads stays true; and every relative Markdown link of the
//!    README and the docs reaches its file and anchor ([`broken_doc_links`]).
//!
//! All four run even when one fails, so one CI run names every problem.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::{cargo, run, workspace_root};

/// The checks, by the names `cargo xtask lint [NAME…]` takes.
const CHECKS: [&str; 4] = ["fmt", "clippy", "doc", "tidy"];

/// Runs the named checks (all four when none is named); fails when any fails.
pub fn run_all(args: &[String]) -> Result<ExitCode, String> {
    if let Some(other) = args.iter().find(|a| !CHECKS.contains(&a.as_str())) {
        return Err(format!("lint: unknown check `{other}` (the checks: {})", CHECKS.join(", ")));
    }
    let wanted = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let mut failed = Vec::new();
    let mut step = |name: &'static str, code: Result<ExitCode, String>| match code {
        Ok(code) if code == ExitCode::SUCCESS => eprintln!("lint: {name}: ok"),
        Ok(_) => failed.push(name),
        Err(e) => {
            eprintln!("lint: {name}: {e}");
            failed.push(name)
        }
    };

    if wanted("fmt") {
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--check"]);
        step("cargo fmt --check", run(fmt, "cargo fmt"));
    }
    if wanted("clippy") {
        let mut clippy = cargo();
        clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
        step("cargo clippy -D warnings", run(clippy, "cargo clippy"));
    }
    if wanted("doc") {
        let mut doc = cargo();
        doc.args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
        step("cargo doc -D warnings", run(doc, "cargo doc"));
    }
    if wanted("tidy") {
        step("tidy (the ARCHITECTURE map, doc links)", tidy(&workspace_root()));
    }

    if failed.is_empty() {
        eprintln!("lint: all checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("lint: failed: {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

fn tidy(root: &Path) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md"))
        .map_err(|e| format!("cannot read docs/ARCHITECTURE.md: {e}"))?;
    let mut problems = missing_from_architecture(root, &text)?;
    problems.extend(broken_doc_links(root)?);
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A package of the map: its name (from its Cargo.toml) and its directory.
struct Package {
    name: String,
    dir: PathBuf,
}

/// The problems of docs/ARCHITECTURE.md's file map, one readable line each (empty: none).
///
/// The rule: every package (the workspace members of the root Cargo.toml, and `fuzz/`, its own
/// workspace) has a section whose `## ` heading contains the package name as a word, and in
/// that section every `.rs` file of the package appears as its path relative to the package
/// directory (`src/ops/linear.rs`, `tests/integration/lab.rs`, `build.rs`), standing alone —
/// between backticks, spaces or line ends; a glob such as `src/ops/*.rs` lists nothing.
/// Conversely every `.rs` path a section names must be a file (of the package, or from the
/// workspace root).
pub fn missing_from_architecture(root: &Path, architecture: &str) -> Result<Vec<String>, String> {
    let sections = sections(architecture);
    let mut problems = Vec::new();
    for package in packages(root)? {
        let rel_dir = package.dir.strip_prefix(root).unwrap_or(&package.dir).display().to_string();
        let Some(body) = sections.iter().find(|(h, _)| has_word(h, &package.name)).map(|s| &s.1)
        else {
            problems.push(format!(
                "package `{}` ({rel_dir}/) has no section: add `## {}` listing its files",
                package.name, package.name
            ));
            continue;
        };
        for listed in listed_paths(body) {
            if !package.dir.join(&listed).is_file() && !root.join(&listed).is_file() {
                problems.push(format!(
                    "`{listed}` is in the map under `## {}` but is no file of {rel_dir}/ (moved \
                     or deleted?): update or remove its line",
                    package.name
                ));
            }
        }
        for file in rust_files(&package.dir)? {
            let rel = file.strip_prefix(&package.dir).unwrap_or(&file);
            let rel = rel.to_string_lossy().replace('\\', "/");
            if !mentions_path(body, &rel) {
                problems.push(format!(
                    "`{rel_dir}/{rel}` is not in the map: add `{rel}` (one line of what it is) \
                     under `## {}`",
                    package.name
                ));
            }
        }
    }
    Ok(problems)
}

/// The Markdown files whose links are checked: README.md, tests/README.md and docs/**/*.md.
fn markdown_files(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = vec![root.join("README.md"), root.join("tests/README.md")];
    let mut stack = vec![root.join("docs")];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.retain(|f| f.is_file());
    files.sort();
    Ok(files)
}

/// Every relative link `[text](path#anchor)` of the README and the docs (outside code blocks)
/// whose file does not exist, or whose anchor is neither an `<a id>` nor a heading of the
/// target Markdown file; one line each.
pub fn broken_doc_links(root: &Path) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    for file in markdown_files(root)? {
        let text = read(&file)?;
        let shown = file.strip_prefix(root).unwrap_or(&file).display().to_string();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target.as_str(), ""));
            let linked = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap_or(root).join(path)
            };
            if !linked.exists() {
                problems.push(format!("{shown}: the link `{target}` leads to no file"));
            } else if !anchor.is_empty()
                && linked.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&linked)?).iter().any(|a| a == anchor)
            {
                problems.push(format!("{shown}: the link `{target}` names no anchor of its file"));
            }
        }
    }
    Ok(problems)
}

/// The lines of a Markdown text with whether each is inside a fenced code block (fences count
/// as inside).
fn lines_with_fences(text: &str) -> impl Iterator<Item = (&str, bool)> {
    let mut in_code = false;
    text.lines().map(move |line| {
        let fence = line.trim_start().starts_with("```");
        if fence {
            in_code = !in_code;
        }
        (line, in_code || fence)
    })
}

/// The targets of the inline links `](target)` outside fenced code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (line, _) in lines_with_fences(text).filter(|(_, code)| !code) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            let target = &rest[..end];
            if !target.is_empty() && !target.contains(char::is_whitespace) {
                out.push(target.to_string());
            }
            rest = &rest[end..];
        }
    }
    out
}

/// The anchors of a Markdown text: `<a id="…">` and GitHub's heading slugs (lower case; letters,
/// digits, `-` and `_` kept; spaces to `-`; the rest dropped).
fn anchors(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (line, in_code) in lines_with_fences(text) {
        let mut rest = line;
        while let Some(i) = rest.find("<a id=\"") {
            rest = &rest[i + 7..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
            }
        }
        if !in_code && line.starts_with('#') {
            let heading = line.trim_start_matches('#').trim();
            let slug = heading
                .chars()
                .flat_map(char::to_lowercase)
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect();
            out.push(slug);
        }
    }
    out
}

/// The `.rs` paths a section names: words with a `/` that end in `.rs` (globs and brace
/// lists left out), read relative to the package or, failing that, to the workspace root.
fn listed_paths(body: &str) -> Vec<String> {
    let mut out: Vec<String> = body
        .split(|c: char| c.is_whitespace() || matches!(c, '`' | '(' | ')' | '[' | ']' | ','))
        .map(|w| w.trim_end_matches([':', ';', '.']))
        .filter(|w| w.ends_with(".rs") && w.contains('/') && !w.contains(['*', '{', '}']))
        .filter(|w| !w.starts_with("http") && !w.starts_with("../"))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The `## ` sections of a Markdown text: (heading, body up to the next `## `).
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            out.push((heading.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// Whether `word` stands in `text` with no name character (alphanumeric, `-`, `_`) either side.
fn has_word(text: &str, word: &str) -> bool {
    let name_char = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(name_char) && !after.is_some_and(name_char)
    })
}

/// Whether `path` stands alone in `text`: not part of a longer path or name.
fn mentions_path(text: &str, path: &str) -> bool {
    let path_char = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '/' | '.' | '*');
    text.match_indices(path).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + path.len()..].chars().next();
        !before.is_some_and(path_char) && !after.is_some_and(path_char)
    })
}

/// The workspace members of the root Cargo.toml, then `fuzz/` when it exists.
fn packages(root: &Path) -> Result<Vec<Package>, String> {
    let manifest = read(&root.join("Cargo.toml"))?;
    let members = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members"))
        .and_then(|rest| Some(&rest[rest.find('[')? + 1..rest.find(']')?]))
        .ok_or("the root Cargo.toml has no one-line `members = [...]`")?;
    let mut dirs: Vec<PathBuf> = members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(|m| root.join(m))
        .collect();
    if root.join("fuzz/Cargo.toml").is_file() {
        dirs.push(root.join("fuzz"));
    }
    dirs.into_iter()
        .map(|dir| {
            let text = read(&dir.join("Cargo.toml"))?;
            let name = text
                .lines()
                .skip_while(|l| l.trim() != "[package]")
                .find_map(|l| l.trim().strip_prefix("name")?.trim().strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
                .ok_or_else(|| {
                    format!("{}: no [package] name", dir.join("Cargo.toml").display())
                })?;
            // the fuzz package is named after the crate it fuzzes; the map calls it `fuzz`
            let name = if dir.ends_with("fuzz") { "fuzz".to_string() } else { name };
            Ok(Package { name, dir })
        })
        .collect()
}

/// Every `.rs` file below `dir`, sorted, skipping build output, fuzz corpora and artifacts.
fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", d.display()))?.path();
            let name =
                path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | "corpus" | "artifacts" | "coverage")
                    && !name.starts_with('.')
                {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway workspace: one member `crates/a` (package `saturn-a`) with two files.
    fn workspace(test: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("xtask-tidy-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("crates/a/src/ops")).unwrap();
        std::fs::write(root.join("Cargo.toml"), "[workspace]\nmembers = [\"crates/a\"]\n").unwrap();
        std::fs::write(root.join("crates/a/Cargo.toml"), "[package]\nname = \"saturn-a\"\n")
            .unwrap();
        std::fs::write(root.join("crates/a/src/lib.rs"), "").unwrap();
        std::fs::write(root.join("crates/a/src/ops/add.rs"), "").unwrap();
        root
    }

    #[test]
    fn a_complete_map_passes() {
        let root = workspace("complete");
        let map = "# map\n## saturn-a\n```\nsrc/lib.rs     root\nsrc/ops/add.rs addition\n```\n";
        assert_eq!(missing_from_architecture(&root, map).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_missing_file_is_named_with_its_section() {
        let root = workspace("missing");
        let problems =
            missing_from_architecture(&root, "## saturn-a\n`src/lib.rs` root\n").unwrap();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("crates/a/src/ops/add.rs"), "{}", problems[0]);
        assert!(problems[0].contains("## saturn-a"), "{}", problems[0]);
    }

    #[test]
    fn globs_and_other_sections_list_nothing() {
        let root = workspace("globs");
        // a glob, a longer path that contains the name, and the file under another package
        let map = "## saturn-a\nsrc/ops/*.rs\nsrc/lib.rs.bak\n## saturn-b\nsrc/lib.rs\n";
        assert_eq!(missing_from_architecture(&root, map).unwrap().len(), 2);
        let no_section = missing_from_architecture(&root, "## saturn-ab\nsrc/lib.rs\n").unwrap();
        assert!(no_section[0].contains("has no section"), "{no_section:?}");
    }

    #[test]
    fn links_reach_files_and_anchors() {
        let root = workspace("links");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/A.md"), "# A\n## Two words\n<a id=\"x\"></a>\n").unwrap();
        let readme = "[a](docs/A.md) [b](docs/A.md#two-words) [c](docs/A.md#x) [w](https://e.org)\n\
                      ```\n[not](a/link.md)\n```\n[d](docs/B.md) [e](docs/A.md#nope)\n";
        std::fs::write(root.join("README.md"), readme).unwrap();
        let problems = broken_doc_links(&root).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("docs/B.md") && problems[1].contains("#nope"), "{problems:?}");
    }

    #[test]
    fn a_listed_file_that_is_gone_is_named() {
        let root = workspace("stale");
        let map =
            "## saturn-a\n```\nsrc/lib.rs  root\nsrc/ops/add.rs  add\nsrc/ops/mul.rs  gone\n```\n";
        let problems = missing_from_architecture(&root, map).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`src/ops/mul.rs`"), "{}", problems[0]);
    }
}
