//! Solicited write data received into memory the queue lent (a drive's DMA memory stands in
//! here): in pieces as it arrives, straight from a socket, with its data digest checked, and
//! malformed H2CData still refused as without lending.

use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;

use super::*;
use crate::sys;
use crate::tcp::pdu::{DGST_DDGST_ENABLE, DGST_HDGST_ENABLE};

/// An H2CData PDU answering `r` with all of `data[r2to..r2to + r2tl]`, encoded.
fn h2c_bytes(h: &Host, r: &R2t, data: &[u8]) -> Vec<u8> {
    let (off, end) = (r.r2to as usize, (r.r2to + r.r2tl) as usize);
    Pdu::with_data(
        PduHeader::H2CData(H2CData {
            cccid: r.cccid,
            ttag: r.ttag,
            datao: r.r2to,
            datal: r.r2tl,
        }),
        FLAG_LAST_PDU,
        Bytes::copy_from_slice(&data[off..end]),
    )
    .encode(h.opts)
    .to_vec()
}

/// A connection on a lending target with `dgst` digests, ready for I/O.
fn lending_host(dgst: u8) -> (Host, Arc<RamTarget>, Arc<TestLender>) {
    let (target, lender) = RamTarget::lending();
    let mut h = Host::new(target.clone(), TcpTargetConfig::default());
    h.handshake(0, dgst, 3);
    assert_eq!(h.connect(1, 32, 0).status(), Status::SUCCESS);
    (h, target, lender)
}

#[test]
fn h2c_data_arriving_in_pieces_lands_in_lent_memory() {
    for dgst in [0, DGST_HDGST_ENABLE | DGST_DDGST_ENABLE] {
        for cut in [1, 7, 100, 4096] {
            let (mut h, target, lender) = lending_host(dgst);
            let len = 64 * 1024;
            let data = pattern(len, cut as u8);
            let r2ts = start_r2t_write(&mut h, 5, len);
            assert_eq!(r2ts.len(), 1);
            assert_eq!(
                lender.lent.load(Ordering::SeqCst),
                1,
                "memory lent for the write"
            );
            let bytes = h2c_bytes(&h, &r2ts[0], &data);
            // The header and a little data, then the rest in pieces of `cut` bytes.
            let mut got = Vec::new();
            for piece in bytes[..90].chunks(90).chain(bytes[90..].chunks(cut)) {
                h.send_raw(piece);
                got.extend(h.recv());
            }
            assert_eq!(got.len(), 1);
            assert_eq!(cqe_of(&got[0]).status(), Status::SUCCESS);
            assert_eq!(&target.store.lock_counted()[..len], &data[..]);
            assert_eq!(lender.released.load(Ordering::SeqCst), 1, "given back once");
            let (back, _, cqe) = read_back(&mut h, 6, 0, len);
            assert_eq!(cqe.map(|c| c.status()), Some(Status::SUCCESS));
            assert!(back == data);
        }
    }
}

#[test]
fn a_bad_data_digest_of_steered_data_fails_only_that_command() {
    let (mut h, target, lender) = lending_host(DGST_DDGST_ENABLE);
    let data = pattern(8192, 3);
    let r = start_r2t_write(&mut h, 9, 8192)[0];
    let mut bytes = h2c_bytes(&h, &r, &data);
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    h.send_raw(&bytes[..40]);
    assert!(h.recv().is_empty());
    h.send_raw(&bytes[40..]);
    let got = h.recv();
    assert_eq!(got.len(), 1);
    assert_eq!(cqe_of(&got[0]).status(), Status::TRANSIENT_TRANSPORT_ERROR);
    assert!(!h.conn.is_closing());
    assert!(target.store.lock_counted()[..8192].iter().all(|&b| b == 0));
    assert_eq!(lender.released.load(Ordering::SeqCst), 1);
    // The connection goes on: the same write again succeeds.
    let r = start_r2t_write(&mut h, 10, 8192)[0];
    let bytes = h2c_bytes(&h, &r, &data);
    h.send_raw(&bytes[..40]);
    h.send_raw(&bytes[40..]);
    assert_eq!(cqe_of(&h.recv()[0]).status(), Status::SUCCESS);
    assert_eq!(&target.store.lock_counted()[..8192], &data[..]);
}

#[test]
fn h2c_data_is_received_straight_from_the_socket_into_lent_memory() {
    let (mut h, target, _) = lending_host(DGST_DDGST_ENABLE);
    let len = 128 * 1024;
    let data = pattern(len, 77);
    let r = start_r2t_write(&mut h, 3, len)[0];
    let bytes = h2c_bytes(&h, &r, &data);
    // The header (24 bytes) and 1,000 data bytes arrive first and are copied; the rest
    // (and the digest and the next command behind it) come through the socket.
    h.send_raw(&bytes[..1024]);
    assert!(h.recv().is_empty());
    let (mut tx, rx) = UnixStream::pair().unwrap();
    let next = read_cmd(4, 0, 4096).encode(h.opts).to_vec();
    tx.write_all(&bytes[1024..]).unwrap();
    tx.write_all(&next).unwrap();
    drop(tx);
    let (mut direct, mut buffered) = (0, 0);
    loop {
        let (target, buf) = h.conn.recv_targets();
        buf.reserve(64 * 1024);
        let got = match target {
            Some((lent, off, n)) => sys::recv_split(rx.as_fd(), lent, off, n, buf).unwrap(),
            None => (0, sys::recv_into_spare(rx.as_fd(), buf).unwrap()),
        };
        if got == (0, 0) {
            break;
        }
        h.conn.steered(got.0);
        h.conn.process(h.now);
        direct += got.0;
        buffered += got.1;
    }
    assert_eq!(
        direct,
        len - 1000,
        "the data not yet buffered went straight in"
    );
    assert_eq!(buffered, 4 + next.len(), "the digest and the next command");
    let got = h.recv();
    assert_eq!(
        got.len(),
        3,
        "write completion, read data, read completion: {got:?}"
    );
    assert_eq!(cqe_of(&got[0]).status(), Status::SUCCESS);
    assert_eq!(&target.store.lock_counted()[..len], &data[..]);
    assert_eq!(&got[1].data[..], &data[..4096]);
}

#[test]
fn malformed_h2c_data_is_refused_with_lending_too() {
    let (mut h, _, lender) = lending_host(0);
    let r = start_r2t_write(&mut h, 2, 8192)[0];
    // DATAO outside the R2T: Data Transfer Out of Range, whether or not the header arrives
    // before its data.
    let bad = Pdu::with_data(
        PduHeader::H2CData(H2CData {
            cccid: 2,
            ttag: r.ttag,
            datao: 4096,
            datal: 8192,
        }),
        FLAG_LAST_PDU,
        Bytes::from(vec![0u8; 8192]),
    )
    .encode(h.opts)
    .to_vec();
    h.send_raw(&bad[..100]);
    assert!(
        h.recv().is_empty(),
        "nothing answered before the PDU is whole"
    );
    h.send_raw(&bad[100..]);
    let (t, _) = term_of(&mut h);
    assert_eq!(t.fes, Fes::DataOutOfRange);
    drop(h);
    assert_eq!(
        lender.released.load(Ordering::SeqCst),
        1,
        "the lent memory goes back"
    );
}
