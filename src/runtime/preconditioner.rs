//! A trained network as the right preconditioner of a Krylov solver: [`NetPreconditioner`]
//! implements `solve`'s [`Preconditioner`] on f64 vectors in the reference layout (the input is
//! rounded to f32, the network applied, the output widened), and its [`NativeNet`] view
//! implements [`NativePreconditioner`] on the f32 Krylov vectors of the mixed-precision solver,
//! in the Dirac kernel's own layout, so no conversion happens inside an iteration. Bound to an
//! operator's layout ([`NetPreconditioner::right`]) it is a `solve::batch`
//! [`RightPreconditioner`], which picks whichever of the two a solve needs.

use super::{FermionNet, RuntimeError};
use crate::codegen::lattice_layout::SiteLayout;
use crate::lattice::fermion::cast_into;
use crate::solve::batch::RightPreconditioner;
use crate::solve::{NativePreconditioner, Preconditioner};
use num_complex::{Complex, Complex64};

fn zero() -> Complex<f32> {
    Complex::new(0.0, 0.0)
}

/// A trained f32 network as the right preconditioner of an f64 solver: the input is rounded
/// to f32, the network applied, the output widened. The network is linear (PTC layers have no
/// bias), so no scaling is needed. It owns the network so that it can be boxed
/// (`symc solve --precond`).
pub struct NetPreconditioner {
    net: Box<dyn FermionNet<f32>>,
    params: Vec<f32>,
    inp: Vec<Complex<f32>>,
    out: Vec<Complex<f32>>,
    /// Applications so far.
    pub applications: usize,
    /// Set when a network call failed (then the output was NaN and the solve fails visibly).
    pub error: Option<String>,
}

impl NetPreconditioner {
    /// Wraps `net` with `params`; checks the shapes once with a trial application.
    pub fn new(net: Box<dyn FermionNet<f32>>, params: Vec<f32>) -> Result<Self, RuntimeError> {
        let n = net.graph().lattice.as_ref().map_or(0, |l| l.volume() * 12);
        let mut p = NetPreconditioner {
            net,
            params,
            inp: vec![zero(); n],
            out: vec![zero(); n],
            applications: 0,
            error: None,
        };
        p.net.forward(&p.params, &p.inp, &mut p.out)?;
        Ok(p)
    }

    /// The wrapped network.
    pub fn net(&self) -> &dyn FermionNet<f32> {
        self.net.as_ref()
    }

    /// The weights.
    pub fn params(&self) -> &[f32] {
        &self.params
    }
}

impl Preconditioner<f64> for NetPreconditioner {
    fn apply(&mut self, out: &mut [Complex64], inp: &[Complex64]) {
        self.applications += 1;
        cast_into(&mut self.inp, inp);
        match self.net.forward(&self.params, &self.inp, &mut self.out) {
            Ok(()) => cast_into(out, &self.out),
            Err(e) => {
                self.error = Some(e.to_string());
                out.iter_mut().for_each(|o| *o = Complex64::new(f64::NAN, f64::NAN));
            }
        }
    }
}

/// A [`NetPreconditioner`] seen by the mixed-precision solver: the network runs on the f32
/// Krylov vectors in the operator's layout `layout`.
pub struct NativeNet<'a> {
    prec: &'a mut NetPreconditioner,
    layout: &'a SiteLayout,
}

impl NetPreconditioner {
    /// The network as a preconditioner on vectors in `layout` (the f32 operator's).
    pub fn native<'a>(&'a mut self, layout: &'a SiteLayout) -> NativeNet<'a> {
        NativeNet { prec: self, layout }
    }
}

impl NativePreconditioner for NativeNet<'_> {
    fn buffer_len(&self) -> usize {
        self.prec.net.native_buffer_len().max(self.layout.field_len())
    }
    fn apply(&mut self, out: &mut [f32], inp: &mut [f32]) -> Result<(), String> {
        self.prec.applications += 1;
        let p = &mut *self.prec;
        p.net.forward_native(&p.params, self.layout, inp, out).map_err(|e| e.to_string())
    }
    fn is_fixed_linear(&self) -> bool {
        self.prec.net.graph().is_linear()
    }
}

/// A [`NetPreconditioner`] bound to the layout of the f32 operator of a solve (if there is
/// one), as `solve::batch` takes a right preconditioner.
pub struct BoundNet<'a> {
    prec: &'a mut NetPreconditioner,
    layout: Option<&'a SiteLayout>,
}

impl NetPreconditioner {
    /// The network as the right preconditioner of solves whose f32 operator, if any, uses
    /// `layout` (`None`: f64 solves only).
    pub fn right<'a>(&'a mut self, layout: Option<&'a SiteLayout>) -> BoundNet<'a> {
        BoundNet { prec: self, layout }
    }
}

impl RightPreconditioner for BoundNet<'_> {
    fn reference(&mut self) -> &mut dyn Preconditioner<f64> {
        &mut *self.prec
    }
    fn native(&mut self) -> Option<Box<dyn NativePreconditioner + '_>> {
        let layout = self.layout?;
        Some(Box::new(self.prec.native(layout)))
    }
}
