//! Pools and volumes through the engine: volumes created and deleted, refusals while a
//! namespace exports one, a refused batch leaving no volume behind, reloads that add and
//! remove pools.

use super::*;
use crate::config::{PoolConfig, VolumeConfig};
use crate::layout::Pool;
use nvme::backend::Backend as _;

/// One zoned-ram pool "fast" of two members (4 KiB blocks), with volume "vm1".
const POOL: &str = "[[pool]]\nname = \"fast\"\n\
    [[pool.member]]\nbackend = { kind = \"zoned-ram\", zone_size = \"1MiB\" }\nsize = \"32MiB\"\nblock_size = 4096\n\
    [[pool.member]]\nbackend = { kind = \"zoned-ram\", zone_size = \"1MiB\" }\nsize = \"32MiB\"\nblock_size = 4096\n\
    [[pool.volume]]\nname = \"vm1\"\nsize = \"8MiB\"\n";

fn volume(name: &str, size: u64) -> VolumeConfig {
    VolumeConfig {
        name: name.into(),
        size: ByteSize(size),
        block_size: None,
    }
}

fn export(nsid: u32, vol: &str) -> Action {
    Action::AddNamespace {
        nqn: A.into(),
        namespace: NamespaceConfig {
            nsid: Some(nsid),
            backend: BackendKind::Volume {
                pool: "fast".into(),
                volume: vol.into(),
            },
            size: None,
            path: None,
            block_size: None,
            direct: None,
        },
    }
}

fn pool(e: &Engine) -> Arc<Pool> {
    e.drives().pools().get("fast").expect("pool fast is open")
}

fn on_media(e: &Engine) -> Vec<String> {
    pool(e).volumes().into_iter().map(|v| v.name).collect()
}

#[test]
fn volumes_are_created_exported_and_deleted_only_when_not_exported() {
    let e = engine(config(POOL));
    assert_eq!(on_media(&e), ["vm1"]);
    let o = e
        .apply(Action::CreateVolume {
            pool: "fast".into(),
            volume: volume("vm2", 4 << 20),
        })
        .unwrap();
    assert_eq!(
        o,
        Outcome::VolumeCreated {
            pool: "fast".into(),
            volume: "vm2".into(),
            size: 4 << 20
        }
    );
    assert_eq!(on_media(&e), ["vm1", "vm2"]);
    assert_eq!(e.config().pool[0].volume.len(), 2);

    // Exported, it serves the volume's blocks.
    e.apply(export(2, "vm2")).unwrap();
    let ns = e.target().subsystem(A).unwrap().namespace(2).unwrap();
    assert_eq!((ns.block_size(), ns.num_blocks()), (4096, 1024));
    let data = vec![0x5a; 4096];
    ns.backend.write(7, &data, false).unwrap();
    assert_eq!(pool(&e).stats().mapped_blocks, 1);

    // While exported, neither the volume nor its pool can go.
    let del = Action::DeleteVolume {
        pool: "fast".into(),
        volume: "vm2".into(),
    };
    let err = e.apply(del.clone()).unwrap_err();
    assert!(
        matches!(&err, ActionError::VolumeExported { nqn, nsid: 2, .. } if nqn == A),
        "{err}"
    );
    assert!(
        err.to_string().contains("remove that namespace first"),
        "{err}"
    );
    let err = e
        .apply(Action::RemovePool {
            pool: "fast".into(),
        })
        .unwrap_err();
    assert!(matches!(err, ActionError::VolumeExported { .. }), "{err}");
    assert_eq!(on_media(&e), ["vm1", "vm2"]);
    assert!(e.drives().pools().volume("fast", "vm2").is_ok());

    // Namespace first, then the volume: its blocks are freed.
    e.apply(Action::RemoveNamespace {
        nqn: A.into(),
        nsid: 2,
    })
    .unwrap();
    assert_eq!(
        e.apply(del.clone()).unwrap(),
        Outcome::VolumeDeleted {
            pool: "fast".into(),
            volume: "vm2".into()
        }
    );
    assert_eq!(on_media(&e), ["vm1"]);
    assert_eq!(pool(&e).stats().mapped_blocks, 0);
    assert!(e.drives().pools().volume("fast", "vm2").is_err());
    assert!(matches!(
        e.apply(del).unwrap_err(),
        ActionError::NoSuchVolume { .. }
    ));
}

