//! ResizeNamespace: growth keeps every block, the new blocks read zero, the host is told;
//! shrinking, drives and sizes off the block grid are refused with nothing changed.

use super::*;

fn resize(nsid: u32, size: u64) -> Action {
    Action::ResizeNamespace {
        nqn: A.into(),
        nsid,
        size,
    }
}

fn read(ns: &Namespace, lba: u64, blocks: usize) -> Vec<u8> {
    let mut buf = vec![0xee; blocks * ns.block_size() as usize];
    ns.backend.read(lba, &mut buf).unwrap();
    buf
}

#[tokio::test]
async fn a_ram_namespace_grows_without_losing_a_block() {
    let e = engine(config(""));
    let sub = e.target().subsystem(A).unwrap();
    let old = sub.namespace(1).unwrap();
    assert_eq!(old.num_blocks(), 2048);
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    old.backend.write(0, &pattern, false).unwrap();
    old.backend.write(2040, &pattern, false).unwrap();
    let ctrl = connect(&e, A, "127.0.0.1:4420");
    ctrl.changed_namespaces(true);

    let out = e.apply(resize(1, 4 << 20)).unwrap();
    assert_eq!(
        out,
        Outcome::NamespaceResized {
            nqn: A.into(),
            nsid: 1,
            size: 4 << 20
        }
    );
    let new = sub.namespace(1).unwrap();
    assert_eq!(new.num_blocks(), 8192);
    // Its metrics continue: the grown namespace counts on the same counters.
    old.stats.record(
        crate::metrics::IoOp::Write,
        nvme::Status::SUCCESS,
        4096,
        std::time::Duration::from_micros(5),
    );
    assert_eq!(
        new.stats.sample().op(crate::metrics::IoOp::Write).bytes,
        4096
    );
    assert_eq!(read(&new, 0, 8), pattern);
    assert_eq!(read(&new, 2040, 8), pattern);
    assert_eq!(
        read(&new, 2048, 6144),
        vec![0; 6144 * 512],
        "new blocks read zero"
    );
    // The host is told (NVMe Base 2.0 §5.16.1.5, Changed Namespace List).
    assert_eq!(ctrl.changed_namespaces(true), vec![1]);
    // I/O still holding the old namespace stays within the old capacity, on the same data.
    assert_eq!(old.num_blocks(), 2048);
    assert_eq!(read(&old, 2040, 8), pattern);
    new.backend.write(100, &[9; 512], false).unwrap();
    assert_eq!(read(&old, 100, 1), vec![9; 512]);
    assert_eq!(
        e.config().subsystem[0].namespace[0].size,
        Some(ByteSize(4 << 20))
    );
    // The current size again: success, no event, the same namespace.
    e.apply(resize(1, 4 << 20)).unwrap();
    assert!(Arc::ptr_eq(&new, &sub.namespace(1).unwrap()));
    assert!(ctrl.changed_namespaces(true).is_empty());
}

#[test]
fn shrinking_and_off_grid_sizes_are_refused() {
    let e = engine(config(""));
    let before = e.config();
    let err = e.apply(resize(1, 512 << 10)).unwrap_err();
    assert!(
        matches!(err, ActionError::Shrink { size, current, .. }
            if size == 512 << 10 && current == 1 << 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("discard host data"), "{err}");
    let err = e.apply(resize(1, (2 << 20) + 100)).unwrap_err();
    assert!(
        matches!(&err, ActionError::Invalid { field: Some(f), .. } if f.name == "size"),
        "{err:?}"
    );
    assert!(matches!(
        e.apply(resize(9, 2 << 20)),
        Err(ActionError::NoSuchNamespace { nsid: 9, .. })
    ));
    assert_eq!(e.config(), before);
    assert_eq!(
        e.target()
            .subsystem(A)
            .unwrap()
            .namespace(1)
            .unwrap()
            .num_blocks(),
        2048
    );
}

#[test]
fn drives_decide_their_own_size() {
    let mut c = config(
        "[[subsystem.namespace]]\nnsid = 2\nbackend = { kind = \"nvme-uring\", path = \"/dev/ng0n1\" }\n",
    );
    let err = action::apply_to_model(&mut c, &resize(2, 1 << 30)).unwrap_err();
    assert!(
        matches!(&err, ActionError::NotResizable { nsid: 2, reason, .. }
            if reason.contains("from the drive")),
        "{err:?}"
    );
}

#[test]
fn file_and_null_namespaces_grow() {
    let dir = std::env::temp_dir().join(format!("ferrofab-engine-resize-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("ns.img");
    let e = engine(config(&format!(
        "[[subsystem.namespace]]\nnsid = 2\nbackend = \"file\"\npath = \"{}\"\nsize = \"1MiB\"\ndirect = false\n\n\
         [[subsystem.namespace]]\nnsid = 3\nbackend = \"null\"\nsize = \"1MiB\"\n",
        img.display()
    )));
    let sub = e.target().subsystem(A).unwrap();
    sub.namespace(2)
        .unwrap()
        .backend
        .write(2047, &[0x5a; 512], false)
        .unwrap();
    e.apply_all(vec![resize(2, 3 << 20), resize(3, 8 << 20)])
        .unwrap();
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 3 << 20);
    let file = sub.namespace(2).unwrap();
    assert_eq!(file.num_blocks(), 6144);
    assert_eq!(read(&file, 2047, 2)[..512], [0x5a; 512]);
    assert_eq!(read(&file, 2048, 1), vec![0; 512]);
    assert_eq!(sub.namespace(3).unwrap().num_blocks(), 16384);
    drop(e);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_reloaded_size_is_a_resize() {
    let e = engine(config(""));
    e.target()
        .subsystem(A)
        .unwrap()
        .namespace(1)
        .unwrap()
        .backend
        .write(7, &[1; 512], false)
        .unwrap();
    let mut bigger = config("");
    bigger.subsystem[0].namespace[0].size = Some(ByteSize(2 << 20));
    assert_eq!(
        diff(&e.config(), &bigger).unwrap(),
        vec![resize(1, 2 << 20)]
    );
    e.reload(&bigger).unwrap();
    let ns = e.target().subsystem(A).unwrap().namespace(1).unwrap();
    assert_eq!(ns.num_blocks(), 4096);
    assert_eq!(read(&ns, 7, 1), vec![1; 512]);
    // Reloading the smaller size back is a shrink, refused whole.
    assert!(matches!(
        e.reload(&config("")),
        Err(ActionError::Shrink { .. })
    ));
}
