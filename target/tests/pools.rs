//! A host over NVMe/TCP on volumes of a pool: data written to a volume from the configuration
//! and to one created at run time reads back, and after a restart from the state directory
//! (the pool recovered from its members' backing files) both volumes are exported again with
//! their data.

use fabric::initiator::controller::Controller;
use nvme::identify::IdentifyNamespace;
use nvme::Status;
use target::config::{BackendKind, ByteSize, NamespaceConfig, VolumeConfig};
use target::engine::Action;
use target::state::StateDir;
use target::{Daemon, TargetParams};

use common::{host, random, LOOPBACK_LISTENER};

mod common;

const SUB: &str = "nqn.2026-01.io.ferrofab:pool";
const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";

fn config(dir: &std::path::Path) -> target::Config {
    common::parse(&format!(
        "{LOOPBACK_LISTENER}\
         [[pool]]\nname = \"fast\"\ngc = \"greedy\"\n\
         [[pool.member]]\nbackend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\" }}\nsize = \"32MiB\"\nblock_size = 4096\npath = \"{0}/m0.zoned\"\n\
         [[pool.member]]\nbackend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\" }}\nsize = \"32MiB\"\nblock_size = 4096\npath = \"{0}/m1.zoned\"\n\
         [[pool.volume]]\nname = \"vm1\"\nsize = \"8MiB\"\n\
         [[subsystem]]\nnqn = \"{SUB}\"\n\
         [[subsystem.namespace]]\nbackend = {{ kind = \"volume\", pool = \"fast\", volume = \"vm1\" }}\n",
        dir.display()
    ))
}

#[tokio::test]
async fn volumes_serve_a_host_and_come_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state");
    let d = Daemon::start_persistent(
        config(dir.path()),
        TargetParams::default(),
        StateDir::open(&state_path).unwrap(),
    )
    .await
    .unwrap();
    d.engine()
        .apply_all(vec![
            Action::CreateVolume {
                pool: "fast".into(),
                volume: VolumeConfig {
                    name: "vm2".into(),
                    size: ByteSize(4 << 20),
                    block_size: None,
                },
            },
            Action::AddNamespace {
                nqn: SUB.into(),
                namespace: NamespaceConfig {
                    nsid: Some(2),
                    backend: BackendKind::Volume {
                        pool: "fast".into(),
                        volume: "vm2".into(),
                    },
                    size: None,
                    path: None,
                    block_size: None,
                    direct: None,
                },
            },
        ])
        .unwrap();
    let addr = d.addresses()[0];
    let ctrl = Controller::connect(addr, SUB, host(HOST, 2)).await.unwrap();
    assert_eq!(ctrl.active_namespaces().await.unwrap(), vec![1, 2]);
    let id = IdentifyNamespace::from_bytes(&ctrl.identify_namespace(2).await.unwrap()).unwrap();
    assert_eq!((id.nsze.get(), id.block_size()), (1024, Some(4096)));
    let (a, b) = (random(256 << 10), random(64 << 10));
    let w = ctrl.write(1, 1, 100, a.clone(), false).await.unwrap();
    assert_eq!(w.status(), Status::SUCCESS);
    let w = ctrl.write(2, 2, 1000, b.clone(), false).await.unwrap();
    assert_eq!(w.status(), Status::SUCCESS);
    let f = ctrl.flush(1, 1).await.unwrap();
    assert_eq!(f.status(), Status::SUCCESS);
    let r = ctrl.read(1, 1, 100, 64).await.unwrap();
    assert_eq!(r.data, a);
    let r = ctrl.read(2, 2, 1000, 16).await.unwrap();
    assert_eq!(r.data, b);
    // Past the end of the 4 MiB volume: LBA Out of Range.
    let r = ctrl.read(1, 2, 1020, 8).await.unwrap();
    assert_eq!(r.status(), Status::LBA_OUT_OF_RANGE.with_dnr());
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;

    // Restarted from the state directory: the run-time volume is in it, the pool recovers.
    let state = StateDir::open(&state_path).unwrap();
    let saved = state.load().unwrap().expect("state saved");
    let names: Vec<_> = saved.pool[0]
        .volume
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["vm1", "vm2"]);
    let d = Daemon::start_persistent(saved, TargetParams::default(), state)
        .await
        .unwrap();
    let ctrl = Controller::connect(d.addresses()[0], SUB, host(HOST, 1))
        .await
        .unwrap();
    assert_eq!(ctrl.read(1, 1, 100, 64).await.unwrap().data, a);
    assert_eq!(ctrl.read(1, 2, 1000, 16).await.unwrap().data, b);
    let zeroes = ctrl.read(1, 2, 0, 1).await.unwrap();
    assert!(zeroes.data.iter().all(|&x| x == 0));
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}
