//! Round trips: `Config::parse(config.to_toml())` must equal `config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::auth::DhchapKey;
use crate::config::*;
use fabric::tcp::tls::{ConfiguredPsk, PskHash};

/// Serialize, parse back, compare; returns the text so a test can also look at it.
fn round_trip(config: &Config) -> String {
    let text = config.to_toml().expect("serializes");
    let back = Config::parse(&text, "round trip")
        .unwrap_or_else(|e| panic!("the written TOML does not parse: {e}\n---\n{text}"));
    assert_eq!(&back, config, "round trip changed the config\n---\n{text}");
    text
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn listener(a: &str) -> ListenerConfig {
    ListenerConfig {
        transport: TransportKind::Tcp,
        address: addr(a),
        tls: Default::default(),
    }
}

fn ns(nsid: u32, backend: BackendKind) -> NamespaceConfig {
    NamespaceConfig {
        nsid: Some(nsid),
        backend,
        size: None,
        path: None,
        block_size: None,
        direct: None,
    }
}

#[test]
fn embedded_default_round_trips() {
    let c = Config::default_config().unwrap();
    let text = round_trip(&c);
    // Defaults left out: the file holds what was set, sizes in their unit.
    assert!(
        !text.contains("[reactor]") && !text.contains("[drives]"),
        "{text}"
    );
    assert!(text.contains("size = \"1GiB\""), "{text}");
}

/// Every field and every backend kind, in both forms a drive table can take.
fn everything() -> Config {
    let mut vfio = ns(
        3,
        BackendKind::NvmeVfio {
            pci: "0000:00:04.0".into(),
            nsid: 2,
            bind: true,
        },
    );
    vfio.nsid = Some(7);
    let file = NamespaceConfig {
        size: Some(ByteSize(3 * 4096)),
        path: Some(PathBuf::from("/var/lib/ferrofab/disk \"one\".img")),
        block_size: Some(4096),
        direct: Some(false),
        ..ns(2, BackendKind::File)
    };
    Config {
        listener: vec![
            listener("127.0.0.1:4420"),
            ListenerConfig {
                tls: ListenerTls::Required,
                ..listener("[::1]:4421")
            },
            ListenerConfig {
                transport: TransportKind::Rdma,
                address: addr("[::1]:4421"),
                tls: Default::default(),
            },
        ],
        subsystem: vec![
            SubsystemConfig {
                nqn: "nqn.2026-01.io.ferrofab:all".into(),
                serial: Some("SN \"1\" \\ x".into()),
                model: Some("ferrofab model".into()),
                firmware: Some("1.0".into()),
                allowed_hosts: Some(vec![
                    "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6".into(),
                    "nqn.2026-01.io.host:ünïcode 'q' \"qq\"".into(),
                ]),
                listeners: Some(vec![
                    addr("[::1]:4421").into(),
                    ListenerRef::of(TransportKind::Rdma, addr("[::1]:4421")),
                ]),
                namespace: vec![
                    NamespaceConfig {
                        size: Some(ByteSize(1 << 30)),
                        block_size: Some(512),
                        ..ns(1, BackendKind::Ram)
                    },
                    file,
                    vfio,
                    ns(
                        4,
                        BackendKind::NvmeUring {
                            path: "/dev/ng0n1".into(),
                            iopoll: false,
                        },
                    ),
                    NamespaceConfig {
                        size: Some(ByteSize(1536)),
                        ..ns(5, BackendKind::Null)
                    },
                    ns(
                        6,
                        BackendKind::Volume {
                            pool: "fast".into(),
                            volume: "vm1".into(),
                        },
                    ),
                ],
            },
            SubsystemConfig {
                nqn: "nqn.2026-01.io.ferrofab:empty".into(),
                serial: None,
                model: None,
                firmware: None,
                allowed_hosts: Some(vec![]),
                listeners: None,
                namespace: vec![],
            },
        ],
        reactor: ReactorSection {
            cores: Some(vec![0, 1]),
            count: None,
            poll: PollMode::Busy,
        },
        drives: DrivesSection {
            queue_depth: 64,
            command_timeout_ms: 2_500,
            dma_memory: ByteSize(6 << 20),
        },
        host: vec![
            HostConfig {
                nqn: "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6".into(),
                dhchap_key: secret(1, 32),
                dhchap_ctrl_key: Some(secret(3, 64)),
                dhchap_hashes: Some(vec![DhchapHash::Sha512, DhchapHash::Sha256]),
                dhchap_dhgroups: Some(vec![DhchapGroup::Ffdhe4096, DhchapGroup::Null]),
            },
            HostConfig {
                nqn: "nqn.2026-01.io.host:plain".into(),
                dhchap_key: secret(0, 48),
                dhchap_ctrl_key: None,
                dhchap_hashes: None,
                dhchap_dhgroups: None,
            },
        ],
        tls_psk: vec![
            TlsPskConfig {
                host: "nqn.2026-01.io.host:plain".into(),
                subsystem: None,
                key: ConfiguredPsk::from_raw(&[4; 32], Some(PskHash::Sha256))
                    .unwrap()
                    .to_text(),
            },
            TlsPskConfig {
                host: "nqn.2026-01.io.host:plain".into(),
                subsystem: Some("nqn.2026-01.io.ferrofab:a".into()),
                key: ConfiguredPsk::from_raw(&[5; 48], None).unwrap().to_text(),
            },
        ],
        pool: vec![PoolConfig {
            name: "fast".into(),
            over_provisioning: Some(25),
            journal_zones: 2,
            gc: GcKind::Greedy,
            map_cache: Some(ByteSize(24 << 20)),
            member: vec![
                PoolMemberConfig {
                    backend: BackendKind::ZonedRam(ZonedSpec {
                        zone_size: ByteSize(1 << 20),
                        zone_capacity: Some(ByteSize(768 << 10)),
                        max_open: 0,
                        max_active: 0,
                        zone_append_limit: None,
                    }),
                    size: Some(ByteSize(64 << 20)),
                    path: Some(PathBuf::from("/var/lib/ferrofab/fast-0.zoned")),
                    block_size: Some(4096),
                },
                PoolMemberConfig {
                    backend: BackendKind::NvmeUring {
                        path: "/dev/ng1n1".into(),
                        iopoll: true,
                    },
                    size: None,
                    path: None,
                    block_size: None,
                },
            ],
            volume: vec![
                VolumeConfig {
                    name: "vm1".into(),
                    size: ByteSize(16 << 20),
                    block_size: None,
                },
                VolumeConfig {
                    name: "vm-2".into(),
                    size: ByteSize(12288),
                    block_size: Some(4096),
                },
            ],
        }],
    }
}

/// A valid DH-HMAC-CHAP secret of `len` key bytes with transformation `xx`.
fn secret(xx: u8, len: u8) -> String {
    let key: Vec<u8> = (0..len).collect();
    DhchapKey::from_raw(&key, nvme::auth::HashId::from_u8(xx))
        .unwrap()
        .to_secret()
}

#[test]
fn every_field_and_backend_round_trips() {
    let c = everything();
    let text = round_trip(&c);
    assert!(text.contains("kind = \"nvme-vfio\""), "{text}");
    assert!(text.contains("size = 1536"), "{text}");
    // `allowed_hosts = []` (no host may connect) differs from absent (any host may).
    assert!(text.contains("allowed_hosts = []"), "{text}");
}

#[test]
fn allow_list_and_subsystem_listeners_round_trip() {
    let text = "[[listener]]\ntransport = \"tcp\"\naddress = \"10.0.0.1:4420\"\n\
         [[listener]]\ntransport = \"tcp\"\naddress = \"10.0.0.2:4420\"\n\
         [[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\n\
         allowed_hosts = [\"nqn.2026-01.io.host:h1\", \"nqn.2026-01.io.host:h2\"]\n\
         listeners = [\"10.0.0.2:4420\"]\n\
         [[subsystem.namespace]]\nbackend = \"null\"\nsize = \"1MiB\"\n\
         [[subsystem.namespace]]\nbackend = { kind = \"nvme-vfio\", pci = \"00:05.0\" }\n\
         [reactor]\ncount = 1\npoll = \"adaptive\"\n";
    let c = Config::parse(text, "t").unwrap();
    round_trip(&c);
    let s = &c.subsystem[0];
    assert_eq!(s.allowed_hosts.as_ref().map(Vec::len), Some(2));
    assert_eq!(s.listeners, Some(vec![addr("10.0.0.2:4420").into()]));
}

#[test]
fn byte_sizes_keep_their_value() {
    let forms = |n: u64| toml::Value::try_from(ByteSize(n)).unwrap().to_string();
    assert_eq!(forms(0), "0");
    assert_eq!(forms(512), "512");
    assert_eq!(forms(4096), "\"4KiB\"");
    assert_eq!(forms(3 << 20), "\"3MiB\"");
    assert_eq!(forms(1 << 40), "\"1TiB\"");
    assert_eq!(forms(u64::MAX), format!("\"{}\"", u64::MAX));
    for n in [
        0,
        1,
        512,
        1536,
        4096,
        3 << 20,
        5 << 40,
        i64::MAX as u64,
        u64::MAX,
    ] {
        let text = format!("v = {}", forms(n));
        #[derive(serde::Deserialize)]
        struct V {
            v: ByteSize,
        }
        let back: V = toml::from_str(&text).unwrap();
        assert_eq!(back.v, ByteSize(n), "{text}");
    }
}

#[test]
fn unwritable_values_are_errors_not_panics() {
    use std::os::unix::ffi::OsStrExt;
    let mut c = Config::default_config().unwrap();
    c.subsystem[0].namespace[0] = NamespaceConfig {
        path: Some(PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/\xff"))),
        size: None,
        ..ns(1, BackendKind::File)
    };
    let e = c.to_toml().unwrap_err();
    assert!(matches!(e, ConfigError::Serialize { .. }), "{e}");
}

/// A valid configuration drawn from `rng`, using every optional field at random.
fn generated(rng: &mut StdRng) -> Config {
    let n_listeners = rng.random_range(1..=3);
    let listener: Vec<_> = (0..n_listeners)
        .map(|i| {
            if rng.random_bool(0.5) {
                listener(&format!(
                    "10.0.{}.{i}:{}",
                    rng.random_range(0..=255),
                    4420 + i
                ))
            } else {
                listener(&format!("[fd00::{i:x}]:{}", 4420 + i))
            }
        })
        .collect::<Vec<ListenerConfig>>()
        .into_iter()
        .map(|mut l| {
            if rng.random_bool(0.5) {
                l.transport = TransportKind::Rdma;
            }
            l
        })
        .collect();
    let mut pci = 0u32;
    let mut uring = 0u32;
    let subsystem = (0..rng.random_range(0..=4))
        .map(|i| {
            let pick = |rng: &mut StdRng, text: String| rng.random_bool(0.5).then_some(text);
            let namespace = (0..rng.random_range(0..=5))
                .map(|_| {
                    let bs = if rng.random_bool(0.5) { 512 } else { 4096 };
                    let size = ByteSize(u64::from(bs) * rng.random_range(1..=1u64 << 24));
                    let mut n = NamespaceConfig {
                        nsid: rng.random_bool(0.3).then(|| rng.random_range(1..=MAX_NSID)),
                        backend: BackendKind::Ram,
                        size: Some(size),
                        path: None,
                        block_size: (bs != 512 || rng.random_bool(0.5)).then_some(bs),
                        direct: None,
                    };
                    match rng.random_range(0..5) {
                        0 => {}
                        1 => n.backend = BackendKind::Null,
                        2 => {
                            n.backend = BackendKind::File;
                            n.path = Some(format!("/srv/ns {}.img", rng.random::<u16>()).into());
                            n.size = n.size.filter(|_| rng.random_bool(0.5));
                            n.direct = rng.random_bool(0.5).then(|| rng.random_bool(0.5));
                        }
                        3 => {
                            pci += 1;
                            n.backend = BackendKind::NvmeVfio {
                                pci: format!("{:02x}:{:02x}.{}", pci / 32, pci % 32, pci % 8),
                                nsid: rng.random_range(1..1000),
                                bind: rng.random_bool(0.5),
                            };
                            (n.size, n.block_size) = (None, None);
                        }
                        _ => {
                            uring += 1;
                            n.backend = BackendKind::NvmeUring {
                                path: format!("/dev/ng{uring}n1").into(),
                                iopoll: rng.random_bool(0.5),
                            };
                            (n.size, n.block_size) = (None, None);
                        }
                    }
                    n
                })
                .collect();
            let serial = format!("S{}", rng.random::<u32>());
            SubsystemConfig {
                nqn: format!("nqn.2026-01.io.ferrofab:gen-{i}"),
                serial: pick(rng, serial),
                model: pick(rng, "Model \"x\"".into()),
                firmware: pick(rng, "fw".into()),
                allowed_hosts: rng.random_bool(0.5).then(|| {
                    (0..rng.random_range(0..3))
                        .map(|h| format!("nqn.2026-01.io.host:{h}-{}", rng.random::<u8>()))
                        .collect()
                }),
                listeners: rng.random_bool(0.5).then(|| {
                    let l = &listener[0];
                    let transport = rng.random_bool(0.5).then_some(l.transport);
                    vec![ListenerRef {
                        transport,
                        address: l.address,
                    }]
                }),
                namespace,
            }
        })
        .collect();
    let reactor = match rng.random_range(0..3) {
        0 => ReactorSection::default(),
        1 => ReactorSection {
            cores: Some(vec![1, 0]),
            count: None,
            poll: PollMode::Busy,
        },
        _ => ReactorSection {
            cores: None,
            count: Some(1),
            poll: PollMode::Adaptive,
        },
    };
    let drives = if rng.random_bool(0.5) {
        DrivesSection::default()
    } else {
        DrivesSection {
            queue_depth: rng.random_range(2..=65536),
            command_timeout_ms: rng.random_range(100..=600_000),
            dma_memory: ByteSize(rng.random_range(2..=32u64) << 21),
        }
    };
    Config {
        listener,
        subsystem,
        reactor,
        drives,
        pool: Vec::new(),
        host: Vec::new(),
        tls_psk: Vec::new(),
    }
}

#[test]
fn generated_configs_round_trip() {
    let mut rng = StdRng::seed_from_u64(0x5eed_c0f1);
    let mut valid = 0;
    for _ in 0..500 {
        let mut c = generated(&mut rng);
        // Random explicit nsids may collide; such a config is invalid and not persisted.
        if c.validate().is_err() {
            continue;
        }
        round_trip(&c);
        valid += 1;
    }
    assert!(
        valid >= 300,
        "only {valid} of 500 generated configs were valid"
    );
}
