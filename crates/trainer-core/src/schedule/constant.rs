use super::closed_form::{ClosedForm, Counted};

/// The same learning rate at every step.
pub type ConstantLr = Counted<Constant>;

/// The closed form of [`ConstantLr`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constant {
    lr: f64,
}

impl ConstantLr {
    /// A schedule that always returns `lr`.
    pub fn constant(lr: f64) -> Self {
        Counted::new(Constant { lr })
    }
}

impl ClosedForm for Constant {
    fn lr_at(&self, _step: u64) -> f64 {
        self.lr
    }
}
