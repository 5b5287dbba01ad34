//! NVM I/O: reads and writes through PRPs and SGLs, write zeroes, deallocate, completion queue flow, doorbells, sparse media.

use super::*;

#[test]
fn read_after_write_4k_and_128k_with_prp_lists() {
    let mut h = Host::ready(ModelConfig::default());
    let one = h.scattered(1);
    let one: Vec<&Buf> = one.iter().collect();
    let data = h.fill(&one, 7);
    assert!(h.rw(0x01, 1, 10, 1, &one, PAGE).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, 10, 1), data);
    let back = h.scattered(1);
    let back: Vec<&Buf> = back.iter().collect();
    assert!(h.rw(0x02, 1, 10, 1, &back, PAGE).status().is_success());
    assert_eq!(h.gather(&back, PAGE), data);

    // 128 KiB = 32 pages: PRP1 + a PRP list of 31 entries.
    let bufs = h.scattered(32);
    let bufs: Vec<&Buf> = bufs.iter().collect();
    let data = h.fill(&bufs, 0x5a);
    assert!(h
        .rw(0x01, 1, 100, 32, &bufs, 32 * PAGE)
        .status()
        .is_success());
    assert_eq!(h.ctrl.read_blocks(1, 100, 32), data);
    let back = h.scattered(32);
    let back: Vec<&Buf> = back.iter().collect();
    assert!(h
        .rw(0x02, 1, 100, 32, &back, 32 * PAGE)
        .status()
        .is_success());
    assert_eq!(h.gather(&back, 32 * PAGE), data);
    // Unwritten blocks read as zeroes.
    assert!(h
        .rw(0x02, 1, 500, 1, &back[..1], PAGE)
        .status()
        .is_success());
    assert_eq!(h.gather(&back[..1], PAGE), vec![0; PAGE]);
    // MDTS is 128 KiB: 33 blocks is too much; out of range and bad NSID.
    assert_eq!(
        h.rw(0x02, 1, 0, 33, &back, 32 * PAGE).status(),
        Status::INVALID_FIELD
    );
    assert_eq!(
        h.rw(0x02, 1, 1020, 8, &back, 8 * PAGE).status(),
        Status::LBA_OUT_OF_RANGE
    );
    assert_eq!(
        h.rw(0x02, 2, 0, 1, &back, PAGE).status(),
        Status::INVALID_NAMESPACE
    );
}

#[test]
fn without_moving_data_reads_and_writes_complete_and_touch_nothing() {
    let mut h = Host::ready(ModelConfig::default());
    let bufs = h.scattered(1);
    let bufs: Vec<&Buf> = bufs.iter().collect();
    let data = h.fill(&bufs, 3);
    assert!(h.rw(0x01, 1, 5, 1, &bufs, PAGE).status().is_success());
    h.ctrl.set_moves_data(false);
    // A write stores nothing, a read leaves the host's buffer as it was.
    let other = h.scattered(1);
    let other: Vec<&Buf> = other.iter().collect();
    let ignored = h.fill(&other, 9);
    assert!(h.rw(0x01, 1, 5, 1, &other, PAGE).status().is_success());
    assert!(h.rw(0x02, 1, 5, 1, &other, PAGE).status().is_success());
    assert_eq!(h.gather(&other, PAGE), ignored);
    assert_eq!(h.ctrl.read_blocks(1, 5, 1), data);
    // The range rule still holds.
    assert_eq!(
        h.rw(0x02, 1, 1024, 1, &other, PAGE).status(),
        Status::LBA_OUT_OF_RANGE
    );
    h.ctrl.set_moves_data(true);
    assert!(h.rw(0x02, 1, 5, 1, &other, PAGE).status().is_success());
    assert_eq!(h.gather(&other, PAGE), data);
}

#[test]
fn prp_list_chains_across_list_pages() {
    let cfg = ModelConfig {
        mdts: 0,
        ..ModelConfig::default()
    };
    let mut h = Host::ready(cfg);
    // 600 pages need 599 list entries: two list pages chained by the last entry.
    let bufs = h.pool.alloc(600 * PAGE).unwrap();
    let data: Vec<u8> = (0..600 * PAGE)
        .map(|i| (i / PAGE) as u8 ^ i as u8)
        .collect();
    bufs.write_bytes(0, &data).unwrap();
    assert!(h
        .rw(0x01, 1, 0, 600, &[&bufs], 600 * PAGE)
        .status()
        .is_success());
    assert_eq!(h.ctrl.read_blocks(1, 0, 600), data);
}

