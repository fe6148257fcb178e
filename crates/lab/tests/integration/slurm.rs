//! A real Slurm cluster on this machine runs a sweep the way a user's cluster would.
//!
//! The test installs Debian's Slurm 22.05 and MUNGE with apt-get when they are missing, brings
//! up a one-node cluster in a private state directory (its own MUNGE socket and key, its own
//! ports, the daemons in the foreground as children of the test), and then:
//!
//! 1. writes the `--quick` sweep of `amplification` (a tiny config, seeds 0 and 1) with
//!    `saturn sweep --emit slurm`, submits it with the generated `submit.sh`, waits for the merge
//!    job, and requires the merged summary to equal a single-process run of the same experiment
//!    and seeds (claims, measured values, evidence, and every cell's output) bit for bit at one
//!    thread;
//! 2. submits a second sweep in which one cell fails, and requires the merge job to end
//!    cancelled (`DependencyNeverSatisfied`, as `scontrol` shows) with no summary written.
//!
//! Every daemon it started is stopped by its PID when the test ends, pass or fail. Where
//! apt-get is not available, or the test is not root (slurmd must be), it is skipped with the
//! reason printed. It uses the test build of `saturn` (no separate release build): ≈ 1 min.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PACKAGES: [&str; 4] = ["slurmctld", "slurmd", "slurm-client", "munge"];
const BINARIES: [&str; 6] = [
    "/usr/sbin/slurmctld",
    "/usr/sbin/slurmd",
    "/usr/bin/sbatch",
    "/usr/bin/squeue",
    "/usr/bin/scontrol",
    "/usr/sbin/munged",
];

/// Why the test cannot run here, or `None` when Slurm is (now) installed.
fn install_slurm() -> Option<String> {
    if BINARIES.iter().all(|b| Path::new(b).exists()) {
        return root_check();
    }
    if let Some(reason) = root_check() {
        return Some(reason);
    }
    let Ok(status) = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
    else {
        return Some("apt-get is not available to install Slurm".into());
    };
    if !status.success() || !BINARIES.iter().all(|b| Path::new(b).exists()) {
        return Some(format!("apt-get install {} failed ({status})", PACKAGES.join(" ")));
    }
    None
}

fn root_check() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    (String::from_utf8_lossy(&uid.stdout).trim() != "0")
        .then(|| "not root: slurmd and apt-get need root".to_string())
}

