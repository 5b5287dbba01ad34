//! End to end: the in-tree NVMe/TCP initiator against an in-process target on 127.0.0.1.
//! Every test asserts on what a host sees: data read back, status codes, identify fields.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{host, random};
use fabric::initiator::command;
use fabric::initiator::controller::Controller;
use fabric::initiator::discovery::discover;
use fabric::initiator::queue::{Queue, QueueOptions};
use fabric::initiator::{HostCommand, HostError, HostOptions};
use nvme::identify::{IdentifyController, IdentifyNamespace};
use nvme::log_page::{AddressFamily, SubsystemType, TransportType};
use nvme::Status;
use target::engine::Outcome;
use target::{Config, Daemon};

mod common;

const SUB_A: &str = "nqn.2026-01.io.ferrofab:test-a";
const SUB_B: &str = "nqn.2026-01.io.ferrofab:test-b";
const HOST_OK: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";
const HOST_OTHER: &str = "nqn.2014-08.org.nvmexpress:uuid:99999999-2222-3333-4444-555555555555";

fn config(extra: &str) -> Config {
    let text = format!(
        r#"
[[listener]]
transport = "tcp"
address = "127.0.0.1:0"

[[subsystem]]
nqn = "{SUB_A}"
serial = "SERIAL-A"
model = "ferrofab test"

[[subsystem.namespace]]
backend = "ram"
size = "64MiB"

[[subsystem]]
nqn = "{SUB_B}"
allowed_hosts = ["{HOST_OK}"]

[[subsystem.namespace]]
nsid = 1
backend = "ram"
size = "8MiB"
block_size = 4096

[[subsystem.namespace]]
nsid = 2
backend = "null"
size = "16MiB"
{extra}
"#
    );
    common::parse(&text)
}

async fn start(extra: &str) -> (Daemon, SocketAddr) {
    common::serve(config(extra)).await
}

#[tokio::test]
async fn discovery_log_lists_what_the_host_may_use() {
    let (d, addr) = start("").await;
    let log = discover(addr, host(HOST_OK, 0)).await.unwrap();
    let nvm: Vec<_> = log
        .records
        .iter()
        .filter(|e| e.subtype == SubsystemType::Nvme)
        .collect();
    let mut nqns: Vec<_> = nvm.iter().map(|e| e.subnqn.as_str()).collect();
    nqns.sort();
    assert_eq!(nqns, vec![SUB_A, SUB_B]);
    for e in &nvm {
        assert_eq!(e.trtype, TransportType::Tcp, "TCP");
        assert_eq!(e.adrfam, AddressFamily::Ipv4, "IPv4");
        assert_eq!(e.traddr, "127.0.0.1");
        assert_eq!(e.trsvcid, addr.port().to_string());
        assert_eq!(e.portid, 1);
        assert_eq!(e.cntlid, 0xffff);
    }
    let current: Vec<_> = log
        .records
        .iter()
        .filter(|e| e.subtype == SubsystemType::CurrentDiscovery)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].subnqn, "nqn.2014-08.org.nvmexpress.discovery");

    // A host not on SUB_B's list does not see it.
    let log = discover(addr, host(HOST_OTHER, 0)).await.unwrap();
    let nqns: Vec<_> = log
        .records
        .iter()
        .filter(|e| e.subtype == SubsystemType::Nvme)
        .map(|e| e.subnqn.clone())
        .collect();
    assert_eq!(nqns, vec![SUB_A.to_string()]);
    d.shutdown().await;
}

