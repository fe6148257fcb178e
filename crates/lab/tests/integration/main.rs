//! saturn-lab's integration tests, in one test binary: each module was its own binary, and
//! linking a dozen copies of the lab and its dependencies cost minutes of every test build.
//! The modules still run independently (`cargo test -p saturn-lab --test integration
//! sabotage_liu::` runs one), each in its own temporary directories.

mod cells_merge;
mod common;
mod fuzz_regressions;
mod kill_anywhere;
mod lab;
mod sabotage_liu;
mod sabotage_merrill_a;
mod sabotage_merrill_b;
mod sabotage_xiong;
mod saturation_experiments;
mod slurm;
mod tensorboard;
