//! Transduction tasks: uniform strings over `alphabet_size` symbols whose target is a fixed
//! rearrangement of the input.
//!
//! - [`CopyTask`]: output the input. Solved by a head that attends to the aligned earlier
//!   position (an induction / position-matching head).
//! - [`ReverseTask`]: output the input backwards. Position i attends to position n − 1 − i,
//!   which needs the length: a task where averaging (to learn n) and hard (to fetch) attention
//!   combine.

use std::marker::PhantomData;

use super::{FormalLanguage, LengthRange, Sample, Target, check_alphabet, letters, random_string};
use crate::error::Result;
use crate::rng::Pcg64;

/// How a transduction task turns its input into its target.
pub trait Rearrangement {
    /// The task's name (`copy`, `reverse`).
    const NAME: &'static str;
    /// The target for `input`.
    fn apply(input: &[usize]) -> Vec<usize>;
}

/// The target is the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Identity;

impl Rearrangement for Identity {
    const NAME: &'static str = "copy";
    fn apply(input: &[usize]) -> Vec<usize> {
        input.to_vec()
    }
}

/// The target is the input read backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reversal;

impl Rearrangement for Reversal {
    const NAME: &'static str = "reverse";
    fn apply(input: &[usize]) -> Vec<usize> {
        input.iter().rev().copied().collect()
    }
}

/// Uniform strings over `alphabet_size` symbols; the target is `R::apply(input)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transduction<R> {
    lengths: LengthRange,
    alphabet_size: usize,
    rearrangement: PhantomData<R>,
}

/// Copy: the target is the same string.
pub type CopyTask = Transduction<Identity>;

/// Reverse: the target is the reversed string.
pub type ReverseTask = Transduction<Reversal>;

impl<R: Rearrangement> Transduction<R> {
    /// The task over lengths `lengths` and `alphabet_size` (≥ 1) symbols.
    pub fn new(lengths: LengthRange, alphabet_size: usize) -> Result<Self> {
        check_alphabet(R::NAME, alphabet_size)?;
        Ok(Self { lengths, alphabet_size, rearrangement: PhantomData })
    }
}

impl<R: Rearrangement> FormalLanguage for Transduction<R> {
    fn name(&self) -> String {
        R::NAME.into()
    }

    fn alphabet(&self) -> Vec<String> {
        letters(self.alphabet_size)
    }

    fn num_classes(&self) -> usize {
        self.alphabet_size
    }

    fn sample(&self, rng: &mut Pcg64) -> Sample {
        let len = self.lengths.sample(rng);
        let input = random_string(rng, self.alphabet_size, len);
        Sample { target: Target::Sequence(R::apply(&input)), input }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_target_equals_the_input() {
        let task = CopyTask::new(LengthRange::new(0, 12).unwrap(), 7).unwrap();
        assert_eq!(task.name(), "copy");
        for s in task.samples(300, 2) {
            assert_eq!(s.target, Target::Sequence(s.input.clone()));
        }
        assert!(CopyTask::new(LengthRange::new(1, 2).unwrap(), 0).is_err());
    }

    #[test]
    fn the_reverse_target_is_the_input_read_backwards() {
        let task = ReverseTask::new(LengthRange::new(1, 12).unwrap(), 4).unwrap();
        assert_eq!(task.name(), "reverse");
        for s in task.samples(300, 2) {
            let Target::Sequence(y) = &s.target else { panic!("sequence target") };
            let n = s.input.len();
            assert!((0..n).all(|i| y[i] == s.input[n - 1 - i]));
            assert_eq!(y.len(), n);
        }
        assert!(ReverseTask::new(LengthRange::new(1, 2).unwrap(), 0).is_err());
    }
}
