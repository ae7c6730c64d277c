//! Gauge-field data in the JIT kernels' SIMD layout: the transport matrices of a network's
//! paths and the neighbour tables that go with them. The kernels are specialised to a layout
//! (`codegen::lattice_layout`); filling their tables from a concrete gauge field is the
//! runtime's job, done once per compiled network and gauge field.

use super::RuntimeError;
use crate::codegen::lattice_layout::{FIELD_COMPONENTS, MATRIX_COMPONENTS, SiteLayout};
use crate::ir::{Path, displacement, inverse_path};
use crate::lattice::Real;
use crate::lattice::gauge::GaugeField;
use crate::lattice::su3::Su3;

/// The byte offset of a neighbour slot as the kernels read it (32-bit): a lattice whose one
/// feature buffer exceeds 2 GiB is refused here rather than wrapping.
pub fn neighbour_offset(slot: usize, slot_bytes: usize) -> Result<i32, RuntimeError> {
    i32::try_from(slot * slot_bytes).map_err(|_| {
        RuntimeError::Shape(format!(
            "one field buffer of this lattice exceeds the kernels' 32-bit offsets ({} bytes); \
             split the lattice over ranks or use a smaller volume",
            slot * slot_bytes
        ))
    })
}

/// The product of links along a path starting at `site` (gpt order: left to right), and the
/// end site.
pub fn path_matrix(gauge: &GaugeField, path: &Path, site: usize) -> (Su3<f64>, usize) {
    let g = &gauge.geom;
    let mut m = Su3::identity();
    let mut x = site;
    for h in path {
        let mu = h.mu as usize;
        if h.forward {
            m = m * *gauge.link(x, mu);
            x = g.up(x, mu);
        } else {
            x = g.dn(x, mu);
            m = m * gauge.link(x, mu).adj();
        }
    }
    (m, x)
}

/// Precomputed transports of a list of paths in the AoSoA layout, with the neighbour table.
#[derive(Clone, Debug)]
pub struct PathTables<T> {
    /// `[path][outer][9][re/im][lane]`; identity paths are stored too (as unit matrices) so
    /// indices stay simple, but kernels skip them.
    pub matrices: Vec<T>,
    /// `[outer][path]` byte offset of the neighbour slot within one feature buffer.
    pub neighbours: Vec<i32>,
    /// Paths that are the identity (no hop): no load through the table, no matrix.
    pub identity: Vec<bool>,
}

impl<T: Real> PathTables<T> {
    /// Tables for `paths` (or their inverses when `inverse`: matrices `U_p(x - Delta)^dagger`,
    /// neighbours `x - Delta`, which realise T_{p^-1} = T_p^dagger).
    pub fn new(
        gauge: &GaugeField,
        layout: &SiteLayout,
        paths: &[Path],
        inverse: bool,
    ) -> Result<Self, RuntimeError> {
        let slot = |o: usize, disp: [i64; 4]| {
            layout.neighbour_slot(o, disp).ok_or_else(|| {
                RuntimeError::Shape("internal: the layout lacks a ghost slab for a path".into())
            })
        };
        Self::mapped(gauge, layout, paths, inverse, |s| s, slot)
    }

    /// [`PathTables::new`] for a layout of a sub-lattice of `gauge`'s lattice (domain
    /// decomposition): `global(s)` is the site of `gauge` at local site `s`, `slot(o, disp)`
    /// the slot holding `x + disp` for every lane of outer site `o` (a ghost filled by the
    /// halo exchange when it lies on another process).
    pub fn mapped(
        gauge: &GaugeField,
        layout: &SiteLayout,
        paths: &[Path],
        inverse: bool,
        global: impl Fn(usize) -> usize,
        slot: impl Fn(usize, [i64; 4]) -> Result<usize, RuntimeError>,
    ) -> Result<Self, RuntimeError> {
        let l = layout.lanes;
        let vo = layout.outer_volume;
        let np = paths.len();
        let mut matrices = vec![T::zero(); np * vo * MATRIX_COMPONENTS * l];
        let mut neighbours = vec![0i32; vo * np];
        let slot_bytes = FIELD_COMPONENTS * l * std::mem::size_of::<T>();
        for (p, path) in paths.iter().enumerate() {
            let d = displacement(path);
            let disp = if inverse { d.map(|x| -x) } else { d };
            for o in 0..vo {
                neighbours[o * np + p] = neighbour_offset(slot(o, disp)?, slot_bytes)?;
                for k in 0..l {
                    let x = global(layout.site(o, k));
                    let m = if inverse {
                        // The path ending at x starts at x - Delta: find it by walking the inverse.
                        let (_, start) = path_matrix(gauge, &inverse_path(path), x);
                        path_matrix(gauge, path, start).0.adj()
                    } else {
                        path_matrix(gauge, path, x).0
                    };
                    for a in 0..3 {
                        for b in 0..3 {
                            let base = ((p * vo + o) * MATRIX_COMPONENTS + 2 * (a * 3 + b)) * l + k;
                            matrices[base] = T::from_f64(m.m[a][b].re);
                            matrices[base + l] = T::from_f64(m.m[a][b].im);
                        }
                    }
                }
            }
        }
        Ok(PathTables {
            matrices,
            neighbours,
            identity: paths.iter().map(|p| p.is_empty()).collect(),
        })
    }
}