#[test]
fn bad_volume_requests_are_refused_with_nothing_changed() {
    let e = engine(config(POOL));
    let create = |pool: &str, v: VolumeConfig| {
        e.apply(Action::CreateVolume {
            pool: pool.into(),
            volume: v,
        })
        .unwrap_err()
    };
    assert!(matches!(
        create("fast", volume("vm1", 4 << 20)),
        ActionError::VolumeExists { .. }
    ));
    assert!(matches!(
        create("slow", volume("x", 4 << 20)),
        ActionError::NoSuchPool(_)
    ));
    let e1 = create("fast", volume("bad name", 4 << 20));
    assert!(
        matches!(&e1, ActionError::Invalid { field: Some(f), .. } if f.to_string() == "pool[0].volume[1].name"),
        "{e1}"
    );
    let e2 = create("fast", volume("odd", 4097));
    assert!(e2.to_string().contains("multiple of the 4096-byte"), "{e2}");
    // More than the pool holds: the layout engine refuses it when the change is prepared.
    let e3 = create("fast", volume("huge", 1 << 30));
    assert!(
        matches!(
            &e3,
            ActionError::Setup(crate::setup::SetupError::Pool { .. })
        ),
        "{e3}"
    );
    assert!(e3.to_string().contains("pool fast"), "{e3}");
    assert_eq!(on_media(&e), ["vm1"]);
    assert_eq!(e.config().pool[0].volume.len(), 1);
    // On the media but not in the configuration (as after a deletion that failed): creating
    // it would hand its old data over, so it is refused.
    pool(&e).volume("stale", 4096, 1024).unwrap();
    assert!(matches!(
        create("fast", volume("stale", 4 << 20)),
        ActionError::VolumeExists { .. }
    ));
    assert!(e.config().pool[0].volume.iter().all(|v| v.name != "stale"));
}

#[test]
fn a_refused_batch_leaves_no_volume_behind() {
    let e = engine(config(POOL));
    // The volume is created when the change is prepared; the file namespace after it cannot
    // be opened (no such file, and no size to create it with), so the batch is refused.
    let bad_file = Action::AddNamespace {
        nqn: A.into(),
        namespace: NamespaceConfig {
            nsid: Some(3),
            backend: BackendKind::File,
            size: None,
            path: Some("/nonexistent/ferrofab/none.img".into()),
            block_size: None,
            direct: None,
        },
    };
    let err = e
        .apply_all(vec![
            Action::CreateVolume {
                pool: "fast".into(),
                volume: volume("vm2", 4 << 20),
            },
            export(2, "vm2"),
            bad_file,
        ])
        .unwrap_err();
    assert!(matches!(err, ActionError::Setup(_)), "{err}");
    assert_eq!(on_media(&e), ["vm1"]);
    assert!(e.drives().pools().volume("fast", "vm2").is_err());
    assert_eq!(nsids(&e, A), [1]);
    // The name is free again.
    e.apply(Action::CreateVolume {
        pool: "fast".into(),
        volume: volume("vm2", 4 << 20),
    })
    .unwrap();
    assert_eq!(on_media(&e), ["vm1", "vm2"]);
}