#[test]
fn bad_prps_and_iommu_faults() {
    let mut h = Host::ready(ModelConfig::default());
    let buf = h.pool.alloc(2 * PAGE).unwrap();
    let mut s = sqe(0x02, 1);
    s.cdw12.set(1);
    s.dptr[0..8].copy_from_slice(&buf.iova().to_le_bytes());
    s.dptr[8..16].copy_from_slice(&(buf.iova() + PAGE as u64 + 8).to_le_bytes());
    assert_eq!(h.cmd(1, s).status(), Status::PRP_OFFSET_INVALID);
    s.dptr[0..8].copy_from_slice(&(buf.iova() + 2).to_le_bytes());
    assert_eq!(h.cmd(1, s).status(), Status::PRP_OFFSET_INVALID);
    s.dptr[0..8].copy_from_slice(&0x1000u64.to_le_bytes());
    s.dptr[8..16].copy_from_slice(&0x2000u64.to_le_bytes());
    assert_eq!(h.cmd(1, s).status(), Status::DATA_TRANSFER_ERROR);
    // SGL without `sgls` is an invalid field.
    s.flags = 1 << 6;
    assert_eq!(h.cmd(1, s).status(), Status::INVALID_FIELD);
}

#[test]
fn sgl_data_block_write_zeroes_and_deallocate() {
    let cfg = ModelConfig {
        sgls: true,
        ..ModelConfig::default()
    };
    let mut h = Host::ready(cfg);
    let buf = h.pool.alloc(4 * PAGE).unwrap();
    let data = h.fill(&[&buf], 3);
    let sgl = |s: &mut Sqe, len: u32| {
        s.flags = 1 << 6;
        s.dptr = [0; 16];
        s.dptr[0..8].copy_from_slice(&buf.iova().to_le_bytes());
        s.dptr[8..12].copy_from_slice(&len.to_le_bytes());
    };
    let mut w = sqe(0x01, 1);
    w.cdw10.set(20);
    w.cdw12.set(3);
    sgl(&mut w, 4 * PAGE as u32);
    assert!(h.cmd(1, w).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, 20, 4), data);
    sgl(&mut w, PAGE as u32);
    assert_eq!(h.cmd(1, w).status(), Status::DATA_SGL_LENGTH_INVALID);
    w.dptr[15] = 0x50;
    assert_eq!(h.cmd(1, w).status(), Status::SGL_DESCRIPTOR_TYPE_INVALID);

    let mut z = sqe(0x08, 1);
    z.cdw10.set(20);
    assert!(h.cmd(1, z).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, 20, 1), vec![0; PAGE]);
    assert_eq!(h.ctrl.read_blocks(1, 21, 3), data[PAGE..]);

    let range = crate::command::DsmRange::new(22, 1, 0);
    let rbuf = h.pool.alloc(PAGE).unwrap();
    rbuf.write_bytes(0, zerocopy::IntoBytes::as_bytes(&range))
        .unwrap();
    let mut d = sqe(0x09, 1);
    d.cdw11.set(1 << 2);
    d.dptr[0..8].copy_from_slice(&rbuf.iova().to_le_bytes());
    assert!(h.cmd(1, d).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, 22, 1), vec![0; PAGE]);
    assert_eq!(h.ctrl.read_blocks(1, 23, 1), data[3 * PAGE..]);
    assert!(h.cmd(1, sqe(0x00, 1)).status().is_success());
}

#[test]
fn full_cq_holds_completions_until_head_doorbell() {
    let mut h = Host::ready(ModelConfig::default());
    assert!(h.create_io(2, 4).status().is_success());
    for _ in 0..3 {
        h.submit(2, sqe(0x00, 1));
    }
    h.ring_sq(2);
    let mut first = Vec::new();
    while let Some(c) = h.poll(2) {
        first.push(c);
    }
    assert_eq!(first.len(), 3);
    // CQ head doorbell not rung: the controller sees a full CQ and holds the next ones.
    for _ in 0..3 {
        h.submit(2, sqe(0x00, 1));
    }
    h.ring_sq(2);
    assert!(h.poll(2).is_none());
    h.ring_cq(2);
    let mut second = Vec::new();
    while let Some(c) = h.poll(2) {
        second.push(c);
    }
    assert_eq!(second.len(), 3);
    assert!(second.iter().all(|c| c.status().is_success()));
    // SQHD reports the head after each fetch: 1, 2, 3 then 0 (wrapped), 1, 2.
    let heads: Vec<u16> = first.iter().chain(&second).map(|c| c.sqhd.get()).collect();
    assert_eq!(heads, [1, 2, 3, 0, 1, 2]);
}

