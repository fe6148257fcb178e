//! PARITY: is the number of 1s odd? In neither AC⁰ nor reachable by a fixed-size soft-attention
//! transformer at long lengths (Hahn 2020): every input bit flips the answer.

use super::{FormalLanguage, LengthRange, Sample, Target, random_string};
use crate::error::Result;
use crate::rng::Pcg64;

/// The number of 1s mod 2.
pub fn parity(bits: &[usize]) -> usize {
    bits.iter().filter(|&&b| b == 1).count() % 2
}

/// PARITY over {0, 1}: uniform bits (labels are then ½ each for any length ≥ 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parity {
    lengths: LengthRange,
}

impl Parity {
    pub fn new(lengths: LengthRange) -> Result<Self> {
        Ok(Self { lengths })
    }
}

impl FormalLanguage for Parity {
    fn name(&self) -> String {
        "parity".into()
    }

    fn alphabet(&self) -> Vec<String> {
        vec!["0".into(), "1".into()]
    }

    fn num_classes(&self) -> usize {
        2
    }

    fn sample(&self, rng: &mut Pcg64) -> Sample {
        let len = self.lengths.sample(rng);
        let bits = random_string(rng, 2, len);
        let label = parity(&bits);
        Sample { input: bits, target: Target::Class(label) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_an_xor_fold() {
        let task = Parity::new(LengthRange::new(1, 40).unwrap()).unwrap();
        let samples = task.samples(1000, 5);
        let mut odd = 0;
        for s in &samples {
            let xor = s.input.iter().fold(0, |acc, &b| acc ^ b);
            assert_eq!(s.target, Target::Class(xor));
            odd += xor;
        }
        assert!((420..580).contains(&odd), "{odd}");
    }
}
