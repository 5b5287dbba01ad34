//! Get Log Page (NVMe Base 2.0 §5.16): the SMART / Health Information log (LID 02h,
//! §5.16.1.3), controller-wide, with the data units and host commands counted from the I/O
//! the model completed. Every other log page is Invalid Log Page.

use zerocopy::IntoBytes;

use super::queues::Outcome;
use super::State;
use crate::command::{AdminCommand, GetLogPage};
use crate::log_page::{log_page_slice, LogPageId, SmartHealth};
use crate::{Sqe, Status};

/// The SMART / Health values of the model that its I/O does not drive; set them with
/// [`super::SoftController::set_health`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelHealth {
    /// Critical Warning bits ([`SmartHealth::WARN_SPARE`] ...).
    pub critical_warning: u8,
    /// Composite Temperature in kelvin.
    pub temperature_kelvin: u16,
    /// Available Spare, percent.
    pub available_spare: u8,
    /// Available Spare Threshold, percent.
    pub spare_threshold: u8,
    /// Percentage Used (may exceed 100).
    pub percentage_used: u8,
    pub power_cycles: u64,
    pub power_on_hours: u64,
    pub unsafe_shutdowns: u64,
    pub media_errors: u64,
    pub error_log_entries: u64,
}

impl Default for ModelHealth {
    /// A new drive at 35 °C with all of its spare.
    fn default() -> ModelHealth {
        ModelHealth {
            critical_warning: 0,
            temperature_kelvin: 308,
            available_spare: 100,
            spare_threshold: 10,
            percentage_used: 0,
            power_cycles: 1,
            power_on_hours: 0,
            unsafe_shutdowns: 0,
            media_errors: 0,
            error_log_entries: 0,
        }
    }
}

/// What the completed I/O adds to the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct IoCounters {
    /// Bytes of logical block data read (Read) and written (Write, Zone Append).
    pub bytes_read: u128,
    pub bytes_written: u128,
    /// Read commands; Write and Zone Append commands (successful ones).
    pub read_commands: u128,
    pub write_commands: u128,
}

/// Largest log page transfer when MDTS sets no limit.
const MAX_LOG_TRANSFER: u64 = 1 << 20;

impl State {
    /// Count a successful Read (`write` false) or Write / Zone Append of `bytes`.
    pub(super) fn count_io(&mut self, write: bool, bytes: u64) {
        let c = &mut self.io_counters;
        if write {
            c.write_commands += 1;
            c.bytes_written += u128::from(bytes);
        } else {
            c.read_commands += 1;
            c.bytes_read += u128::from(bytes);
        }
    }

    /// Get Log Page: the requested part of the SMART / Health log, zero past its end.
    pub(super) fn get_log_page(&mut self, sqe: &Sqe) -> Outcome {
        let glp = match AdminCommand::decode(sqe) {
            Ok(AdminCommand::GetLogPage(glp)) => glp,
            _ => return Outcome::status(Status::INVALID_FIELD.with_dnr()),
        };
        self.log_page(sqe, &glp).into()
    }

    fn log_page(&self, sqe: &Sqe, glp: &GetLogPage) -> Result<(), Status> {
        let page = match glp.lid {
            LogPageId::SmartHealth => {
                // Not kept per namespace (Identify Controller LPA bit 0 clear): a namespace
                // other than 0h or FFFFFFFFh is Invalid Field (NVMe Base 2.0 §5.16.1.3).
                if glp.nsid != 0 && glp.nsid != u32::MAX {
                    return Err(Status::INVALID_FIELD.with_dnr());
                }
                self.smart_health()
            }
            _ => return Err(Status::INVALID_LOG_PAGE.with_dnr()),
        };
        // Index offsets are not supported (LPA bit 5 clear); MDTS limits the transfer.
        let len = glp.len_bytes();
        if glp.ot || len > self.mdts_bytes().unwrap_or(MAX_LOG_TRANSFER) {
            return Err(Status::INVALID_FIELD.with_dnr());
        }
        let data =
            log_page_slice(page.as_bytes(), glp.lpo, len as usize).map_err(|e| e.status())?;
        self.deliver_data(sqe, &data, false)
    }

    fn smart_health(&self) -> SmartHealth {
        let h = &self.health;
        let io = &self.io_counters;
        let mut page = SmartHealth::zeroed();
        page.critical_warning = h.critical_warning;
        page.composite_temperature.set(h.temperature_kelvin);
        page.available_spare = h.available_spare;
        page.available_spare_threshold = h.spare_threshold;
        page.percentage_used = h.percentage_used;
        page.data_units_read
            .set(SmartHealth::data_units(io.bytes_read));
        page.data_units_written
            .set(SmartHealth::data_units(io.bytes_written));
        page.host_read_commands.set(io.read_commands);
        page.host_write_commands.set(io.write_commands);
        page.power_cycles.set(u128::from(h.power_cycles));
        page.power_on_hours.set(u128::from(h.power_on_hours));
        page.unsafe_shutdowns.set(u128::from(h.unsafe_shutdowns));
        page.media_errors.set(u128::from(h.media_errors));
        page.error_log_entries.set(u128::from(h.error_log_entries));
        page
    }
}
