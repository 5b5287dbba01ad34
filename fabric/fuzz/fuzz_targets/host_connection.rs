//! A sans-IO NVMe/TCP host connection (the in-tree initiator's) that sent ICReq and a few
//! commands, fed an ICResp and then an arbitrary controller byte stream in arbitrary chunks.
//! It must never panic, and everything it sends must be well-formed PDUs a controller can
//! frame (H2CData answering the stream's R2Ts, H2CTermReq on protocol errors).
//!
//! Input layout: byte 0 = ICResp DGST bits and CPDA (bits 1:0 DGST, bits 6:2 CPDA),
//! byte 1 = chunking seed, byte 2 = bit 0: SQ flow control disabled, bit 1: MAXH2CDATA 4 KiB
//! (else 128 KiB), the rest = the controller's byte stream after ICResp.
#![no_main]

use bytes::Bytes;
use fabric::tcp::framer::{Framer, Role};
use fabric::tcp::host_conn::{HostConn, HostConnConfig, HostEvent};
use fabric::tcp::pdu::{Digests, EncodeOptions, IcResp, Pdu, PduHeader};
use libfuzzer_sys::fuzz_target;
use nvme::Sqe;

/// Frame everything the host queued; a malformed PDU from the host is a bug.
fn check_output(host: &mut HostConn, ctrl_rx: &mut Framer) {
    while let Some(b) = host.poll_transmit() {
        ctrl_rx.feed(&b);
    }
    loop {
        match ctrl_rx.next_pdu() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("the host sent a PDU a controller cannot frame: {e:?}"),
        }
    }
}

fn command(opcode: u8) -> Sqe {
    let mut sqe = Sqe {
        opcode,
        ..Default::default()
    };
    sqe.nsid.set(1);
    sqe
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    let dgst = input[0] & 0x03;
    let cpda = (input[0] >> 2) & 0x1f;
    let mut seed = u32::from(input[1]) | 1;
    let stream = &input[3..];

    let mut host = HostConn::new(HostConnConfig {
        qid: 1,
        digests: Digests::from_bits(dgst),
        maxr2t: 3,
        in_capsule_data: 8192,
        sq_flow_control_disabled: input[2] & 1 != 0,
    });
    let mut ctrl_rx = Framer::new(Role::Controller, 1 << 20);
    check_output(&mut host, &mut ctrl_rx);

    let resp = IcResp {
        pfv: 0,
        cpda,
        dgst,
        maxh2cdata: if input[2] & 2 != 0 { 4096 } else { 128 << 10 },
    };
    host.receive(&Pdu::new(PduHeader::IcResp(resp)).encode(EncodeOptions::default()).to_vec());
    let negotiated = host.negotiated();
    if let Some(n) = negotiated {
        ctrl_rx.set_digests(n.digests);
        ctrl_rx.set_rx_pda(n.cpda);
    }
    // A read, an in-capsule write, a write solicited by R2T and a command without data:
    // CIDs the stream may answer.
    if negotiated.is_some() {
        let _ = host.submit(command(0x02), None, 8192);
        let _ = host.submit(command(0x01), Some(Bytes::from(vec![0x5a; 512])), 0);
        let _ = host.submit(command(0x01), Some(Bytes::from(vec![0xa5; 20_000])), 0);
        let _ = host.submit(command(0x00), None, 0);
    }
    check_output(&mut host, &mut ctrl_rx);

    let mut at = 0;
    while at < stream.len() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = ((seed % 97) as usize + 1).min(stream.len() - at);
        host.receive(&stream[at..at + n]);
        at += n;
        check_output(&mut host, &mut ctrl_rx);
        while let Some(ev) = host.poll_event() {
            if let HostEvent::Failed(_) = ev {
                return;
            }
        }
    }
});
