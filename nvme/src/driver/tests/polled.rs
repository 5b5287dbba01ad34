//! The polled interface (`PolledBackend`): commands started with a token and reaped by their
//! owner, against the model, including the fault paths (abort, reset, removal); each on a
//! pair the test thread owns and on a shared one.

use std::collections::HashMap;

use super::*;
use crate::backend::{new_owner, Backend, BackendError, Polled, PolledBackend, Refused};
use crate::driver::model::{Fault, NsModel};

fn cfg(mdts: u8, sgls: bool) -> ModelConfig {
    ModelConfig {
        mdts,
        sgls,
        namespaces: vec![NsModel {
            block_size: 512,
            blocks: 1 << 16,
            zoned: None,
        }],
        ..ModelConfig::default()
    }
}

/// A rig whose test thread polls on a pair it owns (`owned`: QID 2) or on the shared pair
/// (QID 1); returns the QID its polled commands go to.
fn polled_rig(cfg: ModelConfig, owned: bool) -> (Rig, u16) {
    let r = queues_rig_of(cfg, 2, u16::from(owned));
    (r, 1 + u16::from(owned))
}

/// A rig of `io_queues` pairs, `owned` of them to be owned (QIDs after the shared ones).
fn queues_rig_of(cfg: ModelConfig, io_queues: u16, owned: u16) -> Rig {
    let opts = DriverOptions {
        io_queues,
        owned_queues: owned,
        ..options()
    };
    let (driver, ctrl, clock) = start_with(cfg, opts, 16);
    Rig {
        driver: driver.unwrap(),
        ctrl,
        clock,
    }
}

fn queues_rig(io_queues: u16, owned: u16) -> Rig {
    queues_rig_of(cfg(5, false), io_queues, owned)
}

/// Clock steps in one command timeout.
const STEPS: usize = (TIMEOUT.as_millis() / STEP.as_millis()) as usize;

fn token(owner: u32, slot: u32) -> u64 {
    (u64::from(owner) << 32) | u64::from(slot)
}

/// Reap `owner`'s completions until `want` arrived, advancing the clock a step per empty
/// poll (at most `polls` polls).
fn reap_all(r: &Rig, ns: &dyn PolledBackend, owner: u32, want: usize, polls: usize) -> Vec<Polled> {
    let mut got = Vec::new();
    for _ in 0..polls {
        if got.len() == want {
            break;
        }
        if ns.reap(owner, &mut |p| got.push(p)) == 0 {
            r.clock.advance(STEP);
        }
    }
    got
}

#[test]
fn tokens_complete_to_their_owner_with_the_data() {
    for (sgls, owned) in [(false, false), (true, false), (false, true), (true, true)] {
        let (r, _) = polled_rig(cfg(5, sgls), owned);
        let ns = r.driver.namespace(1).unwrap();
        let p = ns.polled().expect("a conventional namespace is polled");
        let (me, other) = (new_owner(), new_owner());
        // 4 KiB (PRP1), 8 KiB (PRP1 + PRP2), 64 KiB (a PRP list or one SGL descriptor).
        let sizes = [4096usize, 8192, 65536];
        let mut written = HashMap::new();
        for i in 0..30u32 {
            let len = sizes[i as usize % 3];
            let lba = u64::from(i) * 128;
            let data = pattern(len, i as u8);
            p.start_write(lba, &data, i % 2 == 0, token(me, i)).unwrap();
            written.insert(i, (lba, data));
        }
        assert_eq!(p.reap(other, &mut |_| panic!("not ours")), 0);
        let done = reap_all(&r, p, me, 30, 100);
        assert_eq!(done.len(), 30);
        for d in &done {
            assert!(d.result.is_ok() && d.buf.is_none(), "{d:?}");
            let (lba, data) = &written[&(d.token as u32)];
            let blocks = (data.len() / 512) as u64;
            assert!(
                r.ctrl.read_blocks(1, *lba, blocks) == *data,
                "media at {lba}"
            );
        }
        for i in 0..30u32 {
            let (lba, data) = &written[&i];
            p.start_read(*lba, vec![0; data.len()], token(me, 100 + i))
                .unwrap();
        }
        let done = reap_all(&r, p, me, 30, 100);
        assert_eq!(done.len(), 30);
        for d in done {
            let (_, data) = &written[&(d.token as u32 - 100)];
            assert!(d.result.is_ok(), "{d:?}");
            assert!(
                d.buf.as_deref() == Some(&data[..]),
                "read back token {}",
                d.token
            );
        }
    }
}

