use super::*;

fn established(digests: Digests, cpda: u8) -> HostConn {
    let mut conn = HostConn::new(HostConnConfig {
        qid: 1,
        digests,
        in_capsule_data: 8192,
        ..HostConnConfig::default()
    });
    while conn.poll_transmit().is_some() {}
    let icresp = Pdu::new(PduHeader::IcResp(IcResp {
        pfv: PFV_1_0,
        cpda,
        dgst: digests.bits(),
        maxh2cdata: 128 * 1024,
    }));
    conn.receive(&icresp.encode(EncodeOptions::default()).to_vec());
    assert!(matches!(conn.poll_event(), Some(HostEvent::Established(_))));
    conn
}

fn sent(conn: &mut HostConn) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = conn.poll_transmit() {
        out.extend_from_slice(&b);
    }
    out
}

#[test]
fn capsules_are_encoded_like_pdu_encode() {
    for (header, data, cpda) in [
        (false, false, 0),
        (true, false, 0),
        (false, true, 0),
        (true, true, 3),
        (false, false, 31),
    ] {
        let digests = Digests { header, data };
        let mut conn = established(digests, cpda);
        let n = conn.negotiated().unwrap();
        for payload in [Bytes::new(), Bytes::from(vec![0x5a; 4096])] {
            let mut sqe = Sqe {
                opcode: 0x01,
                ..Sqe::default()
            };
            sqe.nsid.set(1);
            let with_data = !payload.is_empty();
            let cid = conn
                .submit(
                    sqe,
                    with_data.then(|| payload.clone()),
                    if with_data { 0 } else { 512 },
                )
                .unwrap();
            let got = sent(&mut conn);
            // Rebuild the SQE the connection filled in and encode it the generic way.
            let mut want_sqe = sqe;
            want_sqe.cid.set(cid);
            want_sqe.flags = FLAGS_PSDT_SGL;
            want_sqe.dptr = if with_data {
                Sgl::InCapsule {
                    offset: 0,
                    length: 4096,
                }
                .encode()
            } else {
                transport_sgl(512)
            };
            let want = Pdu::with_data(PduHeader::CapsuleCmd(want_sqe), 0, payload)
                .encode(host_opts(n))
                .to_vec();
            assert_eq!(got, want, "digests {digests:?} cpda {cpda}");
        }
    }
}

#[test]
fn cids_are_reused_oldest_first() {
    let mut conn = established(Digests::NONE, 0);
    let read = |conn: &mut HostConn| conn.submit(Sqe::default(), None, 0).unwrap();
    let a = read(&mut conn);
    let b = read(&mut conn);
    let c = read(&mut conn);
    assert_eq!((a, b, c), (0, 1, 2));
    for cid in [b, a] {
        let resp = Pdu::new(PduHeader::CapsuleResp(Cqe::new(
            cid,
            1,
            0,
            Status::SUCCESS,
            0,
            0,
        )));
        conn.receive(&resp.encode(EncodeOptions::default()).to_vec());
    }
    assert_eq!(conn.outstanding(), 1);
    assert_eq!(read(&mut conn), b);
    assert_eq!(read(&mut conn), a);
    assert_eq!(read(&mut conn), 3);
    conn.close();
    let mut failed = Vec::new();
    while let Some(ev) = conn.poll_event() {
        if let HostEvent::Completed {
            cid,
            result: Err(_),
        } = ev
        {
            failed.push(cid);
        }
    }
    assert_eq!(failed, vec![0, 1, 2, 3]);
}
