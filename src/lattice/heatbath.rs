//! Quenched SU(3) configurations: Cabibbo–Marinari pseudo-heatbath with Kennedy–Pendleton
//! SU(2) sampling (Creutz's method for small couplings) plus overrelaxation, for the Wilson
//! gauge action S = β Σ_p (1 − Re tr U_p / 3).
//!
//! Links of one direction on sites of one parity only interact through staples made of the
//! other links, so each (direction, parity) class is updated in parallel with rayon. Every
//! random number comes from a counter-based stream keyed by (seed, sweep, site, direction)
//! (see [`super::rng`]), so a chain is bit-identical whatever the number of threads — and
//! whatever the number of processes: with a [`LinkShare`] each process computes a contiguous
//! share of every class and all processes exchange the new links (`runtime::distributed`
//! implements it over MPI).
//!
//! Derivation (as Grid's `SubGroupHeatBath`): for a link U with staple sum A, the local weight
//! is exp(β/3 Re tr(U A)). Left-multiplying U by an SU(2) element X embedded in the rows (i, j)
//! changes Re tr(W) with W = U A by Re tr(X w) for the 2x2 block w of W. Writing X and the
//! quaternion part of w as 4-vectors, Re tr(X w) = 2 x·b = 2k x·b̂ with k = |b|. With X = Z B
//! (B the SU(2) matrix of b̂), z0 is distributed as sqrt(1 − z0²) exp(α z0), α = 2βk/3, and z⃗
//! is isotropic. Overrelaxation picks X = B², which leaves Re tr(X w) unchanged.

use super::gauge::GaugeField;
use super::io::{GaugeFormat, GaugeIoError, WriteOptions, read_gauge, write_gauge};
use super::rng::Stream;
use super::su3::Su3;
use num_complex::Complex;
use rayon::prelude::*;
use std::path::Path;

type C = Complex<f64>;

/// How the chain starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Every link the identity.
    Cold,
    /// Every link Haar-random (from the seed, thread-independent).
    Hot,
}

/// Parameters of a heatbath chain.
#[derive(Clone, Debug)]
pub struct HeatbathParams {
    /// Inverse coupling β = 6/g².
    pub beta: f64,
    /// Number of compound sweeps for [`generate`].
    pub sweeps: usize,
    /// Overrelaxation sweeps after each heatbath sweep.
    pub overrelax_per_sweep: usize,
    pub seed: u64,
    pub start: Start,
    /// Re-project all links onto SU(3) every this many compound sweeps (0 = never).
    pub reunitarize_every: usize,
}

impl HeatbathParams {
    /// The defaults symc uses: 4 overrelaxation sweeps per heatbath sweep (physics.md §4.1),
    /// cold start, reunitarisation every 10 sweeps.
    pub fn new(beta: f64, sweeps: usize, seed: u64) -> Self {
        HeatbathParams {
            beta,
            sweeps,
            overrelax_per_sweep: 4,
            seed,
            start: Start::Cold,
            reunitarize_every: 10,
        }
    }
}

