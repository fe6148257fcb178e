//! MAJORITY: is the string more than half 1s? Outside AC⁰ (no constant-depth, polynomial-size
//! circuit of AND/OR/NOT gates computes it), so unique-hard attention cannot recognize it, but a
//! saturated, averaging head can: it reads off the fraction of 1s (Merrill et al., TACL 2022).

use super::{FormalLanguage, LengthRange, Sample, Target, random_string};
use crate::error::{DatasetError, Result};
use crate::rng::{Pcg64, coin};

/// 1 iff the bits hold strictly more 1s than 0s (ties are 0).
pub fn majority(bits: &[usize]) -> usize {
    let ones = bits.iter().filter(|&&b| b == 1).count();
    usize::from(2 * ones > bits.len())
}

/// MAJORITY over {0, 1}: the label is drawn first (½ each), then uniform bits conditioned on
/// it, so most strings sit near the threshold (the hard cases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Majority {
    lengths: LengthRange,
}

impl Majority {
    /// Lengths must be at least 1 (the empty string has no majority of 1s to find).
    pub fn new(lengths: LengthRange) -> Result<Self> {
        if lengths.min() == 0 {
            return Err(DatasetError::Config("MAJORITY needs lengths of at least 1".into()));
        }
        Ok(Self { lengths })
    }
}

impl FormalLanguage for Majority {
    fn name(&self) -> String {
        "majority".into()
    }

    fn alphabet(&self) -> Vec<String> {
        vec!["0".into(), "1".into()]
    }

    fn num_classes(&self) -> usize {
        2
    }

    fn sample(&self, rng: &mut Pcg64) -> Sample {
        let len = self.lengths.sample(rng);
        let label = usize::from(coin(rng));
        // Rejection: each draw has the wanted label with probability about ½.
        loop {
            let bits = random_string(rng, 2, len);
            if majority(&bits) == label {
                return Sample { input: bits, target: Target::Class(label) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent recognizer: a running balance (+1 for a 1, −1 for a 0) ends positive.
    fn balance_is_positive(bits: &[usize]) -> bool {
        bits.iter().fold(0i64, |acc, &b| acc + if b == 1 { 1 } else { -1 }) > 0
    }

    #[test]
    fn labels_match_an_independent_recognizer_and_are_balanced() {
        let task = Majority::new(LengthRange::new(1, 30).unwrap()).unwrap();
        let samples = task.samples(2000, 3);
        let mut positives = 0;
        for s in &samples {
            let Target::Class(label) = s.target else { panic!("class target") };
            assert_eq!(label == 1, balance_is_positive(&s.input), "{:?}", s.input);
            positives += label;
        }
        assert!((900..1100).contains(&positives), "{positives}");
        assert_eq!(majority(&[1, 0]), 0);
        assert!(Majority::new(LengthRange::new(0, 3).unwrap()).is_err());
    }
}
