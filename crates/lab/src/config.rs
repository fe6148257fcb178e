//! Typed experiment configs: each experiment has a `quick` and a `full` preset (a value of its
//! config type); a TOML file given with `--config` overrides any subset of the fields. Unknown
//! keys and bad values are refused with a message naming them. The resolved config is written
//! into the run directory as `config.toml`.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result, io_err};

/// Which size of an experiment to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Minutes on 2 cores: the shape of the claim.
    #[default]
    Quick,
    /// Paper-scale settings.
    Full,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Quick => "quick",
            Preset::Full => "full",
        }
    }
}

/// The preset's config with the TOML file at `overrides` (if any) laid over it, key by key.
pub fn resolve<C: Serialize + DeserializeOwned>(preset: C, overrides: Option<&Path>) -> Result<C> {
    let Some(path) = overrides else { return Ok(preset) };
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    resolve_text(preset, &text, &path.display().to_string())
}

/// [`resolve`] from the text of a TOML file (`origin` names it in errors).
pub fn resolve_text<C: Serialize + DeserializeOwned>(
    preset: C,
    text: &str,
    origin: &str,
) -> Result<C> {
    let file: toml::Table = toml::from_str(text)
        .map_err(|e| LabError::Config(format!("{origin}: {}", one_line(&e.to_string()))))?;
    let mut base = toml::Table::try_from(&preset).map_err(|e| LabError::Config(e.to_string()))?;
    merge(&mut base, file);
    base.try_into().map_err(|e: toml::de::Error| {
        LabError::Config(format!("{origin}: {}", one_line(&e.to_string())))
    })
}

/// Lays `over` onto `base`: tables merge recursively, other values replace.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        lr: f64,
        steps: usize,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        name: String,
        train: Inner,
    }

    fn write(text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "saturn-cfg-{}-{}.toml",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_file_overrides_only_the_keys_it_names() {
        let preset = Cfg { name: "a".into(), train: Inner { lr: 0.1, steps: 10 } };
        let path = write("[train]\nsteps = 99\n");
        let got = resolve(preset, Some(&path)).unwrap();
        assert_eq!(got.train, Inner { lr: 0.1, steps: 99 });
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let preset = Cfg { name: "a".into(), train: Inner { lr: 0.1, steps: 10 } };
        let err =
            resolve(preset.clone(), Some(&write("[train]\nstepz = 1\n"))).unwrap_err().to_string();
        assert!(err.contains("stepz"), "{err}");
        let err = resolve(preset, Some(&write("[train]\nsteps = -1\n"))).unwrap_err().to_string();
        assert!(err.starts_with("config:"), "{err}");
    }
}
