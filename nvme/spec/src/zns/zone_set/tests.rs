use zerocopy::FromBytes;

use super::*;
use ZoneState as S;

const SIZE: u64 = 8;
const CAP: u64 = 6;
const ZONES: u64 = 4;

const BAD: Result<(ZoneState, u32, u32), Status> = Err(Status::INVALID_ZONE_STATE_TRANSITION);
const FULL: Result<(ZoneState, u32, u32), Status> = Err(Status::ZONE_IS_FULL);
const RO: Result<(ZoneState, u32, u32), Status> = Err(Status::ZONE_IS_READ_ONLY);
const OFF: Result<(ZoneState, u32, u32), Status> = Err(Status::ZONE_IS_OFFLINE);
const TMO: Result<(ZoneState, u32, u32), Status> = Err(Status::TOO_MANY_OPEN_ZONES);
const TMA: Result<(ZoneState, u32, u32), Status> = Err(Status::TOO_MANY_ACTIVE_ZONES);

/// Expected state of zone 0 and the set's open and active counts.
const fn o(s: ZoneState, open: u32, active: u32) -> Result<(ZoneState, u32, u32), Status> {
    Ok((s, open, active))
}

fn set(limits: ZoneLimits) -> ZoneSet {
    ZoneSet::new(SIZE, CAP, ZONES, limits).unwrap()
}

fn limits(max_open: u32, max_active: u32) -> ZoneLimits {
    ZoneLimits {
        max_open,
        max_active,
    }
}

fn send(z: &mut ZoneSet, slba: u64, action: ZoneAction) -> Result<(), Status> {
    z.send(slba, action, false, |_| {})
}

/// What the other zones hold while zone 0 takes an event.
#[derive(Clone, Copy, Debug)]
enum Cond {
    /// Limits 2 open / 3 active, the other zones Empty.
    Free,
    /// Limits 2 open / none active; the open resources are all taken, one by an Implicitly
    /// Opened zone 1 (unless zone 0 is opened) and one by an Explicitly Opened zone 2.
    OpenLimitImplicit,
    /// Like `OpenLimitImplicit` with zone 1 Explicitly Opened: nothing can be closed.
    OpenLimitExplicit,
    /// Limits none open / 2 active; the active resources are all taken by Closed zones 1 and
    /// (unless zone 0 is active) 2.
    ActiveLimit,
}

fn setup(cond: Cond, target: ZoneState) -> ZoneSet {
    let mut z = set(match cond {
        Cond::Free => limits(2, 3),
        Cond::OpenLimitImplicit | Cond::OpenLimitExplicit => limits(2, 0),
        Cond::ActiveLimit => limits(0, 2),
    });
    match target {
        S::Empty => {}
        S::ImplicitlyOpened => {
            z.write(0, 1).unwrap();
        }
        S::ExplicitlyOpened => send(&mut z, 0, ZoneAction::Open).unwrap(),
        S::Closed => {
            z.write(0, 1).unwrap();
            send(&mut z, 0, ZoneAction::Close).unwrap();
        }
        S::Full => send(&mut z, 0, ZoneAction::Finish).unwrap(),
        S::ReadOnly | S::Offline => z.force_state(0, target).unwrap(),
    }
    match cond {
        Cond::Free => {}
        Cond::OpenLimitImplicit | Cond::OpenLimitExplicit => {
            if !target.is_open() {
                if matches!(cond, Cond::OpenLimitImplicit) {
                    z.write(SIZE, 1).unwrap();
                } else {
                    send(&mut z, SIZE, ZoneAction::Open).unwrap();
                }
            }
            send(&mut z, 2 * SIZE, ZoneAction::Open).unwrap();
            assert_eq!(z.open_count(), 2);
        }
        Cond::ActiveLimit => {
            let closed = if target.is_active() { 1 } else { 2 };
            for i in 1..=closed {
                z.write(i * SIZE, 1).unwrap();
                send(&mut z, i * SIZE, ZoneAction::Close).unwrap();
            }
            assert_eq!(z.active_count(), 2);
        }
    }
    assert_eq!(z.zone(0).unwrap().state(), target);
    z
}