#[test]
fn invalid_doorbell_writes_are_ignored_and_recorded() {
    let mut h = Host::ready(ModelConfig::default());
    let off = h.db.sq_tail(1).unwrap();
    h.ctrl.write32(off, 64);
    let off = h.db.cq_head(1).unwrap();
    h.ctrl.write32(off, 5);
    let off = h.db.sq_tail(7).unwrap();
    h.ctrl.write32(off, 1);
    assert_eq!(
        h.ctrl.doorbell_errors(),
        [
            DoorbellError::SqTail { qid: 1, value: 64 },
            DoorbellError::CqHead { qid: 1, value: 5 },
            DoorbellError::SqTail { qid: 7, value: 1 },
        ]
    );
    // The queue still works.
    assert!(h.cmd(1, sqe(0x00, 1)).status().is_success());
}

#[test]
fn namespaces_of_gibs_are_sparse() {
    let cfg = ModelConfig {
        namespaces: vec![
            NsModel {
                block_size: 4096,
                blocks: 1 << 20,
                zoned: None,
            },
            NsModel {
                block_size: 4096,
                blocks: 1 << 21,
                zoned: Some(ZonedModel {
                    zone_size: 1 << 16,
                    zone_cap: 60_000,
                    max_open: 0,
                    max_active: 0,
                }),
            },
        ],
        ..ModelConfig::default()
    };
    let mut h = Host::ready(cfg);
    let last = (1u64 << 20) - 1;
    let one = h.scattered(1);
    let one: Vec<&Buf> = one.iter().collect();
    let data = h.fill(&one, 1);
    assert!(h.rw(0x01, 1, last, 1, &one, PAGE).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, last, 1), data);
    // Deallocating 4 GiB frees the one stored chunk.
    let range = crate::command::DsmRange::new(0, u32::MAX, 0);
    let rbuf = h.pool.alloc(PAGE).unwrap();
    rbuf.write_bytes(0, zerocopy::IntoBytes::as_bytes(&range))
        .unwrap();
    let mut d = sqe(0x09, 1);
    d.cdw11.set(1 << 2);
    d.dptr[0..8].copy_from_slice(&rbuf.iova().to_le_bytes());
    assert_eq!(h.cmd(1, d).status(), Status::LBA_OUT_OF_RANGE);
    let range = crate::command::DsmRange::new(0, 1 << 20, 0);
    rbuf.write_bytes(0, zerocopy::IntoBytes::as_bytes(&range))
        .unwrap();
    assert!(h.cmd(1, d).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, last, 1), vec![0; PAGE]);

    let zslba = 31u64 << 16;
    let mut s = sqe(0x7d, 2);
    s.cdw10.set(zslba as u32);
    let mut lists = Vec::new();
    h.prps(&mut s, &one, PAGE, &mut lists);
    let c = h.cmd(1, s);
    assert_eq!(c.result64(), zslba);
    assert_eq!(h.ctrl.read_blocks(2, zslba, 1), data);
    let mut r = sqe(0x79, 2);
    r.cdw13.set(0x04 | (1 << 8));
    assert!(h.cmd(1, r).status().is_success());
    assert_eq!(h.ctrl.zone(2, zslba), Some((ZoneState::Empty, zslba)));
    assert_eq!(h.ctrl.read_blocks(2, zslba, 1), vec![0; PAGE]);
}

#[test]
fn block_size_512_partial_chunks() {
    let cfg = ModelConfig {
        namespaces: vec![NsModel {
            block_size: 512,
            blocks: 4096,
            zoned: None,
        }],
        ..ModelConfig::default()
    };
    let mut h = Host::ready(cfg);
    let bufs = h.scattered(2);
    let bufs: Vec<&Buf> = bufs.iter().collect();
    let data = h.fill(&bufs, 0x33);
    // 16 blocks at LBA 5 straddle three 4 KiB chunks.
    assert!(h.rw(0x01, 1, 5, 16, &bufs, 2 * PAGE).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, 5, 16), data);
    let mut z = sqe(0x08, 1);
    z.cdw10.set(7);
    z.cdw12.set(9);
    assert!(h.cmd(1, z).status().is_success());
    let mut want = data.clone();
    want[2 * 512..12 * 512].fill(0);
    assert_eq!(h.ctrl.read_blocks(1, 5, 16), want);
    let back = h.scattered(2);
    let back: Vec<&Buf> = back.iter().collect();
    assert!(h.rw(0x02, 1, 5, 16, &back, 2 * PAGE).status().is_success());
    assert_eq!(h.gather(&back, 2 * PAGE), want);
}
