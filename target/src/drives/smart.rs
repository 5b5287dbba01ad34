//! A drive's SMART / Health Information log (NVMe Base 2.0 §5.16.1.3) as the management plane
//! shows it: the fields an operator reads, typed, and what the critical warning bits mean.

use nvme::log_page::SmartHealth;

/// Bytes in one data unit: 1000 units of 512 bytes (§5.16.1.3, Data Units Read).
pub const DATA_UNIT_BYTES: u128 = 512 * 1000;
/// 0 °C in hundredths of a kelvin.
const ZERO_CELSIUS_CENTIKELVIN: i32 = 27_315;

/// One Critical Warning bit (§5.16.1.3, byte 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmartWarning {
    /// Bit 0: available spare fell below the threshold.
    AvailableSpare,
    /// Bit 1: a temperature is above an over-temperature or below an under-temperature
    /// threshold.
    Temperature,
    /// Bit 2: NVM subsystem reliability degraded (media errors, internal errors).
    Reliability,
    /// Bit 3: all of the media is read only.
    ReadOnly,
    /// Bit 4: the volatile memory backup device failed.
    VolatileMemoryBackup,
    /// Bit 5: the Persistent Memory Region became read only or unreliable.
    PersistentMemoryRegion,
}

impl SmartWarning {
    /// Every bit the specification defines, lowest first.
    pub const ALL: [SmartWarning; 6] = [
        SmartWarning::AvailableSpare,
        SmartWarning::Temperature,
        SmartWarning::Reliability,
        SmartWarning::ReadOnly,
        SmartWarning::VolatileMemoryBackup,
        SmartWarning::PersistentMemoryRegion,
    ];

    pub fn bit(self) -> u8 {
        match self {
            SmartWarning::AvailableSpare => SmartHealth::WARN_SPARE,
            SmartWarning::Temperature => SmartHealth::WARN_TEMPERATURE,
            SmartWarning::Reliability => SmartHealth::WARN_RELIABILITY,
            SmartWarning::ReadOnly => SmartHealth::WARN_READ_ONLY,
            SmartWarning::VolatileMemoryBackup => SmartHealth::WARN_VOLATILE_BACKUP,
            SmartWarning::PersistentMemoryRegion => 1 << 5,
        }
    }

    /// How bad it is: data at risk or lost (reliability, read only, a failed backup or
    /// persistent memory region) is critical; a spare below its threshold or a temperature
    /// out of range is a warning.
    pub fn severity(self) -> SmartSeverity {
        match self {
            SmartWarning::AvailableSpare | SmartWarning::Temperature => SmartSeverity::Warning,
            SmartWarning::Reliability
            | SmartWarning::ReadOnly
            | SmartWarning::VolatileMemoryBackup
            | SmartWarning::PersistentMemoryRegion => SmartSeverity::Critical,
        }
    }

    /// Whether the drive predicts its own failure: its spare is used up below the threshold,
    /// its reliability is degraded or its media went read only.
    pub fn predicts_failure(self) -> bool {
        matches!(
            self,
            SmartWarning::AvailableSpare | SmartWarning::Reliability | SmartWarning::ReadOnly
        )
    }
}

/// The worst of a log's critical warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SmartSeverity {
    Ok,
    Warning,
    Critical,
}

/// The SMART / Health log's fields an operator reads. Counters are 128-bit as in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmartLog {
    /// Critical Warning, byte 0 (see [`SmartWarning`]).
    pub critical_warning: u8,
    /// Composite Temperature, kelvin.
    pub temperature_kelvin: u16,
    /// Available Spare, percent of the spare capacity left.
    pub available_spare_percent: u8,
    /// Available Spare Threshold, percent.
    pub available_spare_threshold_percent: u8,
    /// Percentage Used: the vendor's estimate of the life used, may exceed 100.
    pub percentage_used: u8,
    /// Data Units Read / Written: thousands of 512-byte units, rounded up.
    pub data_units_read: u128,
    pub data_units_written: u128,
    pub host_read_commands: u128,
    pub host_write_commands: u128,
    pub power_cycles: u128,
    pub power_on_hours: u128,
    pub unsafe_shutdowns: u128,
    /// Unrecovered data integrity errors.
    pub media_errors: u128,
    /// Error Information log entries over the controller's life.
    pub error_log_entries: u128,
}