/// Hand-written from ZNS 1.1 §2.1.1, §2.1.1.4 and §4.4.3.2; rows are states, columns the
/// events in `ZoneEvent::ALL` order (Write, WriteFills, Open, Close, Finish, Reset, Offline).
fn expected(cond: Cond, state: ZoneState) -> [Result<(ZoneState, u32, u32), Status>; 7] {
    use S::{Closed as C, Empty as E, ExplicitlyOpened as EO, Full as F};
    use S::{ImplicitlyOpened as IO, Offline as Of};
    match (cond, state) {
        (Cond::Free, E) => [
            o(IO, 1, 1),
            o(F, 0, 0),
            o(EO, 1, 1),
            BAD,
            o(F, 0, 0),
            o(E, 0, 0),
            BAD,
        ],
        (Cond::Free, IO) => [
            o(IO, 1, 1),
            o(F, 0, 0),
            o(EO, 1, 1),
            o(C, 0, 1),
            o(F, 0, 0),
            o(E, 0, 0),
            BAD,
        ],
        (Cond::Free, EO) => [
            o(EO, 1, 1),
            o(F, 0, 0),
            o(EO, 1, 1),
            o(C, 0, 1),
            o(F, 0, 0),
            o(E, 0, 0),
            BAD,
        ],
        (Cond::Free, C) => [
            o(IO, 1, 1),
            o(F, 0, 0),
            o(EO, 1, 1),
            o(C, 0, 1),
            o(F, 0, 0),
            o(E, 0, 0),
            BAD,
        ],
        (Cond::Free, S::ReadOnly) => [RO, RO, BAD, BAD, BAD, BAD, o(Of, 0, 0)],
        (Cond::Free, F) => [FULL, FULL, BAD, BAD, o(F, 0, 0), o(E, 0, 0), BAD],
        (Cond::Free, Of) => [OFF, OFF, BAD, BAD, BAD, BAD, o(Of, 0, 0)],

        // Zone 1 (implicitly opened) is closed to make room; zone 2 stays open.
        (Cond::OpenLimitImplicit, E) => [
            o(IO, 2, 3),
            o(F, 1, 2),
            o(EO, 2, 3),
            BAD,
            o(F, 2, 2),
            o(E, 2, 2),
            BAD,
        ],
        (Cond::OpenLimitImplicit | Cond::OpenLimitExplicit, IO) => [
            o(IO, 2, 2),
            o(F, 1, 1),
            o(EO, 2, 2),
            o(C, 1, 2),
            o(F, 1, 1),
            o(E, 1, 1),
            BAD,
        ],
        (Cond::OpenLimitImplicit | Cond::OpenLimitExplicit, EO) => [
            o(EO, 2, 2),
            o(F, 1, 1),
            o(EO, 2, 2),
            o(C, 1, 2),
            o(F, 1, 1),
            o(E, 1, 1),
            BAD,
        ],
        (Cond::OpenLimitImplicit, C) => [
            o(IO, 2, 3),
            o(F, 1, 2),
            o(EO, 2, 3),
            o(C, 2, 3),
            o(F, 2, 2),
            o(E, 2, 2),
            BAD,
        ],
        (Cond::OpenLimitExplicit, E) => [TMO, TMO, TMO, BAD, o(F, 2, 2), o(E, 2, 2), BAD],
        (Cond::OpenLimitExplicit, C) => [TMO, TMO, TMO, o(C, 2, 3), o(F, 2, 2), o(E, 2, 2), BAD],
        (Cond::OpenLimitImplicit | Cond::OpenLimitExplicit, S::ReadOnly) => {
            [RO, RO, BAD, BAD, BAD, BAD, o(Of, 2, 2)]
        }
        (Cond::OpenLimitImplicit | Cond::OpenLimitExplicit, F) => {
            [FULL, FULL, BAD, BAD, o(F, 2, 2), o(E, 2, 2), BAD]
        }
        (Cond::OpenLimitImplicit | Cond::OpenLimitExplicit, Of) => {
            [OFF, OFF, BAD, BAD, BAD, BAD, o(Of, 2, 2)]
        }

        (Cond::ActiveLimit, E) => [TMA, TMA, TMA, BAD, o(F, 0, 2), o(E, 0, 2), BAD],
        (Cond::ActiveLimit, IO) => [
            o(IO, 1, 2),
            o(F, 0, 1),
            o(EO, 1, 2),
            o(C, 0, 2),
            o(F, 0, 1),
            o(E, 0, 1),
            BAD,
        ],
        (Cond::ActiveLimit, EO) => [
            o(EO, 1, 2),
            o(F, 0, 1),
            o(EO, 1, 2),
            o(C, 0, 2),
            o(F, 0, 1),
            o(E, 0, 1),
            BAD,
        ],
        (Cond::ActiveLimit, C) => [
            o(IO, 1, 2),
            o(F, 0, 1),
            o(EO, 1, 2),
            o(C, 0, 2),
            o(F, 0, 1),
            o(E, 0, 1),
            BAD,
        ],
        (Cond::ActiveLimit, S::ReadOnly) => [RO, RO, BAD, BAD, BAD, BAD, o(Of, 0, 2)],
        (Cond::ActiveLimit, F) => [FULL, FULL, BAD, BAD, o(F, 0, 2), o(E, 0, 2), BAD],
        (Cond::ActiveLimit, Of) => [OFF, OFF, BAD, BAD, BAD, BAD, o(Of, 0, 2)],
    }
}

