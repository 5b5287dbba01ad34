//! `NvmeDriver::log_page` and `smart_health` against the model: the SMART / Health log as the
//! I/O grows it, a log page the controller refuses, and a controller that is gone or silent.

use ferrofab_sync::CountedLock as _;

use super::*;
use crate::backend::{Backend, BackendError};
use crate::driver::clock::Clock;
use crate::driver::log_page::NSID_ALL;
use crate::driver::model::{Fault, ModelHealth};
use crate::log_page::SmartHealth;
use crate::Status;

#[test]
fn smart_health_grows_with_the_io_done() {
    let r = rig(ModelConfig::default());
    let s = r.driver.smart_health().unwrap();
    assert_eq!(s.composite_temperature.get(), 308);
    assert_eq!((s.available_spare, s.available_spare_threshold), (100, 10));
    assert_eq!((s.critical_warning, s.percentage_used), (0, 0));
    assert_eq!(
        (s.data_units_written.get(), s.host_write_commands.get()),
        (0, 0)
    );
    let ns = r.driver.namespace(1).unwrap();
    // 300 blocks of 4 KiB: ten commands at MDTS (32 blocks), 2400 units of 512 bytes.
    let data = pattern(300 * 4096, 5);
    Backend::write(&*ns, 0, &data, false).unwrap();
    let mut back = vec![0u8; 4096];
    Backend::read(&*ns, 7, &mut back).unwrap();
    let s = r.driver.smart_health().unwrap();
    assert_eq!(
        (
            s.data_units_written.get(),
            s.host_write_commands.get(),
            s.data_units_read.get(),
            s.host_read_commands.get()
        ),
        (3, 10, 1, 1)
    );
    // Another 300 blocks: 4800 units, data units written 5.
    Backend::write(&*ns, 300, &data, false).unwrap();
    let later = r.driver.smart_health().unwrap();
    assert_eq!(later.data_units_written.get(), 5);
    assert_eq!(later.host_write_commands.get(), 20);
    // The raw page is the same log; a shorter read is its start, cut to the byte.
    let raw = r.driver.log_page(0x02, NSID_ALL, 512).unwrap();
    assert_eq!(SmartHealth::from_bytes(&raw), Some(later));
    let head = r.driver.log_page(0x02, NSID_ALL, 3).unwrap();
    assert_eq!(head, [0, 0x34, 0x01]);
    let ex = r.ctrl.executed();
    assert_eq!(ex.iter().filter(|e| **e == (0, 0x02)).count(), 5);
}

#[test]
fn what_the_model_is_set_to_is_read() {
    let r = rig(ModelConfig::default());
    r.ctrl.set_health(ModelHealth {
        critical_warning: SmartHealth::WARN_RELIABILITY,
        temperature_kelvin: 323,
        percentage_used: 42,
        unsafe_shutdowns: 9,
        ..ModelHealth::default()
    });
    let s = r.driver.smart_health().unwrap();
    assert_eq!(s.critical_warning, SmartHealth::WARN_RELIABILITY);
    assert_eq!(s.composite_temperature.get(), 323);
    assert_eq!(s.percentage_used, 42);
    assert_eq!(s.unsafe_shutdowns.get(), 9);
}

#[test]
fn a_refused_log_page_is_an_error_with_the_controllers_status() {
    let r = rig(ModelConfig::default());
    for (lid, nsid, want) in [
        (0x01, NSID_ALL, Status::INVALID_LOG_PAGE.with_dnr()),
        (0x80, NSID_ALL, Status::INVALID_LOG_PAGE.with_dnr()),
        (0x02, 1, Status::INVALID_FIELD.with_dnr()),
    ] {
        match r.driver.log_page(lid, nsid, 512) {
            Err(DriverError::Admin { opcode, status }) => {
                assert_eq!((opcode, status), (0x02, want), "LID {lid:#04x} NSID {nsid}")
            }
            other => panic!("LID {lid:#04x}: expected a failed status, got {other:?}"),
        }
    }
    for len in [0, 8193] {
        assert!(matches!(
            r.driver.log_page(0x02, NSID_ALL, len),
            Err(DriverError::Options(_))
        ));
    }
    // Two pages (PRP1 and PRP2): the log, then zeroes.
    let two = r.driver.log_page(0x02, NSID_ALL, 8192).unwrap();
    assert_eq!(&two[..4], &[0, 0x34, 0x01, 100]);
    assert!(two[512..].iter().all(|b| *b == 0));
    // The driver is fine afterwards.
    assert_eq!(r.driver.gone(), None);
    assert!(r.driver.smart_health().is_ok());
}

#[test]
fn a_gone_driver_reads_no_log() {
    let r = rig(ModelConfig::default());
    r.driver.shutdown().unwrap();
    match r.driver.smart_health() {
        Err(DriverError::Gone(why)) => assert!(why.contains("shut down"), "{why}"),
        other => panic!("expected Gone, got {other:?}"),
    }

    let r = rig(ModelConfig::default());
    let ns = r.driver.namespace(1).unwrap();
    r.ctrl.inject(Fault::Removed);
    let t = r.clock.now();
    assert!(matches!(r.driver.smart_health(), Err(DriverError::Gone(_))));
    // Found at once from CSTS, without waiting for the admin command's timeout; the I/O
    // path learns it too.
    assert_eq!(r.clock.now(), t);
    assert!(r.driver.gone().unwrap().contains("all ones"));
    assert!(matches!(Backend::flush(&*ns), Err(BackendError::Gone(_))));

    let r = rig(ModelConfig::default());
    r.ctrl.inject(Fault::Fatal);
    assert!(matches!(r.driver.smart_health(), Err(DriverError::Fatal)));
    assert!(r.driver.gone().is_some());
}

#[test]
fn a_log_page_the_controller_never_completes_times_out() {
    let r = rig(ModelConfig::default());
    r.ctrl.inject(Fault::Drop {
        qid: 0,
        opcode: 0x02,
    });
    let free = r.driver.pool.free_pages();
    let t = r.clock.now();
    match r.driver.smart_health() {
        Err(DriverError::AdminTimeout { opcode, after }) => {
            assert_eq!((opcode, after), (0x02, TIMEOUT))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(r.clock.now() - t >= TIMEOUT);
    // The controller may still write the buffer: it stays out of the pool.
    assert_eq!(r.driver.admin.lock_counted().stale_buffers(), 1);
    assert_eq!(r.driver.pool.free_pages(), free - 1);
    // The controller is still there, and the next read is answered.
    assert_eq!(r.driver.gone(), None);
    assert_eq!(
        r.driver.smart_health().unwrap().composite_temperature.get(),
        308
    );
}
