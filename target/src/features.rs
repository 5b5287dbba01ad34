//! Get Features and Set Features (NVMe Base 2.0 §5.14, §5.27) for NVM and discovery
//! controllers.
//!
//! Which features exist, on which controller type, and how each behaves under Select and
//! Save comes from one table ([`rules`]); Identify's claims (ONCS bit 4: the Save and Select
//! fields are supported) hold for every feature in it: Select 011b reports each one's
//! capabilities, Saved reads the default (nothing is saveable), Save is refused with Feature
//! Identifier Not Saveable.

use bytes::Bytes;
use fabric::queue::Response;
use nvme::command::{GetFeatures, SetFeatures};
use nvme::features::{
    host_id_extended, ErrorRecovery, FeatureId, NumberOfQueues, PowerManagement, Select,
    SupportedCapabilities, TemperatureThreshold, VolatileWriteCache, WriteAtomicityNormal,
};
use nvme::Status;

use crate::config::MAX_NSID;
use crate::controller::Controller;

const NSID_ALL: u32 = 0xffff_ffff;
/// Temperature Threshold default: over-temperature at 343 K (70 °C).
pub const DEFAULT_TEMPERATURE_THRESHOLD: u16 = 0x0157;

/// How this target implements one feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureRules {
    /// Served by discovery controllers too (NVMe-oF 1.1 §5: Keep Alive Timer and
    /// Asynchronous Event Configuration), not only by I/O controllers.
    pub discovery: bool,
    /// The value is kept per namespace (NSID selects it).
    pub namespace_specific: bool,
    /// Set Features may change it.
    pub changeable: bool,
}

const fn io(namespace_specific: bool, changeable: bool) -> Option<FeatureRules> {
    Some(FeatureRules {
        discovery: false,
        namespace_specific,
        changeable,
    })
}

/// The features this target implements. Every feature the feature table of NVMe Base 2.0
/// (§5.27.1, Figure "Feature Identifiers") makes mandatory for an NVMe-oF I/O controller is
/// here: Arbitration, Power Management, Temperature Threshold, Error Recovery, Number of
/// Queues, Write Atomicity Normal, Asynchronous Event Configuration, Keep Alive Timer and
/// Host Identifier; Volatile Write Cache because Identify VWC reports one. Interrupt
/// Coalescing and Interrupt Vector Configuration are PCIe only.
pub const fn rules(fid: FeatureId) -> Option<FeatureRules> {
    match fid {
        FeatureId::AsyncEventConfiguration | FeatureId::KeepAliveTimer => Some(FeatureRules {
            discovery: true,
            namespace_specific: false,
            changeable: true,
        }),
        FeatureId::Arbitration
        | FeatureId::PowerManagement
        | FeatureId::TemperatureThreshold
        | FeatureId::VolatileWriteCache
        | FeatureId::NumberOfQueues
        | FeatureId::WriteAtomicityNormal => io(false, true),
        FeatureId::ErrorRecovery => io(true, true),
        // NVMe-oF 1.1 §3.3: the host identifier comes from Connect and cannot change.
        FeatureId::HostIdentifier => io(false, false),
        FeatureId::LbaRangeType
        | FeatureId::InterruptCoalescing
        | FeatureId::InterruptVectorConfiguration
        | FeatureId::AutonomousPowerStateTransition
        | FeatureId::HostMemoryBuffer
        | FeatureId::Timestamp
        | FeatureId::HostControlledThermalManagement
        | FeatureId::NonOperationalPowerStateConfig
        | FeatureId::ReadRecoveryLevelConfig
        | FeatureId::PredictableLatencyModeConfig
        | FeatureId::PredictableLatencyModeWindow
        | FeatureId::HostBehaviorSupport
        | FeatureId::SanitizeConfig
        | FeatureId::EnduranceGroupEventConfig
        | FeatureId::IoCommandSetProfile
        | FeatureId::SoftwareProgressMarker
        | FeatureId::ReservationNotificationMask
        | FeatureId::ReservationPersistence
        | FeatureId::NamespaceWriteProtectionConfig
        | FeatureId::Unknown(_) => None,
    }
}

/// The rules of `fid` on this controller, or Invalid Field for a feature it does not have.
fn rules_for(ctrl: &Controller, fid: FeatureId) -> Result<FeatureRules, Status> {
    match rules(fid) {
        Some(r) if r.discovery || !ctrl.is_discovery() => Ok(r),
        _ => Err(Status::INVALID_FIELD.with_dnr()),
    }
}

