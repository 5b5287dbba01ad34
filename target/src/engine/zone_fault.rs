//! [`Action::FailZone`](super::Action::FailZone): a zone of a zoned namespace fails on
//! purpose, so hosts' and file systems' handling of failing media can be exercised over the
//! fabric. Not a configuration change: the backend records it (a zoned-ram backing file keeps
//! it over restarts), the engine only finds the zone and tells the hosts.

use nvme::backend::{ZoneFault, ZoneFaultError};

use super::{ActionError, Engine, Outcome};
use crate::events;

impl Engine {
    /// Fail the zone at `zslba`; called with the engine's lock held, so it is serialised with
    /// every other change (a namespace cannot be removed under it).
    pub(super) fn fail_zone(
        &self,
        nqn: &str,
        nsid: u32,
        zslba: u64,
        fault: ZoneFault,
    ) -> Result<Outcome, ActionError> {
        let refused = |reason: &str| ActionError::ZoneFaultRefused {
            nqn: nqn.to_string(),
            nsid,
            reason: reason.to_string(),
        };
        let sub = self
            .target
            .subsystem(nqn)
            .ok_or_else(|| ActionError::NoSuchSubsystem(nqn.to_string()))?;
        let ns = sub
            .namespace(nsid)
            .ok_or_else(|| ActionError::NoSuchNamespace {
                nqn: nqn.to_string(),
                nsid,
            })?;
        let zoned = ns
            .backend
            .zoned()
            .ok_or_else(|| refused("not a zoned namespace"))?;
        let faults = zoned.faults().ok_or_else(|| {
            refused("its zones fail only by themselves (fault injection is for zoned-ram)")
        })?;
        faults.fail_zone(zslba, fault).map_err(|e| match e {
            ZoneFaultError::NoSuchZone(_) => ActionError::NoSuchZone {
                nqn: nqn.to_string(),
                nsid,
                zslba,
            },
            ZoneFaultError::Offline(_) => refused(&e.to_string()),
            ZoneFaultError::Backend(source) => ActionError::ZoneFaultFailed {
                nqn: nqn.to_string(),
                nsid,
                source,
            },
        })?;
        // NVMe ZNS 1.1 §5.2.1: Zone Descriptor Changed, for controllers that enabled it.
        let controllers = sub.controllers();
        events::record_raised(
            self.target.events(),
            nqn,
            events::ZONE_DESCRIPTOR_CHANGED,
            &controllers,
        );
        for c in &controllers {
            c.zone_descriptor_changed();
        }
        let outcome = Outcome::ZoneFailed {
            nqn: nqn.to_string(),
            nsid,
            zslba,
            fault,
            controllers_notified: controllers.len(),
        };
        tracing::warn!(outcome = %outcome, "engine: applied (fault injection)");
        self.journal_applied(std::slice::from_ref(&outcome));
        Ok(outcome)
    }
}
