//! The driver end to end against the software controller model, on a fake clock.

mod faults;
mod health;
mod init;
mod io;
mod polled;
mod zoned;

use std::sync::Arc;
use std::time::Duration;

use super::clock::FakeClock;
use super::dma::HeapDma;
use super::error::DriverError;
use super::model::{ModelConfig, SoftController};
use super::nvme_driver::{DriverOptions, NvmeDriver};
use super::pool::PagePool;

type Driver = NvmeDriver<Arc<HeapDma>>;

/// A started driver, the model it drives, and the clock it runs on.
struct Rig {
    driver: Arc<Driver>,
    ctrl: SoftController,
    clock: Arc<FakeClock>,
}

const TIMEOUT: Duration = Duration::from_secs(1);
/// The fake clock's step per idle poll.
const STEP: Duration = Duration::from_millis(1);

fn options() -> DriverOptions {
    DriverOptions {
        io_queues: 2,
        owned_queues: 0,
        queue_depth: 64,
        timeout: TIMEOUT,
    }
}

/// Host memory of `mib` MiB for a model of `cfg`; the model and the driver's pool share it.
fn parts(cfg: ModelConfig, mib: usize) -> (SoftController, PagePool<Arc<HeapDma>>, Arc<FakeClock>) {
    let host = Arc::new(HeapDma::new(mib << 20, 0x1_0000_0000));
    let ctrl = SoftController::new(cfg, Arc::clone(&host));
    let pool = PagePool::new(host, 4096).unwrap();
    (ctrl, pool, Arc::new(FakeClock::new(STEP)))
}

fn start(
    ctrl: &SoftController,
    pool: PagePool<Arc<HeapDma>>,
    clock: &Arc<FakeClock>,
    opts: DriverOptions,
) -> Result<Arc<Driver>, DriverError> {
    NvmeDriver::start_with_clock(
        Box::new(ctrl.clone()),
        pool,
        opts,
        Box::new(Arc::clone(clock)),
    )
}

fn start_with(
    cfg: ModelConfig,
    opts: DriverOptions,
    mib: usize,
) -> (
    Result<Arc<Driver>, DriverError>,
    SoftController,
    Arc<FakeClock>,
) {
    let (ctrl, pool, clock) = parts(cfg, mib);
    let driver = start(&ctrl, pool, &clock, opts);
    (driver, ctrl, clock)
}

fn rig(cfg: ModelConfig) -> Rig {
    let (driver, ctrl, clock) = start_with(cfg, options(), 16);
    Rig {
        driver: driver.unwrap(),
        ctrl,
        clock,
    }
}

/// `len` bytes of a pattern that differs per `seed` and per position.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(u32::from(seed) * 7) as u8
                ^ (i >> 12) as u8
        })
        .collect()
}
