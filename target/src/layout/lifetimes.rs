//! Whether a block's age says anything about how long it will live, judged from the ages at
//! which host writes replace blocks: the one thing hot/cold separation rests on.
//!
//! Where it does (a few blocks rewritten often, the rest seldom), the ages at death are
//! spread far wider than an exponential's (a mixture of short and long lives), and keeping
//! young and old data in zones of their own leaves the young zones nearly empty when GC
//! comes. Where lifetimes are exponential (uniform random writes: memoryless, an old block
//! is as likely to be rewritten next as a young one) or more regular than that (sequential
//! rewrites), age predicts nothing, and separate streams only keep more zones open and part
//! empty, space GC then lacks. The measure is the squared coefficient of variation of the
//! ages, exactly 1 for an exponential; the pool separates above [`SEPARATE_ABOVE`] and
//! writes everything to one stream under [`MERGE_BELOW`].
//!
//! An age counts from the block's last write or GC move (its zone's stamp), so GC, which
//! moves long-lived data again and again, cuts long ages short: uniform random writes
//! measure under 1 (about 0.37 where GC moves each block four times in its life), while
//! 90:10 hot/cold writes measure 3 to 10 (`layout_bench`).

/// Squared coefficient of variation above which ages are taken to predict lifetimes.
pub const SEPARATE_ABOVE: f64 = 1.5;
/// ... and under which they are taken not to (between the two the last verdict stands).
pub const MERGE_BELOW: f64 = 1.25;

/// Deaths counted per verdict at least (fewer leave the estimate noisy: at 1024 exponential
/// ages its standard deviation is about 0.14).
pub const MIN_EPOCH: u64 = 1024;

/// The ages at death, the older ones weighing less: the sums are halved at each verdict.
#[derive(Clone, Debug)]
pub struct Lifetimes {
    n: f64,
    sum: f64,
    sum_sq: f64,
    since: u64,
    separate: bool,
}

impl Default for Lifetimes {
    /// Separating until the first verdict.
    fn default() -> Self {
        Lifetimes {
            n: 0.0,
            sum: 0.0,
            sum_sq: 0.0,
            since: 0,
            separate: true,
        }
    }
}

impl Lifetimes {
    /// A block replaced at `age` (pool writes since it was written); a verdict every
    /// `epoch` deaths (at least [`MIN_EPOCH`]).
    pub fn died(&mut self, age: u64, epoch: u64) {
        let a = age as f64;
        self.n += 1.0;
        self.sum += a;
        self.sum_sq += a * a;
        self.since += 1;
        if self.since >= epoch.max(MIN_EPOCH) {
            self.since = 0;
            if let Some(d) = self.dispersion() {
                if d > SEPARATE_ABOVE {
                    self.separate = true;
                } else if d < MERGE_BELOW {
                    self.separate = false;
                }
            }
            self.n /= 2.0;
            self.sum /= 2.0;
            self.sum_sq /= 2.0;
        }
    }

    /// The squared coefficient of variation of the ages counted (none before any age above
    /// zero).
    pub fn dispersion(&self) -> Option<f64> {
        let mean = self.sum / self.n;
        (self.n > 0.0 && mean > 0.0).then(|| (self.sum_sq / self.n) / (mean * mean) - 1.0)
    }

    /// Whether streams are kept apart by age.
    pub fn separate(&self) -> bool {
        self.separate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn exponential(rng: &mut StdRng, mean: f64) -> u64 {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        (-u.ln() * mean) as u64
    }

    /// Uniform random rewrites of a volume: exponential ages, one stream.
    #[test]
    fn exponential_ages_merge() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut l = Lifetimes::default();
        assert!(l.separate());
        for _ in 0..20_000 {
            l.died(exponential(&mut rng, 500_000.0), 4096);
        }
        let d = l.dispersion().unwrap();
        assert!((0.9..1.1).contains(&d), "{d}");
        assert!(!l.separate());
    }

    /// 90% of writes to a tenth of the blocks: each class's ages exponential, the hot ones
    /// 81 times shorter. Separated, and merged again once the writes turn uniform.
    #[test]
    fn hot_and_cold_separate_until_the_writes_turn_uniform() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut l = Lifetimes::default();
        for _ in 0..20_000 {
            l.died(exponential(&mut rng, 500_000.0), 4096);
        }
        assert!(!l.separate());
        for _ in 0..20_000 {
            let mean = if rng.random_range(0..10) < 9 {
                1.0
            } else {
                81.0
            };
            l.died(exponential(&mut rng, mean * 10_000.0), 4096);
        }
        assert!(l.dispersion().unwrap() > 3.0, "{:?}", l.dispersion());
        assert!(l.separate());
        for _ in 0..40_000 {
            l.died(exponential(&mut rng, 500_000.0), 4096);
        }
        assert!(!l.separate(), "{:?}", l.dispersion());
    }

    /// Sequential rewrites (every block lives as long as the next) merge; between the
    /// thresholds the verdict stands, whichever it is.
    #[test]
    fn regular_ages_merge_and_the_middle_keeps_the_verdict() {
        // Ages of 0 (7 in 12) and 2000: CV² = 12/5 - 1 = 1.4.
        let middle = |l: &mut Lifetimes| {
            for i in 0..6_000u64 {
                l.died(if i % 12 < 7 { 0 } else { 2000 }, 1024);
            }
            let d = l.dispersion().unwrap();
            assert!((MERGE_BELOW..SEPARATE_ABOVE).contains(&d), "{d}");
        };
        let mut l = Lifetimes::default();
        middle(&mut l);
        assert!(l.separate());
        for _ in 0..5_000 {
            l.died(1000, 1024);
        }
        assert!(l.dispersion().unwrap() < 0.1, "{:?}", l.dispersion());
        assert!(!l.separate());
        middle(&mut l);
        assert!(!l.separate());
    }

    /// Too few deaths for a verdict keep the last one; no age above zero gives none.
    #[test]
    fn a_verdict_needs_min_epoch_deaths() {
        let mut l = Lifetimes::default();
        for _ in 0..MIN_EPOCH - 1 {
            l.died(7, 1);
        }
        assert!(l.separate());
        l.died(7, 1);
        assert!(!l.separate());
        let mut l = Lifetimes::default();
        assert_eq!(l.dispersion(), None);
        for _ in 0..MIN_EPOCH {
            l.died(0, 1);
        }
        assert!(l.separate());
    }
}