#[test]
fn refusals_busy_unsupported_and_range() {
    for owned in [false, true] {
        let (r, _) = polled_rig(cfg(5, false), owned);
        let ns = r.driver.namespace(1).unwrap();
        let p = ns.polled().unwrap();
        let me = new_owner();
        // MDTS 5 = 128 KiB: one block more needs two commands.
        match p.start_read(0, vec![0; (128 << 10) + 512], token(me, 0)) {
            Err((Refused::Unsupported, buf)) => assert_eq!(buf.len(), (128 << 10) + 512),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p.start_write(1 << 16, &[0; 512], false, token(me, 0)),
            Err(Refused::Failed(BackendError::OutOfRange { .. }))
        ));
        // The queue has 64 entries (one always empty): the 64th command is Busy.
        let mut started = 0;
        let busy = loop {
            match p.start_write(started, &[7; 512], false, token(me, started as u32)) {
                Ok(()) => started += 1,
                Err(why) => break why,
            }
        };
        assert!(matches!(busy, Refused::Busy), "{busy:?}");
        assert_eq!(started, 63);
        assert_eq!(reap_all(&r, p, me, 63, 100).len(), 63);
        p.start_write(0, &[1; 512], false, token(me, 0)).unwrap();
        assert_eq!(reap_all(&r, p, me, 1, 10).len(), 1);
    }
}

#[test]
fn a_dropped_polled_command_is_aborted_and_fails_with_timeout() {
    for owned in [false, true] {
        let (r, qid) = polled_rig(cfg(5, false), owned);
        let ns = r.driver.namespace(1).unwrap();
        let p = ns.polled().unwrap();
        let me = new_owner();
        r.ctrl.inject(Fault::Drop { qid, opcode: 0x02 });
        p.start_read(0, vec![0; 4096], token(me, 5)).unwrap();
        let done = reap_all(&r, p, me, 1, 3 * STEPS);
        assert_eq!(done.len(), 1);
        assert!(matches!(done[0].result, Err(BackendError::Timeout)));
        assert_eq!(done[0].token, token(me, 5));
        assert!(r.ctrl.executed().contains(&(0, 0x08)), "Abort sent");
        assert_eq!(r.driver.resets(), 0);
    }
}

#[test]
fn a_reset_fails_polled_commands_and_the_queue_works_after() {
    for owned in [false, true] {
        let (r, qid) = polled_rig(cfg(5, false), owned);
        let ns = r.driver.namespace(1).unwrap();
        let p = ns.polled().unwrap();
        let me = new_owner();
        r.ctrl.inject(Fault::AbortIgnored);
        r.ctrl.inject(Fault::Drop { qid, opcode: 0x01 });
        p.start_write(0, &pattern(4096, 1), false, token(me, 1))
            .unwrap();
        let done = reap_all(&r, p, me, 1, 4 * STEPS);
        assert_eq!(done.len(), 1, "the reset's failure reaches the owner");
        assert!(matches!(done[0].result, Err(BackendError::Timeout)));
        assert_eq!(r.driver.resets(), 1);
        round_trip(&r, p, 8, &pattern(4096, 2));
    }
}

