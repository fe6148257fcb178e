//! `saturn sweep`: the scripts that run an experiment's cells elsewhere — a Slurm job array
//! (one cell per task, requeueable, each task resuming its cell) followed by a merge job that
//! runs only if every cell succeeded, or one command per line for GNU parallel.
//!
//! Slurm's own semantics are relied on, not re-implemented: `--array=0-(N−1)` with
//! `$SLURM_ARRAY_TASK_ID` as the cell index; `--requeue` so a preempted task is run again, and
//! `--resume` so it continues its cell from its checkpoint; the merge submitted with
//! `--dependency=afterok:ARRAY --kill-on-invalid-dep=yes`, so one failed cell cancels it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{LabError, Result, io_err};

/// Which scripts to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// `NAME.cells.sbatch`, `NAME.merge.sbatch` and `submit.sh`.
    Slurm,
    /// `NAME.cells.txt` (one command a line, for `parallel -j2 < NAME.cells.txt`) and
    /// `NAME.merge.sh`.
    Parallel,
}

/// Slurm resources of every task (the merge job takes the same, minus the time limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// A time limit per cell, in Slurm's syntax (`2:00:00`).
    pub time: Option<String>,
    pub account: Option<String>,
    /// CPUs per task: also the run's `--threads`.
    pub cpus_per_task: usize,
    /// Memory per task, in Slurm's syntax (`4G`).
    pub mem: Option<String>,
}

/// What a sweep runs: the `saturn` binary and the arguments that pick the experiment, preset,
/// seeds and config (every path absolute, so the scripts run from any directory).
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub name: String,
    pub saturn: PathBuf,
    /// `--full` or `--quick`, `--seeds …`, `--config …`.
    pub run_args: Vec<String>,
    /// Where the run directory is (`--out`), and where the scripts go.
    pub out: PathBuf,
    pub cells: usize,
}

/// The files written, in the order written.
pub fn write(spec: &SweepSpec, emit: Emit, slurm: &SlurmOptions) -> Result<Vec<PathBuf>> {
    if spec.cells == 0 {
        return Err(LabError::Run(format!("{}: no cells to sweep", spec.name)));
    }
    std::fs::create_dir_all(&spec.out).map_err(io_err(&spec.out))?;
    let files = match emit {
        Emit::Slurm => {
            std::fs::create_dir_all(spec.out.join("logs")).map_err(io_err(&spec.out))?;
            vec![
                (format!("{}.cells.sbatch", spec.name), cells_sbatch(spec, slurm)),
                (format!("{}.merge.sbatch", spec.name), merge_sbatch(spec, slurm)),
                ("submit.sh".to_string(), submit_sh(spec)),
            ]
        }
        Emit::Parallel => vec![
            (format!("{}.cells.txt", spec.name), parallel_lines(spec)),
            (format!("{}.merge.sh", spec.name), merge_sh(spec)),
        ],
    };
    let mut written = Vec::new();
    for (name, text) in files {
        let path = spec.out.join(name);
        saturn_tensor::io::write_atomically(&path, text.as_bytes())?;
        if path.extension().is_some_and(|e| e == "sh") {
            make_executable(&path)?;
        }
        written.push(path);
    }
    Ok(written)
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io_err(path))
}

/// `s` quoted for a POSIX shell (left bare when it needs no quotes).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `saturn experiment NAME <run args> --out OUT --threads T` followed by `tail`.
fn command(spec: &SweepSpec, threads: usize, tail: &[&str]) -> String {
    let mut words = vec![spec.saturn.display().to_string(), "experiment".into(), spec.name.clone()];
    words.extend(spec.run_args.iter().cloned());
    words.extend(["--out".into(), spec.out.display().to_string(), "--threads".into()]);
    words.push(threads.to_string());
    let mut line = words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ");
    for t in tail {
        line.push(' ');
        line.push_str(t);
    }
    line
}

fn header(spec: &SweepSpec, slurm: &SlurmOptions, job: &str, with_time: bool) -> String {
    let mut h = String::from("#!/bin/bash\n");
    let _ = writeln!(h, "#SBATCH --job-name={job}");
    let _ = writeln!(h, "#SBATCH --cpus-per-task={}", slurm.cpus_per_task.max(1));
    let _ = writeln!(h, "#SBATCH --ntasks=1");
    for (key, value) in
        [("partition", &slurm.partition), ("account", &slurm.account), ("mem", &slurm.mem)]
    {
        if let Some(v) = value {
            let _ = writeln!(h, "#SBATCH --{key}={v}");
        }
    }
    if with_time && let Some(t) = &slurm.time {
        let _ = writeln!(h, "#SBATCH --time={t}");
    }
    let log = spec.out.join("logs").join(format!("{job}-%A_%a.out"));
    let _ = writeln!(h, "#SBATCH --output={}", log.display());
    h
}

