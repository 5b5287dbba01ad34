//! Get Log Page: the SMART / Health log, what the I/O adds to it, offsets and refusals.

use super::*;
use crate::log_page::SmartHealth;

#[test]
fn smart_health_counts_reads_and_writes() {
    let mut h = Host::ready(ModelConfig::default());
    let s = h.smart();
    assert_eq!(
        (
            s.critical_warning,
            s.composite_temperature.get(),
            s.available_spare,
            s.available_spare_threshold,
            s.percentage_used,
            s.power_cycles.get(),
        ),
        (0, 308, 100, 10, 0, 1)
    );
    assert_eq!(
        (
            s.data_units_read.get(),
            s.data_units_written.get(),
            s.host_read_commands.get(),
            s.host_write_commands.get()
        ),
        (0, 0, 0, 0)
    );
    // 128 KiB writes (MDTS 5): 256 units of 512 bytes each; a data unit is 1000 of them,
    // rounded up.
    let buf = h.pool.alloc(32 * PAGE).unwrap();
    h.fill(&[&buf], 1);
    for i in 0..3 {
        let c = h.rw(0x01, 1, i * 32, 32, &[&buf], 32 * PAGE);
        assert!(c.status().is_success());
    }
    assert!(h.rw(0x02, 1, 0, 2, &[&buf], 2 * PAGE).status().is_success());
    // Failed commands count nothing.
    assert_eq!(
        h.rw(0x01, 1, 1024, 1, &[&buf], PAGE).status(),
        Status::LBA_OUT_OF_RANGE
    );
    assert_eq!(
        h.rw(0x02, 1, 1023, 2, &[&buf], 2 * PAGE).status(),
        Status::LBA_OUT_OF_RANGE
    );
    let s = h.smart();
    assert_eq!(
        (
            s.data_units_read.get(),
            s.data_units_written.get(),
            s.host_read_commands.get(),
            s.host_write_commands.get()
        ),
        (1, 1, 1, 3),
        "768 units written, 16 read"
    );
    for i in 3..5 {
        assert!(h
            .rw(0x01, 1, i * 32, 32, &[&buf], 32 * PAGE)
            .status()
            .is_success());
    }
    let s = h.smart();
    assert_eq!(
        (s.data_units_written.get(), s.host_write_commands.get()),
        (2, 5),
        "1280 units written"
    );
    // Admin commands and Flush are not host reads or writes.
    h.identify(0x01, 0, 0);
    assert!(h.cmd(1, sqe(0x00, 1)).status().is_success());
    let again = h.smart();
    assert_eq!(again, s);
}

#[test]
fn zone_appends_are_host_writes() {
    let mut h = Host::ready(zoned_cfg(0, 0));
    let buf = h.pool.alloc(2 * PAGE).unwrap();
    let mut s = sqe(0x7d, 1);
    s.cdw10.set(32);
    s.cdw12.set(1);
    let mut lists = Vec::new();
    h.prps(&mut s, &[&buf], 2 * PAGE, &mut lists);
    assert!(h.cmd(1, s).status().is_success());
    assert!(zone_write(&mut h, 0, 1).status().is_success());
    // Report Zones moves data to the host but reads no user data.
    assert!(report(&mut h, 0, 0, false, PAGE).0.is_success());
    let log = h.smart();
    assert_eq!(
        (
            log.host_write_commands.get(),
            log.host_read_commands.get(),
            log.data_units_written.get(),
            log.data_units_read.get()
        ),
        (2, 0, 1, 0)
    );
}

#[test]
fn health_values_set_on_the_model_are_reported() {
    let mut h = Host::ready(ModelConfig::default());
    h.ctrl.set_health(ModelHealth {
        critical_warning: SmartHealth::WARN_SPARE | SmartHealth::WARN_TEMPERATURE,
        temperature_kelvin: 358,
        available_spare: 5,
        spare_threshold: 10,
        percentage_used: 104,
        power_cycles: 7,
        power_on_hours: 12_345,
        unsafe_shutdowns: 2,
        media_errors: 3,
        error_log_entries: 4,
    });
    let s = h.smart();
    assert_eq!(s.critical_warning, 0b11);
    assert_eq!(s.composite_temperature.get(), 358);
    assert_eq!((s.available_spare, s.available_spare_threshold), (5, 10));
    assert_eq!(s.percentage_used, 104);
    assert_eq!(
        (
            s.power_cycles.get(),
            s.power_on_hours.get(),
            s.unsafe_shutdowns.get(),
            s.media_errors.get(),
            s.error_log_entries.get()
        ),
        (7, 12_345, 2, 3, 4)
    );
    assert_eq!(h.ctrl.health().temperature_kelvin, 358);
}

#[test]
fn log_page_offsets_lengths_and_refusals() {
    let mut h = Host::ready(ModelConfig::default());
    // The first dword: critical warning, composite temperature (LE), available spare.
    let (c, d) = h.log_page(0x02, u32::MAX, 0, 1);
    assert!(c.status().is_success());
    assert_eq!(d, [0, 0x34, 0x01, 100]);
    // NSID 0 is the controller too; past the end of the page reads zeroes.
    let (c, d) = h.log_page(0x02, 0, 508, 2);
    assert!(c.status().is_success());
    assert_eq!(d, [0; 8]);
    let (c, d) = h.log_page(0x02, 0, 2, 1);
    assert_eq!(
        c.status(),
        Status::INVALID_FIELD.with_dnr(),
        "unaligned LPO"
    );
    assert_eq!(d, [0; 4]);
    let (c, _) = h.log_page(0x02, 0, 516, 1);
    assert_eq!(
        c.status(),
        Status::INVALID_FIELD.with_dnr(),
        "LPO past the page"
    );
    let (c, _) = h.log_page(0x02, 1, 0, 128);
    assert_eq!(
        c.status(),
        Status::INVALID_FIELD.with_dnr(),
        "per namespace"
    );
    // More than MDTS (128 KiB).
    let (c, _) = h.log_page(0x02, 0, 0, 32 * 1024 + 1);
    assert_eq!(c.status(), Status::INVALID_FIELD.with_dnr(), "over MDTS");
    // Index offsets (OT, CDW14 bit 23) are not supported.
    let buf = h.pool.alloc(PAGE).unwrap();
    let mut s = crate::driver::admin::get_log_page(0x02, u32::MAX, 128);
    s.cdw14.set(1 << 23);
    s.dptr[0..8].copy_from_slice(&buf.iova().to_le_bytes());
    assert_eq!(h.cmd(0, s).status(), Status::INVALID_FIELD.with_dnr());
    for lid in [0x00, 0x01, 0x03, 0x05, 0x70, 0xbf, 0xc0] {
        let (c, _) = h.log_page(lid, u32::MAX, 0, 16);
        assert_eq!(
            c.status(),
            Status::INVALID_LOG_PAGE.with_dnr(),
            "LID {lid:#04x}"
        );
    }
}
