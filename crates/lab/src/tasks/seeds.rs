//! The seeds a run covers: the command's seeds, extended to the count an experiment's preset
//! asks for.

/// `n` seeds for an experiment that needs several: the command's seeds, then the integers after
/// the largest of them, until there are `n` (all are run and counted).
pub fn seeds_for(given: &[u64], n: usize) -> Vec<u64> {
    let mut seeds = given.to_vec();
    let mut next = given.iter().max().map_or(0, |m| m + 1);
    while seeds.len() < n {
        seeds.push(next);
        next += 1;
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_extended_after_the_given_ones() {
        assert_eq!(seeds_for(&[0], 3), vec![0, 1, 2]);
        assert_eq!(seeds_for(&[5, 2], 3), vec![5, 2, 6]);
        assert_eq!(seeds_for(&[1, 2, 3, 4], 3), vec![1, 2, 3, 4]);
    }
}
