//! Flat `f64` vectors over all parameters: the space the Hessian methods work in. The
//! vector-space basics are [`saturn_tensor::flat`]'s; the random vectors and the
//! orthogonalization the Hessian methods need are here.

pub(crate) use saturn_tensor::flat::{axpy, dot, norm, scale};

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Removes from `v` its components along the orthonormal `basis` (modified Gram–Schmidt,
/// applied twice: "twice is enough", Giraud et al. 2005).
pub(crate) fn orthogonalize(v: &mut [f64], basis: &[Vec<f64>]) {
    for _ in 0..2 {
        for q in basis {
            let c = dot(q, v);
            axpy(-c, q, v);
        }
    }
}

/// Entries ±1 with probability ½ each (Rademacher), 64 per random word.
pub(crate) fn rademacher<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let bits = rng.next_u64();
        for k in 0..64.min(n - out.len()) {
            out.push(if bits >> k & 1 == 1 { 1.0 } else { -1.0 });
        }
    }
    out
}

/// Entries N(0, 1).
pub(crate) fn gaussian<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Vec<f64> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_pcg::Pcg64;

    use super::*;

    #[test]
    fn rademacher_entries_are_balanced_signs() {
        let v = rademacher(10_001, &mut Pcg64::seed_from_u64(3));
        assert_eq!(v.len(), 10_001);
        assert!(v.iter().all(|x| x.abs() == 1.0));
        assert!(v.iter().sum::<f64>().abs() < 4.0 * 100.0);
    }

    #[test]
    fn orthogonalized_vectors_are_orthogonal_to_the_basis() {
        let mut rng = Pcg64::seed_from_u64(1);
        let mut basis: Vec<Vec<f64>> = Vec::new();
        for _ in 0..5 {
            let mut v = gaussian(50, &mut rng);
            orthogonalize(&mut v, &basis);
            let n = norm(&v);
            scale(1.0 / n, &mut v);
            basis.push(v);
        }
        for (i, a) in basis.iter().enumerate() {
            for (j, b) in basis.iter().enumerate() {
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((dot(a, b) - expected).abs() < 1e-12);
            }
        }
    }
}