#[tokio::test]
async fn connect_four_io_queues_and_identify() {
    let (d, addr) = start("").await;
    let ctrl = Controller::connect(addr, SUB_A, host(HOST_OK, 4))
        .await
        .unwrap();
    assert_eq!(ctrl.io_queue_count(), 4);
    let raw = ctrl.identify_raw(1, 0, 0).await.unwrap().ok().unwrap().data;
    let id = IdentifyController::from_bytes(&raw).unwrap();
    assert_eq!(id.serial_number(), "SERIAL-A");
    assert_eq!(id.model_number(), "ferrofab test");
    assert_eq!(id.subnqn().unwrap(), SUB_A);
    assert_eq!(id.mdts, 8);
    assert_eq!(id.cntlid.get(), ctrl.cntlid());
    assert_eq!(id.cntrltype, 1);
    assert_eq!(id.ioccsz.get(), (64 + 8192) / 16);
    assert_eq!(id.sqes, 0x66);
    assert_eq!(id.nn.get(), 1024);
    assert_eq!(ctrl.active_namespaces().await.unwrap(), vec![1]);
    let ns = IdentifyNamespace::from_bytes(&ctrl.identify_namespace(1).await.unwrap()).unwrap();
    assert_eq!(ns.nsze.get(), (64 << 20) / 512);
    assert_eq!(ns.block_size(), Some(512));
    let descs = ctrl.ns_descriptors(1).await.unwrap();
    let kinds: Vec<u8> = descs.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, vec![1, 2, 3, 4]);
    assert_eq!(
        descs[1].1,
        ns.nguid.to_vec(),
        "NGUID matches Identify Namespace"
    );
    assert_eq!(d.target().controller_count(), 1);
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

