//! One writer per run and per cell: a lock file that names its owner.
//!
//! A plain run or a merge holds `OUT/NAME/lock`; a cell being computed holds
//! `OUT/NAME/cells/LABEL/lock`. Different cells of one sweep share an `--out` freely; two
//! processes on the same cell (a job submitted twice, two tasks given the same index) or on the
//! same run do not interleave: the second one refuses, naming the first.
//!
//! The file holds the owner's PID, host and Slurm job (where there is one). A lock whose owner
//! is gone is taken over with a warning: a dead PID on this host, or the same Slurm job (a
//! requeued task runs again under its job id, after its first run was killed). A lock held by
//! another host cannot be checked from here, so it is taken over only with `--break-lock`.
//! Creation is atomic (`O_EXCL`); the lock is removed when its holder is dropped, also when the
//! run fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result, io_err};

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub host: String,
    /// `SLURM_JOB_ID`, with the array task where there is one (`1234_7`).
    #[serde(default)]
    pub slurm_job: Option<String>,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let slurm_job = std::env::var("SLURM_JOB_ID").ok().map(|job| {
            match std::env::var("SLURM_ARRAY_TASK_ID") {
                Ok(task) => format!("{job}_{task}"),
                Err(_) => job,
            }
        });
        Owner { pid: std::process::id(), host: host_name(), slurm_job }
    }

    fn describe(&self) -> String {
        let job = self.slurm_job.as_deref().map_or(String::new(), |j| format!(", Slurm job {j}"));
        format!("pid {} on {}{job}", self.pid, self.host)
    }
}

/// This machine's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// Whether process `pid` exists on this host.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A held lock; dropping it removes the file.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Lock {
    /// Takes the lock at `path` for this process (see the module doc for who may take over).
    pub fn acquire(path: &Path, break_lock: bool) -> Result<Lock> {
        Lock::acquire_as(path, &Owner::me(), break_lock)
    }

    /// Takes the lock at `path` for `me`.
    pub fn acquire_as(path: &Path, me: &Owner, break_lock: bool) -> Result<Lock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let text = serde_json::to_string(me).map_err(|e| LabError::Run(e.to_string()))?;
        // two attempts: the second after removing a stale lock
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    file.write_all(text.as_bytes()).map_err(io_err(path))?;
                    file.sync_all().map_err(io_err(path))?;
                    return Ok(Lock { path: path.to_path_buf() });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(path)
                        .ok()
                        .and_then(|t| serde_json::from_str::<Owner>(&t).ok());
                    let Some(holder) = holder else {
                        // written by a process killed between creating and writing it
                        eprintln!(
                            "saturn: warning: {}: taking over an unreadable lock",
                            path.display()
                        );
                        std::fs::remove_file(path).map_err(io_err(path))?;
                        continue;
                    };
                    let stale = if holder.host == me.host {
                        holder.pid != me.pid && !alive(holder.pid)
                            || holder.slurm_job.is_some() && holder.slurm_job == me.slurm_job
                    } else {
                        break_lock
                    };
                    if !stale {
                        let hint = if holder.host == me.host {
                            "wait for it, or stop it"
                        } else {
                            "if that process is gone, rerun with --break-lock"
                        };
                        return Err(LabError::Locked {
                            path: path.display().to_string(),
                            holder: holder.describe(),
                            hint: hint.into(),
                        });
                    }
                    eprintln!(
                        "saturn: warning: {}: taking over the lock of {} (gone)",
                        path.display(),
                        holder.describe()
                    );
                    std::fs::remove_file(path).map_err(io_err(path))?;
                }
                Err(e) => return Err(io_err(path)(e)),
            }
        }
        Err(LabError::Run(format!("{}: another process keeps taking this lock", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("saturn-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("lock")
    }

    fn owner(pid: u32, host: &str, job: Option<&str>) -> Owner {
        Owner { pid, host: host.into(), slurm_job: job.map(str::to_string) }
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_second_process_is_refused_while_the_first_holds_the_lock() {
        let path = tmp("held");
        let me = Owner::me();
        let held = Lock::acquire_as(&path, &me, false).unwrap();
        let other = owner(me.pid + 1, &me.host, None);
        let err = Lock::acquire_as(&path, &other, false).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", me.pid)), "{err}");
        drop(held);
        assert!(!path.exists(), "dropping the lock removes it");
        Lock::acquire_as(&path, &other, false).unwrap();
    }

    #[test]
    fn a_dead_owner_or_a_requeued_job_is_taken_over() {
        let path = tmp("stale");
        let host = host_name();
        let dead = Lock::acquire_as(&path, &owner(dead_pid(), &host, None), false).unwrap();
        std::mem::forget(dead); // its process died without removing it
        let me = Owner::me();
        let mine = Lock::acquire_as(&path, &me, false).unwrap();
        drop(mine);
        // a requeued Slurm task: same job, new pid; the old pid may even be reused
        let first = owner(me.pid, &host, Some("77_3"));
        std::mem::forget(Lock::acquire_as(&path, &first, false).unwrap());
        let requeued = owner(me.pid + 1, &host, Some("77_3"));
        Lock::acquire_as(&path, &requeued, false).unwrap();
    }

    #[test]
    fn another_hosts_lock_is_broken_only_when_asked() {
        let path = tmp("host");
        std::mem::forget(Lock::acquire_as(&path, &owner(1, "elsewhere", None), false).unwrap());
        let me = Owner::me();
        let err = Lock::acquire_as(&path, &me, false).unwrap_err().to_string();
        assert!(err.contains("elsewhere") && err.contains("--break-lock"), "{err}");
        Lock::acquire_as(&path, &me, true).unwrap();
    }
}
