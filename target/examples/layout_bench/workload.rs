//! Which blocks the overwrite phases write.

use rand::rngs::StdRng;
use rand::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Every block of the volume equally likely.
    Uniform,
    /// 90% of writes to the first 10% of the blocks, the other 10% to the other 90%.
    HotCold,
}

impl Pattern {
    /// Whether `lba` is in the hot set (every block of a uniform workload is cold).
    pub fn is_hot(self, lba: u64, blocks: u64) -> bool {
        self == Pattern::HotCold && lba < (blocks / 10).max(1)
    }

    pub fn next(self, rng: &mut StdRng, blocks: u64) -> u64 {
        match self {
            Pattern::Uniform => rng.random_range(0..blocks),
            Pattern::HotCold => {
                let hot = (blocks / 10).max(1);
                // The hot set is what `is_hot` says it is.
                if rng.random_range(0..10) < 9 {
                    rng.random_range(0..hot)
                } else {
                    rng.random_range(hot..blocks)
                }
            }
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Pattern::Uniform => "uniform random",
            Pattern::HotCold => "90:10 hot/cold",
        }
    }
}

/// How much of the pool a run's volume takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Percent of the raw data zones' capacity (reserve zones and footers included).
    Raw(u64),
    /// Percent of what the pool lets volumes hold (after over-provisioning and the reserve):
    /// the fill an operator sees.
    Usable(u64),
}

impl Fill {
    pub fn blocks(self, s: &target::layout::PoolStats) -> u64 {
        match self {
            Fill::Raw(p) => s.data_zones * s.zone_cap_blocks * p / 100,
            Fill::Usable(p) => s.usable_blocks * p / 100,
        }
    }

    /// "80% of raw (90% of usable)" for a volume of `blocks`.
    pub fn label(self, blocks: u64, raw: u64, usable: u64) -> String {
        match self {
            Fill::Raw(p) => format!("{p}% of raw ({}% of usable)", blocks * 100 / usable),
            Fill::Usable(p) => format!("{p}% of usable ({}% of raw)", blocks * 100 / raw),
        }
    }
}
