//! Reverse: output the input backwards. Position i attends to position n − 1 − i, which needs
//! the length: a task where averaging (to learn n) and hard (to fetch) attention combine.

use super::{FormalLanguage, LengthRange, Sample, Target, check_alphabet, letters, random_string};
use crate::error::Result;
use crate::rng::Pcg64;

/// Uniform strings over `alphabet_size` symbols; the target is the reversed string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseTask {
    lengths: LengthRange,
    alphabet_size: usize,
}

impl ReverseTask {
    pub fn new(lengths: LengthRange, alphabet_size: usize) -> Result<Self> {
        check_alphabet("reverse", alphabet_size)?;
        Ok(Self { lengths, alphabet_size })
    }
}

impl FormalLanguage for ReverseTask {
    fn name(&self) -> String {
        "reverse".into()
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
        let reversed = input.iter().rev().copied().collect();
        Sample { input, target: Target::Sequence(reversed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_is_the_input_read_backwards() {
        let task = ReverseTask::new(LengthRange::new(1, 12).unwrap(), 4).unwrap();
        for s in task.samples(300, 2) {
            let Target::Sequence(y) = &s.target else { panic!("sequence target") };
            let n = s.input.len();
            assert!((0..n).all(|i| y[i] == s.input[n - 1 - i]));
            assert_eq!(y.len(), n);
        }
    }
}