/// Invalid heatbath input (from the command line or a model file).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum HeatbathError {
    #[error("invalid heatbath parameters: {what}")]
    #[diagnostic(
        code(symc::heatbath::params),
        help("β must be positive and finite, and every lattice extent at least 2")
    )]
    Params { what: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Io(#[from] GaugeIoError),
}

/// Checks what the algorithm needs: finite β > 0 and extents ≥ 2 (with an extent of 1 a link
/// appears in its own staple and the local action is no longer linear in it).
pub fn validate(dims: [usize; 4], params: &HeatbathParams) -> Result<(), HeatbathError> {
    if !(params.beta.is_finite() && params.beta > 0.0) {
        return Err(HeatbathError::Params {
            what: format!("beta = {} (expected a finite number > 0)", params.beta),
        });
    }
    if dims.iter().any(|&d| d < 2) {
        return Err(HeatbathError::Params {
            what: format!(
                "lattice {}x{}x{}x{} (every extent must be at least 2)",
                dims[0], dims[1], dims[2], dims[3]
            ),
        });
    }
    let vol: u128 = dims.iter().map(|&d| d as u128).product();
    if vol > (u32::MAX / 4) as u128 {
        return Err(HeatbathError::Params {
            what: format!("lattice volume {vol} exceeds 2^30 sites"),
        });
    }
    Ok(())
}

/// Purposes folded into the second counter word, so hot starts and heatbath draws never share
/// a stream.
const PURPOSE_HEATBATH: u32 = 0;
const PURPOSE_HOT_START: u32 = 1;

/// How the links of one (direction, parity) class are split over processes: each computes the
/// links of a contiguous share of the class's sites, and [`LinkShare::gather`] gives every
/// process all of them, in site order. Each link's update depends only on the field before the
/// class and on its own counter-based stream, so the chain does not depend on the split.
pub trait LinkShare {
    /// The share of a class of `n` sites this process computes.
    fn range(&self, n: usize) -> std::ops::Range<usize>;
    /// All `n` new links of the class into `all`, from every process's share (this one's is
    /// `mine`).
    fn gather(&self, mine: &[Su3<f64>], all: &mut Vec<Su3<f64>>, n: usize);
}

/// One process computes every link.
pub struct Alone;

impl LinkShare for Alone {
    fn range(&self, n: usize) -> std::ops::Range<usize> {
        0..n
    }
    fn gather(&self, mine: &[Su3<f64>], all: &mut Vec<Su3<f64>>, _n: usize) {
        all.clear();
        all.extend_from_slice(mine);
    }
}

/// A running Markov chain: the field and the number of compound sweeps done.
#[derive(Clone, Debug)]
pub struct Heatbath {
    field: GaugeField,
    beta: f64,
    overrelax: usize,
    seed: u64,
    reunitarize_every: usize,
    sweeps_done: u64,
    /// Sites of each parity, the unit of parallel work.
    parity_sites: [Vec<u32>; 2],
    /// Reused buffer for the new links of one (direction, parity) class.
    scratch: Vec<Su3<f64>>,
    /// All processes' new links of a class (when the class is shared).
    gathered: Vec<Su3<f64>>,
}

impl Heatbath {
    /// Starts a chain on a lattice of `dims` (cold or hot as `params.start` says).
    ///
    /// Panics when [`validate`] rejects the input; code handling user input calls it first.
    pub fn new(dims: [usize; 4], params: &HeatbathParams) -> Self {
        let mut field = GaugeField::unit(dims);
        if params.start == Start::Hot {
            let seed = params.seed;
            field.links.par_iter_mut().enumerate().for_each(|(i, u)| {
                let mut s =
                    Stream::new(seed, (i / 4) as u32, PURPOSE_HOT_START | ((i % 4) as u32) << 8, 0);
                *u = Su3::random(&mut s);
            });
        }
        Self::from_field(field, params, 0)
    }

    /// Continues a chain from `field`, which has had `sweeps_done` compound sweeps with this
    /// seed (the sweep index keys the random numbers, so continuing at the right count gives
    /// exactly the chain an uninterrupted run would have produced). Panics when [`validate`]
    /// rejects the dimensions or parameters.
    pub fn from_field(field: GaugeField, params: &HeatbathParams, sweeps_done: u64) -> Self {
        if let Err(e) = validate(field.dims(), params) {
            panic!("{e}");
        }
        let mut parity_sites = [Vec::new(), Vec::new()];
        for s in 0..field.geom.volume() {
            parity_sites[field.geom.parity(s)].push(s as u32);
        }
        Heatbath {
            field,
            beta: params.beta,
            overrelax: params.overrelax_per_sweep,
            seed: params.seed,
            reunitarize_every: params.reunitarize_every,
            sweeps_done,
            parity_sites,
            scratch: Vec::new(),
            gathered: Vec::new(),
        }
    }

    pub fn field(&self) -> &GaugeField {
        &self.field
    }

    pub fn into_field(self) -> GaugeField {
        self.field
    }

    pub fn sweeps_done(&self) -> u64 {
        self.sweeps_done
    }

    /// One compound sweep: a heatbath sweep, the overrelaxation sweeps, and reunitarisation
    /// when due. Returns the plaquette afterwards.
    pub fn sweep(&mut self) -> f64 {
        self.sweep_shared(&Alone)
    }

    /// [`Heatbath::sweep`] with the links of each class shared out by `share` (every process
    /// calls it and ends with the same field).
    pub fn sweep_shared(&mut self, share: &dyn LinkShare) -> f64 {
        self.heatbath_sweep_shared(share);
        for _ in 0..self.overrelax {
            self.overrelax_sweep_shared(share);
        }
        self.sweeps_done += 1;
        if self.reunitarize_every > 0 && self.sweeps_done % self.reunitarize_every as u64 == 0 {
            self.field.links.par_iter_mut().for_each(|u| *u = u.reunitarize());
        }
        plaquette(&self.field)
    }

    /// One Cabibbo–Marinari heatbath sweep over all links (random numbers keyed by the current
    /// sweep count).
    pub fn heatbath_sweep(&mut self) {
        self.heatbath_sweep_shared(&Alone)
    }

    fn heatbath_sweep_shared(&mut self, share: &dyn LinkShare) {
        let (beta, seed, sweep) = (self.beta, self.seed, self.sweeps_done as u32);
        self.update_all(share, move |field, site, mu| {
            let mut rng =
                Stream::new(seed, site as u32, PURPOSE_HEATBATH | (mu as u32) << 8, sweep);
            let a = staple_sum(field, site, mu);
            heatbath_link(field.links[site * 4 + mu], &a, beta, &mut rng)
        });
    }

    /// One overrelaxation sweep over all links (deterministic; preserves the action).
    pub fn overrelax_sweep(&mut self) {
        self.overrelax_sweep_shared(&Alone)
    }

    fn overrelax_sweep_shared(&mut self, share: &dyn LinkShare) {
        self.update_all(share, |field, site, mu| {
            let a = staple_sum(field, site, mu);
            overrelax_link(field.links[site * 4 + mu], &a)
        });
    }

    /// Applies `update` to every link, one (direction, parity) class at a time: within a class
    /// the new links depend only on links outside it, so they are computed in parallel from
    /// the current field and then written back. With an odd extent the checkerboard does not
    /// separate neighbours (x = L−1 and x = 0 share a parity), so links are then updated one at
    /// a time in place, in a fixed order (by every process alike). `share` splits the sites of
    /// a class over processes.
    fn update_all(
        &mut self,
        share: &dyn LinkShare,
        update: impl Fn(&GaugeField, usize, usize) -> Su3<f64> + Sync,
    ) {
        if self.field.dims().iter().any(|d| d % 2 == 1) {
            for mu in 0..4 {
                for s in 0..self.field.geom.volume() {
                    let u = update(&self.field, s, mu);
                    self.field.links[s * 4 + mu] = u;
                }
            }
            return;
        }
        for mu in 0..4 {
            for parity in 0..2 {
                let sites = &self.parity_sites[parity];
                let field = &self.field;
                let range = share.range(sites.len());
                let whole = range.len() == sites.len();
                sites[range]
                    .par_iter()
                    .map(|&s| update(field, s as usize, mu))
                    .collect_into_vec(&mut self.scratch);
                if !whole {
                    share.gather(&self.scratch, &mut self.gathered, sites.len());
                    std::mem::swap(&mut self.scratch, &mut self.gathered);
                }
                for (&s, u) in sites.iter().zip(&self.scratch) {
                    self.field.links[s as usize * 4 + mu] = *u;
                }
            }
        }
    }
}

/// Runs `params.sweeps` compound sweeps from the start `params.start`, calling
/// `progress(sweep, plaquette)` after each (sweep counts from 1). Returns the final field and
/// the plaquette after every sweep.
pub fn generate(
    dims: [usize; 4],
    params: &HeatbathParams,
    progress: impl FnMut(usize, f64),
) -> (GaugeField, Vec<f64>) {
    generate_shared(dims, params, &Alone, progress)
}

/// [`generate`] with every class shared out by `share`: every process calls it and gets the
/// same field, the one [`generate`] gives.
pub fn generate_shared(
    dims: [usize; 4],
    params: &HeatbathParams,
    share: &dyn LinkShare,
    mut progress: impl FnMut(usize, f64),
) -> (GaugeField, Vec<f64>) {
    let mut hb = Heatbath::new(dims, params);
    let mut history = Vec::with_capacity(params.sweeps);
    for n in 1..=params.sweeps {
        let p = hb.sweep_shared(share);
        history.push(p);
        progress(n, p);
    }
    (hb.into_field(), history)
}

/// The cache file name for a configuration (what [`cached_config`] reads and writes).
pub fn cache_file_name(dims: [usize; 4], beta: f64, seed: u64, sweeps: usize) -> String {
    format!("b{beta}_{}x{}x{}x{}_s{seed}_n{sweeps}.nersc", dims[0], dims[1], dims[2], dims[3])
}

/// A thermalised configuration for (dims, β, seed, sweeps) with the default parameters of
/// [`HeatbathParams::new`], generated once and cached as a NERSC file (3x3, f64) in
/// `cache_dir`. A cache file that is missing, unreadable, corrupt (any format check fails) or
/// for other dimensions is regenerated and replaced atomically.
pub fn cached_config(
    dims: [usize; 4],
    beta: f64,
    seed: u64,
    sweeps: usize,
    cache_dir: &Path,
) -> Result<GaugeField, HeatbathError> {
    let params = HeatbathParams::new(beta, sweeps, seed);
    validate(dims, &params)?;
    let path = cache_dir.join(cache_file_name(dims, beta, seed, sweeps));
    if let Ok(f) = read_gauge(&path) {
        if f.field.dims() == dims && f.precision_bits == 64 {
            return Ok(f.field);
        }
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(|source| GaugeIoError::Write { path: cache_dir.into(), source })?;
    let (field, _) = generate(dims, &HeatbathParams::new(beta, sweeps, seed), |_, _| {});
    let opts = WriteOptions {
        label: format!("symc heatbath beta={beta} seed={seed} sweeps={sweeps}"),
        ..WriteOptions::default()
    };
    write_gauge(&path, &field, GaugeFormat::Nersc, &opts)?;
    Ok(field)
}

/// Sum of the six staples around U_mu(x): Σ_ν [U_ν(x+μ) U_μ(x+ν)† U_ν(x)† +
/// U_ν(x+μ−ν)† U_μ(x−ν)† U_ν(x−ν)], so that Σ_p∋U Re tr U_p = Re tr(U_μ(x) A).
///
/// This is the hot loop of every sweep (12 of the ~13 matrix products per link update), so the
/// daggers are folded into the products instead of materialising adjoint matrices; the lower
/// staple is computed as (U_μ(x−ν) U_ν(x+μ−ν))† U_ν(x−ν).
pub fn staple_sum(field: &GaugeField, site: usize, mu: usize) -> Su3<f64> {
    let g = &field.geom;
    let xp = g.up(site, mu);
    let mut a = Su3::zero();
    for nu in 0..4 {
        if nu == mu {
            continue;
        }
        let xn = g.up(site, nu);
        let up = mul_nd(&mul_nd(field.link(xp, nu), field.link(xn, mu)), field.link(site, nu));
        let xmn = g.dn(site, nu);
        let xpmn = g.dn(xp, nu);
        let low = mul_dn(&(*field.link(xmn, mu) * *field.link(xpmn, nu)), field.link(xmn, nu));
        for i in 0..3 {
            for j in 0..3 {
                a.m[i][j] += up.m[i][j] + low.m[i][j];
            }
        }
    }
    a
}

/// a · b†.
#[inline(always)]
fn mul_nd(a: &Su3<f64>, b: &Su3<f64>) -> Su3<f64> {
    let mut r = Su3::zero();
    for i in 0..3 {
        for j in 0..3 {
            let (x, y) = (&a.m[i], &b.m[j]);
            r.m[i][j] = x[0] * y[0].conj() + x[1] * y[1].conj() + x[2] * y[2].conj();
        }
    }
    r
}

/// a† · b.
#[inline(always)]
fn mul_dn(a: &Su3<f64>, b: &Su3<f64>) -> Su3<f64> {
    let mut r = Su3::zero();
    for i in 0..3 {
        for j in 0..3 {
            r.m[i][j] = a.m[0][i].conj() * b.m[0][j]
                + a.m[1][i].conj() * b.m[1][j]
                + a.m[2][i].conj() * b.m[2][j];
        }
    }
    r
}

/// The three SU(2) subgroups (row/column index pairs) of Cabibbo–Marinari.
const SUBGROUPS: [(usize, usize); 3] = [(0, 1), (0, 2), (1, 2)];

/// A 2x2 SU(2) matrix [[x0 + i x3, x2 + i x1], [−x2 + i x1, x0 − i x3]].
type Su2 = [[C; 2]; 2];

fn su2(x: [f64; 4]) -> Su2 {
    [[C::new(x[0], x[3]), C::new(x[2], x[1])], [C::new(-x[2], x[1]), C::new(x[0], -x[3])]]
}

fn su2_mul(a: &Su2, b: &Su2) -> Su2 {
    let mut r = [[C::new(0.0, 0.0); 2]; 2];
    for i in 0..2 {
        for j in 0..2 {
            r[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j];
        }
    }
    r
}

/// Rows (i, j) of `m` ← X · rows (i, j).
fn left_mul_embedded(m: &mut Su3<f64>, x: &Su2, i: usize, j: usize) {
    for c in 0..3 {
        let (mi, mj) = (m.m[i][c], m.m[j][c]);
        m.m[i][c] = x[0][0] * mi + x[0][1] * mj;
        m.m[j][c] = x[1][0] * mi + x[1][1] * mj;
    }
}

/// The 4-vector b with Re tr(X w) = 2 x·b for the (i, j) block w of `w3`.
fn block_vector(w3: &Su3<f64>, i: usize, j: usize) -> [f64; 4] {
    let (p, q, r, s) = (w3.m[i][i], w3.m[i][j], w3.m[j][i], w3.m[j][j]);
    [(p.re + s.re) / 2.0, -(q.im + r.im) / 2.0, (r.re - q.re) / 2.0, (s.im - p.im) / 2.0]
}

/// Below this α Creutz's method is used: Kennedy–Pendleton's acceptance drops at small α.
const CREUTZ_BELOW: f64 = 2.0;

/// Draws z0 in [-1, 1] with density ∝ sqrt(1 − z0²) exp(α z0).
pub fn sample_su2_z0(alpha: f64, rng: &mut Stream) -> f64 {
    if alpha >= CREUTZ_BELOW {
        // Kennedy–Pendleton: δ = 1 − z0 ~ δ^{1/2} e^{−αδ} (a Gamma(3/2)/α draw), accepted
        // with probability sqrt(1 − δ/2).
        loop {
            let (r1, r2, r3, r4) = (rng.uniform(), rng.uniform(), rng.uniform(), rng.uniform());
            let c = (2.0 * std::f64::consts::PI * r2).cos();
            let delta = -(r1.ln() + c * c * r3.ln()) / alpha;
            if r4 * r4 <= 1.0 - delta / 2.0 {
                return 1.0 - delta;
            }
        }
    }
    // Creutz: z0 from exp(α z0) on [-1, 1] by inversion, accepted with sqrt(1 − z0²).
    loop {
        let r = rng.uniform();
        let z0 = if alpha < 1e-8 {
            2.0 * r - 1.0
        } else {
            // ln(e^{-α} + r (e^{α} − e^{−α})) / α, written to stay accurate for any α.
            let e = (-2.0 * alpha).exp();
            1.0 + (e + r * (1.0 - e)).ln() / alpha
        };
        let z0 = z0.clamp(-1.0, 1.0);
        if rng.uniform() <= (1.0 - z0 * z0).sqrt() {
            return z0;
        }
    }
}

/// An isotropic 3-vector of length `len`.
fn random_direction(len: f64, rng: &mut Stream) -> [f64; 3] {
    let cos_t = 2.0 * rng.uniform() - 1.0;
    let sin_t = (1.0 - cos_t * cos_t).max(0.0).sqrt();
    let phi = 2.0 * std::f64::consts::PI * rng.uniform();
    [len * sin_t * phi.cos(), len * sin_t * phi.sin(), len * cos_t]
}

/// One Cabibbo–Marinari heatbath update of link `u` with staple sum `a`.
pub fn heatbath_link(mut u: Su3<f64>, a: &Su3<f64>, beta: f64, rng: &mut Stream) -> Su3<f64> {
    let mut w = u * *a;
    for &(i, j) in &SUBGROUPS {
        let b = block_vector(&w, i, j);
        let k = (b[0] * b[0] + b[1] * b[1] + b[2] * b[2] + b[3] * b[3]).sqrt();
        let bm = if k > 1e-300 {
            su2([b[0] / k, b[1] / k, b[2] / k, b[3] / k])
        } else {
            su2([1.0, 0.0, 0.0, 0.0])
        };
        let alpha = 2.0 * beta * k / 3.0;
        let z0 = sample_su2_z0(alpha, rng);
        let zv = random_direction((1.0 - z0 * z0).max(0.0).sqrt(), rng);
        let x = su2_mul(&su2([z0, zv[0], zv[1], zv[2]]), &bm);
        left_mul_embedded(&mut u, &x, i, j);
        left_mul_embedded(&mut w, &x, i, j);
    }
    u
}

/// One overrelaxation update (X = B² in each subgroup): keeps Re tr(U A) unchanged.
pub fn overrelax_link(mut u: Su3<f64>, a: &Su3<f64>) -> Su3<f64> {
    let mut w = u * *a;
    for &(i, j) in &SUBGROUPS {
        let b = block_vector(&w, i, j);
        let k = (b[0] * b[0] + b[1] * b[1] + b[2] * b[2] + b[3] * b[3]).sqrt();
        if k <= 1e-300 {
            continue;
        }
        let bm = su2([b[0] / k, b[1] / k, b[2] / k, b[3] / k]);
        let x = su2_mul(&bm, &bm);
        left_mul_embedded(&mut u, &x, i, j);
        left_mul_embedded(&mut w, &x, i, j);
    }
    u
}

/// The average plaquette, computed per site in parallel and summed in a fixed order so the
/// result does not depend on the number of threads.
pub fn plaquette(field: &GaugeField) -> f64 {
    plaquette_parts(field).0
}

/// (plaquette, spatial, temporal), thread-count independent; same normalisation as
/// [`GaugeField::plaquette_parts`].
pub fn plaquette_parts(field: &GaugeField) -> (f64, f64, f64) {
    let vol = field.geom.volume();
    let per_site: Vec<(f64, f64)> = (0..vol)
        .into_par_iter()
        .map(|s| {
            let (mut ss, mut st) = (0.0, 0.0);
            for mu in 0..4 {
                for nu in (mu + 1)..4 {
                    let p = field.plaquette_at(s, mu, nu).trace().re / 3.0;
                    if nu == 3 { st += p } else { ss += p }
                }
            }
            (ss, st)
        })
        .collect();
    let (ss, st) = per_site.iter().fold((0.0, 0.0), |(a, b), &(x, y)| (a + x, b + y));
    let (ss, st) = (ss / (3.0 * vol as f64), st / (3.0 * vol as f64));
    ((ss + st) / 2.0, ss, st)
}

/// Mean, statistical error and integrated autocorrelation time of a Markov-chain series
/// (Γ-method with Sokal's self-consistent window W ≥ 5 τ_int; error² = 2 τ_int σ² / N).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ChainEstimate {
    pub mean: f64,
    pub error: f64,
    pub tau_int: f64,
    pub n: usize,
}

/// Analyses `series` (at least 2 entries) with the Γ-method.
pub fn chain_estimate(series: &[f64]) -> ChainEstimate {
    let n = series.len();
    let mean = series.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return ChainEstimate { mean, error: f64::NAN, tau_int: f64::NAN, n };
    }
    let d: Vec<f64> = series.iter().map(|x| x - mean).collect();
    let gamma =
        |t: usize| d[..n - t].iter().zip(&d[t..]).map(|(a, b)| a * b).sum::<f64>() / (n - t) as f64;
    let g0 = gamma(0);
    if g0 <= 0.0 {
        return ChainEstimate { mean, error: 0.0, tau_int: 0.5, n };
    }
    let mut tau = 0.5;
    for w in 1..n / 2 {
        tau += gamma(w) / g0;
        if w as f64 >= 5.0 * tau {
            break;
        }
    }
    let tau = tau.max(0.5);
    ChainEstimate { mean, error: (2.0 * tau * g0 / n as f64).sqrt(), tau_int: tau, n }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ⟨z0⟩ for density sqrt(1 − z²) e^{αz} by Simpson quadrature (independent of the sampler).
    fn exact_mean(alpha: f64) -> f64 {
        let n = 200_000;
        let h = 2.0 / n as f64;
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..=n {
            let z: f64 = -1.0 + i as f64 * h;
            let w = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            let f = (1.0 - z * z).max(0.0).sqrt() * (alpha * (z - 1.0)).exp();
            num += w * z * f;
            den += w * f;
        }
        num / den
    }

    #[test]
    fn su2_sampler_matches_its_density() {
        for &alpha in &[0.0, 0.5, 1.9, 2.0, 3.0, 10.0, 40.0] {
            let mut rng = Stream::new(9, 1, 2, (alpha * 10.0) as u32);
            let n = 200_000;
            let xs: Vec<f64> = (0..n).map(|_| sample_su2_z0(alpha, &mut rng)).collect();
            assert!(xs.iter().all(|x| (-1.0..=1.0).contains(x)));
            let m = xs.iter().sum::<f64>() / n as f64;
            let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
            let want = exact_mean(alpha);
            assert!((m - want).abs() < 5.0 * (v / n as f64).sqrt(), "alpha {alpha}: {m} vs {want}");
        }
    }

    #[test]
    fn staple_sum_closes_the_six_plaquettes() {
        // Oracle: the plaquettes GaugeField::plaquette_at builds from the same links.
        use rand::SeedableRng;
        let f = GaugeField::random([4, 3, 2, 4], &mut rand_chacha::ChaCha8Rng::seed_from_u64(8));
        for site in [0, 5, 17, 95] {
            for mu in 0..4 {
                let a = staple_sum(&f, site, mu);
                let got = (*f.link(site, mu) * a).trace().re;
                let mut want = 0.0;
                for nu in (0..4).filter(|&nu| nu != mu) {
                    let (p_up, p_dn) = if mu < nu {
                        (f.plaquette_at(site, mu, nu), f.plaquette_at(f.geom.dn(site, nu), mu, nu))
                    } else {
                        // plaquette_at(x, nu, mu) is the same loop reversed: equal real trace.
                        (f.plaquette_at(site, nu, mu), f.plaquette_at(f.geom.dn(site, nu), nu, mu))
                    };
                    want += p_up.trace().re + p_dn.trace().re;
                }
                assert!((got - want).abs() < 1e-12, "site {site} mu {mu}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn overrelaxation_keeps_the_local_action() {
        let mut rng = Stream::new(3, 0, 0, 0);
        for _ in 0..20 {
            let u = Su3::<f64>::random(&mut rng);
            let a = Su3::<f64>::random(&mut rng) + Su3::random(&mut rng) + Su3::random(&mut rng);
            let before = (u * a).trace().re;
            let v = overrelax_link(u, &a);
            assert!(((v * a).trace().re - before).abs() < 1e-12);
            assert!(v.dist(&u) > 1e-3, "overrelaxation must move the link");
            assert!((v * v.adj()).dist(&Su3::identity()) < 1e-12);
        }
    }

    #[test]
    fn heatbath_link_stays_in_su3_and_prefers_the_staple() {
        // With a large staple the new link aligns with A^dagger: Re tr(U A) close to its max.
        let mut rng = Stream::new(5, 0, 0, 0);
        let v = Su3::<f64>::random(&mut rng);
        let a = v.adj().scale(C::new(6.0, 0.0));
        let mut u = Su3::random(&mut rng);
        for _ in 0..5 {
            u = heatbath_link(u, &a, 50.0, &mut rng);
        }
        assert!((u * u.adj()).dist(&Su3::identity()) < 1e-12);
        assert!((u.det() - C::new(1.0, 0.0)).norm() < 1e-12);
        // At β = 50 the maximum 18 is approached to O(1/β).
        assert!((u * a).trace().re > 17.0, "{}", (u * a).trace().re);
    }

    #[test]
    fn gamma_method_on_an_ar1_series() {
        // AR(1) with ρ = 0.8 has τ_int = (1 + ρ) / (2 (1 − ρ)) = 4.5.
        let mut rng = Stream::new(11, 0, 0, 0);
        let mut x = 0.0;
        let series: Vec<f64> = (0..200_000)
            .map(|_| {
                let g = (-2.0 * rng.uniform().ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * rng.uniform()).cos();
                x = 0.8 * x + g;
                x
            })
            .collect();
        let e = chain_estimate(&series);
        assert!((e.tau_int - 4.5).abs() < 0.4, "tau {}", e.tau_int);
        assert!(e.mean.abs() < 5.0 * e.error);
    }
}
