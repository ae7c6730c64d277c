//! 3x3 complex matrices (SU(3) links, gauge transformations, staples) and colour vectors.
//!
//! Plain row-major `[[Complex<T>; 3]; 3]` with the handful of operations the lattice code needs.
//! Readability beats speed here: this is reference code; the JIT kernels carry the speed.

use super::Real;
use num_complex::Complex;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::ops::{Add, AddAssign, Mul, Sub};

/// A colour vector.
pub type ColorVec<T> = [Complex<T>; 3];

/// A 3x3 complex matrix, row-major: `m[row][col]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Su3<T: Real> {
    pub m: [[Complex<T>; 3]; 3],
}

impl<T: Real> Default for Su3<T> {
    fn default() -> Self {
        Self::zero()
    }
}

impl<T: Real> Su3<T> {
    pub fn zero() -> Self {
        Su3 { m: [[Complex::new(T::zero(), T::zero()); 3]; 3] }
    }

    pub fn identity() -> Self {
        let mut r = Self::zero();
        for i in 0..3 {
            r.m[i][i] = Complex::new(T::one(), T::zero());
        }
        r
    }

    /// Hermitian conjugate.
    pub fn adj(&self) -> Self {
        let mut r = Self::zero();
        for i in 0..3 {
            for j in 0..3 {
                r.m[i][j] = self.m[j][i].conj();
            }
        }
        r
    }

    pub fn trace(&self) -> Complex<T> {
        self.m[0][0] + self.m[1][1] + self.m[2][2]
    }

    pub fn det(&self) -> Complex<T> {
        let m = &self.m;
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    }

    pub fn scale(&self, s: Complex<T>) -> Self {
        let mut r = *self;
        for row in r.m.iter_mut() {
            for x in row.iter_mut() {
                *x *= s;
            }
        }
        r
    }

    pub fn mul_vec(&self, v: &ColorVec<T>) -> ColorVec<T> {
        let m = &self.m;
        [
            m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
            m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
            m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
        ]
    }

    /// `self^dagger * v` without forming the adjoint.
    pub fn adj_mul_vec(&self, v: &ColorVec<T>) -> ColorVec<T> {
        let m = &self.m;
        [
            m[0][0].conj() * v[0] + m[1][0].conj() * v[1] + m[2][0].conj() * v[2],
            m[0][1].conj() * v[0] + m[1][1].conj() * v[1] + m[2][1].conj() * v[2],
            m[0][2].conj() * v[0] + m[1][2].conj() * v[1] + m[2][2].conj() * v[2],
        ]
    }

    /// Frobenius norm of `self - other`, for tests.
    pub fn dist(&self, other: &Self) -> T {
        let mut s = T::zero();
        for i in 0..3 {
            for j in 0..3 {
                s += (self.m[i][j] - other.m[i][j]).norm_sqr();
            }
        }
        s.sqrt()
    }

    /// Project back onto SU(3): Gram–Schmidt the first two rows, row 2 = conj(row0 x row1).
    /// Removes the rounding drift that accumulates in long Markov chains.
    pub fn reunitarize(&self) -> Self {
        let mut r = *self;
        let n0 = r.m[0].iter().map(|c| c.norm_sqr()).sum::<T>().sqrt();
        for c in r.m[0].iter_mut() {
            *c = *c / n0;
        }
        let dot: Complex<T> = (0..3)
            .map(|k| r.m[0][k].conj() * r.m[1][k])
            .fold(Complex::new(T::zero(), T::zero()), |a, b| a + b);
        for k in 0..3 {
            let v = r.m[0][k] * dot;
            r.m[1][k] -= v;
        }
        let n1 = r.m[1].iter().map(|c| c.norm_sqr()).sum::<T>().sqrt();
        for c in r.m[1].iter_mut() {
            *c = *c / n1;
        }
        r.m[2] = third_row(&r.m[0], &r.m[1]);
        r
    }

    /// A Haar-random SU(3) matrix (QR of a complex Gaussian matrix, phases fixed, det = 1).
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut r = Self::zero();
        for i in 0..3 {
            for j in 0..3 {
                let a: f64 = StandardNormal.sample(rng);
                let b: f64 = StandardNormal.sample(rng);
                r.m[i][j] = Complex::new(T::from_f64(a), T::from_f64(b));
            }
        }
        r.reunitarize()
    }

    pub fn cast<U: Real>(&self) -> Su3<U> {
        let mut r = Su3::<U>::zero();
        for i in 0..3 {
            for j in 0..3 {
                r.m[i][j] = Complex::new(
                    U::from_f64(self.m[i][j].re.to_f64()),
                    U::from_f64(self.m[i][j].im.to_f64()),
                );
            }
        }
        r
    }
}

/// conj(a x b): the row that completes two orthonormal rows to an SU(3) matrix.
pub fn third_row<T: Real>(a: &ColorVec<T>, b: &ColorVec<T>) -> ColorVec<T> {
    [
        (a[1] * b[2] - a[2] * b[1]).conj(),
        (a[2] * b[0] - a[0] * b[2]).conj(),
        (a[0] * b[1] - a[1] * b[0]).conj(),
    ]
}

impl<T: Real> Mul for Su3<T> {
    type Output = Su3<T>;
    fn mul(self, o: Su3<T>) -> Su3<T> {
        let mut r = Su3::zero();
        for i in 0..3 {
            for j in 0..3 {
                r.m[i][j] =
                    self.m[i][0] * o.m[0][j] + self.m[i][1] * o.m[1][j] + self.m[i][2] * o.m[2][j];
            }
        }
        r
    }
}

impl<T: Real> Add for Su3<T> {
    type Output = Su3<T>;
    fn add(self, o: Su3<T>) -> Su3<T> {
        let mut r = self;
        r += o;
        r
    }
}

impl<T: Real> AddAssign for Su3<T> {
    fn add_assign(&mut self, o: Su3<T>) {
        for i in 0..3 {
            for j in 0..3 {
                self.m[i][j] += o.m[i][j];
            }
        }
    }
}

impl<T: Real> Sub for Su3<T> {
    type Output = Su3<T>;
    fn sub(self, o: Su3<T>) -> Su3<T> {
        let mut r = self;
        for i in 0..3 {
            for j in 0..3 {
                r.m[i][j] -= o.m[i][j];
            }
        }
        r
    }
}