/// An NSID naming one active namespace (NVMe Base 2.0 §3.2.1.2): Invalid Namespace outside
/// the valid range, Invalid Field for a valid but inactive one.
fn active_nsid(ctrl: &Controller, nsid: u32) -> Result<u32, Status> {
    if nsid == 0 || nsid > MAX_NSID {
        return Err(Status::INVALID_NAMESPACE.with_dnr());
    }
    match ctrl.subsystem().and_then(|s| s.namespace(nsid)) {
        Some(_) => Ok(nsid),
        None => Err(Status::INVALID_FIELD.with_dnr()),
    }
}

/// Get Features (NVMe Base 2.0 §5.14).
pub fn get_features(ctrl: &Controller, gf: &GetFeatures) -> Response {
    match get(ctrl, gf) {
        Ok(r) => r,
        Err(s) => Response::status(s),
    }
}

fn get(ctrl: &Controller, gf: &GetFeatures) -> Result<Response, Status> {
    let rules = rules_for(ctrl, gf.fid)?;
    // §5.14: a namespace-specific feature is read for one active namespace.
    let nsid = if rules.namespace_specific {
        Some(active_nsid(ctrl, gf.nsid)?)
    } else {
        None
    };
    if gf.sel == Select::SupportedCapabilities {
        // Nothing is saveable (§5.14.2).
        let caps = SupportedCapabilities {
            saveable: false,
            namespace_specific: rules.namespace_specific,
            changeable: rules.changeable,
        };
        return Ok(Response::success().with_dw0(caps.to_dw0()));
    }
    // §5.14.1: a feature without a saved value reads its default under Select = Saved.
    let defaults = matches!(gf.sel, Select::Default | Select::Saved);
    let f = ctrl.features().clone();
    let dw0 = match gf.fid {
        FeatureId::Arbitration => {
            if defaults {
                0
            } else {
                f.arbitration
            }
        }
        FeatureId::PowerManagement => PowerManagement {
            ps: if defaults { 0 } else { f.power_state },
            wh: 0,
        }
        .to_dword(),
        FeatureId::TemperatureThreshold => {
            let t = TemperatureThreshold::from_dword(gf.cdw11);
            // Only the composite temperature's over-temperature threshold is kept.
            if t.tmpsel != 0 || t.thsel != TemperatureThreshold::THSEL_OVER {
                0
            } else if defaults {
                u32::from(DEFAULT_TEMPERATURE_THRESHOLD)
            } else {
                u32::from(f.temperature_threshold)
            }
        }
        FeatureId::ErrorRecovery => {
            let current = nsid.and_then(|n| f.error_recovery.get(&n).copied());
            match (defaults, current) {
                (false, Some(er)) => er.to_dword(),
                _ => ErrorRecovery::default().to_dword(),
            }
        }
        FeatureId::VolatileWriteCache => VolatileWriteCache {
            enabled: defaults || ctrl.write_cache(),
        }
        .to_dword(),
        FeatureId::NumberOfQueues => {
            let max = u32::from(ctrl.params.max_io_queues);
            let n = match (defaults, f.queues_granted) {
                (false, Some(g)) => u32::from(g) + 1,
                _ => max,
            };
            NumberOfQueues { nsq: n, ncq: n }.to_dword()
        }
        FeatureId::WriteAtomicityNormal => WriteAtomicityNormal {
            disable_normal: !defaults && f.write_atomicity_dn,
        }
        .to_dword(),
        FeatureId::AsyncEventConfiguration => {
            if defaults {
                crate::controller::default_async_event_config(&ctrl.kind)
            } else {
                f.async_event_config
            }
        }
        FeatureId::KeepAliveTimer => ctrl.kato_ms(),
        FeatureId::HostIdentifier => {
            // NVMe-oF uses the 128-bit host identifier only (EXHID must be 1).
            if !host_id_extended(gf.cdw11) {
                return Err(Status::INVALID_FIELD.with_dnr());
            }
            return Ok(Response::success().with_data(Bytes::copy_from_slice(&ctrl.hostid)));
        }
        _ => return Err(Status::INVALID_FIELD.with_dnr()),
    };
    Ok(Response::success().with_dw0(dw0))
}

/// Set Features (NVMe Base 2.0 §5.27).
pub fn set_features(ctrl: &Controller, sf: &SetFeatures, _data: Option<&Bytes>) -> Response {
    match set(ctrl, sf) {
        Ok(r) => r,
        Err(s) => Response::status(s),
    }
}