#[test]
fn reloads_add_and_remove_pools_and_volumes() {
    let e = engine(config(""));
    assert!(e.drives().pools().get("fast").is_none());
    let ns = "[[subsystem.namespace]]\nnsid = 2\nbackend = { kind = \"volume\", pool = \"fast\", volume = \"vm1\" }\n";
    // Pool, volume and the namespace exporting it, in one reload.
    let with = {
        let mut c = config(POOL);
        let extra = Config::parse(
            &format!(
                "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:4420\"\n{POOL}\
                 [[subsystem]]\nnqn = \"{A}\"\n[[subsystem.namespace]]\nbackend = \"ram\"\nsize = \"1MiB\"\n{ns}"
            ),
            "t",
        )
        .unwrap();
        c.subsystem = extra.subsystem;
        c
    };
    let out = e.reload(&with).unwrap();
    assert_eq!(
        out,
        [
            Outcome::PoolAdded {
                pool: "fast".into(),
                volumes: vec!["vm1".into()]
            },
            Outcome::NamespaceAdded {
                nqn: A.into(),
                nsid: 2
            }
        ]
    );
    assert_eq!(nsids(&e, A), [1, 2]);
    assert_eq!(on_media(&e), ["vm1"]);

    // The pool cannot go while the namespace exports its volume.
    let mut no_pool = with.clone();
    no_pool.pool.clear();
    let err = e.reload(&no_pool).unwrap_err();
    assert!(
        matches!(&err, ActionError::VolumeExported { volume, nsid: 2, .. } if volume == "vm1"),
        "{err}"
    );
    assert!(e.drives().pools().get("fast").is_some());

    // A new volume in the file is created; options of a running pool are not changed.
    let mut more = with.clone();
    more.pool[0].volume.push(volume("vm2", 4 << 20));
    assert_eq!(
        e.reload(&more).unwrap(),
        [Outcome::VolumeCreated {
            pool: "fast".into(),
            volume: "vm2".into(),
            size: 4 << 20
        }]
    );
    assert_eq!(on_media(&e), ["vm1", "vm2"]);
    let mut op = more.clone();
    op.pool[0].over_provisioning = Some(30);
    let err = e.reload(&op).unwrap_err();
    assert!(
        err.to_string().contains("members or options changed"),
        "{err}"
    );
    let mut cache = more.clone();
    cache.pool[0].map_cache = Some(ByteSize(16 << 20));
    let err = e.reload(&cache).unwrap_err();
    assert!(
        err.to_string().contains("members or options changed"),
        "{err}"
    );
    let mut grown = more.clone();
    grown.pool[0].volume[1].size = ByteSize(8 << 20);
    let err = e.reload(&grown).unwrap_err();
    assert!(err.to_string().contains("not resized"), "{err}");

    // Namespace and pool gone together: the pool is closed, in that order.
    let out = e.reload(&config("")).unwrap();
    assert_eq!(
        out,
        [
            Outcome::NamespaceRemoved {
                nqn: A.into(),
                nsid: 2
            },
            Outcome::PoolRemoved {
                pool: "fast".into()
            }
        ]
    );
    assert!(e.drives().pools().get("fast").is_none());
    assert!(e.config().pool.is_empty());
}

#[test]
fn an_added_pool_that_cannot_open_is_refused() {
    let e = engine(config(""));
    let mut pc: PoolConfig = Config::parse(
        &format!("[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:4420\"\n{POOL}"),
        "t",
    )
    .unwrap()
    .pool
    .remove(0);
    pc.volume[0].size = ByteSize(1 << 30);
    let err = e.apply(Action::AddPool(pc.clone())).unwrap_err();
    assert!(err.to_string().contains("pool fast"), "{err}");
    assert!(e.drives().pools().get("fast").is_none());
    assert!(e.config().pool.is_empty());
    pc.volume[0].size = ByteSize(8 << 20);
    e.apply(Action::AddPool(pc.clone())).unwrap();
    assert!(matches!(
        e.apply(Action::AddPool(pc)).unwrap_err(),
        ActionError::PoolExists(_)
    ));
}

#[test]
fn a_removed_pool_added_back_recovers_its_volumes_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let with_files = POOL
        .replacen(
            "block_size = 4096\n",
            &format!(
                "block_size = 4096\npath = \"{}/m0.zoned\"\n",
                dir.path().display()
            ),
            1,
        )
        .replacen(
            "block_size = 4096\n[[pool.volume]]",
            &format!(
                "block_size = 4096\npath = \"{}/m1.zoned\"\n[[pool.volume]]",
                dir.path().display()
            ),
            1,
        );
    assert_eq!(with_files.matches("path = ").count(), 2, "{with_files}");
    let e = engine(config(&with_files));
    let pc = e.config().pool[0].clone();
    let data = vec![0x3c; 4096];
    e.drives()
        .pools()
        .volume("fast", "vm1")
        .unwrap()
        .write(42, &data, true)
        .unwrap();
    e.apply(Action::RemovePool {
        pool: "fast".into(),
    })
    .unwrap();
    assert!(e.drives().pools().get("fast").is_none());
    assert_eq!(
        e.apply(Action::AddPool(pc)).unwrap(),
        Outcome::PoolAdded {
            pool: "fast".into(),
            volumes: vec!["vm1".into()]
        }
    );
    let mut back = vec![0u8; 4096];
    e.drives()
        .pools()
        .volume("fast", "vm1")
        .unwrap()
        .read(42, &mut back)
        .unwrap();
    assert_eq!(back, data);
    assert_eq!(pool(&e).stats().mapped_blocks, 1);
}
