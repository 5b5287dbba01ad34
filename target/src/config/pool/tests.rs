//! `[[pool]]` parsing, its rules and their messages, volume namespaces, and the round trip.

use crate::config::*;

const L: &str = "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:4420\"\n";

/// One pool of two zoned-ram members with one volume, and a subsystem exporting it.
fn good() -> String {
    format!(
        "{L}\
[[pool]]
name = \"fast\"
over_provisioning = 20
journal_zones = 3
gc = \"greedy\"
map_cache = \"64MiB\"

[[pool.member]]
backend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\" }}
size = \"64MiB\"
block_size = 4096
path = \"/var/lib/ferrofab/fast-0.zoned\"

[[pool.member]]
backend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\" }}
size = \"64MiB\"
block_size = 4096

[[pool.volume]]
name = \"vm1\"
size = \"16MiB\"

[[pool.volume]]
name = \"vm2\"
size = \"8MiB\"
block_size = 4096

[[subsystem]]
nqn = \"nqn.2026-01.io.ferrofab:v\"
[[subsystem.namespace]]
backend = {{ kind = \"volume\", pool = \"fast\", volume = \"vm1\" }}
"
    )
}

fn err(text: &str) -> String {
    Config::parse(text, "t.toml").unwrap_err().to_string()
}

#[test]
fn pools_parse_with_their_defaults_and_round_trip() {
    let c = Config::parse(&good(), "t").unwrap();
    let p = &c.pool[0];
    assert_eq!(
        (p.name.as_str(), p.over_provisioning, p.journal_zones, p.gc),
        ("fast", Some(20), 3, GcKind::Greedy)
    );
    assert_eq!(p.member.len(), 2);
    assert_eq!(p.member[1].block_size(), 4096);
    assert_eq!(p.known_block_size(), Some(4096));
    assert_eq!(p.volume[0].size, ByteSize(16 << 20));
    assert_eq!(p.volume[0].block_size, None);
    assert_eq!(
        c.subsystem[0].namespace[0].backend,
        BackendKind::Volume {
            pool: "fast".into(),
            volume: "vm1".into()
        }
    );
    assert_eq!(p.map_cache, Some(ByteSize(64 << 20)));
    let o = p.options();
    assert_eq!((o.op_percent, o.journal_zones), (Some(20), 3));
    assert_eq!(o.gc, crate::layout::GcPolicy::Greedy);
    assert_eq!(o.map_cache_bytes, 64 << 20);
    let text = c.to_toml().unwrap();
    assert_eq!(Config::parse(&text, "t").unwrap(), c, "{text}");
    assert!(text.contains("kind = \"volume\""), "{text}");
    assert!(text.contains("map_cache = \"64MiB\""), "{text}");

    // Left out: over-provisioning (the engine's: 15% for a new pool), 4 journal zones, cost-benefit, the engine's map cache
    // (0); drive members.
    let c = Config::parse(
        &format!(
            "{L}[[pool]]\nname = \"d\"\n[[pool.member]]\nbackend = {{ kind = \"nvme-uring\", path = \"/dev/ng0n1\" }}\n\
             [[pool.member]]\nbackend = {{ kind = \"nvme-vfio\", pci = \"00:05.0\" }}\n\
             [[pool.volume]]\nname = \"a.b_c-1\"\nsize = \"1GiB\"\n"
        ),
        "t",
    )
    .unwrap();
    let p = &c.pool[0];
    assert_eq!(
        (p.over_provisioning, p.journal_zones, p.gc),
        (None, 4, GcKind::CostBenefit)
    );
    assert_eq!(p.options().op_percent, None);
    let text = c.to_toml().unwrap();
    assert!(!text.contains("over_provisioning"), "{text}");
    assert_eq!(p.map_cache, None);
    assert_eq!(
        p.options().map_cache_bytes,
        crate::layout::PoolOptions::default().map_cache_bytes
    );
    assert_eq!(p.options().map_cache_bytes, 0);
    assert!(!c.to_toml().unwrap().contains("map_cache"));
    // PCI addresses are normalised as a namespace's are.
    assert_eq!(
        p.member[1].backend,
        BackendKind::NvmeVfio {
            pci: "0000:00:05.0".into(),
            nsid: 1,
            bind: false
        }
    );
    assert_eq!(p.known_block_size(), None);
    assert_eq!(Config::parse(&c.to_toml().unwrap(), "t").unwrap(), c);
}

#[test]
fn bad_pools_get_errors_naming_the_field() {
    let g = good();
    let bad = |from: &str, to: &str, want: &str| {
        assert!(g.contains(from), "{from}");
        let e = err(&g.replacen(from, to, 1));
        assert!(e.contains(want), "{from} -> {to}: {e}");
    };
    bad("name = \"fast\"", "name = \"fa st\"", "A-Z a-z 0-9 . _ -");
    bad(
        "name = \"fast\"",
        &format!("name = \"{}\"", "x".repeat(65)),
        "1 to 64",
    );
    bad(
        "over_provisioning = 20",
        "over_provisioning = 90",
        "over_provisioning 90",
    );
    bad("journal_zones = 3", "journal_zones = 1", "journal_zones 1");
    bad(
        "map_cache = \"64MiB\"",
        "map_cache = \"512KiB\"",
        "map_cache 524288 must be at least 1MiB",
    );
    bad("map_cache = \"64MiB\"", "map_cache = 0", "map_cache 0");
    bad("map_cache = \"64MiB\"", "map_cache = \"64XB\"", "64XB");
    bad("gc = \"greedy\"", "gc = \"lazy\"", "lazy");
    bad("gc = \"greedy\"", "colour = 1", "colour");
    bad(
        "backend = { kind = \"zoned-ram\", zone_size = \"1MiB\" }\nsize = \"64MiB\"\nblock_size = 4096\npath",
        "backend = \"ram\"\nsize = \"64MiB\"\nblock_size = 4096\npath",
        "is not zoned",
    );
    bad(
        "size = \"64MiB\"\nblock_size = 4096\n\n",
        "size = \"32MiB\"\nblock_size = 4096\n\n",
        "one geometry",
    );
    bad(
        "size = \"64MiB\"\nblock_size = 4096\n\n",
        "block_size = 4096\n\n",
        "size is required",
    );
    bad(
        "size = \"64MiB\"\nblock_size = 4096\n\n",
        "size = \"64MiB\"\nblock_size = 1000\n\n",
        "block_size 1000",
    );
    bad(
        "name = \"vm2\"",
        "name = \"vm1\"",
        "configured twice in the pool",
    );
    bad("name = \"vm2\"", "name = \"vm/2\"", "A-Z a-z 0-9");
    bad(
        "size = \"8MiB\"\nblock_size = 4096",
        "size = \"8MiB\"\nblock_size = 512",
        "differs from the pool's 4096",
    );
    bad(
        "size = \"16MiB\"",
        "size = 5000",
        "multiple of the 4096-byte block size",
    );
    bad("size = \"16MiB\"", "size = 0", "non-zero");
    // Namespaces exporting volumes.
    bad(
        "volume = \"vm1\" }",
        "volume = \"vm9\" }",
        "has no volume \"vm9\"",
    );
    bad(
        "pool = \"fast\", volume",
        "pool = \"slow\", volume",
        "pool \"slow\" is not a configured",
    );
    bad(
        "volume = \"vm1\" }\n",
        "volume = \"vm1\" }\nsize = \"16MiB\"\n",
        "remove size",
    );
    bad(
        "volume = \"vm1\" }\n",
        "volume = \"vm1\" }\nblock_size = 512\n",
        "remove block_size",
    );
    bad(
        "volume = \"vm1\" }\n",
        "volume = \"vm1\" }\n[[subsystem.namespace]]\nbackend = { kind = \"volume\", pool = \"fast\", volume = \"vm1\" }\n",
        "already exported by",
    );
    bad(
        "kind = \"volume\", pool = \"fast\", ",
        "kind = \"volume\", ",
        "pool",
    );
    // A second pool of the same name, and one with no members.
    let twice = format!("{g}[[pool]]\nname = \"fast\"\n[[pool.member]]\nbackend = {{ kind = \"nvme-uring\", path = \"/dev/ng1n1\" }}\n");
    assert!(err(&twice).contains("configured twice"), "{}", err(&twice));
    let empty = format!("{L}[[pool]]\nname = \"e\"\n");
    assert!(err(&empty).contains("[[pool.member]]"), "{}", err(&empty));
    // A drive is a pool member or a namespace, not both; drives give their own geometry.
    let drive = "backend = { kind = \"nvme-uring\", path = \"/dev/ng0n1\" }";
    let both = format!("{L}[[pool]]\nname = \"d\"\n[[pool.member]]\n{drive}\n[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\n[[subsystem.namespace]]\n{drive}\n");
    assert!(err(&both).contains("already used"), "{}", err(&both));
    let sized = format!("{L}[[pool]]\nname = \"d\"\n[[pool.member]]\n{drive}\nsize = \"1GiB\"\n");
    assert!(
        err(&sized).contains("come from the drive"),
        "{}",
        err(&sized)
    );
    // A pool member's backing file is not a namespace's too.
    let e = err(&format!(
        "{g}[[subsystem.namespace]]\nbackend = \"file\"\npath = \"/var/lib/ferrofab/fast-0.zoned\"\n"
    ));
    assert!(e.contains("backing file of a pool member"), "{e}");
    // "volume" alone is not a backend.
    let e = err(&g.replacen(
        "{ kind = \"volume\", pool = \"fast\", volume = \"vm1\" }",
        "\"volume\"",
        1,
    ));
    assert!(e.contains("needs a table"), "{e}");
}

#[test]
fn pool_rules_name_their_field() {
    let mut c: Config =
        toml::from_str(&good().replacen("size = \"16MiB\"", "size = 5000", 1)).unwrap();
    let e = c.validate().unwrap_err();
    assert_eq!(e.field.unwrap().to_string(), "pool[0].volume[0].size");
    let mut c: Config =
        toml::from_str(&good().replacen("block_size = 4096\npath", "block_size = 1000\npath", 1))
            .unwrap();
    let e = c.validate().unwrap_err();
    assert_eq!(e.field.unwrap().to_string(), "pool[0].member[0].block_size");
    let mut c: Config =
        toml::from_str(&good().replacen("over_provisioning = 20", "over_provisioning = 95", 1))
            .unwrap();
    let e = c.validate().unwrap_err();
    assert_eq!(e.field.unwrap().to_string(), "pool[0].over_provisioning");
    let mut c: Config =
        toml::from_str(&good().replacen("map_cache = \"64MiB\"", "map_cache = \"1KiB\"", 1))
            .unwrap();
    let e = c.validate().unwrap_err();
    assert_eq!(e.field.unwrap().to_string(), "pool[0].map_cache");
    // The smallest allowed.
    let c = Config::parse(
        &good().replacen("map_cache = \"64MiB\"", "map_cache = 1048576", 1),
        "t",
    )
    .unwrap();
    assert_eq!(c.pool[0].options().map_cache_bytes, 1 << 20);
}

#[test]
fn exporter_finds_the_namespace() {
    let c = Config::parse(&good(), "t").unwrap();
    assert_eq!(
        exporter(&c.subsystem, "fast", Some("vm1")),
        Some(("nqn.2026-01.io.ferrofab:v", 1, "vm1"))
    );
    assert_eq!(exporter(&c.subsystem, "fast", Some("vm2")), None);
    assert_eq!(
        exporter(&c.subsystem, "fast", None).map(|e| e.2),
        Some("vm1")
    );
    assert_eq!(exporter(&c.subsystem, "slow", None), None);
}
