//! SU(3) gauge fields: links `U_mu(x)` with plaquette, link trace and gauge transformations.
//!
//! Storage: `links[site * 4 + mu]`, sites in [`Geometry`] order, mu = x, y, z, t. Gauge fields
//! are kept in f64 (file formats and the heatbath need it) and cast for f32 kernels.

use super::geometry::Geometry;
use super::su3::Su3;
use rand::Rng;

#[derive(Clone, Debug)]
pub struct GaugeField {
    pub geom: Geometry,
    pub links: Vec<Su3<f64>>,
}

impl GaugeField {
    /// The unit (free) gauge field.
    pub fn unit(dims: [usize; 4]) -> Self {
        let geom = Geometry::new(dims);
        let links = vec![Su3::identity(); geom.volume() * 4];
        GaugeField { geom, links }
    }

    /// Every link Haar-random ("hot start").
    pub fn random<R: Rng + ?Sized>(dims: [usize; 4], rng: &mut R) -> Self {
        let geom = Geometry::new(dims);
        let links = (0..geom.volume() * 4).map(|_| Su3::random(rng)).collect();
        GaugeField { geom, links }
    }

    pub fn dims(&self) -> [usize; 4] {
        self.geom.dims
    }

    #[inline]
    pub fn link(&self, site: usize, mu: usize) -> &Su3<f64> {
        &self.links[site * 4 + mu]
    }

    /// The plaquette U_mu(x) U_nu(x+mu) U_mu(x+nu)^dagger U_nu(x)^dagger.
    pub fn plaquette_at(&self, site: usize, mu: usize, nu: usize) -> Su3<f64> {
        let g = &self.geom;
        *self.link(site, mu)
            * *self.link(g.up(site, mu), nu)
            * self.link(g.up(site, nu), mu).adj()
            * self.link(site, nu).adj()
    }

    /// Average plaquette (1/(6V)) sum_x sum_{mu<nu} Re tr U_mu_nu(x) / 3, and its spatial and
    /// temporal parts; 1 for the unit field (Grid/GPT normalisation).
    pub fn plaquette_parts(&self) -> (f64, f64, f64) {
        let vol = self.geom.volume();
        let (mut ss, mut st) = (0.0, 0.0);
        for s in 0..vol {
            for mu in 0..4 {
                for nu in (mu + 1)..4 {
                    let p = self.plaquette_at(s, mu, nu).trace().re / 3.0;
                    if nu == 3 { st += p } else { ss += p }
                }
            }
        }
        let (ss, st) = (ss / (3.0 * vol as f64), st / (3.0 * vol as f64));
        ((ss + st) / 2.0, ss, st)
    }

    pub fn plaquette(&self) -> f64 {
        self.plaquette_parts().0
    }

    /// (1/(4V)) sum Re tr U_mu(x) / 3 (Grid `linkTrace`).
    pub fn link_trace(&self) -> f64 {
        self.links.iter().map(|u| u.trace().re / 3.0).sum::<f64>() / self.links.len() as f64
    }

    /// U_mu(x) -> Omega(x) U_mu(x) Omega(x+mu)^dagger.
    pub fn gauge_transform(&self, omega: &[Su3<f64>]) -> GaugeField {
        let g = &self.geom;
        let mut out = self.clone();
        for s in 0..g.volume() {
            for mu in 0..4 {
                out.links[s * 4 + mu] = omega[s] * *self.link(s, mu) * omega[g.up(s, mu)].adj();
            }
        }
        out
    }

    /// A random gauge transformation, one Haar-random SU(3) matrix per site.
    pub fn random_transformation<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<Su3<f64>> {
        (0..self.geom.volume()).map(|_| Su3::random(rng)).collect()
    }

    /// Re-project every link onto SU(3).
    pub fn reunitarize(&mut self) {
        for u in self.links.iter_mut() {
            *u = u.reunitarize();
        }
    }
}