#[test]
fn removal_fails_polled_commands_with_gone() {
    for owned in [false, true] {
        let (r, qid) = polled_rig(cfg(5, false), owned);
        let ns = r.driver.namespace(1).unwrap();
        let p = ns.polled().unwrap();
        let me = new_owner();
        r.ctrl.inject(Fault::Drop { qid, opcode: 0x02 });
        p.start_read(0, vec![0; 4096], token(me, 1)).unwrap();
        r.ctrl.inject(Fault::Removed);
        let done = reap_all(&r, p, me, 1, 3 * STEPS);
        assert!(
            matches!(done[0].result, Err(BackendError::Gone(_))),
            "{done:?}"
        );
        assert!(matches!(
            p.start_write(0, &[0; 512], false, token(me, 2)),
            Err(Refused::Failed(BackendError::Gone(_)))
        ));
        // Blocking callers see the same.
        assert!(matches!(Backend::flush(&*ns), Err(BackendError::Gone(_))));
    }
}

#[test]
fn a_forgotten_owner_gets_nothing_and_others_go_on() {
    for owned in [false, true] {
        let (r, _) = polled_rig(cfg(5, false), owned);
        let ns = r.driver.namespace(1).unwrap();
        let p = ns.polled().unwrap();
        let (gone, me) = (new_owner(), new_owner());
        p.start_write(0, &[1; 4096], false, token(gone, 1)).unwrap();
        p.start_write(8, &[2; 4096], false, token(me, 1)).unwrap();
        p.forget(gone);
        let done = reap_all(&r, p, me, 1, 10);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].token, token(me, 1));
        assert_eq!(p.reap(gone, &mut |_| panic!("forgotten")), 0);
    }
}

#[test]
fn a_queue_in_steady_state_reuses_its_dma_buffers_without_the_pool() {
    for sgls in [false, true] {
        let (ctrl, pool, clock) = parts(cfg(5, sgls), 16);
        let pages = pool.pages();
        let driver = start(&ctrl, pool.clone(), &clock, options()).unwrap();
        let r = Rig {
            driver,
            ctrl,
            clock,
        };
        let ns = r.driver.namespace(1).unwrap();
        let p = ns.polled().unwrap();
        let me = new_owner();
        // 4 KiB, 8 KiB and 128 KiB (PRPs: 32 pages, a list page) at depth 16, twice over.
        let round = |seed: u8| {
            for (i, len) in [4096usize, 8192, 128 << 10]
                .iter()
                .cycle()
                .take(48)
                .enumerate()
            {
                let lba = i as u64 * 256;
                let data = pattern(*len, seed ^ i as u8);
                p.start_write(lba, &data, false, token(me, i as u32))
                    .unwrap();
                if i % 16 == 15 {
                    assert_eq!(reap_all(&r, p, me, 16, 100).len(), 16);
                }
            }
        };
        round(1);
        let before = pool.allocations();
        round(2);
        round(3);
        assert_eq!(
            pool.allocations(),
            before,
            "steady-state commands took buffers from the pool (sgls {sgls})"
        );
        // What the queues keep is bounded by their share of the pool.
        assert!(pool.free_pages() >= pages / 2, "sgls {sgls}");
    }
}

/// Write `data` at `lba` and read it back through `p`, on the calling thread.
fn round_trip(r: &Rig, p: &dyn PolledBackend, lba: u64, data: &[u8]) {
    let me = new_owner();
    p.start_write(lba, data, false, token(me, 1)).unwrap();
    let done = reap_all(r, p, me, 1, 10);
    assert!(done.len() == 1 && done[0].result.is_ok(), "{done:?}");
    p.start_read(lba, vec![0; data.len()], token(me, 2))
        .unwrap();
    let back = reap_all(r, p, me, 1, 10);
    assert!(
        back.len() == 1 && back[0].buf.as_deref() == Some(data),
        "lba {lba}"
    );
}

