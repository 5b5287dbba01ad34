//! Pools opened from a configuration: a `volume` namespace serves the volume, and what was
//! written is there after the pool is closed and opened again from its backing files.

use std::sync::Arc;

use crate::config::Config;
use crate::controller::TargetParams;
use crate::drives::Drives;
use crate::setup::{build_target, SetupError};

const NQN: &str = "nqn.2026-01.io.ferrofab:v";

fn config(dir: &std::path::Path, volume_size: &str) -> Config {
    let text = format!(
        "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:4420\"\n\
         [[pool]]\nname = \"fast\"\n\
         [[pool.member]]\nbackend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\" }}\nsize = \"32MiB\"\nblock_size = 4096\npath = \"{0}/m0.zoned\"\n\
         [[pool.member]]\nbackend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\" }}\nsize = \"32MiB\"\nblock_size = 4096\npath = \"{0}/m1.zoned\"\n\
         [[pool.volume]]\nname = \"vm1\"\nsize = \"{volume_size}\"\n\
         [[pool.volume]]\nname = \"spare\"\nsize = \"4MiB\"\n\
         [[subsystem]]\nnqn = \"{NQN}\"\n\
         [[subsystem.namespace]]\nbackend = {{ kind = \"volume\", pool = \"fast\", volume = \"vm1\" }}\n",
        dir.display()
    );
    Config::parse(&text, "test").unwrap()
}

fn build(config: &Config) -> Result<(crate::FabricTarget, Arc<Drives>), SetupError> {
    let drives = Arc::new(Drives::new(Default::default()));
    let bound: Vec<_> = config
        .listener
        .iter()
        .map(|l| (l.clone(), l.address))
        .collect();
    let target = build_target(config, &bound, TargetParams::default(), &drives)?;
    Ok((target, drives))
}

#[test]
fn a_volume_namespace_serves_the_volume_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), "8MiB");
    let block: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    {
        let (target, drives) = build(&c).unwrap();
        let ns = target.subsystem(NQN).unwrap().namespace(1).unwrap();
        assert_eq!((ns.block_size(), ns.num_blocks()), (4096, 2048));
        ns.backend.write(5, &block, false).unwrap();
        ns.backend.flush().unwrap();
        let mut back = vec![0u8; 4096];
        ns.backend.read(5, &mut back).unwrap();
        assert_eq!(back, block);
        let pool = drives.pools().get("fast").unwrap();
        let s = pool.stats();
        assert_eq!(
            (s.block_size, s.mapped_blocks, s.host_write_blocks),
            (4096, 1, 1)
        );
        let names: Vec<_> = pool.volumes().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["spare", "vm1"]);
        drop(target);
        drives.shutdown_all();
        assert!(drives.pools().get("fast").is_none());
    }
    // Opened again from the backing files: recovered, not formatted.
    let (target, drives) = build(&c).unwrap();
    let ns = target.subsystem(NQN).unwrap().namespace(1).unwrap();
    let mut back = vec![0u8; 4096];
    ns.backend.read(5, &mut back).unwrap();
    assert_eq!(back, block);
    ns.backend.read(6, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0));
    assert_eq!(drives.pools().get("fast").unwrap().stats().mapped_blocks, 1);
    drop(target);
    drives.shutdown_all();

    // The volume exists with another size on the media: refused, naming the pool.
    let e = build(&config(dir.path(), "12MiB"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("pool fast") && e.contains("exists with 2048 blocks"),
        "{e}"
    );
}

#[test]
fn a_volume_larger_than_the_pool_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let e = build(&config(dir.path(), "1GiB"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("pool fast") && e.contains("blocks"), "{e}");
}
