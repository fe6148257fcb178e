//! Dyck-k: well-nested brackets of k kinds (Dyck-1: `()`, Dyck-2: `()[]`). Recognizing them needs
//! a stack (depth and the kind of the innermost open bracket); Dyck-k with bounded depth is the
//! standard probe of hierarchical structure in transformers (Hahn 2020; Yao et al. 2021).

use super::{FormalLanguage, LengthRange, Sample, Target};
use crate::error::{DatasetError, Result};
use crate::rng::{Pcg64, below, between, coin, shuffle};

/// Symbol ids: kind i opens with `2i` and closes with `2i + 1`.
fn open(kind: usize) -> usize {
    2 * kind
}

/// Whether `s` is a well-nested string of `kinds` bracket kinds (empty string included).
pub fn is_dyck(s: &[usize], kinds: usize) -> bool {
    let mut stack = Vec::new();
    for &c in s {
        if c >= 2 * kinds {
            return false;
        }
        if c % 2 == 0 {
            stack.push(c);
        } else if stack.pop() != Some(c - 1) {
            return false;
        }
    }
    stack.is_empty()
}

/// Dyck-k membership. Positives are random well-nested words (at each step open or close with
/// probability ½ where both keep the word completable, within `max_depth`); negatives corrupt a
/// positive with equal probability by turning one bracket around (unbalanced), by changing the
/// kind of one bracket (k ≥ 2: balanced, mismatched), or by shuffling it (balanced counts,
/// wrong order; redrawn until it is not a member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dyck {
    kinds: usize,
    half: (usize, usize),
    max_depth: Option<usize>,
}

const NAMES: [(&str, &str); 4] = [("(", ")"), ("[", "]"), ("{", "}"), ("<", ">")];

impl Dyck {
    /// `kinds` ≥ 1 bracket kinds; the range must hold an even length ≥ 2; `max_depth` ≥ 1.
    pub fn new(kinds: usize, lengths: LengthRange, max_depth: Option<usize>) -> Result<Self> {
        if kinds == 0 || max_depth == Some(0) {
            return Err(DatasetError::Config(format!(
                "Dyck needs at least one bracket kind and a depth of at least 1 \
                 (kinds {kinds}, max_depth {max_depth:?})"
            )));
        }
        Ok(Self { kinds, half: lengths.half_lengths("Dyck")?, max_depth })
    }

    /// A random well-nested word of length `2n`.
    fn positive(&self, rng: &mut Pcg64, n: usize) -> Vec<usize> {
        let (len, max_depth) = (2 * n, self.max_depth.unwrap_or(usize::MAX));
        let mut stack: Vec<usize> = Vec::new();
        let mut s = Vec::with_capacity(len);
        for i in 0..len {
            let remaining = len - i;
            let can_open = stack.len() < max_depth && remaining > stack.len();
            let can_close = !stack.is_empty();
            if can_open && (!can_close || coin(rng)) {
                let kind = below(rng, self.kinds);
                stack.push(kind);
                s.push(open(kind));
            } else if let Some(kind) = stack.pop() {
                s.push(open(kind) + 1);
            }
        }
        s
    }
}

impl FormalLanguage for Dyck {
    fn name(&self) -> String {
        format!("dyck-{}", self.kinds)
    }

    fn alphabet(&self) -> Vec<String> {
        (0..self.kinds)
            .flat_map(|k| match NAMES.get(k) {
                Some((o, c)) => [o.to_string(), c.to_string()],
                None => [format!("({k}"), format!("){k}")],
            })
            .collect()
    }

    fn num_classes(&self) -> usize {
        2
    }

    fn sample(&self, rng: &mut Pcg64) -> Sample {
        let n = between(rng, self.half.0, self.half.1);
        let mut s = self.positive(rng, n);
        if coin(rng) {
            return Sample { input: s, target: Target::Class(1) };
        }
        let corruptions = if self.kinds >= 2 { 3 } else { 2 };
        match below(rng, corruptions) {
            // Open ↔ close of the same kind: the counts no longer balance.
            0 => {
                let i = below(rng, s.len());
                s[i] ^= 1;
            }
            // Shuffle: the same symbols in an order that does not nest.
            1 => {
                let original = s.clone();
                loop {
                    shuffle(rng, &mut s);
                    if !is_dyck(&s, self.kinds) {
                        break;
                    }
                    if n == 1 && self.kinds == 1 {
                        // "()" has only ")(" as a non-member shuffle.
                        s = vec![1, 0];
                        break;
                    }
                    s.clone_from(&original);
                }
            }
            // Another kind for one bracket: its partner (fixed by the depth profile) mismatches.
            _ => {
                let i = below(rng, s.len());
                let kind = (s[i] / 2 + 1 + below(rng, self.kinds - 1)) % self.kinds;
                s[i] = open(kind) + s[i] % 2;
            }
        }
        Sample { input: s, target: Target::Class(0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent recognizer: delete adjacent matched pairs until none is left.
    fn reduces_to_empty(s: &[usize]) -> bool {
        let mut s = s.to_vec();
        loop {
            let Some(i) = s.windows(2).position(|w| w[0] % 2 == 0 && w[1] == w[0] + 1) else {
                return s.is_empty();
            };
            s.drain(i..i + 2);
        }
    }

    fn depth(s: &[usize]) -> usize {
        s.iter()
            .scan(0i64, |d, &c| {
                *d += if c % 2 == 0 { 1 } else { -1 };
                Some(*d)
            })
            .max()
            .unwrap_or(0) as usize
    }

    #[test]
    fn labels_match_an_independent_recognizer() {
        for kinds in [1, 2] {
            let task = Dyck::new(kinds, LengthRange::new(2, 30).unwrap(), Some(4)).unwrap();
            let samples = task.samples(3000, kinds as u64);
            let mut positives = 0;
            for s in &samples {
                let Target::Class(label) = s.target else { panic!("class target") };
                assert_eq!(label == 1, reduces_to_empty(&s.input), "dyck-{kinds} {:?}", s.input);
                assert_eq!(label == 1, is_dyck(&s.input, kinds));
                if label == 1 {
                    assert!(depth(&s.input) <= 4);
                }
                assert!(s.input.iter().all(|&c| c < 2 * kinds));
                positives += label;
            }
            assert!((1350..1650).contains(&positives), "dyck-{kinds}: {positives}");
        }
    }

    #[test]
    fn dyck_2_uses_both_kinds_and_bad_configs_fail() {
        let task = Dyck::new(2, LengthRange::new(8, 8).unwrap(), None).unwrap();
        let symbols: std::collections::HashSet<usize> =
            task.samples(50, 0).into_iter().flat_map(|s| s.input).collect();
        assert_eq!(symbols.len(), 4);
        assert_eq!(task.alphabet(), ["(", ")", "[", "]"]);
        assert!(Dyck::new(0, LengthRange::new(2, 4).unwrap(), None).is_err());
        assert!(Dyck::new(1, LengthRange::new(2, 4).unwrap(), Some(0)).is_err());
        assert!(Dyck::new(1, LengthRange::new(1, 1).unwrap(), None).is_err());
    }
}