#[test]
fn polling_threads_own_a_pair_each_until_they_end() {
    let r = queues_rig(3, 2);
    let ns = r.driver.namespace(1).unwrap();
    let p = ns.polled().unwrap();
    assert_eq!(r.driver.unowned_queues(), 2);
    round_trip(&r, p, 0, &pattern(4096, 1));
    assert_eq!(r.driver.unowned_queues(), 1, "this thread took one");
    std::thread::scope(|s| {
        s.spawn(|| {
            round_trip(&r, p, 8, &pattern(8192, 2));
            assert_eq!(
                r.driver.unowned_queues(),
                0,
                "the second thread took the other"
            );
            // A third polling thread finds none left and polls on its shared pair.
            s.spawn(|| round_trip(&r, p, 32, &pattern(4096, 3)))
                .join()
                .unwrap();
        });
    });
    // A thread's local storage is dropped after `join` returned: wait for it.
    for _ in 0..1000 {
        if r.driver.unowned_queues() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        r.driver.unowned_queues(),
        1,
        "an ended thread gives its pair back"
    );
    let at = |qid: u16| r.ctrl.executed().iter().filter(|e| e.0 == qid).count();
    assert_eq!((at(1), at(2), at(3)), (2, 2, 2), "one round trip per pair");
    std::thread::scope(|s| {
        s.spawn(|| round_trip(&r, p, 64, &pattern(4096, 4)));
    });
    assert_eq!(
        at(2) + at(3),
        6,
        "the given-back pair serves the next thread"
    );
}

#[test]
fn a_reset_reaches_the_pairs_other_threads_own() {
    let r = queues_rig(3, 2);
    let ns = r.driver.namespace(1).unwrap();
    let p = ns.polled().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (back_tx, back_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        // The other thread owns a pair (QID 2, taken first) with a write in flight the controller never answers.
        let (r, p) = (&r, p);
        let other = s.spawn(move || {
            let me = new_owner();
            r.ctrl.inject(Fault::Drop {
                qid: 2,
                opcode: 0x01,
            });
            p.start_write(0, &pattern(4096, 1), false, token(me, 1))
                .unwrap();
            // The first reap sends it to the controller, which drops it.
            assert_eq!(p.reap(me, &mut |_| panic!("dropped")), 0);
            back_tx.send(()).unwrap();
            // This thread reset the controller meanwhile (below).
            rx.recv().unwrap();
            let done = reap_all(r, p, me, 1, 10);
            assert_eq!(done.len(), 1, "the reset's failure reaches this owner");
            assert!(matches!(done[0].result, Err(BackendError::Timeout)));
            round_trip(r, p, 16, &pattern(4096, 2));
        });
        back_rx.recv().unwrap();
        // This thread's own command (QID 3) times out, is aborted in vain and resets the controller.
        let me = new_owner();
        r.ctrl.inject(Fault::AbortIgnored);
        r.ctrl.inject(Fault::Drop {
            qid: 3,
            opcode: 0x02,
        });
        p.start_read(0, vec![0; 4096], token(me, 1)).unwrap();
        let done = reap_all(r, p, me, 1, 4 * STEPS);
        assert!(matches!(done[0].result, Err(BackendError::Timeout)));
        assert_eq!(r.driver.resets(), 1);
        tx.send(()).unwrap();
        other.join().unwrap();
        round_trip(r, p, 24, &pattern(4096, 3));
    });
}

#[test]
fn shutdown_deletes_the_queues_the_controller_has() {
    let r = queues_rig(3, 2);
    let ns = r.driver.namespace(1).unwrap();
    let p = ns.polled().unwrap();
    // This thread's pair is made again after a reset; the unowned one is not.
    let me = new_owner();
    r.ctrl.inject(Fault::AbortIgnored);
    r.ctrl.inject(Fault::Drop {
        qid: 2,
        opcode: 0x02,
    });
    p.start_read(0, vec![0; 4096], token(me, 1)).unwrap();
    assert_eq!(reap_all(&r, p, me, 1, 4 * STEPS).len(), 1);
    round_trip(&r, p, 8, &pattern(4096, 1));
    let deletes = |r: &Rig| {
        r.ctrl
            .executed()
            .iter()
            .filter(|e| **e == (0, 0x00))
            .count()
    };
    assert_eq!(deletes(&r), 0);
    r.driver.shutdown().unwrap();
    assert_eq!(
        deletes(&r),
        2,
        "the shared pair and this thread's, not the unowned one"
    );
    assert!(matches!(
        p.start_write(0, &[0; 512], false, token(me, 2)),
        Err(Refused::Failed(BackendError::Gone(_)))
    ));
}
