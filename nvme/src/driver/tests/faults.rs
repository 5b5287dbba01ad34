use super::*;
use crate::backend::{Backend, BackendError};
use crate::driver::clock::Clock;
use crate::driver::model::Fault;

fn expect_start_error(fault: Fault) -> (DriverError, Arc<FakeClock>) {
    let (ctrl, pool, clock) = parts(ModelConfig::default(), 4);
    ctrl.inject(fault);
    match start(&ctrl, pool, &clock, options()) {
        Ok(_) => panic!("start succeeded despite {fault:?}"),
        Err(e) => (e, clock),
    }
}

#[test]
fn never_ready_times_out_after_cap_to() {
    let (err, clock) = expect_start_error(Fault::NeverReady);
    match err {
        DriverError::Timeout { what, after } => {
            assert_eq!(what, "CSTS.RDY = 1");
            // CAP.TO = 2: 1 s.
            assert_eq!(after, Duration::from_secs(1));
        }
        other => panic!("expected a ready timeout, got {other:?}"),
    }
    let waited = clock.now();
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_millis(1010));
}

#[test]
fn fatal_and_removed_controllers_fail_start() {
    assert!(matches!(
        expect_start_error(Fault::Fatal).0,
        DriverError::Fatal
    ));
    assert!(matches!(
        expect_start_error(Fault::Removed).0,
        DriverError::Gone(_)
    ));
}

#[test]
fn slow_ready_within_timeout_is_fine() {
    let cfg = ModelConfig {
        ready_delay_reads: 50,
        ..ModelConfig::default()
    };
    let (d, _ctrl, clock) = start_with(cfg, options(), 4);
    assert_eq!(d.unwrap().info().io_queues, 2);
    assert!(clock.now() >= Duration::from_millis(50));
}

#[test]
fn invalid_options_are_refused() {
    for opts in [
        DriverOptions {
            io_queues: 0,
            ..options()
        },
        DriverOptions {
            queue_depth: 1,
            ..options()
        },
        DriverOptions {
            timeout: Duration::ZERO,
            ..options()
        },
    ] {
        let (d, _, _) = start_with(ModelConfig::default(), opts, 4);
        assert!(matches!(d, Err(DriverError::Options(_))));
    }
}

#[test]
fn queues_are_capped_by_what_the_controller_grants() {
    let cfg = ModelConfig {
        max_io_queues: 3,
        mqes: 15,
        ..ModelConfig::default()
    };
    let opts = DriverOptions {
        io_queues: 8,
        owned_queues: 0,
        queue_depth: 1024,
        timeout: TIMEOUT,
    };
    let (d, ctrl, _) = start_with(cfg, opts, 4);
    let d = d.unwrap();
    assert_eq!((d.info().io_queues, d.info().queue_entries), (3, 16));
    let creates = ctrl.executed().iter().filter(|e| **e == (0, 0x01)).count();
    assert_eq!(creates, 3);
}

#[test]
fn a_dropped_command_is_aborted_and_times_out() {
    let r = rig(ModelConfig::default());
    let ns = r.driver.namespace(1).unwrap();
    r.ctrl.inject(Fault::Drop {
        qid: 1,
        opcode: 0x02,
    });
    let t0 = r.clock.now();
    let mut buf = vec![0u8; 4096];
    assert!(matches!(
        Backend::read(&*ns, 0, &mut buf),
        Err(BackendError::Timeout)
    ));
    assert!(r.clock.now() - t0 >= TIMEOUT);
    let ex = r.ctrl.executed();
    let read_at = ex.iter().position(|e| *e == (1, 0x02)).unwrap();
    assert!(ex[read_at..].contains(&(0, 0x08)), "Abort sent: {ex:?}");
    assert_eq!((r.ctrl.resets(), r.driver.resets()), (0, 0));
    // The queue still works.
    let data = pattern(4096, 3);
    Backend::write(&*ns, 7, &data, false).unwrap();
    Backend::read(&*ns, 7, &mut buf).unwrap();
    assert!(buf == data);
}

#[test]
fn an_ignored_abort_leads_to_a_reset() {
    let r = rig(ModelConfig::default());
    let ns = r.driver.namespace(1).unwrap();
    let before = pattern(3 * 4096, 9);
    Backend::write(&*ns, 10, &before, false).unwrap();
    r.ctrl.inject(Fault::AbortIgnored);
    r.ctrl.inject(Fault::Drop {
        qid: 1,
        opcode: 0x01,
    });
    let t0 = r.clock.now();
    assert!(matches!(
        Backend::write(&*ns, 20, &pattern(4096, 1), false),
        Err(BackendError::Timeout)
    ));
    assert!(
        r.clock.now() - t0 >= 2 * TIMEOUT,
        "abort deadline, then reset"
    );
    assert_eq!((r.ctrl.resets(), r.driver.resets()), (1, 1));
    assert!(r.ctrl.executed().contains(&(0, 0x08)));
    assert_eq!(r.driver.gone(), None);
    // After the reset both queues exist again and data written before is intact.
    let mut back = vec![0u8; before.len()];
    Backend::read(&*ns, 10, &mut back).unwrap();
    assert!(back == before);
    std::thread::scope(|s| {
        for t in 0..3u8 {
            let ns = &ns;
            s.spawn(move || {
                let data = pattern(2 * 4096, 20 + t);
                Backend::write(&**ns, 100 + u64::from(t) * 2, &data, false).unwrap();
                let mut back = vec![0; data.len()];
                Backend::read(&**ns, 100 + u64::from(t) * 2, &mut back).unwrap();
                assert!(back == data);
            });
        }
    });
}

#[test]
fn removal_makes_the_driver_gone() {
    let r = rig(ModelConfig::default());
    let ns = r.driver.namespace(1).unwrap();
    Backend::write(&*ns, 0, &pattern(4096, 1), false).unwrap();
    r.ctrl.inject(Fault::Removed);
    let mut buf = vec![0u8; 4096];
    match Backend::read(&*ns, 0, &mut buf) {
        Err(BackendError::Gone(why)) => assert!(why.contains("all ones"), "{why}"),
        other => panic!("expected Gone, got {other:?}"),
    }
    assert!(r.driver.gone().is_some());
    // Later commands fail at once, without waiting for a deadline.
    let t = r.clock.now();
    assert!(matches!(Backend::flush(&*ns), Err(BackendError::Gone(_))));
    assert!(matches!(
        Backend::write(&*ns, 0, &[0; 4096], false),
        Err(BackendError::Gone(_))
    ));
    assert_eq!(r.clock.now(), t);
    assert_eq!(r.ctrl.resets(), 0);
}

#[test]
fn fatal_status_makes_the_driver_gone() {
    let r = rig(ModelConfig::default());
    let ns = r.driver.namespace(1).unwrap();
    r.ctrl.inject(Fault::Fatal);
    assert!(matches!(
        Backend::write(&*ns, 0, &[1; 4096], false),
        Err(BackendError::Gone(_))
    ));
    assert!(r.driver.gone().unwrap().contains("fatal"));
}

#[test]
fn shutdown_deletes_queues_and_stops_io() {
    let r = rig(ModelConfig::default());
    let ns = r.driver.namespace(1).unwrap();
    r.driver.shutdown().unwrap();
    let ex = r.ctrl.executed();
    assert_eq!(ex.iter().filter(|e| **e == (0, 0x00)).count(), 2);
    assert_eq!(ex.iter().filter(|e| **e == (0, 0x04)).count(), 2);
    assert!(matches!(Backend::flush(&*ns), Err(BackendError::Gone(_))));
}