fn set(ctrl: &Controller, sf: &SetFeatures) -> Result<Response, Status> {
    let rules = rules_for(ctrl, sf.fid)?;
    if sf.sv {
        return Err(Status::FEATURE_ID_NOT_SAVEABLE.with_dnr());
    }
    // §5.27: a namespace-specific feature is set for one active namespace or, with NSID
    // FFFFFFFFh, for all of them; any other feature takes NSID 0 or FFFFFFFFh only.
    let targets: Vec<u32> = if rules.namespace_specific {
        if sf.nsid == NSID_ALL {
            ctrl.subsystem().map(|s| s.nsids()).unwrap_or_default()
        } else {
            vec![active_nsid(ctrl, sf.nsid)?]
        }
    } else {
        if sf.nsid != 0 && sf.nsid != NSID_ALL {
            return Err(if sf.nsid > MAX_NSID {
                Status::INVALID_NAMESPACE.with_dnr()
            } else {
                Status::FEATURE_NOT_NAMESPACE_SPECIFIC.with_dnr()
            });
        }
        Vec::new()
    };
    if !rules.changeable {
        return Err(match sf.fid {
            // The host identifier is fixed by Connect (NVMe-oF 1.1 §3.3).
            FeatureId::HostIdentifier => Status::COMMAND_SEQUENCE_ERROR.with_dnr(),
            _ => Status::FEATURE_NOT_CHANGEABLE.with_dnr(),
        });
    }
    match sf.fid {
        FeatureId::Arbitration => ctrl.features().arbitration = sf.cdw11,
        FeatureId::PowerManagement => {
            // One power state (Identify Controller NPSS = 0).
            let pm = PowerManagement::from_dword(sf.cdw11);
            if pm.ps != 0 {
                return Err(Status::INVALID_FIELD.with_dnr());
            }
            ctrl.features().power_state = pm.ps;
        }
        FeatureId::TemperatureThreshold => {
            let t = TemperatureThreshold::from_dword(sf.cdw11);
            if t.tmpsel != 0 || t.thsel != TemperatureThreshold::THSEL_OVER {
                return Err(Status::INVALID_FIELD.with_dnr());
            }
            ctrl.features().temperature_threshold = t.tmpth;
        }
        FeatureId::ErrorRecovery => {
            let er = ErrorRecovery::from_dword(sf.cdw11);
            // DULBE needs Identify Namespace NSFEAT bit 2, which no namespace here sets.
            if er.dulbe {
                return Err(Status::INVALID_FIELD.with_dnr());
            }
            let mut f = ctrl.features();
            for nsid in targets {
                f.error_recovery.insert(nsid, er);
            }
        }
        FeatureId::VolatileWriteCache => {
            ctrl.set_write_cache(VolatileWriteCache::from_dword(sf.cdw11).enabled)
        }
        FeatureId::NumberOfQueues => {
            let Some(req) = NumberOfQueues::from_cdw11(sf.cdw11) else {
                return Err(Status::INVALID_FIELD.with_dnr());
            };
            // NVMe Base 2.0 §5.27.1.5: only before I/O queues exist.
            if ctrl.io_queue_count() > 0 {
                return Err(Status::COMMAND_SEQUENCE_ERROR.with_dnr());
            }
            let max = u32::from(ctrl.params.max_io_queues);
            let granted = req.nsq.max(req.ncq).min(max);
            ctrl.features().queues_granted = Some((granted - 1) as u16);
            return Ok(Response::success().with_dw0(
                NumberOfQueues {
                    nsq: granted,
                    ncq: granted,
                }
                .to_dword(),
            ));
        }
        FeatureId::WriteAtomicityNormal => {
            ctrl.features().write_atomicity_dn =
                WriteAtomicityNormal::from_dword(sf.cdw11).disable_normal
        }
        FeatureId::AsyncEventConfiguration => ctrl.features().async_event_config = sf.cdw11,
        FeatureId::KeepAliveTimer => ctrl.set_kato_ms(sf.cdw11),
        _ => return Err(Status::INVALID_FIELD.with_dnr()),
    }
    Ok(Response::success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mandatory_io_controller_features_are_implemented() {
        // NVMe Base 2.0 Figure "Feature Identifiers": mandatory for NVMe-oF I/O controllers.
        for fid in [0x01, 0x02, 0x04, 0x05, 0x07, 0x0a, 0x0b, 0x0f, 0x81] {
            assert!(
                rules(FeatureId::from_u8(fid)).is_some(),
                "FID {fid:#04x} is mandatory"
            );
        }
        let discovery: Vec<u8> = (0..=255u8)
            .filter(|&f| rules(FeatureId::from_u8(f)).is_some_and(|r| r.discovery))
            .collect();
        assert_eq!(discovery, vec![0x0b, 0x0f]);
        let ns_specific: Vec<u8> = (0..=255u8)
            .filter(|&f| rules(FeatureId::from_u8(f)).is_some_and(|r| r.namespace_specific))
            .collect();
        assert_eq!(ns_specific, vec![0x05]);
        // PCIe-only features are absent.
        assert_eq!(rules(FeatureId::InterruptCoalescing), None);
        assert_eq!(rules(FeatureId::InterruptVectorConfiguration), None);
    }
}
