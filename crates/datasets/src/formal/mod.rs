//! Synthetic formal languages whose solutions need known kinds of attention.
//!
//! Unique-hard attention recognizes only AC⁰ languages (Hahn 2020; Hao et al. 2022), while
//! saturated (averaging) attention reaches TC⁰ and can count: MAJORITY is outside AC⁰ yet a
//! saturated transformer recognizes it (Merrill, Sabharwal & Smith, TACL 2022;
//! docs/REFERENCES.md#merrill-tc0). PARITY is the classic hard case for attention (Hahn 2020). The
//! generators:
//!
//! | task | input | target |
//! |---|---|---|
//! | [`Majority`] | bits | 1 iff more 1s than 0s |
//! | [`AnBn`] | a/b strings | 1 iff aⁿbⁿ (n ≥ 1) |
//! | [`Dyck`] | brackets of k kinds (Dyck-1, Dyck-2) | 1 iff well nested |
//! | [`Parity`] | bits | number of 1s mod 2 |
//! | [`CopyTask`] | symbols | the same symbols |
//! | [`ReverseTask`] | symbols | the symbols reversed |
//! | [`RunningCount`] | symbols | at each position, a count over the prefix |
//!
//! Membership tasks draw positives and negatives with probability ½ each; negatives are near
//! misses (same length, mostly the same symbol counts), not random noise. Lengths are drawn
//! uniformly from a [`LengthRange`]; every sample comes from a seeded PCG-64.

mod anbn;
mod count;
mod dyck;
mod majority;
mod parity;
mod transduction;

pub use self::anbn::{AnBn, is_anbn};
pub use self::count::{Counted, RunningCount, running_count};
pub use self::dyck::{Dyck, is_dyck};
pub use self::majority::{Majority, majority};
pub use self::parity::{Parity, parity};
pub use self::transduction::{
    CopyTask, Identity, Rearrangement, Reversal, ReverseTask, Transduction,
};

use crate::error::{DatasetError, Result};
use crate::rng::{Pcg64, below, between, seeded_rng};

/// Input lengths `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LengthRange {
    min: usize,
    max: usize,
}

impl LengthRange {
    /// `min..=max`; an error when `min > max`.
    pub fn new(min: usize, max: usize) -> Result<Self> {
        if min > max {
            return Err(DatasetError::Config(format!("length range {min}..={max} is empty")));
        }
        Ok(Self { min, max })
    }

    pub fn min(&self) -> usize {
        self.min
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A uniform length.
    pub fn sample(&self, rng: &mut Pcg64) -> usize {
        between(rng, self.min, self.max)
    }

    /// The half-lengths n with 2n in range and n ≥ 1 (for aⁿbⁿ and Dyck words), or an error
    /// naming the task.
    fn half_lengths(&self, task: &str) -> Result<(usize, usize)> {
        let lo = self.min.div_ceil(2).max(1);
        let hi = self.max / 2;
        if lo > hi {
            return Err(DatasetError::Config(format!(
                "{task} needs an even length of at least 2 in {}..={}",
                self.min, self.max
            )));
        }
        Ok((lo, hi))
    }
}

/// What a model should output for an input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// One class for the whole input (membership, parity).
    Class(usize),
    /// One output per step (copy, reverse, running count).
    Sequence(Vec<usize>),
}

/// An input string (symbol ids) and its target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sample {
    pub input: Vec<usize>,
    pub target: Target,
}

/// A generator of labelled strings.
pub trait FormalLanguage {
    /// A short name such as `dyck-2`.
    fn name(&self) -> String;
    /// The input symbols, id order.
    fn alphabet(&self) -> Vec<String>;
    /// Classes of a [`Target::Class`], or the output vocabulary of a [`Target::Sequence`].
    fn num_classes(&self) -> usize;
    /// One sample.
    fn sample(&self, rng: &mut Pcg64) -> Sample;
    /// `n` samples from a seed.
    fn samples(&self, n: usize, seed: u64) -> Vec<Sample> {
        let mut rng = seeded_rng(seed);
        (0..n).map(|_| self.sample(&mut rng)).collect()
    }
}

/// A uniform random string over `0..alphabet_size`.
fn random_string(rng: &mut Pcg64, alphabet_size: usize, len: usize) -> Vec<usize> {
    (0..len).map(|_| below(rng, alphabet_size)).collect()
}

/// Symbol names for an alphabet of `k` symbols: `a`, `b`, … (then `s26`, `s27`, …).
fn letters(k: usize) -> Vec<String> {
    (0..k)
        .map(|i| if i < 26 { char::from(b'a' + i as u8).to_string() } else { format!("s{i}") })
        .collect()
}

fn check_alphabet(task: &str, alphabet_size: usize) -> Result<()> {
    if alphabet_size == 0 {
        return Err(DatasetError::Config(format!("{task} needs at least one symbol")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_ranges_must_be_non_empty() {
        assert!(LengthRange::new(5, 4).is_err());
        let r = LengthRange::new(3, 3).unwrap();
        assert_eq!(r.sample(&mut seeded_rng(0)), 3);
        assert!(LengthRange::new(3, 3).unwrap().half_lengths("x").is_err());
        assert_eq!(LengthRange::new(3, 9).unwrap().half_lengths("x").unwrap(), (2, 4));
    }

    #[test]
    fn every_task_is_deterministic_and_within_its_lengths() {
        let lengths = LengthRange::new(4, 20).unwrap();
        let tasks: Vec<Box<dyn FormalLanguage>> = vec![
            Box::new(Majority::new(lengths).unwrap()),
            Box::new(AnBn::new(lengths).unwrap()),
            Box::new(Dyck::new(1, lengths, None).unwrap()),
            Box::new(Dyck::new(2, lengths, Some(3)).unwrap()),
            Box::new(Parity::new(lengths).unwrap()),
            Box::new(CopyTask::new(lengths, 5).unwrap()),
            Box::new(ReverseTask::new(lengths, 5).unwrap()),
            Box::new(RunningCount::new(lengths, 3, Counted::Current).unwrap()),
        ];
        for task in &tasks {
            let a = task.samples(200, 11);
            assert_eq!(a, task.samples(200, 11), "{}", task.name());
            assert_ne!(a, task.samples(200, 12), "{}", task.name());
            let k = task.alphabet().len();
            for s in &a {
                assert!((4..=20).contains(&s.input.len()), "{}: {:?}", task.name(), s.input);
                assert!(s.input.iter().all(|&c| c < k), "{}", task.name());
                match &s.target {
                    Target::Class(c) => assert!(*c < task.num_classes()),
                    Target::Sequence(y) => assert!(y.iter().all(|&c| c < task.num_classes())),
                }
            }
        }
    }
}
