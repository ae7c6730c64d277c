//! The JIT Wilson-clover kernel as an operator of the mixed-precision solver
//! ([`crate::solve::gmres_mixed`]): it works on vectors in its own f32 SIMD layout, so a solver
//! iteration runs the kernel with no layout conversion, and the f64 reference layout is only
//! touched once per restart.

use crate::codegen::dirac::JitWilsonClover;
use crate::solve::NativeOperator;
use num_complex::Complex64;

impl NativeOperator for JitWilsonClover<f32> {
    fn main_len(&self) -> usize {
        self.layout().main_len()
    }
    fn buffer_len(&self) -> usize {
        self.layout().field_len()
    }
    fn apply(&self, out: &mut [f32], inp: &mut [f32]) -> Result<(), String> {
        let len = self.layout().field_len();
        if out.len() < len || inp.len() < len {
            return Err(format!(
                "buffers of {} and {} scalars, the operator needs {len}",
                out.len(),
                inp.len()
            ));
        }
        self.apply_aosoa(false, &mut out[..len], &mut inp[..len]).map_err(|e| e.to_string())
    }
    fn import(&self, src: &[Complex64], dst: &mut [f32]) {
        self.layout().to_aosoa(src, dst);
    }
    fn export(&self, src: &[f32], dst: &mut [Complex64]) {
        self.layout().from_aosoa(src, dst);
    }
}