fn apply(z: &mut ZoneSet, event: ZoneEvent) -> Result<(), Status> {
    let wp = z.zone(0).unwrap().wp();
    match event {
        ZoneEvent::Write => z.write(wp, 1).map(drop),
        ZoneEvent::WriteFills => z.write(wp, (CAP - wp).max(1)).map(drop),
        ZoneEvent::Open => send(z, 0, ZoneAction::Open),
        ZoneEvent::Close => send(z, 0, ZoneAction::Close),
        ZoneEvent::Finish => send(z, 0, ZoneAction::Finish),
        ZoneEvent::Reset => send(z, 0, ZoneAction::Reset),
        ZoneEvent::Offline => send(z, 0, ZoneAction::Offline),
    }
}

fn snapshot(z: &ZoneSet) -> Vec<Zone> {
    (0..z.len()).map(|i| *z.zone(i).unwrap()).collect()
}

#[test]
fn every_state_event_and_resource_condition() {
    let conds = [
        Cond::Free,
        Cond::OpenLimitImplicit,
        Cond::OpenLimitExplicit,
        Cond::ActiveLimit,
    ];
    let mut checked = 0;
    for cond in conds {
        for s in ZoneState::ALL {
            for (e, want) in ZoneEvent::ALL.into_iter().zip(expected(cond, s)) {
                let mut z = setup(cond, s);
                let before = snapshot(&z);
                let wp = before[0].wp();
                let got = apply(&mut z, e);
                let what = format!("{cond:?}: {s:?} x {e:?}");
                match want {
                    Err(status) => {
                        assert_eq!(got, Err(status), "{what}");
                        assert_eq!(snapshot(&z), before, "{what}: a failure changes nothing");
                    }
                    Ok((state, open, active)) => {
                        assert_eq!(got, Ok(()), "{what}");
                        let zone = z.zone(0).unwrap();
                        assert_eq!(zone.state(), state, "{what}");
                        assert_eq!((z.open_count(), z.active_count()), (open, active), "{what}");
                        let want_wp = match e {
                            ZoneEvent::Write => wp + 1,
                            ZoneEvent::WriteFills | ZoneEvent::Finish => CAP,
                            ZoneEvent::Reset => 0,
                            _ => wp,
                        };
                        assert_eq!(zone.wp(), want_wp, "{what}");
                    }
                }
                // The counts are those of the states; explicitly opened zones stay open.
                let states = snapshot(&z).into_iter().map(|z| z.state());
                let open = states.clone().filter(|s| s.is_open()).count() as u32;
                let active = states.filter(|s| s.is_active()).count() as u32;
                assert_eq!((z.open_count(), z.active_count()), (open, active), "{what}");
                if matches!(cond, Cond::OpenLimitImplicit | Cond::OpenLimitExplicit) {
                    assert_eq!(z.zone(2).unwrap().state(), S::ExplicitlyOpened, "{what}");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * 49);
}

#[test]
fn implicit_close_takes_the_zone_implicitly_opened_longest_ago() {
    let mut z = set(limits(2, 0));
    z.write(2 * SIZE, 1).unwrap();
    z.write(0, 1).unwrap();
    // Zone 2 was opened first, though zone 0 comes first in LBA order.
    z.write(SIZE, 1).unwrap();
    assert_eq!(z.zone(2).unwrap().state(), S::Closed);
    assert_eq!(z.zone(0).unwrap().state(), S::ImplicitlyOpened);
    // Reopening zone 2 closes zone 0; a further write to zone 1 (already open) does not make
    // it the newest.
    z.write(2 * SIZE + 1, 1).unwrap();
    assert_eq!(z.zone(0).unwrap().state(), S::Closed);
    z.write(SIZE + 1, 1).unwrap();
    z.write(3 * SIZE, 1).unwrap();
    assert_eq!(z.zone(1).unwrap().state(), S::Closed);
    assert_eq!(z.zone(2).unwrap().state(), S::ImplicitlyOpened);
    assert_eq!(z.zone(3).unwrap().state(), S::ImplicitlyOpened);
    assert_eq!((z.open_count(), z.active_count()), (2, 4));
    // An explicit open also closes the oldest implicitly opened zone (zone 2).
    send(&mut z, 0, ZoneAction::Open).unwrap();
    assert_eq!(z.zone(2).unwrap().state(), S::Closed);
    assert_eq!(z.zone(0).unwrap().state(), S::ExplicitlyOpened);
}

#[test]
fn write_pointer_capacity_and_append() {
    let mut z = set(ZoneLimits::default());
    assert_eq!(z.write(SIZE + 1, 1), Err(Status::ZONE_INVALID_WRITE));
    assert_eq!(z.write(SIZE, CAP + 1), Err(Status::ZONE_BOUNDARY_ERROR));
    assert_eq!(z.write(SIZE, 0), Err(Status::INVALID_FIELD));
    assert_eq!(z.write(SIZE, 2), Ok(SIZE + 2));
    assert_eq!(z.append(SIZE, 3), Ok(SIZE + 2));
    assert_eq!(z.append(SIZE, 1), Ok(SIZE + 5));
    assert_eq!(z.zone(1).unwrap().state(), S::Full);
    assert_eq!(z.append(SIZE, 1), Err(Status::ZONE_IS_FULL));
    assert_eq!(z.append(SIZE + 1, 1), Err(Status::INVALID_FIELD));
    assert_eq!(z.append(ZONES * SIZE, 1), Err(Status::LBA_OUT_OF_RANGE));
    assert_eq!(z.write(ZONES * SIZE, 1), Err(Status::LBA_OUT_OF_RANGE));
    assert_eq!(z.write(u64::MAX, u64::MAX), Err(Status::LBA_OUT_OF_RANGE));
    assert_eq!(z.write(0, u64::MAX), Err(Status::ZONE_BOUNDARY_ERROR));
    assert_eq!(z.append(0, u64::MAX), Err(Status::ZONE_BOUNDARY_ERROR));
}

#[test]
fn append_to_a_full_zone_of_whole_capacity_stays_out_of_the_next() {
    // Capacity = size: a Full zone's write pointer is the next zone's start.
    let mut z = ZoneSet::new(SIZE, SIZE, ZONES, ZoneLimits::default()).unwrap();
    assert_eq!(z.append(SIZE, SIZE), Ok(SIZE));
    assert_eq!(z.zone(1).unwrap().state(), S::Full);
    assert_eq!(z.append(SIZE, 1), Err(Status::ZONE_IS_FULL));
    assert_eq!(
        z.zone(2).unwrap().state(),
        S::Empty,
        "nothing went to zone 2"
    );
    let last = (ZONES - 1) * SIZE;
    assert_eq!(z.append(last, SIZE), Ok(last));
    assert_eq!(z.append(last, 1), Err(Status::ZONE_IS_FULL));
    z.force_state(SIZE, S::ReadOnly).unwrap();
    assert_eq!(z.append(SIZE, 1), Err(Status::ZONE_IS_READ_ONLY));
}

#[test]
fn reads_stay_in_one_zone_and_off_offline_zones() {
    let mut z = set(ZoneLimits::default());
    assert_eq!(z.check_read(0, SIZE), Ok(()));
    assert_eq!(z.check_read(1, SIZE), Err(Status::ZONE_BOUNDARY_ERROR));
    assert_eq!(
        z.check_read(3 * SIZE, SIZE + 1),
        Err(Status::ZONE_BOUNDARY_ERROR)
    );
    assert_eq!(z.check_read(0, u64::MAX), Err(Status::ZONE_BOUNDARY_ERROR));
    assert_eq!(z.check_read(u64::MAX, 1), Err(Status::LBA_OUT_OF_RANGE));
    z.force_state(SIZE, S::Offline).unwrap();
    assert_eq!(z.check_read(SIZE + 2, 1), Err(Status::ZONE_IS_OFFLINE));
    assert_eq!(
        z.force_state(SIZE + 1, S::Offline),
        Err(Status::INVALID_FIELD)
    );
    assert_eq!(
        z.force_state(u64::MAX, S::Offline),
        Err(Status::LBA_OUT_OF_RANGE)
    );
}

#[test]
fn select_all_applies_where_the_action_does_and_stops_at_a_failure() {
    let mut z = set(limits(2, 0));
    for i in 0..3 {
        z.write(i * SIZE, 1).unwrap();
        send(&mut z, i * SIZE, ZoneAction::Close).unwrap();
    }
    // Open with Select All opens Closed zones in order until the open resources run out;
    // the first two stay opened (NVMe ZNS 1.1 §4.4.3.2.3).
    let all = |z: &mut ZoneSet, a| z.send(0, a, true, |_| {});
    assert_eq!(
        all(&mut z, ZoneAction::Open),
        Err(Status::TOO_MANY_OPEN_ZONES)
    );
    let states: Vec<_> = snapshot(&z).iter().map(|z| z.state()).collect();
    assert_eq!(
        states,
        [
            S::ExplicitlyOpened,
            S::ExplicitlyOpened,
            S::Closed,
            S::Empty
        ]
    );
    // Finish leaves the Empty zone alone; Reset reports every zone it reset.
    assert_eq!(all(&mut z, ZoneAction::Finish), Ok(()));
    assert_eq!(z.zone(3).unwrap().state(), S::Empty);
    assert_eq!((z.open_count(), z.active_count()), (0, 0));
    let mut reset = Vec::new();
    assert_eq!(
        z.send(0, ZoneAction::Reset, true, |l| reset.push(l)),
        Ok(())
    );
    assert_eq!(reset, [0, SIZE, 2 * SIZE]);
    assert_eq!(z.zone(2).unwrap().wp(), 2 * SIZE);
    // An unknown action fails before any zone is looked at, even with a bad SLBA.
    let unknown = ZoneAction::from_u8(0x10);
    assert_eq!(
        z.send(u64::MAX, unknown, false, |_| {}),
        Err(Status::INVALID_FIELD)
    );
    assert_eq!(
        z.send(3, ZoneAction::Reset, false, |_| {}),
        Err(Status::INVALID_FIELD)
    );
    assert_eq!(
        z.send(ZONES * SIZE, ZoneAction::Reset, false, |_| {}),
        Err(Status::LBA_OUT_OF_RANGE)
    );
}

#[test]
fn controller_reset_closes_opened_zones() {
    let mut z = set(ZoneLimits::default());
    z.write(0, 1).unwrap();
    send(&mut z, SIZE, ZoneAction::Open).unwrap();
    send(&mut z, 2 * SIZE, ZoneAction::Finish).unwrap();
    z.close_all_open();
    let states: Vec<_> = snapshot(&z).iter().map(|z| z.state()).collect();
    assert_eq!(states, [S::Closed, S::Closed, S::Full, S::Empty]);
    assert_eq!((z.open_count(), z.active_count()), (0, 2));
}

#[test]
fn report_filters_starts_and_truncates() {
    let mut z = set(ZoneLimits::default());
    z.write(SIZE, 2).unwrap();
    send(&mut z, 3 * SIZE, ZoneAction::Finish).unwrap();
    let desc =
        |b: &[u8], i: usize| ZoneDescriptor::read_from_bytes(&b[64 + 64 * i..][..64]).unwrap();
    let nr = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());

    let mut buf = [0xaau8; 64 * 6];
    z.report(0, ReportOption::All, false, &mut buf).unwrap();
    assert_eq!(nr(&buf), 4);
    assert_eq!(
        desc(&buf, 1),
        ZoneDescriptor::new(S::ImplicitlyOpened, CAP, SIZE, SIZE + 2)
    );
    assert_eq!(
        desc(&buf, 3),
        ZoneDescriptor::new(S::Full, CAP, 3 * SIZE, u64::MAX)
    );
    assert!(buf[64 * 5..].iter().all(|&b| b == 0));

    // Empty zones from the zone holding LBA 9 (zone 1): only zone 2.
    z.report(SIZE + 1, ReportOption::Empty, false, &mut buf)
        .unwrap();
    assert_eq!(nr(&buf), 1);
    assert_eq!(desc(&buf, 0).zslba.get(), 2 * SIZE);

    // Room for two descriptors: the header counts all four, or two with Partial Report.
    let mut short = [0u8; 64 * 3];
    z.report(0, ReportOption::All, false, &mut short).unwrap();
    assert_eq!(nr(&short), 4);
    z.report(0, ReportOption::All, true, &mut short).unwrap();
    assert_eq!(nr(&short), 2);
    assert_eq!(desc(&short, 1).zslba.get(), SIZE);
    let mut tiny = [0u8; 4];
    z.report(0, ReportOption::All, false, &mut tiny).unwrap();
    assert_eq!(tiny, [4, 0, 0, 0]);

    let bad = ReportOption::from_u8(0x3f);
    assert_eq!(
        z.report(0, bad, false, &mut buf),
        Err(Status::INVALID_FIELD)
    );
    assert_eq!(
        z.report(ZONES * SIZE, ReportOption::All, false, &mut buf),
        Err(Status::LBA_OUT_OF_RANGE)
    );
}

#[test]
fn geometry_errors() {
    let l = ZoneLimits::default();
    assert_eq!(
        ZoneSet::new(0, 0, 1, l).unwrap_err(),
        ZoneSetError::ZeroZoneSize
    );
    assert_eq!(
        ZoneSet::new(8, 9, 1, l).unwrap_err(),
        ZoneSetError::BadCapacity { cap: 9, size: 8 }
    );
    assert!(matches!(
        ZoneSet::new(8, 0, 1, l),
        Err(ZoneSetError::BadCapacity { .. })
    ));
    assert!(matches!(
        ZoneSet::new(1 << 40, 1, 1 << 40, l),
        Err(ZoneSetError::TooLarge { .. })
    ));
    let z = ZoneSet::new(8, 8, 0, l).unwrap();
    assert!(z.is_empty());
    let mut z = z;
    assert_eq!(z.write(0, 1), Err(Status::LBA_OUT_OF_RANGE));
}

fn records(z: &ZoneSet) -> Vec<ZoneRecord> {
    snapshot(z).iter().map(Zone::record).collect()
}

fn rec(state: ZoneState, wp: u64) -> ZoneRecord {
    ZoneRecord {
        state: state.code(),
        wp,
    }
}

#[test]
fn restore_takes_back_records_with_opened_zones_closed() {
    let mut z = set(limits(2, 3));
    z.write(0, 2).unwrap();
    send(&mut z, SIZE, ZoneAction::Open).unwrap();
    z.write(2 * SIZE, CAP).unwrap();
    z.write(3 * SIZE, 1).unwrap();
    z.send(3 * SIZE, ZoneAction::Close, false, |_| {}).unwrap();
    let saved = records(&z);
    let mut back = ZoneSet::restore(SIZE, CAP, limits(2, 3), &saved).unwrap();
    let states: Vec<_> = snapshot(&back)
        .iter()
        .map(|z| (z.state(), z.wp()))
        .collect();
    assert_eq!(
        states,
        [
            (S::Closed, 2),
            (S::Closed, SIZE),
            (S::Full, 2 * SIZE + CAP),
            (S::Closed, 3 * SIZE + 1)
        ]
    );
    assert_eq!((back.open_count(), back.active_count()), (0, 3));
    assert_eq!(
        (back.zone_size(), back.zone_cap(), back.len()),
        (SIZE, CAP, 4)
    );
    // The restored set keeps its rules: writing continues at the write pointer, and the
    // active limit (3) still holds.
    assert_eq!(back.write(2, 1), Ok(3));
    assert_eq!(back.write(3 * SIZE + 1, 1), Ok(3 * SIZE + 2));
    send(&mut back, 2 * SIZE, ZoneAction::Reset).unwrap();
    assert_eq!(back.write(2 * SIZE, 1), Err(Status::TOO_MANY_ACTIVE_ZONES));
    // Read Only and Offline come back as they were, write pointer kept.
    let mut z = set(ZoneLimits::default());
    z.write(SIZE, 3).unwrap();
    z.force_state(SIZE, S::ReadOnly).unwrap();
    z.force_state(2 * SIZE, S::Offline).unwrap();
    let back = ZoneSet::restore(SIZE, CAP, ZoneLimits::default(), &records(&z)).unwrap();
    assert_eq!(records(&back), records(&z));
    assert_eq!((back.open_count(), back.active_count()), (0, 0));
}

#[test]
fn restore_refuses_records_that_break_the_rules() {
    let l = ZoneLimits::default();
    let empty = |n: u64| (0..n).map(|i| rec(S::Empty, i * SIZE)).collect::<Vec<_>>();
    assert_eq!(ZoneSet::restore(SIZE, CAP, l, &empty(4)).unwrap().len(), 4);
    let with = |i: usize, r: ZoneRecord| {
        let mut v = empty(4);
        v[i] = r;
        ZoneSet::restore(SIZE, CAP, l, &v)
    };
    assert_eq!(
        with(
            1,
            ZoneRecord {
                state: 0x7,
                wp: SIZE
            }
        )
        .unwrap_err(),
        RestoreError::UnknownState { zone: 1, code: 7 }
    );
    // Empty: the write pointer at the ZSLBA only.
    assert_eq!(
        with(1, rec(S::Empty, SIZE + 1)).unwrap_err(),
        RestoreError::WritePointer {
            zone: 1,
            state: S::Empty,
            wp: SIZE + 1,
            first: SIZE,
            last: SIZE
        }
    );
    // Active: below the end of the capacity; never in another zone.
    assert!(with(2, rec(S::Closed, 2 * SIZE + CAP - 1)).is_ok());
    assert!(with(2, rec(S::ImplicitlyOpened, 2 * SIZE)).is_ok());
    for state in [S::ImplicitlyOpened, S::ExplicitlyOpened, S::Closed] {
        assert!(matches!(
            with(2, rec(state, 2 * SIZE + CAP)),
            Err(RestoreError::WritePointer { zone: 2, .. })
        ));
        assert!(matches!(
            with(2, rec(state, 2 * SIZE - 1)),
            Err(RestoreError::WritePointer { zone: 2, .. })
        ));
    }
    // Full, Read Only, Offline: anywhere in ZSLBA..=ZSLBA + capacity.
    for state in [S::Full, S::ReadOnly, S::Offline] {
        assert!(with(3, rec(state, 3 * SIZE)).is_ok());
        assert!(with(3, rec(state, 3 * SIZE + CAP)).is_ok());
        assert!(matches!(
            with(3, rec(state, 3 * SIZE + CAP + 1)),
            Err(RestoreError::WritePointer { zone: 3, .. })
        ));
    }
    // Three opened or closed zones under MAR 2: refused even though none stays open.
    let mut v = empty(4);
    v[0] = rec(S::ImplicitlyOpened, 1);
    v[1] = rec(S::ExplicitlyOpened, SIZE);
    v[2] = rec(S::Closed, 2 * SIZE + 3);
    assert_eq!(
        ZoneSet::restore(SIZE, CAP, limits(0, 2), &v).unwrap_err(),
        RestoreError::TooManyActive {
            active: 3,
            max_active: 2
        }
    );
    assert_eq!(
        ZoneSet::restore(SIZE, CAP, limits(1, 3), &v)
            .unwrap()
            .active_count(),
        3
    );
    assert_eq!(
        ZoneSet::restore(SIZE, SIZE + 1, l, &v).unwrap_err(),
        RestoreError::Geometry(ZoneSetError::BadCapacity {
            cap: SIZE + 1,
            size: SIZE
        })
    );
}

#[test]
fn put_back_undoes_a_write() {
    let mut z = set(limits(1, 2));
    z.write(0, 1).unwrap();
    let before = z.zone(1).unwrap().record();
    // Zone 0 is closed implicitly to open zone 1.
    z.write(SIZE, 2).unwrap();
    assert_eq!(z.zone(0).unwrap().state(), S::Closed);
    z.put_back(SIZE, before).unwrap();
    let z1 = *z.zone(1).unwrap();
    assert_eq!((z1.state(), z1.wp()), (S::Empty, SIZE));
    assert_eq!((z.open_count(), z.active_count()), (0, 1));
    assert_eq!(z.write(SIZE, 2), Ok(SIZE + 2));
    let mut other = set(ZoneLimits::default());
    other.write(0, 1).unwrap();
    assert_eq!(
        other.put_back(7 * SIZE, rec(S::Empty, 7 * SIZE)),
        Err(Status::LBA_OUT_OF_RANGE)
    );
    let bad = ZoneRecord { state: 0, wp: 0 };
    assert_eq!(other.put_back(0, bad), Err(Status::INVALID_FIELD));
    assert_eq!(other.zone(0).unwrap().state(), S::ImplicitlyOpened);
}