fn cells_sbatch(spec: &SweepSpec, slurm: &SlurmOptions) -> String {
    let mut s = header(spec, slurm, &format!("saturn-{}-cells", spec.name), true);
    let _ = writeln!(s, "#SBATCH --array=0-{}", spec.cells - 1);
    s.push_str("#SBATCH --requeue\n");
    let _ = writeln!(
        s,
        "# {} cell(s) of `{}`; each task runs one and resumes it if it was preempted.\nset -euo pipefail",
        spec.cells, spec.name
    );
    s.push_str(&command(
        spec,
        slurm.cpus_per_task.max(1),
        &["--cell \"$SLURM_ARRAY_TASK_ID\" --resume"],
    ));
    s.push('\n');
    s
}

fn merge_sbatch(spec: &SweepSpec, slurm: &SlurmOptions) -> String {
    let mut s = header(spec, slurm, &format!("saturn-{}-merge", spec.name), false);
    let _ = writeln!(
        s,
        "# Computes the claims, figures and summary of `{}` from its cells; trains nothing.\nset -euo pipefail",
        spec.name
    );
    s.push_str(&command(spec, 1, &["--merge-only", "\"$@\""]));
    s.push('\n');
    s
}

fn submit_sh(spec: &SweepSpec) -> String {
    format!(
        "#!/bin/bash\n\
         # Submits the cells of `{name}` as a job array, then the merge, which runs only if every\n\
         # cell succeeds (a failed cell cancels it).\n\
         set -euo pipefail\n\
         cd \"$(dirname \"$0\")\"\n\
         array=$(sbatch --parsable {name}.cells.sbatch)\n\
         array=${{array%%;*}}\n\
         merge=$(sbatch --parsable --dependency=afterok:$array --kill-on-invalid-dep=yes {name}.merge.sbatch)\n\
         merge=${{merge%%;*}}\n\
         echo \"cells: job $array; merge: job $merge\"\n",
        name = spec.name
    )
}

fn parallel_lines(spec: &SweepSpec) -> String {
    (0..spec.cells).map(|i| command(spec, 1, &[&format!("--cell {i} --resume")]) + "\n").collect()
}

fn merge_sh(spec: &SweepSpec) -> String {
    format!(
        "#!/bin/bash\n# Merges the cells of `{}` once every line of {}.cells.txt has finished.\nset -euo pipefail\n{}\n",
        spec.name,
        spec.name,
        command(spec, 1, &["--merge-only", "\"$@\""])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(out: &Path) -> SweepSpec {
        SweepSpec {
            name: "amplification".into(),
            saturn: "/opt/saturn bin/saturn".into(),
            run_args: vec!["--full".into(), "--seeds".into(), "0,1".into()],
            out: out.to_path_buf(),
            cells: 3,
        }
    }

    #[test]
    fn slurm_scripts_run_one_cell_per_array_task_and_merge_after_every_cell_succeeds() {
        let out = std::env::temp_dir().join(format!("saturn-sweep-{}", std::process::id()));
        let slurm = SlurmOptions {
            partition: Some("cpu".into()),
            time: Some("2:00:00".into()),
            cpus_per_task: 2,
            ..Default::default()
        };
        let files = write(&spec(&out), Emit::Slurm, &slurm).unwrap();
        assert_eq!(files.len(), 3);
        let cells = std::fs::read_to_string(&files[0]).unwrap();
        assert!(cells.contains("#SBATCH --array=0-2\n"));
        assert!(cells.contains("#SBATCH --requeue\n"));
        assert!(cells.contains("#SBATCH --partition=cpu\n"));
        assert!(cells.contains("#SBATCH --time=2:00:00\n"));
        assert!(cells.contains(
            "'/opt/saturn bin/saturn' experiment amplification --full --seeds 0,1 --out "
        ));
        assert!(cells.contains("--threads 2 --cell \"$SLURM_ARRAY_TASK_ID\" --resume\n"));
        let merge = std::fs::read_to_string(&files[1]).unwrap();
        assert!(merge.contains("--merge-only \"$@\"\n") && !merge.contains("--array"));
        let submit = std::fs::read_to_string(&files[2]).unwrap();
        assert!(submit.contains("--dependency=afterok:$array --kill-on-invalid-dep=yes"));
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn parallel_gets_one_command_a_line() {
        let out = std::env::temp_dir().join(format!("saturn-sweep-par-{}", std::process::id()));
        let files = write(&spec(&out), Emit::Parallel, &SlurmOptions::default()).unwrap();
        let lines = std::fs::read_to_string(&files[0]).unwrap();
        assert_eq!(lines.lines().count(), 3);
        assert!(lines.lines().nth(2).unwrap().ends_with("--threads 1 --cell 2 --resume"));
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn shell_quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("--seeds"), "--seeds");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
