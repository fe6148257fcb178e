//! Running count: at each position, how many times a symbol has occurred so far. A causal
//! averaging head over the prefix computes the fraction k/i; the position supplies i, so counting
//! is what uniform (saturated averaging) attention does naturally (Merrill et al., TACL 2022;
//! the "histogram" task of Weiss et al.'s RASP, 2021).

use super::{FormalLanguage, LengthRange, Sample, Target, check_alphabet, letters, random_string};
use crate::error::{DatasetError, Result};
use crate::rng::Pcg64;

/// Which symbol each position counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counted {
    /// A fixed symbol: y_i = #{j ≤ i : x_j = s}.
    Symbol(usize),
    /// The symbol at the position itself: y_i = #{j ≤ i : x_j = x_i}.
    Current,
}

/// The running counts of `input` (see [`Counted`]).
pub fn running_count(input: &[usize], counted: Counted) -> Vec<usize> {
    let mut seen: std::collections::HashMap<usize, usize> = Default::default();
    input
        .iter()
        .map(|&x| {
            *seen.entry(x).or_insert(0) += 1;
            match counted {
                Counted::Symbol(s) => seen.get(&s).copied().unwrap_or(0),
                Counted::Current => seen[&x],
            }
        })
        .collect()
}

/// Uniform strings over `alphabet_size` symbols; the target is the running count, a class in
/// `0..=max_len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningCount {
    lengths: LengthRange,
    alphabet_size: usize,
    counted: Counted,
}

impl RunningCount {
    pub fn new(lengths: LengthRange, alphabet_size: usize, counted: Counted) -> Result<Self> {
        check_alphabet("running count", alphabet_size)?;
        if let Counted::Symbol(s) = counted
            && s >= alphabet_size
        {
            return Err(DatasetError::Config(format!(
                "running count of symbol {s} outside an alphabet of {alphabet_size}"
            )));
        }
        Ok(Self { lengths, alphabet_size, counted })
    }
}

impl FormalLanguage for RunningCount {
    fn name(&self) -> String {
        "running-count".into()
    }

    fn alphabet(&self) -> Vec<String> {
        letters(self.alphabet_size)
    }

    fn num_classes(&self) -> usize {
        self.lengths.max() + 1
    }

    fn sample(&self, rng: &mut Pcg64) -> Sample {
        let len = self.lengths.sample(rng);
        let input = random_string(rng, self.alphabet_size, len);
        let counts = running_count(&input, self.counted);
        Sample { input, target: Target::Sequence(counts) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent recognizer: count over each prefix from scratch.
    fn brute_force(input: &[usize], counted: Counted) -> Vec<usize> {
        (0..input.len())
            .map(|i| {
                let s = match counted {
                    Counted::Symbol(s) => s,
                    Counted::Current => input[i],
                };
                input[..=i].iter().filter(|&&x| x == s).count()
            })
            .collect()
    }

    #[test]
    fn targets_match_prefix_counts() {
        for counted in [Counted::Symbol(0), Counted::Symbol(2), Counted::Current] {
            let task = RunningCount::new(LengthRange::new(0, 25).unwrap(), 3, counted).unwrap();
            for s in task.samples(300, 4) {
                assert_eq!(s.target, Target::Sequence(brute_force(&s.input, counted)));
            }
        }
        let lengths = LengthRange::new(1, 2).unwrap();
        assert!(RunningCount::new(lengths, 3, Counted::Symbol(3)).is_err());
    }
}