impl SmartLog {
    pub fn from_page(page: &SmartHealth) -> SmartLog {
        SmartLog {
            critical_warning: page.critical_warning,
            temperature_kelvin: page.composite_temperature.get(),
            available_spare_percent: page.available_spare,
            available_spare_threshold_percent: page.available_spare_threshold,
            percentage_used: page.percentage_used,
            data_units_read: page.data_units_read.get(),
            data_units_written: page.data_units_written.get(),
            host_read_commands: page.host_read_commands.get(),
            host_write_commands: page.host_write_commands.get(),
            power_cycles: page.power_cycles.get(),
            power_on_hours: page.power_on_hours.get(),
            unsafe_shutdowns: page.unsafe_shutdowns.get(),
            media_errors: page.media_errors.get(),
            error_log_entries: page.error_log_entries.get(),
        }
    }

    /// The Composite Temperature in °C (kelvin - 273.15, to the hundredth: 323 K is 49.85).
    pub fn temperature_celsius(&self) -> f64 {
        f64::from(i32::from(self.temperature_kelvin) * 100 - ZERO_CELSIUS_CENTIKELVIN) / 100.0
    }

    /// The critical warning bits set, lowest first (reserved bits 7:6 are left out).
    pub fn warnings(&self) -> impl Iterator<Item = SmartWarning> + '_ {
        SmartWarning::ALL
            .into_iter()
            .filter(|w| self.critical_warning & w.bit() != 0)
    }

    /// The worst warning set, or [`SmartSeverity::Ok`].
    pub fn severity(&self) -> SmartSeverity {
        self.warnings()
            .map(SmartWarning::severity)
            .max()
            .unwrap_or(SmartSeverity::Ok)
    }

    pub fn predicts_failure(&self) -> bool {
        self.warnings().any(SmartWarning::predicts_failure)
    }

    /// Life left by the drive's own estimate: 100 - Percentage Used, at least 0.
    pub fn life_left_percent(&self) -> u8 {
        100u8.saturating_sub(self.percentage_used)
    }

    /// Bytes `units` data units stand for (at most: the log rounds up).
    pub fn data_unit_bytes(units: u128) -> u128 {
        units.saturating_mul(DATA_UNIT_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_warnings_and_severity() {
        let mut page = SmartHealth::zeroed();
        page.composite_temperature.set(323);
        page.percentage_used = 7;
        page.data_units_written.set(3);
        let log = SmartLog::from_page(&page);
        assert_eq!(log.temperature_celsius(), 49.85);
        assert_eq!(
            (log.severity(), log.predicts_failure()),
            (SmartSeverity::Ok, false)
        );
        assert_eq!(log.life_left_percent(), 93);
        assert_eq!(SmartLog::data_unit_bytes(log.data_units_written), 1_536_000);
        assert_eq!(SmartLog::data_unit_bytes(u128::MAX), u128::MAX);

        page.critical_warning = SmartHealth::WARN_TEMPERATURE | 0xc0;
        let log = SmartLog::from_page(&page);
        assert_eq!(
            log.warnings().collect::<Vec<_>>(),
            [SmartWarning::Temperature]
        );
        assert_eq!(
            (log.severity(), log.predicts_failure()),
            (SmartSeverity::Warning, false)
        );
        page.critical_warning = SmartHealth::WARN_SPARE | SmartHealth::WARN_READ_ONLY;
        page.percentage_used = 180;
        let log = SmartLog::from_page(&page);
        assert_eq!(
            log.warnings().collect::<Vec<_>>(),
            [SmartWarning::AvailableSpare, SmartWarning::ReadOnly]
        );
        assert_eq!(
            (log.severity(), log.predicts_failure()),
            (SmartSeverity::Critical, true)
        );
        assert_eq!(log.life_left_percent(), 0);
        page.critical_warning = 1 << 5;
        assert_eq!(
            SmartLog::from_page(&page).severity(),
            SmartSeverity::Critical
        );
    }
}
