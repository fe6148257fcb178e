//! Copy: output the input. A transduction task solved by a head that attends to the aligned
//! earlier position (an induction / position-matching head).

use super::{FormalLanguage, LengthRange, Sample, Target, check_alphabet, letters, random_string};
use crate::error::Result;
use crate::rng::Pcg64;

/// Uniform strings over `alphabet_size` symbols; the target is the same string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTask {
    lengths: LengthRange,
    alphabet_size: usize,
}

impl CopyTask {
    pub fn new(lengths: LengthRange, alphabet_size: usize) -> Result<Self> {
        check_alphabet("copy", alphabet_size)?;
        Ok(Self { lengths, alphabet_size })
    }
}

impl FormalLanguage for CopyTask {
    fn name(&self) -> String {
        "copy".into()
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
        Sample { target: Target::Sequence(input.clone()), input }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_equals_input() {
        let task = CopyTask::new(LengthRange::new(0, 12).unwrap(), 7).unwrap();
        for s in task.samples(300, 2) {
            assert_eq!(s.target, Target::Sequence(s.input.clone()));
        }
        assert!(CopyTask::new(LengthRange::new(1, 2).unwrap(), 0).is_err());
    }
}
