use bytes::Bytes;

use super::*;
use crate::backend::{Backend, BackendError, QueuedBackend};
use crate::driver::model::NsModel;
use crate::driver::nvme_driver::block_on;
use crate::Status;

fn ns_cfg(block_size: u32, blocks: u64, mdts: u8, sgls: bool) -> ModelConfig {
    ModelConfig {
        mdts,
        sgls,
        namespaces: vec![NsModel {
            block_size,
            blocks,
            zoned: None,
        }],
        ..ModelConfig::default()
    }
}

fn writes_and_reads(r: &Rig) -> (usize, usize) {
    let ex = r.ctrl.executed();
    let count = |op| ex.iter().filter(|(q, o)| *q != 0 && *o == op).count();
    (count(0x01), count(0x02))
}

/// Write `blocks` at `lba`, check the model's media and read it back through the driver;
/// returns how many Write and Read commands it took.
fn round_trip(r: &Rig, lba: u64, blocks: u64, seed: u8) -> (usize, usize) {
    let ns = r.driver.namespace(1).unwrap();
    let bs = ns.info().block_size as usize;
    let data = pattern(blocks as usize * bs, seed);
    let before = writes_and_reads(r);
    Backend::write(&*ns, lba, &data, false).unwrap();
    assert!(
        r.ctrl.read_blocks(1, lba, blocks) == data,
        "media at {lba}+{blocks}"
    );
    let mut back = vec![0u8; data.len()];
    Backend::read(&*ns, lba, &mut back).unwrap();
    assert!(back == data, "read back {lba}+{blocks}");
    let after = writes_and_reads(r);
    (after.0 - before.0, after.1 - before.1)
}

#[test]
fn every_size_class_with_4k_blocks() {
    // MDTS 5: 128 KiB = 32 blocks per command.
    let r = rig(ns_cfg(4096, 1024, 5, false));
    assert_eq!(round_trip(&r, 0, 1, 1), (1, 1), "one page: PRP1 only");
    assert_eq!(round_trip(&r, 5, 2, 2), (1, 1), "two pages: PRP1 + PRP2");
    assert_eq!(round_trip(&r, 9, 3, 3), (1, 1), "three pages: a PRP list");
    assert_eq!(round_trip(&r, 100, 32, 4), (1, 1), "exactly MDTS");
    assert_eq!(
        round_trip(&r, 200, 33, 5),
        (2, 2),
        "MDTS + 1 block is split"
    );
    assert_eq!(
        round_trip(&r, 300, 100, 6),
        (4, 4),
        "100 blocks = 32+32+32+4"
    );
}

#[test]
fn small_blocks_and_page_crossing() {
    let r = rig(ns_cfg(512, 8192, 5, false));
    assert_eq!(round_trip(&r, 0, 1, 7), (1, 1), "512 bytes");
    assert_eq!(round_trip(&r, 3, 7, 8), (1, 1), "3584 bytes in one page");
    assert_eq!(round_trip(&r, 17, 9, 9), (1, 1), "4608 bytes cross a page");
    assert_eq!(
        round_trip(&r, 40, 17, 10),
        (1, 1),
        "8704 bytes: three pages"
    );
    assert_eq!(
        round_trip(&r, 1000, 256, 11),
        (1, 1),
        "MDTS in 512-byte blocks"
    );
    assert_eq!(round_trip(&r, 2000, 257, 12), (2, 2), "split at 256 blocks");
}

#[test]
fn full_and_chained_prp_lists() {
    // MDTS 10: 4 MiB = 1024 pages. 513 pages fill PRP1 and exactly one list page; 514 chain
    // a second list page; 1024 pages need two.
    let r = {
        let (d, ctrl, clock) = start_with(ns_cfg(4096, 4096, 10, false), options(), 24);
        Rig {
            driver: d.unwrap(),
            ctrl,
            clock,
        }
    };
    assert_eq!(r.driver.info().max_transfer, 4 << 20);
    assert_eq!(round_trip(&r, 0, 513, 13), (1, 1));
    assert_eq!(round_trip(&r, 600, 514, 14), (1, 1));
    assert_eq!(round_trip(&r, 2000, 1024, 15), (1, 1));
    assert_eq!(round_trip(&r, 3000, 1025, 16), (2, 2));
}

