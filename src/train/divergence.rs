//! When a training run has diverged: one rule for the classifier loop and the preconditioner
//! loop, so that both stop the same way instead of finishing "successfully" at a loss of 1e15
//! (issue 11).
//!
//! **The rule.** The loss of a step (classifier: the batch's mean NLL; preconditioner: the
//! step's normalised loss) has diverged when
//! - it is not finite (NaN or ±∞), or
//! - it exceeds [`GROWTH_LIMIT`] = 10⁴ times the *reference loss*: the loss of the run's first
//!   step, measured on the initial weights before any update (the first positive one, should
//!   that be 0).
//!
//! A healthy run stays near or below its starting loss (batch noise is a factor of a few at
//! most); a run whose loss has grown by four orders of magnitude has been thrown out of the
//! region its initial weights were in, almost always by a learning rate that is too large, and
//! does not come back. The reference is measured before any update, so a learning rate that
//! blows up in the very first step cannot raise its own bar. A resumed run keeps the reference
//! of the run it continues (the classifier stores it in its checkpoint, the preconditioner
//! reads it from the first row of `loss.csv`).

/// How many times its first-step loss a run's loss may grow before the run counts as diverged.
pub const GROWTH_LIMIT: f64 = 1e4;

/// Why a step's loss counts as diverged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Divergence {
    /// NaN or infinite.
    NonFinite { loss: f64 },
    /// More than [`GROWTH_LIMIT`] times the reference.
    Grew { loss: f64, reference: f64 },
}

impl Divergence {
    /// A sentence part naming the loss, e.g. `describe("the mean batch loss")`:
    /// "the mean batch loss 3.1e9 is more than 1e4 times the first step's 2.30e0".
    pub fn describe(&self, what: &str) -> String {
        match *self {
            Divergence::NonFinite { loss } => format!("{what} is {loss}"),
            Divergence::Grew { loss, reference } => format!(
                "{what} {loss:.3e} is more than {GROWTH_LIMIT:e} times the first step's \
                 {reference:.3e}"
            ),
        }
    }
}

/// The divergence rule applied step by step; it remembers the reference loss.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DivergenceCheck {
    reference: Option<f64>,
}

impl DivergenceCheck {
    /// A check whose reference is `reference` (a resumed run's), or the next positive finite
    /// loss it sees when `None` (or not a positive finite number).
    pub fn new(reference: Option<f64>) -> Self {
        DivergenceCheck { reference: reference.filter(|r| r.is_finite() && *r > 0.0) }
    }

    /// The reference loss, once known.
    pub fn reference(&self) -> Option<f64> {
        self.reference
    }

    /// Checks the loss of one step (before the weights are updated with its gradient).
    pub fn check(&mut self, loss: f64) -> Result<(), Divergence> {
        if !loss.is_finite() {
            return Err(Divergence::NonFinite { loss });
        }
        match self.reference {
            Some(reference) if loss > GROWTH_LIMIT * reference => {
                Err(Divergence::Grew { loss, reference })
            }
            Some(_) => Ok(()),
            None => {
                if loss > 0.0 {
                    self.reference = Some(loss);
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_positive_loss_is_the_reference() {
        let mut c = DivergenceCheck::new(None);
        assert_eq!(c.check(0.0), Ok(()));
        assert_eq!(c.reference(), None);
        assert_eq!(c.check(2.0), Ok(()));
        assert_eq!(c.reference(), Some(2.0));
        // Up to the limit is fine, also far above the start; one step past it is not.
        assert_eq!(c.check(2.0e4), Ok(()));
        assert_eq!(c.check(0.5), Ok(()));
        assert_eq!(
            c.check(2.0e4 * 1.0001),
            Err(Divergence::Grew { loss: 20002.0, reference: 2.0 })
        );
        assert_eq!(c.reference(), Some(2.0), "a divergent loss never becomes the reference");
    }

    #[test]
    fn non_finite_losses_diverge_even_before_a_reference() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = DivergenceCheck::new(None).check(bad).unwrap_err();
            assert!(matches!(e, Divergence::NonFinite { .. }));
            assert_eq!(e.describe("the loss"), format!("the loss is {bad}"));
        }
    }

    #[test]
    fn a_resumed_reference_is_kept_and_bad_ones_are_ignored() {
        let mut c = DivergenceCheck::new(Some(1e-3));
        assert!(c.check(11.0).is_err());
        assert_eq!(DivergenceCheck::new(Some(f64::NAN)).reference(), None);
        assert_eq!(DivergenceCheck::new(Some(0.0)).reference(), None);
        let d = Divergence::Grew { loss: 7.9e14, reference: 2.3 };
        assert_eq!(
            d.describe("the mean batch loss"),
            "the mean batch loss 7.900e14 is more than 1e4 times the first step's 2.300e0"
        );
    }
}
