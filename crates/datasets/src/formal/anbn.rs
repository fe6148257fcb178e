//! aⁿbⁿ membership: n a's followed by exactly n b's (n ≥ 1). Context-free, not regular; a
//! transformer solves it by comparing counts (an averaging head) and checking order.

use super::{FormalLanguage, LengthRange, Sample, Target, random_string};
use crate::error::Result;
use crate::rng::{Pcg64, below, between, coin};

const A: usize = 0;
const B: usize = 1;

/// Whether a string over {a = 0, b = 1} is aⁿbⁿ with n ≥ 1.
pub fn is_anbn(s: &[usize]) -> bool {
    let n = s.len() / 2;
    n >= 1 && s.len() == 2 * n && s[..n].iter().all(|&c| c == A) && s[n..].iter().all(|&c| c == B)
}

/// aⁿbⁿ membership. Positives are aⁿbⁿ with 2n in the length range; negatives have the same
/// even lengths and are, with equal probability, aⁱbʲ with i ≠ j, aⁿbⁿ with one a and one b
/// swapped (right counts, wrong order), or a uniform string that is not a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnBn {
    half: (usize, usize),
}

impl AnBn {
    /// The range must hold an even length ≥ 2.
    pub fn new(lengths: LengthRange) -> Result<Self> {
        Ok(Self { half: lengths.half_lengths("aⁿbⁿ")? })
    }
}

impl FormalLanguage for AnBn {
    fn name(&self) -> String {
        "anbn".into()
    }

    fn alphabet(&self) -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn num_classes(&self) -> usize {
        2
    }

    fn sample(&self, rng: &mut Pcg64) -> Sample {
        let n = between(rng, self.half.0, self.half.1);
        let mut s = [vec![A; n], vec![B; n]].concat();
        if coin(rng) {
            return Sample { input: s, target: Target::Class(1) };
        }
        match below(rng, 3) {
            0 => {
                // aⁱb²ⁿ⁻ⁱ with i ≠ n.
                let mut i = below(rng, 2 * n);
                if i >= n {
                    i += 1;
                }
                s = [vec![A; i], vec![B; 2 * n - i]].concat();
            }
            1 => s.swap(below(rng, n), n + below(rng, n)),
            _ => loop {
                s = random_string(rng, 2, 2 * n);
                if !is_anbn(&s) {
                    break;
                }
            },
        }
        Sample { input: s, target: Target::Class(0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent recognizer: a two-phase automaton counting a's up and b's down.
    fn automaton(s: &[usize]) -> bool {
        let (mut count, mut in_bs) = (0i64, false);
        for &c in s {
            match (c, in_bs) {
                (A, false) => count += 1,
                (A, true) => return false,
                (_, _) => {
                    in_bs = true;
                    count -= 1;
                    if count < 0 {
                        return false;
                    }
                }
            }
        }
        in_bs && count == 0
    }

    #[test]
    fn labels_match_an_independent_recognizer() {
        let task = AnBn::new(LengthRange::new(2, 24).unwrap()).unwrap();
        let samples = task.samples(3000, 1);
        let mut positives = 0;
        for s in &samples {
            let Target::Class(label) = s.target else { panic!("class target") };
            assert_eq!(label == 1, automaton(&s.input), "{:?}", s.input);
            assert_eq!(s.input.len() % 2, 0);
            positives += label;
        }
        assert!((1350..1650).contains(&positives), "{positives}");
        assert!(!is_anbn(&[]) && is_anbn(&[A, B]) && !is_anbn(&[A, B, A, B]));
        assert!(AnBn::new(LengthRange::new(3, 3).unwrap()).is_err());
    }
}