#[test]
fn sgl_data_blocks_when_supported() {
    let r = rig(ns_cfg(4096, 1024, 5, true));
    assert!(r.driver.info().sgl);
    assert_eq!(round_trip(&r, 0, 1, 17), (1, 1));
    assert_eq!(round_trip(&r, 10, 20, 18), (1, 1));
    assert_eq!(round_trip(&r, 100, 70, 19), (3, 3));
}

#[test]
fn queued_requests_overlap_on_one_queue() {
    let r = rig(ns_cfg(4096, 1024, 5, false));
    let ns = r.driver.namespace(1).unwrap();
    let q: &dyn QueuedBackend = ns.queued().unwrap();
    let datas: Vec<Vec<u8>> = (0..8).map(|i| pattern(4 * 4096, 40 + i)).collect();
    let mut futs: Vec<_> = datas
        .iter()
        .enumerate()
        .map(|(i, d)| q.write(i as u64 * 8, Bytes::from(d.clone()), i % 2 == 0))
        .collect();
    // Poll them together until every one is done.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut done = vec![false; futs.len()];
    while done.iter().any(|d| !d) {
        for (f, d) in futs.iter_mut().zip(done.iter_mut()) {
            if !*d {
                if let std::task::Poll::Ready(res) = f.as_mut().poll(&mut cx) {
                    res.unwrap();
                    *d = true;
                }
            }
        }
    }
    for (i, d) in datas.iter().enumerate() {
        assert!(r.ctrl.read_blocks(1, i as u64 * 8, 4) == *d);
        let back = block_on(q.read(i as u64 * 8, vec![0; 4 * 4096])).unwrap();
        assert!(back == *d);
    }
}

#[test]
fn threads_share_queues() {
    let r = rig(ns_cfg(4096, 1024, 5, false));
    let ns = r.driver.namespace(1).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let ns = &ns;
            s.spawn(move || {
                for k in 0..10u64 {
                    let lba = u64::from(t) * 200 + k * 5;
                    let data = pattern(5 * 4096, t * 16 + k as u8);
                    Backend::write(&**ns, lba, &data, false).unwrap();
                    let mut back = vec![0; data.len()];
                    Backend::read(&**ns, lba, &mut back).unwrap();
                    assert!(back == data);
                }
            });
        }
    });
    let ex = r.ctrl.executed();
    let on = |qid| ex.iter().filter(|(q, o)| *q == qid && *o == 0x01).count();
    assert_eq!(on(1) + on(2), 40);
    assert!(on(1) > 0 && on(2) > 0, "threads spread over both queues");
}

#[test]
fn other_commands_and_errors() {
    let r = rig(ns_cfg(4096, 1024, 5, false));
    let ns = r.driver.namespace(1).unwrap();
    let data = pattern(8 * 4096, 50);
    Backend::write(&*ns, 0, &data, true).unwrap();
    Backend::flush(&*ns).unwrap();
    Backend::write_zeroes(&*ns, 2, 3).unwrap();
    let mut want = data.clone();
    want[2 * 4096..5 * 4096].fill(0);
    assert!(r.ctrl.read_blocks(1, 0, 8) == want);
    Backend::deallocate(&*ns, 0, 8).unwrap();
    let ex = r.ctrl.executed();
    assert!(ex.contains(&(1, 0x00)) || ex.contains(&(2, 0x00)));
    assert!(ex.iter().any(|(_, o)| *o == 0x09), "DSM sent");

    // Range and alignment are checked before anything is sent.
    assert!(matches!(
        Backend::write(&*ns, 1020, &[0; 5 * 4096], false),
        Err(BackendError::OutOfRange { .. })
    ));
    assert!(matches!(
        Backend::write(&*ns, 0, &[0; 100], false),
        Err(BackendError::Misaligned { .. })
    ));
    // A device status comes back as is, on whichever queue this thread uses.
    for qid in [1, 2] {
        r.ctrl.inject(crate::driver::model::Fault::Fail {
            qid,
            opcode: 0x02,
            status: Status::DATA_TRANSFER_ERROR,
        });
    }
    let mut buf = vec![0; 4096];
    match Backend::read(&*ns, 0, &mut buf) {
        Err(BackendError::Device(s)) => assert_eq!(s.sc, Status::DATA_TRANSFER_ERROR.sc),
        other => panic!("expected a device error, got {other:?}"),
    }
    assert!(r.driver.namespace(2).is_err());
    assert!(ns.may_block());
}
