//! The zone map read: states and write pointers as a host's Report Zones sees them.

use super::*;
use nvme::zns::ZoneState;

#[test]
fn zones_are_reported_with_their_state_and_write_pointer() {
    let e = engine(config(&format!(
        "[[subsystem]]\nnqn = \"{B}\"\n\n[[subsystem.namespace]]\nsize = \"8MiB\"\n\
         block_size = 4096\nbackend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\", \
         zone_capacity = \"768KiB\", max_open = 2 }}\n"
    )));
    let ns = e.target().subsystem(B).unwrap().namespace(1).unwrap();
    // 1 MiB zones of 4 KiB blocks: 256 blocks each. Write 3 blocks at zone 1's pointer.
    ns.backend.write(256, &[7u8; 3 * 4096], false).unwrap();
    let r = e.zone_report(B, 1, 0, 100).unwrap();
    assert_eq!(
        (r.zone_size, r.zone_capacity, r.zone_count, r.block_size),
        (256, 192, 8, 4096)
    );
    assert_eq!((r.max_open, r.max_active, r.first), (2, 0, 0));
    assert_eq!(r.zones.len(), 8, "no more than there are");
    assert_eq!(r.zones[0].state, Some(ZoneState::Empty));
    assert_eq!((r.zones[0].zslba, r.zones[0].write_pointer), (0, 0));
    assert_eq!(r.zones[1].state, Some(ZoneState::ImplicitlyOpened));
    assert_eq!((r.zones[1].zslba, r.zones[1].write_pointer), (256, 259));
    assert_eq!(r.zones[1].capacity, 192);
    let tail = e.zone_report(B, 1, 6, 10).unwrap();
    assert_eq!(
        tail.zones.iter().map(|z| z.zslba).collect::<Vec<_>>(),
        [1536, 1792]
    );
    assert!(matches!(
        e.zone_report(B, 1, 8, 1),
        Err(ZoneReportError::PastTheEnd {
            first: 8,
            zone_count: 8
        })
    ));
    assert!(matches!(
        e.zone_report(A, 1, 0, 1),
        Err(ZoneReportError::NotZoned { .. })
    ));
    assert!(matches!(
        e.zone_report(A, 9, 0, 1),
        Err(ZoneReportError::NoSuchNamespace { nsid: 9, .. })
    ));
    assert!(matches!(
        e.zone_report("nqn.2026-01.io.ferrofab:none", 1, 0, 1),
        Err(ZoneReportError::NoSuchSubsystem(_))
    ));
}