async fn write_read_sizes(header_digest: bool, data_digest: bool) {
    let (d, addr) = start("").await;
    let opts = HostOptions {
        header_digest,
        data_digest,
        ..host(HOST_OK, 2)
    };
    let ctrl = Controller::connect(addr, SUB_A, opts).await.unwrap();
    let mut lba = 0u64;
    for (i, len) in [4096usize, 128 << 10, 1 << 20].into_iter().enumerate() {
        let qid = (i % 2) as u16 + 1;
        let data = random(len);
        let w = ctrl.write(qid, 1, lba, data.clone(), false).await.unwrap();
        assert_eq!(w.status(), Status::SUCCESS, "write {len}");
        let r = ctrl.read(qid, 1, lba, (len / 512) as u32).await.unwrap();
        assert_eq!(r.status(), Status::SUCCESS, "read {len}");
        assert_eq!(r.data, data, "data read back at {len} bytes");
        lba += (len / 512) as u64;
    }
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

#[tokio::test]
async fn write_read_without_digests() {
    write_read_sizes(false, false).await;
}

#[tokio::test]
async fn write_read_with_header_and_data_digests() {
    write_read_sizes(true, true).await;
}

#[tokio::test]
async fn write_read_with_sq_flow_control_disabled() {
    let (d, addr) = start("").await;
    let opts = HostOptions {
        disable_sqflow: true,
        data_digest: true,
        ..host(HOST_OK, 1)
    };
    let ctrl = Controller::connect(addr, SUB_A, opts).await.unwrap();
    let data = random(256 << 10);
    assert!(ctrl
        .write(1, 1, 100, data.clone(), true)
        .await
        .unwrap()
        .status()
        .is_success());
    let r = ctrl.read(1, 1, 100, 512).await.unwrap();
    assert_eq!(r.data, data);
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

#[tokio::test]
async fn lba_out_of_range_and_invalid_opcode() {
    let (d, addr) = start("").await;
    let ctrl = Controller::connect(addr, SUB_A, host(HOST_OK, 1))
        .await
        .unwrap();
    let blocks = (64u64 << 20) / 512;
    let r = ctrl.read(1, 1, blocks - 1, 2).await.unwrap();
    assert_eq!(r.status(), Status::LBA_OUT_OF_RANGE.with_dnr());
    let w = ctrl.write(1, 1, blocks, random(512), false).await.unwrap();
    assert_eq!(w.status(), Status::LBA_OUT_OF_RANGE.with_dnr());
    // An undefined I/O opcode.
    let mut sqe = command::flush(1);
    sqe.opcode = 0x7e;
    let c = ctrl.submit_io(1, HostCommand::new(sqe)).await.unwrap();
    assert_eq!(c.status(), Status::INVALID_OPCODE.with_dnr());
    // An undefined admin opcode.
    let mut sqe = command::keep_alive();
    sqe.opcode = 0x80; // Format NVM: not supported
    let c = ctrl.submit_admin(HostCommand::new(sqe)).await.unwrap();
    assert_eq!(c.status(), Status::INVALID_OPCODE.with_dnr());
    // A namespace that does not exist.
    let r = ctrl.read_with_block_size(1, 9, 0, 1, 512).await.unwrap();
    assert_eq!(r.status(), Status::INVALID_NAMESPACE.with_dnr());
    // The target recorded the failures in the Error Information log, newest first.
    let log = ctrl.get_log_page(0x01, 0xffff_ffff, 0, 64).await.unwrap();
    let entry = nvme::log_page::ErrorInformationEntry::from_bytes(&log).unwrap();
    assert_eq!(entry.status(), Status::INVALID_NAMESPACE.with_dnr());
    assert_eq!(entry.sqid.get(), 1);
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

#[tokio::test]
async fn host_not_on_the_allow_list_is_refused_at_connect() {
    let (d, addr) = start("").await;
    match Controller::connect(addr, SUB_B, host(HOST_OTHER, 1)).await {
        Err(HostError::Connect(s)) => assert_eq!(s, Status::CONNECT_INVALID_HOST.with_dnr()),
        Err(e) => panic!("expected Connect Invalid Host, got {e}"),
        Ok(_) => panic!("a host not on the list connected"),
    }
    let ok = Controller::connect(addr, SUB_B, host(HOST_OK, 1))
        .await
        .unwrap();
    ok.shutdown().await.unwrap();
    // An unknown subsystem is an invalid parameter in the Connect data (SUBNQN @256).
    match Controller::connect(addr, "nqn.2026-01.io.ferrofab:nope", host(HOST_OK, 1)).await {
        Err(HostError::Connect(s)) => {
            assert_eq!(s, Status::CONNECT_INVALID_PARAMETERS.with_dnr())
        }
        other => panic!("expected Connect Invalid Parameters, got {:?}", other.err()),
    }
    d.shutdown().await;
}

#[tokio::test]
async fn several_subsystems_and_namespaces() {
    let (d, addr) = start("").await;
    let b = Controller::connect(addr, SUB_B, host(HOST_OK, 1))
        .await
        .unwrap();
    assert_eq!(b.active_namespaces().await.unwrap(), vec![1, 2]);
    assert_eq!(b.block_size(1).await.unwrap(), 4096);
    let data = random(8192);
    assert!(b
        .write(1, 1, 3, data.clone(), false)
        .await
        .unwrap()
        .status()
        .is_success());
    assert_eq!(b.read(1, 1, 3, 2).await.unwrap().data, data);
    // The null namespace discards writes and reads zeroes.
    assert!(b
        .write(1, 2, 0, data.clone(), false)
        .await
        .unwrap()
        .status()
        .is_success());
    let z = b.read(1, 2, 0, 16).await.unwrap();
    assert!(z.status().is_success());
    assert!(z.data.iter().all(|&x| x == 0));
    // Subsystem A's namespace 1 is a different store.
    let a = Controller::connect(addr, SUB_A, host(HOST_OK, 1))
        .await
        .unwrap();
    let ra = a.read(1, 1, 24, 16).await.unwrap();
    assert!(ra.data.iter().all(|&x| x == 0));
    assert_eq!(d.target().controller_count(), 2);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    d.shutdown().await;
}

#[tokio::test]
async fn write_zeroes_deallocate_compare_flush() {
    let (d, addr) = start("").await;
    let ctrl = Controller::connect(addr, SUB_A, host(HOST_OK, 1))
        .await
        .unwrap();
    let data = random(64 * 512);
    assert!(ctrl
        .write(1, 1, 0, data.clone(), false)
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(ctrl
        .compare(1, 1, 0, data.clone())
        .await
        .unwrap()
        .status()
        .is_success());
    let mut other = data.to_vec();
    other[700] ^= 0xff;
    let c = ctrl.compare(1, 1, 0, Bytes::from(other)).await.unwrap();
    assert_eq!(c.status(), Status::COMPARE_FAILURE.with_dnr());
    assert!(ctrl
        .write_zeroes(1, 1, 8, 8)
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(ctrl
        .dsm_deallocate(1, 1, &[(32, 8), (48, 4)])
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(ctrl.flush(1, 1).await.unwrap().status().is_success());
    assert!(ctrl
        .flush(1, 0xffff_ffff)
        .await
        .unwrap()
        .status()
        .is_success());
    let r = ctrl.read(1, 1, 0, 64).await.unwrap().data;
    let zero = |from: usize, to: usize| r[from * 512..to * 512].iter().all(|&b| b == 0);
    assert_eq!(&r[..8 * 512], &data[..8 * 512]);
    assert!(zero(8, 16));
    assert_eq!(&r[16 * 512..32 * 512], &data[16 * 512..32 * 512]);
    assert!(zero(32, 40));
    assert_eq!(&r[40 * 512..48 * 512], &data[40 * 512..48 * 512]);
    assert!(zero(48, 52));
    assert_eq!(&r[52 * 512..], &data[52 * 512..]);
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

#[tokio::test]
async fn namespace_added_at_runtime_raises_an_event() {
    let (d, addr) = start("").await;
    let ctrl = Controller::connect(addr, SUB_A, host(HOST_OK, 1))
        .await
        .unwrap();
    let aer = {
        let admin = ctrl.admin_queue().clone();
        tokio::spawn(async move {
            admin
                .submit(HostCommand::new(command::async_event_request()))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sub = d.target().subsystem(SUB_A).unwrap();
    let backend = std::sync::Arc::new(nvme::backend::RamBackend::new(1 << 20, 512).unwrap());
    sub.add_namespace(std::sync::Arc::new(target::namespace::Namespace::new(
        SUB_A, 5, backend,
    )))
    .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(5), aer)
        .await
        .expect("AER completes")
        .unwrap()
        .unwrap();
    // Notice, Namespace Attribute Changed, Changed Namespace List (NVMe Base 2.0 Figure 146).
    assert_eq!(done.cqe.dw0.get(), 0x0004_0002);
    let log = ctrl.get_log_page(0x04, 0xffff_ffff, 0, 4096).await.unwrap();
    assert_eq!(&log[0..8], &[5, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(ctrl.active_namespaces().await.unwrap(), vec![1, 5]);
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

#[tokio::test]
async fn file_namespace_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("ferrofab-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ns.img");
    let extra = format!(
        "[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:file\"\n\
         [[subsystem.namespace]]\nbackend = \"file\"\npath = \"{}\"\nsize = \"4MiB\"\n",
        path.display()
    );
    let data = random(128 << 10);
    {
        let (d, addr) = start(&extra).await;
        let ctrl = Controller::connect(addr, "nqn.2026-01.io.ferrofab:file", host(HOST_OK, 1))
            .await
            .unwrap();
        assert!(ctrl
            .write(1, 1, 2048, data.clone(), false)
            .await
            .unwrap()
            .status()
            .is_success());
        assert!(ctrl.flush(1, 1).await.unwrap().status().is_success());
        ctrl.shutdown().await.unwrap();
        d.shutdown().await;
    }
    let (d, addr) = start(&extra).await;
    let ctrl = Controller::connect(addr, "nqn.2026-01.io.ferrofab:file", host(HOST_OK, 1))
        .await
        .unwrap();
    let r = ctrl.read(1, 1, 2048, 256).await.unwrap();
    assert_eq!(r.data, data);
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn corrupted_data_digest_fails_the_command_and_keeps_the_queue() {
    let (d, addr) = start("").await;
    let opts = HostOptions {
        header_digest: true,
        data_digest: true,
        ..host(HOST_OK, 1)
    };
    let ctrl = Controller::connect(addr, SUB_A, opts).await.unwrap();
    let q = ctrl.io_queue(1).unwrap();
    // In-capsule (4 KiB) and R2T (128 KiB) paths: NVMe/TCP 1.0 §3.6.2.12 (data digest error
    // in command data) completes the command with Transient Transport Error.
    for (lba, len) in [(0u64, 4096usize), (64, 128 << 10)] {
        q.corrupt_next_data_digest();
        let w = ctrl.write(1, 1, lba, random(len), false).await.unwrap();
        assert_eq!(
            w.status().sc,
            Status::TRANSIENT_TRANSPORT_ERROR.sc,
            "{len} bytes"
        );
        // Nothing reached the namespace, and the queue still works.
        let r = ctrl.read(1, 1, lba, (len / 512) as u32).await.unwrap();
        assert!(r.status().is_success());
        assert!(
            r.data.iter().all(|&b| b == 0),
            "corrupted data was not written"
        );
    }
    let data = random(8192);
    assert!(ctrl
        .write(1, 1, 0, data.clone(), false)
        .await
        .unwrap()
        .status()
        .is_success());
    assert_eq!(ctrl.read(1, 1, 0, 16).await.unwrap().data, data);
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

#[tokio::test]
async fn io_queue_connect_rules() {
    let (d, addr) = start("").await;
    let opts = host(HOST_OK, 2);
    let hostid = opts.hostid;
    let ctrl = Controller::connect(addr, SUB_A, opts).await.unwrap();
    let cntlid = ctrl.cntlid();
    let io_opts = QueueOptions {
        qid: 3,
        ..QueueOptions::default()
    };
    // QID 3 exceeds the two queues granted by Set Features Number of Queues.
    let q = Queue::connect(addr, io_opts.clone()).await.unwrap();
    let err = q
        .fabrics_connect(SUB_A, HOST_OK, &hostid, cntlid, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HostError::Connect(s) if s == Status::CONNECT_INVALID_PARAMETERS.with_dnr())
    );
    // QID 1 is already connected.
    let q = Queue::connect(
        addr,
        QueueOptions {
            qid: 1,
            ..io_opts.clone()
        },
    )
    .await
    .unwrap();
    assert!(q
        .fabrics_connect(SUB_A, HOST_OK, &hostid, cntlid, 0)
        .await
        .is_err());
    // A different host ID may not join this controller.
    let q = Queue::connect(
        addr,
        QueueOptions {
            qid: 2,
            ..io_opts.clone()
        },
    )
    .await
    .unwrap();
    assert!(q
        .fabrics_connect(SUB_A, HOST_OK, &[9; 16], cntlid, 0)
        .await
        .is_err());
    // A controller that does not exist.
    let q = Queue::connect(addr, QueueOptions { qid: 1, ..io_opts })
        .await
        .unwrap();
    assert!(q
        .fabrics_connect(SUB_A, HOST_OK, &hostid, 0x7777, 0)
        .await
        .is_err());
    assert_eq!(d.target().controller_count(), 1);
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

#[tokio::test]
async fn admin_commands_need_an_enabled_controller() {
    let (d, addr) = start("").await;
    let q = Queue::connect(addr, QueueOptions::default()).await.unwrap();
    q.fabrics_connect_admin(SUB_A, HOST_OK, &[3; 16], 0)
        .await
        .unwrap();
    // NVMe Base 2.0 §3.5.1: before CC.EN = 1 only Fabrics commands are processed.
    let c = q
        .submit(HostCommand::with_data_in(
            command::identify(1, 0, 0, 0),
            4096,
        ))
        .await
        .unwrap();
    assert_eq!(c.status(), Status::COMMAND_SEQUENCE_ERROR.with_dnr());
    // Property Get works: CAP.MQES = 1023, CSTS.RDY = 0.
    let cap = q
        .submit(HostCommand::new(command::property_get(
            0x0,
            command::PropertySize::Eight,
        )))
        .await
        .unwrap();
    assert_eq!(cap.cqe.result64() & 0xffff, 1023);
    let csts = q
        .submit(HostCommand::new(command::property_get(
            0x1c,
            command::PropertySize::Four,
        )))
        .await
        .unwrap();
    assert_eq!(csts.cqe.dw0.get(), 0);
    // An unsupported page size in CC makes the controller fatal (CSTS.CFS).
    let bad_cc = 1 | (6 << 16) | (4 << 20) | (3 << 7);
    q.submit(HostCommand::new(command::property_set(
        0x14,
        command::PropertySize::Four,
        bad_cc,
    )))
    .await
    .unwrap();
    let csts = q
        .submit(HostCommand::new(command::property_get(
            0x1c,
            command::PropertySize::Four,
        )))
        .await
        .unwrap();
    assert_eq!(csts.cqe.dw0.get(), 0b10);
    d.shutdown().await;
}

#[tokio::test]
async fn features_and_event_limits() {
    let (d, addr) = start("").await;
    let opts = host(HOST_OK, 4);
    let hostid = opts.hostid;
    let ctrl = Controller::connect(addr, SUB_A, opts).await.unwrap();
    // Number of Queues: 4 granted, 0's based in both halves.
    let nq = ctrl.get_features(0x07, 0, 0, 0, 0).await.unwrap();
    assert_eq!(nq.cqe.dw0.get(), 0x0003_0003);
    // Host Identifier (128-bit) is the one given at Connect.
    let hid = ctrl.get_features(0x81, 0, 0, 1, 16).await.unwrap();
    assert_eq!(&hid.data[..], &hostid[..]);
    // Keep Alive Timer round trip.
    assert!(ctrl
        .set_features(0x0f, 0, 7000, None)
        .await
        .unwrap()
        .status()
        .is_success());
    assert_eq!(
        ctrl.get_features(0x0f, 0, 0, 0, 0)
            .await
            .unwrap()
            .cqe
            .dw0
            .get(),
        7000
    );
    // Saving is not supported; an unknown feature is an invalid field.
    let sqe = command::set_features(0x0f, 0, 7000, true);
    let c = ctrl.submit_admin(HostCommand::new(sqe)).await.unwrap();
    assert_eq!(c.status(), Status::FEATURE_ID_NOT_SAVEABLE.with_dnr());
    let c = ctrl.get_features(0x7e, 0, 0, 0, 0).await.unwrap();
    assert_eq!(c.status(), Status::INVALID_FIELD.with_dnr());
    // AERL = 3: four requests may be outstanding, the fifth is refused.
    let admin = ctrl.admin_queue().clone();
    let mut parked = Vec::new();
    for _ in 0..4 {
        let a = admin.clone();
        parked.push(tokio::spawn(async move {
            a.submit_timeout(HostCommand::new(command::async_event_request()), None)
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fifth = ctrl.async_event_request().await.unwrap();
    assert_eq!(
        fifth.status(),
        Status::ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED.with_dnr()
    );
    // SMART / Health counts the commands this controller completed.
    assert!(ctrl
        .write(1, 1, 0, random(4096), false)
        .await
        .unwrap()
        .status()
        .is_success());
    let smart = ctrl.get_log_page(0x02, 0xffff_ffff, 0, 512).await.unwrap();
    let smart = nvme::log_page::SmartHealth::from_bytes(&smart).unwrap();
    assert_eq!(smart.host_write_commands.get(), 1);
    assert_eq!(smart.data_units_written.get(), 1);
    ctrl.shutdown().await.unwrap();
    for p in parked {
        p.abort();
    }
    d.shutdown().await;
}

#[tokio::test]
async fn persistent_discovery_sees_a_new_subsystem() {
    let (d, addr) = start("").await;
    let mut disc =
        fabric::initiator::discovery::DiscoveryController::connect(addr, host(HOST_OK, 0))
            .await
            .unwrap();
    let before = disc.log().await.unwrap();
    let waiter = tokio::spawn(async move {
        let log = disc.wait_for_change().await;
        (disc, log)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let nqn = "nqn.2026-01.io.ferrofab:added";
    d.target()
        .add_subsystem(std::sync::Arc::new(target::subsystem::Subsystem::new(
            nqn.into(),
            "S".into(),
            "M".into(),
            "F".into(),
            None,
            None,
        )))
        .unwrap();
    let (disc, after) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("discovery log change AEN")
        .unwrap();
    let after = after.unwrap();
    assert!(after.genctr > before.genctr);
    assert!(after.records.iter().any(|e| e.subnqn == nqn));
    disc.shutdown().await.unwrap();
    d.shutdown().await;
}

/// Regression from the kernel-host suite (hw-tests 04): `nvme write -s 2048 -c 15` (8 KiB,
/// in-capsule) then `nvme dsm --ad -s 2048 -b 16` must read back zeroes (DLFEAT = 001b).
#[tokio::test]
async fn deallocate_at_a_chunk_boundary_reads_zeroes() {
    let (d, addr) = start("").await;
    let ctrl = Controller::connect(addr, SUB_A, host(HOST_OK, 1))
        .await
        .unwrap();
    let data = random(8192);
    assert!(ctrl
        .write(1, 1, 2048, data, false)
        .await
        .unwrap()
        .status()
        .is_success());
    let c = ctrl.dsm_deallocate(1, 1, &[(2048, 16)]).await.unwrap();
    assert!(c.status().is_success());
    let r = ctrl.read(1, 1, 2048, 16).await.unwrap();
    assert!(
        r.data.iter().all(|&b| b == 0),
        "deallocated blocks read zeroes"
    );
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

#[tokio::test]
async fn reload_adds_and_removes_namespaces_and_subsystems() {
    let (d, addr) = start("").await;
    let ctrl = Controller::connect(addr, SUB_A, host(HOST_OK, 1))
        .await
        .unwrap();
    let admin = ctrl.admin_queue().clone();
    let aer = tokio::spawn(async move {
        admin
            .submit_timeout(HostCommand::new(command::async_event_request()), None)
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The same file with a second namespace in SUB_A and a new subsystem.
    let mut cfg = config(
        "[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:later\"\n\
         [[subsystem.namespace]]\nbackend = \"ram\"\nsize = \"1MiB\"\n",
    );
    let mut extra_ns = cfg.subsystem[0].namespace[0].clone();
    extra_ns.nsid = Some(2);
    cfg.subsystem[0].namespace.push(extra_ns);
    let outcomes = d.reload(&cfg).unwrap();
    assert_eq!(
        outcomes,
        vec![
            Outcome::NamespaceAdded {
                nqn: SUB_A.to_string(),
                nsid: 2,
            },
            Outcome::SubsystemAdded {
                nqn: "nqn.2026-01.io.ferrofab:later".to_string(),
                namespaces: vec![1],
            },
        ]
    );
    let done = tokio::time::timeout(Duration::from_secs(5), aer)
        .await
        .expect("AER completes")
        .unwrap()
        .unwrap();
    assert_eq!(done.cqe.dw0.get(), 0x0004_0002);
    assert_eq!(ctrl.active_namespaces().await.unwrap(), vec![1, 2]);
    let log = discover(addr, host(HOST_OK, 0)).await.unwrap();
    assert!(log
        .records
        .iter()
        .any(|r| r.subnqn == "nqn.2026-01.io.ferrofab:later"));
    // Back to the original file: namespace 2 and the new subsystem go away.
    let outcomes = d.reload(&config("")).unwrap();
    assert_eq!(
        outcomes,
        vec![
            Outcome::SubsystemRemoved {
                nqn: "nqn.2026-01.io.ferrofab:later".to_string(),
                controllers_disconnected: 0,
            },
            Outcome::NamespaceRemoved {
                nqn: SUB_A.to_string(),
                nsid: 2,
            },
        ]
    );
    assert_eq!(ctrl.active_namespaces().await.unwrap(), vec![1]);
    let log = discover(addr, host(HOST_OK, 0)).await.unwrap();
    assert!(!log
        .records
        .iter()
        .any(|r| r.subnqn == "nqn.2026-01.io.ferrofab:later"));
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}
