//! The tokio initiator queue against a scripted controller that ends every read with a
//! C2HData LAST_PDU|SUCCESS although SQ flow control is on (the host did not disable it):
//! the host must complete the reads, keep working, and still never have more than
//! queue size - 1 commands outstanding.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use fabric::initiator::command;
use fabric::initiator::{HostCommand, Queue, QueueOptions};
use nvme_spec::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// CapsuleCmd without in-capsule data: 8-byte common header + 64-byte SQE.
const CAPSULE_LEN: usize = 72;
const READ_LEN: usize = 512;

/// ICResp (NVMe/TCP 1.0 §3.6.2.3): type 01h, HLEN 128, PLEN 128, PFV 0, CPDA 0, no
/// digests, MAXH2CDATA 128 KiB.
fn icresp() -> Vec<u8> {
    let mut b = vec![0x01, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00];
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&(128u32 * 1024).to_le_bytes());
    b.resize(128, 0);
    b
}

/// C2HData (type 07h, HLEN 24, PDO 24) with LAST_PDU (04h) | SUCCESS (08h).
fn c2h_success(cid: u16, data: &[u8]) -> Vec<u8> {
    let plen = 24 + data.len();
    let mut p = vec![0x07, 0x04 | 0x08, 24, 24];
    p.extend_from_slice(&(plen as u32).to_le_bytes());
    p.extend_from_slice(&cid.to_le_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&(data.len() as u32).to_le_bytes());
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(data);
    p
}

fn data_for(cid: u16) -> Vec<u8> {
    vec![cid as u8 ^ 0x5a; READ_LEN]
}

/// Serve `total` reads: gather what the host sends until it goes quiet for a moment, note how
/// many commands are outstanding, then answer them all with SUCCESS C2HData. Returns the
/// largest number of commands outstanding at once, and the still open connection.
async fn controller(mut s: TcpStream, total: usize) -> (usize, TcpStream) {
    let mut icreq = [0u8; 128];
    s.read_exact(&mut icreq).await.unwrap();
    assert_eq!(icreq[0], 0x00, "ICReq first");
    s.write_all(&icresp()).await.unwrap();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut waiting = Vec::new();
    let (mut answered, mut most) = (0, 0);
    while answered < total {
        // `read_buf` is cancel safe: nothing is lost when the quiet period ends a read.
        match tokio::time::timeout(Duration::from_millis(200), s.read_buf(&mut buf)).await {
            Ok(Ok(0)) => panic!("host closed after {answered} answers"),
            Ok(Ok(_)) => {
                while buf.len() >= CAPSULE_LEN {
                    assert_eq!(buf[0], 0x04, "only CapsuleCmds (no H2CTermReq): {buf:02x?}");
                    let sqe = &buf[8..CAPSULE_LEN];
                    assert_eq!(sqe[0], 0x02, "a Read");
                    waiting.push(u16::from_le_bytes([sqe[2], sqe[3]]));
                    buf.advance(CAPSULE_LEN);
                }
                continue;
            }
            Ok(Err(e)) => panic!("read: {e}"),
            Err(_) => {}
        }
        most = most.max(waiting.len());
        for cid in waiting.drain(..) {
            s.write_all(&c2h_success(cid, &data_for(cid)))
                .await
                .unwrap();
            answered += 1;
        }
    }
    (most, s)
}

#[tokio::test]
async fn success_flag_with_sq_flow_control_on_completes_and_frees_queue_slots() {
    const READS: usize = 6;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ctrl = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        controller(s, READS).await
    });
    let q = Queue::connect(
        addr,
        QueueOptions {
            qid: 1,
            queue_size: 3,
            disable_sqflow: false,
            timeout: Duration::from_secs(10),
            ..QueueOptions::default()
        },
    )
    .await
    .unwrap();
    let mut reads = Vec::new();
    for _ in 0..READS {
        let q = q.clone();
        reads.push(tokio::spawn(async move {
            q.submit(HostCommand::with_data_in(
                command::read(1, 0, 1),
                READ_LEN as u32,
            ))
            .await
        }));
    }
    for r in reads {
        let done = r.await.unwrap().expect("read completes");
        assert_eq!(done.status(), Status::SUCCESS);
        assert_eq!(
            done.data,
            data_for(done.cqe.cid()),
            "cid {}",
            done.cqe.cid()
        );
    }
    // Queue size 3: at most 2 outstanding, and each SUCCESS freed its slot (6 reads went
    // through 2 slots; a slot kept busy would have stalled the submitters).
    let (most, _open) = ctrl.await.unwrap();
    assert_eq!(most, 2);
    assert_eq!(q.outstanding(), 0);
    assert!(q.error().is_none(), "{:?}", q.error());
}
