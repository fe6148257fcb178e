//! Inverted dropout (Srivastava et al. 2014): each element is kept with probability 1 − p and
//! scaled by 1/(1 − p), so the expectation is unchanged; the mask comes from the caller's seeded
//! RNG, so a run is reproducible. Backward: the same mask times the gradient.

use ndarray::ArrayD;
use rand::{Rng, RngExt};

use crate::{Float, Result, Tensor, TensorError};

impl<T: Float> Tensor<T> {
    /// Zeroes each element with probability `p` (in [0, 1)) and scales the rest by 1/(1 − p).
    pub fn dropout<R: Rng + ?Sized>(&self, p: f64, rng: &mut R) -> Result<Tensor<T>> {
        if !(0.0..1.0).contains(&p) {
            return Err(TensorError::invalid(
                "dropout",
                format!("probability {p} is outside [0, 1)"),
            ));
        }
        if p == 0.0 {
            return Ok(self.clone());
        }
        let keep = T::cast(1.0 / (1.0 - p));
        let mask = ArrayD::from_shape_simple_fn(self.shape(), || {
            if rng.random::<f64>() < p { T::zero() } else { keep }
        });
        self.mul(&Tensor::constant(mask))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_pcg::Pcg64;

    use crate::Tensor;
    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::uniform;

    #[test]
    fn dropout_is_reproducible_from_the_seed_and_unbiased() {
        let x = Tensor::<f64>::ones(&[10_000]);
        let a = x.dropout(0.25, &mut Pcg64::seed_from_u64(3)).unwrap().to_vec();
        let b = x.dropout(0.25, &mut Pcg64::seed_from_u64(3)).unwrap().to_vec();
        assert_eq!(a, b);
        let zeros = a.iter().filter(|v| **v == 0.0).count() as f64 / 1e4;
        assert!((zeros - 0.25).abs() < 0.02, "dropped fraction {zeros}");
        let mean = a.iter().sum::<f64>() / 1e4;
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
    }

    #[test]
    fn dropout_passes_gradcheck_with_a_fixed_mask() {
        let x = uniform(&[3, 4], -1.0, 1.0, 0);
        gradcheck(|t| t[0].dropout(0.5, &mut Pcg64::seed_from_u64(9)), &[x.clone()]).unwrap();
        gradgradcheck(
            |t| {
                Ok::<_, crate::TensorError>(
                    t[0].dropout(0.5, &mut Pcg64::seed_from_u64(9))?.powf(2.0),
                )
            },
            &[x],
        )
        .unwrap();
    }

    #[test]
    fn bad_probabilities_are_errors() {
        let x = Tensor::<f32>::ones(&[2]);
        let mut rng = Pcg64::seed_from_u64(0);
        assert!(x.dropout(1.0, &mut rng).is_err());
        assert!(x.dropout(-0.1, &mut rng).is_err());
        assert_eq!(x.dropout(0.0, &mut rng).unwrap().to_vec(), vec![1.0, 1.0]);
    }
}
