//! A volume on a pool whose member is a zoned-ram backing file, across `kill -9` of
//! `ferrofab serve` while a host writes: the real binary serves the volume over NVMe/TCP, the
//! in-tree initiator writes blocks stamped with their LBA and a generation, deallocates
//! ranges and flushes now and then, and a killer thread sends SIGKILL at a random moment. A
//! new process on the same file must recover the pool, and every block must read what it held
//! at the last acknowledged Flush or something written to it since: never an older value,
//! never another block's data. The trials run one after another on the same pool, so GC,
//! checkpoints and recovery meet state left by earlier kills. `FF_KILL_TRIALS` (100) and
//! `FF_KILL_SEED` (18) set the trials and the seed of the workload and kill times;
//! `FF_KILL_KEEP=DIR` keeps the member file as each of the last two trials found it (before
//! recovery), to replay a failure.

mod common;

use common::serve_config;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fabric::initiator::{Controller, HostOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NQN: &str = "nqn.2026-01.io.ferrofab:volume-kill";
const BS: u64 = 4096;
/// The volume: 8 MiB.
const BLOCKS: u64 = 2048;

fn stamp(lba: u64, generation: u64) -> Vec<u8> {
    let mut b = vec![0u8; BS as usize];
    for c in b.chunks_exact_mut(16) {
        c[..8].copy_from_slice(&lba.to_le_bytes());
        c[8..].copy_from_slice(&generation.to_le_bytes());
    }
    b
}

/// What a block may read after the kill.
#[derive(Clone, Default)]
struct Allowed {
    durable: u64,
    since: Vec<u64>,
}

async fn connect(addr: SocketAddr) -> Controller {
    let host = HostOptions {
        hostnqn: "nqn.2026-01.io.ferrofab:volume-kill-host".to_string(),
        io_queues: 1,
        ..HostOptions::default()
    };
    Controller::connect(addr, NQN, host).await.unwrap()
}

/// Write, deallocate and flush until the connection fails (the kill), keeping `model`.
async fn load(c: &Controller, model: &mut [Allowed], rng: &mut StdRng, generation: &mut u64) {
    loop {
        *generation += 1;
        let g = *generation;
        let lba = rng.random_range(0..BLOCKS);
        let r = match rng.random_range(0..100) {
            0..=7 => match c.flush(1, 1).await {
                Ok(done) => {
                    assert!(done.status().is_success(), "flush: {:?}", done.status());
                    for a in model.iter_mut() {
                        if let Some(&last) = a.since.last() {
                            a.durable = last;
                        }
                        a.since.clear();
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
            8..=12 => {
                let n = rng.random_range(1..=32).min(BLOCKS - lba);
                for b in lba..lba + n {
                    model[b as usize].since.push(0);
                }
                c.dsm_deallocate(1, 1, &[(lba, n as u32)]).await.map(|d| {
                    assert!(d.status().is_success(), "deallocate: {:?}", d.status());
                })
            }
            _ => {
                let n = rng.random_range(1..=16).min(BLOCKS - lba);
                let data: Vec<u8> = (lba..lba + n).flat_map(|b| stamp(b, g)).collect();
                for b in lba..lba + n {
                    model[b as usize].since.push(g);
                }
                c.write(1, 1, lba, Bytes::from(data), false)
                    .await
                    .map(|d| assert!(d.status().is_success(), "write: {:?}", d.status()))
            }
        };
        if r.is_err() {
            return;
        }
    }
}

/// Read every block and check it against `model`; afterwards what was read is durable.
async fn verify(c: &Controller, model: &mut [Allowed], trial: u32) {
    for start in (0..BLOCKS).step_by(64) {
        let data = c.read(1, 1, start, 64).await.unwrap().ok().unwrap().data;
        for (i, b) in data.chunks_exact(BS as usize).enumerate() {
            let lba = start + i as u64;
            let got = if b.iter().all(|&x| x == 0) {
                0
            } else {
                let owner = u64::from_le_bytes(b[..8].try_into().unwrap());
                if owner != lba {
                    let again = c.read(1, 1, lba, 1).await.unwrap().ok().unwrap().data;
                    let now = u64::from_le_bytes(again[..8].try_into().unwrap());
                    // Read again: the same wrong block is the map's, another a read race.
                    panic!(
                        "trial {trial}: block {lba} holds block {owner}'s data \
                         (read again: block {now}'s)"
                    );
                }
                let g = u64::from_le_bytes(b[8..16].try_into().unwrap());
                assert_eq!(
                    b,
                    stamp(lba, g).as_slice(),
                    "trial {trial}: block {lba} is torn"
                );
                g
            };
            let a = &mut model[lba as usize];
            assert!(
                got == a.durable || a.since.contains(&got),
                "trial {trial}: block {lba} reads generation {got}; flushed {}, since {:?}",
                a.durable,
                a.since
            );
            *a = Allowed {
                durable: got,
                since: Vec::new(),
            };
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_volume_data_survives_kill_9_during_writes() {
    let trials: u32 = std::env::var("FF_KILL_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let (config, state, member) = (
        dir.path().join("ferrofab.toml"),
        dir.path().join("state"),
        dir.path().join("member0.zoned"),
    );
    std::fs::write(
        &config,
        format!(
            "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
             [[pool]]\nname = \"p\"\njournal_zones = 2\n\n\
             [[pool.member]]\nbackend = {{ kind = \"zoned-ram\", zone_size = \"512KiB\" }}\n\
             size = \"48MiB\"\nblock_size = 4096\npath = \"{}\"\n\n\
             [[pool.volume]]\nname = \"v\"\nsize = \"{}\"\n\n\
             [[subsystem]]\nnqn = \"{NQN}\"\n\n\
             [[subsystem.namespace]]\nnsid = 1\n\
             backend = {{ kind = \"volume\", pool = \"p\", volume = \"v\" }}\n",
            member.display(),
            BLOCKS * BS
        ),
    )
    .unwrap();
    let seed = std::env::var("FF_KILL_SEED")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(18);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = vec![Allowed::default(); BLOCKS as usize];
    let mut generation = 0u64;
    let keep = std::env::var_os("FF_KILL_KEEP").map(std::path::PathBuf::from);
    for trial in 0..trials {
        if let Some(keep) = &keep {
            std::fs::create_dir_all(keep).unwrap();
            std::fs::copy(&member, keep.join(format!("trial-{trial}.zoned"))).ok();
            std::fs::remove_file(keep.join(format!("trial-{}.zoned", trial.wrapping_sub(2)))).ok();
        }
        let s = serve_config(&config, &state);
        let c = connect(s.addr).await;
        if trial > 0 {
            verify(&c, &mut model, trial).await;
        }
        let pid = nix::unistd::Pid::from_raw(s.child.id() as i32);
        let delay = Duration::from_millis(rng.random_range(20..400));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        });
        load(&c, &mut model, &mut rng, &mut generation).await;
        killer.join().unwrap();
        drop(c);
        drop(s);
    }
    let s = serve_config(&config, &state);
    let c = connect(s.addr).await;
    verify(&c, &mut model, trials).await;
}