/// A one-node cluster whose daemons are this test's children.
struct Cluster {
    dir: PathBuf,
    daemons: Vec<(&'static str, Child)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // slurmd first (it owns the job steps), then the controller, then MUNGE
        for (name, child) in self.daemons.iter_mut().rev() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if child.try_wait().ok().flatten().is_none() {
                eprintln!("slurm test: {name} (pid {}) ignored SIGTERM; killing it", child.id());
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Cluster {
    fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }

    fn start(dir: &Path) -> Cluster {
        let _ = std::fs::remove_dir_all(dir);
        for sub in ["state", "spool", "munge", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let mut cluster = Cluster { dir: dir.to_path_buf(), daemons: Vec::new() };
        let munge = dir.join("munge");
        set_mode(&munge, 0o700);
        let key = munge.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        use std::io::Read;
        std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
        std::fs::write(&key, &bytes).unwrap();
        set_mode(&key, 0o600);
        let socket = munge.join("munge.sock");
        let munged = Command::new("/usr/sbin/munged")
            .arg("--foreground")
            .arg("--force")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
            .arg(format!("--log-file={}", munge.join("munged.log").display()))
            .arg(format!("--seed-file={}", munge.join("seed").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("munged starts");
        cluster.daemons.push(("munged", munged));
        wait_for(|| socket.exists(), "MUNGE's socket");

        let host = hostname();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // ports away from a site's 6817/6818, different per process
        let port = 20000 + (std::process::id() % 10000) * 2;
        let d = dir.display();
        let conf = format!(
            "ClusterName=saturntest\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={port}\n\
             SlurmdPort={}\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/logs/slurmctld.log\n\
             SlurmdLogFile={d}/logs/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             MpiDefault=none\n\
             ReturnToService=2\n\
             MinJobAge=600\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n\
             PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            port + 1,
            socket.display(),
        );
        std::fs::write(cluster.conf(), conf).unwrap();
        let ctld = Command::new("/usr/sbin/slurmctld")
            .args(["-D", "-i", "-f"])
            .arg(cluster.conf())
            .stdout(Stdio::null())
            .stderr(Stdio::null()) // it logs to logs/slurmctld.log
            .spawn()
            .expect("slurmctld starts");
        cluster.daemons.push(("slurmctld", ctld));
        let slurmd = Command::new("/usr/sbin/slurmd")
            .args(["-D", "-f"])
            .arg(cluster.conf())
            .args(["-N", &host])
            .stdout(Stdio::null())
            .stderr(Stdio::null()) // it logs to logs/slurmd.log
            .spawn()
            .expect("slurmd starts");
        cluster.daemons.push(("slurmd", slurmd));
        wait_for(
            || {
                let out = cluster.client("sinfo").args(["-h", "-o", "%T"]).output();
                out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
            },
            "the node to be idle",
        );
        cluster
    }

    /// A Slurm client command talking to this cluster.
    fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SLURM_CONF", self.conf());
        cmd
    }

    /// `JobState` of `job` as `scontrol show job` reports it.
    fn job_state(&self, job: &str) -> String {
        let out = self.client("scontrol").args(["show", "job", job]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("JobState="))
            .map(str::to_string)
            .unwrap_or_else(|| format!("unknown ({text})"))
    }

    /// Waits until neither job is queued or running.
    fn wait_jobs(&self, jobs: &[&str]) {
        let list = jobs.join(",");
        wait_for(
            || {
                let out = self.client("squeue").args(["-h", "-j", &list]).output().unwrap();
                String::from_utf8_lossy(&out.stdout).trim().is_empty()
            },
            "the sweep's jobs to end",
        );
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ready() {
        assert!(Instant::now() < deadline, "slurm test: timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn saturn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_saturn"))
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tiny sweep: 2 schemes × 3 depths × 2 seeds = 12 cells of a second or two each.
const CONFIG: &str = "schemes = [\"post\", \"pre\"]\nsublayers = [2, 4, 6]\nbatch_pairs = 4\n\
                      delta_seeds = 2\n[model]\nd_model = 16\nn_heads = 2\nd_ff = 32\n";

/// Writes the sweep of `seeds` into `out`, runs `prepare`, and submits the sweep; returns
/// (array job, merge job).
fn submit(
    cluster: &Cluster,
    config: &Path,
    out: &Path,
    seeds: &str,
    prepare: impl FnOnce(),
) -> (String, String) {
    ok(saturn()
        .args(["sweep", "amplification", "--quick", "--seeds", seeds, "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(["--emit", "slurm"]));
    prepare();
    let said = ok(cluster.client("bash").arg(out.join("submit.sh")));
    // "cells: job A; merge: job M"
    let words: Vec<&str> = said.split_whitespace().collect();
    let job = |after: &str| -> String {
        let i = words
            .iter()
            .position(|w| *w == after)
            .unwrap_or_else(|| panic!("submit.sh said {said}"));
        words[i + 2].trim_end_matches(';').to_string()
    };
    (job("cells:"), job("merge:"))
}

/// The claims, and every cell's record without its wall time and process.
fn fingerprint(run_dir: &Path) -> (serde_json::Value, Vec<(String, String)>) {
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    (summary["claims"].clone(), saturn_lab::cells::finished_records(run_dir).unwrap())
}

#[test]
fn a_slurm_job_array_runs_the_cells_and_the_merge_equals_one_process() {
    if let Some(reason) = install_slurm() {
        eprintln!("slurm test skipped: {reason}");
        return;
    }
    let started = Instant::now();
    let root = std::env::temp_dir().join(format!("saturn-slurm-{}", std::process::id()));
    let cluster = Cluster::start(&root.join("cluster"));
    let config = root.join("tiny.toml");
    std::fs::write(&config, CONFIG).unwrap();

    // 1. the sweep, merged after every cell succeeded
    let out = root.join("sweep");
    let (array, merge) = submit(&cluster, &config, &out, "0,1", || {});
    cluster.wait_jobs(&[&array, &merge]);
    assert_eq!(
        cluster.job_state(&merge),
        "COMPLETED",
        "merge job (logs in {})",
        out.join("logs").display()
    );
    let single = root.join("single");
    ok(saturn()
        .args([
            "experiment",
            "amplification",
            "--quick",
            "--seeds",
            "0,1",
            "--threads",
            "1",
            "--config",
        ])
        .arg(&config)
        .arg("--out")
        .arg(&single));
    let merged = fingerprint(&out.join("amplification"));
    let one = fingerprint(&single.join("amplification"));
    assert_eq!(merged.1.len(), 12);
    assert_eq!(merged.1, one.1, "cell outputs: Slurm vs one process");
    assert_eq!(merged.0, one.0, "claims: Slurm vs one process");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("amplification/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["cells"]["count"], 12);
    assert_eq!(summary["cells"]["processes"], 12, "one process per array task");

    // 2. one cell fails (its directory holds a record that is not one): no merge, no summary
    let failing = root.join("failing");
    let (array, merge) = submit(&cluster, &config, &failing, "0", || {
        let cell = failing.join("amplification/cells/post-n4-seed0");
        std::fs::create_dir_all(&cell).unwrap();
        std::fs::write(cell.join("cell.ron"), "not a cell").unwrap();
    });
    cluster.wait_jobs(&[&array, &merge]);
    assert_eq!(cluster.job_state(&merge), "CANCELLED", "a failed cell must cancel the merge");
    assert!(!failing.join("amplification/summary.json").exists(), "no summary without every cell");

    drop(cluster);
    let _ = std::fs::remove_dir_all(&root);
    eprintln!("slurm test: {:.0} s", started.elapsed().as_secs_f64());
}
